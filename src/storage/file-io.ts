/**
 * The small file interface the disk formats are written against. The real one is a Node FileHandle; tests put a
 * layer underneath that loses every write not yet flushed (simulated power loss) or crashes at a chosen point.
 */
import { close as fsClose, fdatasync, fstat, ftruncate, open as fsOpen, read as fsRead, write as fsWrite } from 'node:fs';
import { promisify } from 'node:util';
import { punchHole, readNoWait, threadSleeps, writeOnLoop } from './host-io.js';

export interface BlockFile {
  readonly path: string;
  /** Reads up to buf.length bytes at pos; returns how many were read (fewer only at end of file). */
  read(buf: Uint8Array, pos: number): Promise<number>;
  write(data: Uint8Array, pos: number): Promise<void>;
  size(): Promise<number>;
  truncate(len: number): Promise<void>;
  /** Everything written before is durable (fdatasync). */
  flush(): Promise<void>;
  /** The range reads as zeros afterwards; gives space back where the host can. */
  zeroRange(pos: number, len: number): Promise<void>;
  close(): Promise<void>;
  /** The OS descriptor, when there is one (locking). */
  readonly fd?: number;
}

/** Reads exactly buf.length bytes; bytes past end of file read as zeros. */
export async function readFull(f: BlockFile, buf: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const n = await f.read(buf.subarray(done), pos + done);
    if (n <= 0) { buf.fill(0, done); return; }
    done += n;
  }
}

const ZERO_CHUNK = new Uint8Array(1024 * 1024);
/** Reads up to this size are first tried from the page cache on the event loop (a copy of at most ~50 us). */
const NOWAIT_READ_MAX = 256 * 1024;

/**
 * Writes up to this size go into the page cache on the event loop: a thread-pool round trip costs 2-4x the 4 KiB
 * write itself (about 45 against 15 us on this loaded 2-core machine), and qemu-io's own pool hop is cheaper than
 * Node's. Larger writes (copying more, allocating more pages) stay on the pool.
 */
const LOOP_WRITE_MAX = 64 * 1024;

/**
 * Where the file system cannot refuse to block (ext4, tmpfs: no RWF_NOWAIT for buffered writes), a write on the
 * event loop may wait: for dirty-page throttling, the journal, memory. Each such write is timed; one that slept
 * (a voluntary context switch of the thread: being preempted on a busy host does not count) and took longer than
 * SLOW_LOOP_WRITE_MS sends small writes to the thread pool for a pause that doubles while slow writes recur (so a
 * host throttling writers costs the event loop one stall per pause, not one per write), and is back to the shortest
 * pause after CALM_MS without one. Host-wide, as what blocks (throttling, memory) is.
 */
const SLOW_LOOP_WRITE_MS = 1;
const MIN_PAUSE_MS = 100, MAX_PAUSE_MS = 30_000, CALM_MS = 10_000;
export const loopWriteGuard = {
  pausedUntil: 0,
  pauseMs: MIN_PAUSE_MS,
  lastSlow: -Infinity,
  /** Slow writes seen (tests, diagnostics). */
  slowWrites: 0,
  allowed(now: number): boolean { return now >= this.pausedUntil; },
  /** slept: the thread slept during the write (or that is unknown). */
  record(tookMs: number, now: number, slept: boolean): void {
    if (tookMs > SLOW_LOOP_WRITE_MS && slept) {
      this.slowWrites++;
      this.pausedUntil = now + this.pauseMs;
      this.pauseMs = Math.min(this.pauseMs * 2, MAX_PAUSE_MS);
      this.lastSlow = now;
    } else if (now - this.lastSlow > CALM_MS) {
      this.pauseMs = MIN_PAUSE_MS;
    }
  },
};

export type FileOpener = (path: string, readOnly: boolean) => Promise<BlockFile>;

const openP = promisify(fsOpen), fstatP = promisify(fstat), ftruncateP = promisify(ftruncate), fdatasyncP = promisify(fdatasync), closeP = promisify(fsClose);

/** A host file through its descriptor (fs calls on the number: works as well for a descriptor handed over by another process). */
export class NodeFile implements BlockFile {
  private closed = false;
  /** How small writes reach the page cache: RWF_NOWAIT on the event loop, a timed plain write there, or the pool. */
  private loopWrites: 'nowait' | 'plain' | 'pool' = 'nowait';
  private constructor(readonly path: string, readonly fd: number, readonly readOnly: boolean) {}

