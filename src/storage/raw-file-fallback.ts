/**
 * A minimal raw-image Disk until the VHDX work's `openDisk` (src/storage) reaches main; then assembly uses
 * that instead. Writes go through pwrite; flush and FUA use fdatasync, so a completed flush is durable.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { checkRange, DiskError, type Disk } from './disk.js';

export class RawFileDisk implements Disk {
  readonly logicalSectorSize = 512;
  readonly physicalSectorSize = 512;
  /** Unmap writes zeros (Node has no hole punching); the range still reads as zeros afterwards. */
  readonly canUnmap = false;
  readonly diskId: Uint8Array;
  private fh: FileHandle | null;

  private constructor(readonly path: string, fh: FileHandle, readonly sizeBytes: number, readonly readOnly: boolean) {
    this.fh = fh;
    // Stable across opens of the same file: the real path names the disk.
    this.diskId = createHash('sha256').update(realpathSync(path)).digest().subarray(0, 16);
  }

  static async open(path: string, readOnly: boolean): Promise<RawFileDisk> {
    let fh: FileHandle;
    try {
      fh = await open(path, readOnly ? 'r' : 'r+');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(code === 'ENOENT' ? `disk image '${path}' does not exist` : code === 'EACCES' || code === 'EROFS'
        ? `disk image '${path}' cannot be opened for ${readOnly ? 'reading' : 'writing'} (${code}); check its permissions or attach it read-only`
        : `cannot open disk image '${path}': ${(e as Error).message}`);
    }
    const st = await fh.stat();
    if (!st.isFile() || st.size === 0 || st.size % 512 !== 0) {
      await fh.close();
      throw new Error(`disk image '${path}' is ${st.isFile() ? `${st.size} bytes, not a non-empty multiple of 512` : 'not a regular file'}; resize it (e.g. truncate -s 1G '${path}')`);
    }
    return new RawFileDisk(path, fh, st.size, readOnly);
  }

  private handle(offset: number, length: number, writing: boolean): FileHandle {
    if (!this.fh) throw new DiskError('closed', `${this.path} is closed`);
    checkRange(this, offset, length);
    if (writing && this.readOnly) throw new DiskError('read-only', `${this.path} is read-only`);
    return this.fh;
  }

  private static io<T>(path: string, p: Promise<T>): Promise<T> {
    return p.catch((e: Error) => { throw new DiskError('io', `${path}: ${e.message}`); });
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    const fh = this.handle(offset, buf.length, false);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await RawFileDisk.io(this.path, fh.read(buf, done, buf.length - done, offset + done));
      if (bytesRead === 0) { buf.fill(0, done); break; }
      done += bytesRead;
    }
  }

  async write(offset: number, data: Uint8Array, fua = false): Promise<void> {
    const fh = this.handle(offset, data.length, true);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await RawFileDisk.io(this.path, fh.write(data, done, data.length - done, offset + done));
      done += bytesWritten;
    }
    if (fua) await RawFileDisk.io(this.path, fh.datasync());
  }

  async flush(): Promise<void> {
    const fh = this.handle(0, 0, false);
    if (!this.readOnly) await RawFileDisk.io(this.path, fh.datasync());
  }

  async unmap(offset: number, length: number): Promise<void> {
    this.handle(offset, length, true);
    const zero = new Uint8Array(Math.min(length, 1 << 20));
    for (let at = 0; at < length; at += zero.length) await this.write(offset + at, zero.subarray(0, Math.min(zero.length, length - at)));
  }

  async close(): Promise<void> {
    const fh = this.fh;
    if (!fh) return;
    this.fh = null;
    try { if (!this.readOnly) await fh.datasync(); } finally { await fh.close(); }
  }
}
