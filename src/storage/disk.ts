/**
 * The one asynchronous disk interface every controller uses (storvsp's SCSI target, IDE/ATAPI) and every
 * backend implements (raw file, VHDX fixed/dynamic/differencing, in-memory). Controllers never see files.
 *
 * Units are bytes; offsets and lengths are multiples of `logicalSectorSize` and lie inside `sizeBytes`
 * (callers check guest input first; backends check again and throw DiskError('range')). Numbers stay exact:
 * Hyper-V's largest disk (64 TB) is below 2^53.
 */

export type DiskErrorCode =
  /** Offset or length outside the disk or not sector aligned. */
  | 'range'
  /** A write, unmap or flush on a read-only disk. */
  | 'read-only'
  /** The host could not do the I/O (EIO, ENOSPC, a corrupt structure met at run time). */
  | 'io'
  /** The disk was closed. */
  | 'closed';

export class DiskError extends Error {
  constructor(readonly code: DiskErrorCode, message: string) { super(message); this.name = 'DiskError'; }
}

export interface Disk {
  /** What the user named: a file path, or a description for in-memory disks. */
  readonly path: string;
  /** Virtual size in bytes, a multiple of logicalSectorSize. */
  readonly sizeBytes: number;
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly readOnly: boolean;
  /** 16 bytes, stable across opens of the same disk (VHDX's Page 83 data): SCSI VPD 0x83, ATA WWN. */
  readonly diskId: Uint8Array;
  /** Whether unmap() gives space back; after unmap the range always reads as zeros either way. */
  readonly canUnmap: boolean;

  /** Fills `buf` from `offset`. Never-written space reads as zeros (or the parent's data for differencing disks). */
  read(offset: number, buf: Uint8Array): Promise<void>;
  /** Writes `data` at `offset`. With `fua` it is durable when the promise settles. */
  write(offset: number, data: Uint8Array, fua?: boolean): Promise<void>;
  /** Every write that completed before this call is durable when it settles. */
  flush(): Promise<void>;
  /** The range reads as zeros afterwards (a defined result, not "unspecified"). */
  unmap(offset: number, length: number): Promise<void>;
  /** Flushes and releases the file and its lock. Idempotent. */
  close(): Promise<void>;
}

/** Throws DiskError('range') unless [offset, offset+length) is sector aligned and inside the disk. */
export function checkRange(disk: Pick<Disk, 'sizeBytes' | 'logicalSectorSize' | 'path'>, offset: number, length: number): void {
  const s = disk.logicalSectorSize;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset % s !== 0 || length % s !== 0 || offset + length > disk.sizeBytes) {
    throw new DiskError('range', `${disk.path}: access at ${offset}+${length} is outside the disk (${disk.sizeBytes} bytes) or not ${s}-byte aligned`);
  }
}

/** An in-memory disk: unit tests of controllers and SCSI/ATA targets. Never-written sectors read as zeros. */
export class MemoryDisk implements Disk {
  readonly bytes: Uint8Array;
  readonly canUnmap = true;
  readonly diskId: Uint8Array;
  flushes = 0;
  private closed = false;

  constructor(readonly sizeBytes: number, opts: { readOnly?: boolean; logicalSectorSize?: 512 | 4096; physicalSectorSize?: 512 | 4096; path?: string; diskId?: Uint8Array } = {}) {
    this.logicalSectorSize = opts.logicalSectorSize ?? 512;
    this.physicalSectorSize = opts.physicalSectorSize ?? this.logicalSectorSize;
    if (sizeBytes % this.logicalSectorSize !== 0) throw new RangeError(`disk size ${sizeBytes} is not a multiple of ${this.logicalSectorSize}`);
    this.readOnly = opts.readOnly ?? false;
    this.path = opts.path ?? `memory:${sizeBytes}`;
    this.diskId = opts.diskId ?? Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + sizeBytes) & 0xff);
    this.bytes = new Uint8Array(sizeBytes);
  }
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly path: string;

  private check(offset: number, length: number, writing: boolean): void {
    if (this.closed) throw new DiskError('closed', `${this.path} is closed`);
    checkRange(this, offset, length);
    if (writing && this.readOnly) throw new DiskError('read-only', `${this.path} is read-only`);
  }
  async read(offset: number, buf: Uint8Array): Promise<void> { this.check(offset, buf.length, false); buf.set(this.bytes.subarray(offset, offset + buf.length)); }
  async write(offset: number, data: Uint8Array): Promise<void> { this.check(offset, data.length, true); this.bytes.set(data, offset); }
  async flush(): Promise<void> { this.check(0, 0, false); this.flushes++; }
  async unmap(offset: number, length: number): Promise<void> { this.check(offset, length, true); this.bytes.fill(0, offset, offset + length); }
  async close(): Promise<void> { this.closed = true; }
}
