/** A raw image file as a Disk: offsets map 1:1 onto the file. */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { checkRange, DiskError, type Disk } from './disk.js';
import { NodeFile, readFull, type BlockFile, type FileOpener } from './file-io.js';
import { lockDisk, type HeldLock } from './lock.js';

export interface OpenRawOptions {
  readOnly?: boolean;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  lock?: boolean;
  purpose?: string;
  /** Opens the file instead of the path (a descriptor handed to a VM worker). */
  openFile?: FileOpener;
}

export class RawDisk implements Disk {
  readonly canUnmap = true;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private constructor(readonly path: string, private readonly file: BlockFile, readonly sizeBytes: number, readonly readOnly: boolean,
    readonly logicalSectorSize: 512 | 4096, readonly physicalSectorSize: 512 | 4096, readonly diskId: Uint8Array, private readonly lock: HeldLock | null) {}

  static async open(path: string, o: OpenRawOptions = {}): Promise<RawDisk> {
    const readOnly = o.readOnly ?? false;
    const file = o.openFile ? await o.openFile(path, readOnly) : await NodeFile.open(path, readOnly);
    let lock: HeldLock | null = null;
    try {
      if (o.lock !== false) lock = lockDisk(file.fd, path, !readOnly, o.purpose);
      const size = await file.size();
      const ls = o.logicalSectorSize ?? 512;
      if (size === 0 || size % ls !== 0) throw new DiskError('range', `${path}: raw image size ${size} is not a non-zero multiple of ${ls} bytes`);
      // Stable across opens and hosts' renames of the directory tree above it only via realpath; good enough for VPD 0x83.
      // A file handed over as a descriptor may have no path here (a VM worker's sandbox): its name then.
      let real = path;
      try { real = realpathSync(path); } catch { /* not visible here */ }
      const id = createHash('sha256').update(`hyperts-raw:${real}`).digest().subarray(0, 16);
      return new RawDisk(path, file, size, readOnly, ls, o.physicalSectorSize ?? ls, new Uint8Array(id), lock);
    } catch (e) {
      lock?.release();
      await file.close();
      throw e;
    }
  }

  private check(offset: number, length: number, writing: boolean): void {
    if (this.closed) throw new DiskError('closed', `${this.path} is closed`);
    checkRange(this, offset, length);
    if (writing && this.readOnly) throw new DiskError('read-only', `${this.path} is read-only`);
  }
  private io<T>(fn: () => Promise<T>): Promise<T> {
    return fn().catch((e: unknown) => { throw e instanceof DiskError ? e : new DiskError('io', `${this.path}: ${(e as Error).message}`); });
  }
  async read(offset: number, buf: Uint8Array): Promise<void> { this.check(offset, buf.length, false); await this.io(() => readFull(this.file, buf, offset)); }
  async write(offset: number, data: Uint8Array, fua?: boolean): Promise<void> {
    this.check(offset, data.length, true);
    await this.io(async () => { await this.file.write(data, offset); if (fua) await this.file.flush(); });
  }
  async flush(): Promise<void> { this.check(0, 0, false); if (!this.readOnly) await this.io(() => this.file.flush()); }
  async unmap(offset: number, length: number): Promise<void> { this.check(offset, length, true); await this.io(() => this.file.zeroRange(offset, length)); }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try { if (!this.readOnly) await this.file.flush(); } finally { this.lock?.release(); await this.file.close(); }
  }
}
