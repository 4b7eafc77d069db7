/**
 * A Disk whose backing file can be replaced under a running controller (an online checkpoint moves a drive
 * onto its new differencing child): the SCSI target or IDE channel keeps its state and only sees this object.
 *
 * detach() waits for the requests in flight, flushes and closes the current file (so another process may
 * open it, e.g. as the parent of a new child); requests that arrive meanwhile wait; attach() gives them the
 * new file. The new file must show the same guest view (size, sectors, disk id).
 */
import type { Disk } from './disk.js';

export class SwappableDisk implements Disk {
  private inner: Disk | null;
  private readonly inflight = new Set<Promise<unknown>>();
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  constructor(disk: Disk) { this.inner = disk; this.path = disk.path; this.sizeBytes = disk.sizeBytes; this.logicalSectorSize = disk.logicalSectorSize; this.physicalSectorSize = disk.physicalSectorSize; this.readOnly = disk.readOnly; this.diskId = disk.diskId; this.canUnmap = disk.canUnmap; }

  /** The file the guest's view comes from now (changes with attach). */
  path: string;
  readonly sizeBytes: number;
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly diskId: Uint8Array;
  readonly canUnmap: boolean;

  private async run<T>(fn: (d: Disk) => Promise<T>): Promise<T> {
    while (this.gate) await this.gate;
    const d = this.inner;
    if (!d) throw new Error(`${this.path}: the disk is closed`);
    const p = fn(d);
    this.inflight.add(p);
    try { return await p; } finally { this.inflight.delete(p); }
  }

  read(offset: number, buf: Uint8Array): Promise<void> { return this.run((d) => d.read(offset, buf)); }
  write(offset: number, data: Uint8Array, fua?: boolean): Promise<void> {
    return this.run(async (d) => { await d.write(offset, data, fua); this.onWrite?.(offset, data.length); });
  }
  flush(): Promise<void> { return this.run((d) => d.flush()); }
  unmap(offset: number, length: number): Promise<void> {
    return this.run(async (d) => { await d.unmap(offset, length); this.onWrite?.(offset, length); });
  }

  /**
   * Called after each write or unmap completed (an online merge copies those ranges again). Called on
   * completion, so a copy that raced with the write is always followed by another.
   */
  onWrite: ((offset: number, length: number) => void) | null = null;

  /** The open file (null while detached): an online merge reads it directly, beside the guest's requests. */
  get current(): Disk | null { return this.inner; }

  /** Holds new requests and lets the running ones finish; the file stays open (unhold, or detach, follows). */
  async hold(): Promise<void> {
    if (this.gate) throw new Error(`${this.path} is already held`);
    this.gate = new Promise((r) => { this.openGate = r; });
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  /** Releases requests held by hold(), on the same file. */
  unhold(): void {
    if (!this.gate || !this.inner) throw new Error(`${this.path} is not held`);
    this.attachClosed();
  }

  /** Holds new requests (unless held already), lets the running ones finish, flushes and closes the file. */
  async detach(): Promise<void> {
    if (!this.gate) await this.hold();
    else if (!this.inner) throw new Error(`${this.path} is already detached`);
    const d = this.inner!;
    this.inner = null;
    await d.close();
  }

  /** Continues on `disk` (the same guest view), releasing the held requests. */
  attach(disk: Disk): void {
    if (!this.gate || this.inner) throw new Error(`${this.path} is not detached`);
    if (disk.sizeBytes !== this.sizeBytes || disk.logicalSectorSize !== this.logicalSectorSize) {
      throw new Error(`${disk.path} (${disk.sizeBytes} bytes, ${disk.logicalSectorSize}-byte sectors) does not match ${this.path}`);
    }
    this.inner = disk;
    this.path = disk.path;
    const open = this.openGate!;
    this.gate = null;
    this.openGate = null;
    open();
  }

  get detached(): boolean { return this.gate !== null && this.inner === null; }

  async close(): Promise<void> {
    const d = this.inner;
    if (this.gate) this.attachClosed();
    this.inner = null;
    await d?.close();
  }

  /** Closing while detached: held requests fail rather than hang. */
  private attachClosed(): void {
    const open = this.openGate!;
    this.gate = null;
    this.openGate = null;
    open();
  }
}
