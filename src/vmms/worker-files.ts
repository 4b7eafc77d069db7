/**
 * The worker's side of file grants (fd-passing.ts): the files the service opened for one request (a checkpoint's
 * new differencing disk, the parent an online merge writes, a hot-added disk), by path, for as long as the
 * request runs. Disk opens go through openFile: a granted path is served from its descriptor, anything else
 * is opened by path (a non-isolated worker, or a file bound into the sandbox at start).
 *
 * Design: the service grants a disk's whole chain with each request that opens it (the disk first, then each
 * differencing parent as its locator resolves, parents read-only), and the worker looks parents up here by the
 * path their locator names. The worker never asks for anything: it cannot name a file the service did not pick.
 */
import { closeSync } from 'node:fs';
import { NodeFile, type BlockFile } from '../storage/file-io.js';
import { dupFd, receiveFd, type ReceivedFd } from './fd-passing.js';

/** What a request's message says about each descriptor sent just before it. */
export interface FileGrant { grant: number; path: string; writable: boolean }

/** Received descriptors not claimed yet (another request's, sent ahead of its message). */
const MAX_UNCLAIMED = 64;
const ARRIVAL_POLL_MS = 5;
const ARRIVAL_TIMEOUT_MS = 5000;

interface Held { fd: number; writable: boolean }

export class WorkerFiles {
  private readonly unclaimed = new Map<number, ReceivedFd>();
  private readonly byPath = new Map<string, Held[]>();
  /** Messages dropped as malformed (tests). */
  readonly stats = { rejected: 0 };

  /** `channel`: this worker's end of the socketpair, or null (no descriptors: paths only). */
  constructor(private readonly channel: number | null, private readonly arrivalTimeoutMs = ARRIVAL_TIMEOUT_MS) {}

  /** Runs `fn` with the request's granted files available to openFile; closes them afterwards. */
  async with<T>(grants: FileGrant[] | undefined, fn: () => Promise<T>): Promise<T> {
    if (!grants?.length) return fn();
    const held = await this.collect(grants);
    for (const [path, h] of held) {
      const list = this.byPath.get(path) ?? [];
      list.push(h);
      this.byPath.set(path, list);
    }
    try {
      return await fn();
    } finally {
      for (const [path, h] of held) {
        const list = this.byPath.get(path);
        if (list) { list.splice(list.indexOf(h), 1); if (!list.length) this.byPath.delete(path); }
        try { closeSync(h.fd); } catch { /* closed */ }
      }
    }
  }

  private async collect(grants: FileGrant[]): Promise<Array<[string, Held]>> {
    if (this.channel === null) throw new Error('the service sent files, but this worker has no channel to receive them');
    const want = new Map(grants.map((g) => [g.grant, g]));
    const got: Array<[string, Held]> = [];
    const take = (r: ReceivedFd): boolean => {
      const g = want.get(r.grant);
      if (!g) return false;
      want.delete(r.grant);
      // The header's mode must match the message's: a mismatch is a mistake, not a file to use.
      if (g.writable !== r.writable) { try { closeSync(r.fd); } catch { /* closed */ } throw new Error(`file grant ${r.grant} (${g.path}) arrived with the wrong access mode`); }
      got.push([g.path, { fd: r.fd, writable: r.writable }]);
      return true;
    };
    try {
      // They were sent before the request's message, so they are queued by now; a short wait covers the rest.
      // (Another request's drain may have parked ours meanwhile: look there on every round.)
      const deadline = Date.now() + this.arrivalTimeoutMs;
      while (want.size) {
        for (const n of [...want.keys()]) {
          const p = this.unclaimed.get(n);
          if (p) { this.unclaimed.delete(n); take(p); }
        }
        if (!want.size) break;
        const r = receiveFd(this.channel, this.stats);
        if (r) { if (!take(r)) this.park(r); continue; }
        if (Date.now() > deadline) throw new Error(`the service's files for this request did not arrive (${[...want.values()].map((g) => g.path).join(', ')})`);
        await new Promise((res) => setTimeout(res, ARRIVAL_POLL_MS));
      }
      return got;
    } catch (e) {
      for (const [, h] of got) try { closeSync(h.fd); } catch { /* closed */ }
      throw e;
    }
  }

  private park(r: ReceivedFd): void {
    this.unclaimed.set(r.grant, r);
    if (this.unclaimed.size > MAX_UNCLAIMED) {
      const [oldest, o] = this.unclaimed.entries().next().value as [number, ReceivedFd];
      this.unclaimed.delete(oldest);
      try { closeSync(o.fd); } catch { /* closed */ }
    }
  }

  /** Whether a granted file of this path is at hand (a parent locator may name it though it is not visible here). */
  readonly hasFile = (path: string): boolean => this.byPath.has(path);

  /**
   * Opens `path`: from a granted descriptor when there is one of the right mode (its own duplicate, so the
   * disk owns and closes it), else by path.
   */
  readonly openFile = async (path: string, readOnly: boolean): Promise<BlockFile> => {
    const list = this.byPath.get(path);
    if (list) {
      // Prefer a read-only grant for reading: the same file may be granted writable too (another role in the request).
      const h = readOnly ? (list.find((x) => !x.writable) ?? list[0]) : list.find((x) => x.writable);
      if (h) return NodeFile.fromFd(path, dupFd(h.fd), readOnly);
      throw new Error(`${path} was handed to the VM's worker read-only, and it needs to write it`);
    }
    return NodeFile.open(path, readOnly);
  };
}