  static async open(path: string, readOnly: boolean, create = false): Promise<NodeFile> {
    const fd = await openP(path, create ? 'wx+' : readOnly ? 'r' : 'r+');
    return new NodeFile(path, fd, readOnly);
  }
  /**
   * A file from a descriptor this process already holds (a VM worker's disk sent by the service); `path` names
   * it in messages. The NodeFile owns the descriptor from now on: close() closes it.
   */
  static fromFd(path: string, fd: number, readOnly: boolean): NodeFile {
    if (!Number.isInteger(fd) || fd < 0) throw new Error(`${path}: invalid file descriptor ${fd}`);
    return new NodeFile(path, fd, readOnly);
  }
  // fs.read/fs.write on the descriptor: the same thread-pool I/O as FileHandle.read, with less per-call overhead
  // (about 1.5x the small random I/O rate measured here).
  async read(buf: Uint8Array, pos: number): Promise<number> {
    let done = 0;
    if (buf.length <= NOWAIT_READ_MAX) {
      while (done < buf.length) {
        const n = readNoWait(this.fd, done === 0 ? buf : buf.subarray(done), pos + done);
        if (n < 0) break; // not (all) cached: the thread pool reads the rest
        if (n === 0) return done;
        done += n;
      }
    }
    while (done < buf.length) {
      const n = await new Promise<number>((res, rej) => fsRead(this.fd, buf, done, buf.length - done, pos + done, (e, b) => (e ? rej(e) : res(b))));
      if (n === 0) break;
      done += n;
    }
    return done;
  }
  async write(data: Uint8Array, pos: number): Promise<void> {
    let done = 0;
    if (data.length <= LOOP_WRITE_MAX && this.loopWrites !== 'pool') {
      const nowait = this.loopWrites === 'nowait';
      const t0 = performance.now();
      if (nowait || loopWriteGuard.allowed(t0)) {
        const sleeps = nowait ? 0 : threadSleeps();
        const r = writeOnLoop(this.fd, data, pos, nowait);
        if (r === 'unsupported') this.loopWrites = nowait ? 'plain' : 'pool'; // this write goes to the pool
        else {
          if (!nowait) {
            const t1 = performance.now();
            if (t1 - t0 > SLOW_LOOP_WRITE_MS) loopWriteGuard.record(t1 - t0, t1, sleeps < 0 || threadSleeps() !== sleeps);
            else loopWriteGuard.record(t1 - t0, t1, false);
          }
          if (r !== 'blocked') done = r;
        }
      }
    }
    if (done < data.length) await writeAll(this.fd, done === 0 ? data : data.subarray(done), pos + done);
  }
  async size(): Promise<number> { return (await fstatP(this.fd)).size; }
  async truncate(len: number): Promise<void> { await ftruncateP(this.fd, len); }
  async flush(): Promise<void> { await fdatasyncP(this.fd); }
  async zeroRange(pos: number, len: number): Promise<void> {
    if (len <= 0) return;
    if (punchHole(this.fd, pos, len)) return;
    for (let off = 0; off < len; off += ZERO_CHUNK.length) {
      await this.write(ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, len - off)), pos + off);
    }
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeP(this.fd);
  }
}

async function writeAll(fd: number, data: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    done += await new Promise<number>((res, rej) => fsWrite(fd, data, done, data.length - done, pos + done, (e, b) => (e ? rej(e) : res(b))));
  }
}

/**
 * A read-only view of a file with sector writes laid over it in memory: a dirty VHDX opened read-only is
 * replayed here instead of on disk.
 */
export class OverlayFile implements BlockFile {
  private readonly sectors = new Map<number, Uint8Array>();
  private extendedSize = 0;
  constructor(private readonly inner: BlockFile) {}
  get path(): string { return this.inner.path; }
  get fd(): number | undefined { return this.inner.fd; }
  /** Lays 4 KiB-aligned data (or zeros) over the file. */
  put(offset: number, data: Uint8Array | null, length: number): void {
    for (let o = 0; o < length; o += 4096) this.sectors.set(offset + o, data ? data.subarray(o, o + 4096) : new Uint8Array(4096));
    this.extendedSize = Math.max(this.extendedSize, offset + length);
  }
  extendTo(size: number): void { this.extendedSize = Math.max(this.extendedSize, size); }
  async read(buf: Uint8Array, pos: number): Promise<number> {
    await readFull(this.inner, buf, pos);
    if (this.sectors.size > 0) {
      const first = Math.floor(pos / 4096) * 4096;
      for (let s = first; s < pos + buf.length; s += 4096) {
        const d = this.sectors.get(s);
        if (!d) continue;
        const from = Math.max(s, pos), to = Math.min(s + 4096, pos + buf.length);
        buf.set(d.subarray(from - s, to - s), from - pos);
      }
    }
    const size = await this.size();
    return Math.max(0, Math.min(buf.length, size - pos));
  }
  async size(): Promise<number> { return Math.max(await this.inner.size(), this.extendedSize); }
  async write(): Promise<void> { throw new Error(`${this.path} is open read-only`); }
  async truncate(): Promise<void> { throw new Error(`${this.path} is open read-only`); }
  async flush(): Promise<void> { /* nothing to make durable */ }
  async zeroRange(): Promise<void> { throw new Error(`${this.path} is open read-only`); }
  async close(): Promise<void> { await this.inner.close(); }
}
