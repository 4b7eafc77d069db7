/**
 * Opening disk files: the entry point the VM worker, CLI and REST API use.
 *
 *   const disk = await openDisk('/vms/a/disk.vhdx', { readOnly: false, purpose: 'VM a' });
 *   await createVhdx({ path, sizeBytes: 64 << 30, type: 'dynamic' });
 *
 * The format is chosen by content (a "vhdxfile" signature means VHDX); a .vhdx/.avhdx name without the
 * signature is an error rather than silently treated as raw.
 */
import { extname } from 'node:path';
import { NodeFile, readFull, type FileOpener } from './file-io.js';
import type { Disk } from './disk.js';
import { RawDisk, type OpenRawOptions } from './raw.js';
import { VhdxDisk } from './vhdx/vhdx-disk.js';
import { VhdxFormatError } from './vhdx/format.js';

export { createVhdx, CreateDiskError, type CreateVhdxOptions } from './vhdx/create.js';
export { VhdxDisk } from './vhdx/vhdx-disk.js';
export { VhdxFormatError } from './vhdx/format.js';
export { RawDisk } from './raw.js';
export { DiskLockedError } from './lock.js';

export interface OpenDiskOptions {
  readOnly?: boolean;
  /** Named in "in use" errors (e.g. "VM web01"). */
  purpose?: string;
  /** Raw images only: sector sizes to present (default 512). */
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  /** Skip the file lock (inspection only). */
  lock?: boolean;
  /** Opens the disk's files (itself and its differencing parents) instead of the path: a VM worker's files
   *  handed over as descriptors. */
  openFile?: FileOpener;
  /** Whether openFile can open a path that does not exist here (so a parent locator may name it). */
  hasFile?: (path: string) => boolean;
}

export type DiskFormat = 'vhdx' | 'vhd' | 'raw';

/** The format of a disk file by its content. */
export async function detectFormat(path: string, openFile?: FileOpener): Promise<DiskFormat> {
  const f = openFile ? await openFile(path, true) : await NodeFile.open(path, true);
  try {
    const b = new Uint8Array(8);
    await readFull(f, b, 0);
    if (Buffer.from(b).toString('latin1') === 'vhdxfile') return 'vhdx';
    const size = await f.size();
    if (size >= 512) {
      const t = new Uint8Array(8);
      await readFull(f, t, size - 512);
      if (Buffer.from(t).toString('latin1') === 'conectix') return 'vhd';
    }
    return 'raw';
  } finally {
    await f.close();
  }
}

export async function openDisk(path: string, o: OpenDiskOptions = {}): Promise<Disk> {
  const fmt = await detectFormat(path, o.openFile);
  const ext = extname(path).toLowerCase();
  if (fmt === 'vhd') throw new VhdxFormatError(path, 'legacy VHD files are not supported; convert it: qemu-img convert -O vhdx in.vhd out.vhdx');
  if (fmt === 'raw' && (ext === '.vhdx' || ext === '.avhdx')) throw new VhdxFormatError(path, 'not a VHDX file (no "vhdxfile" signature); the file is damaged or has the wrong name');
  if (fmt === 'vhdx') return VhdxDisk.open(path, { readOnly: o.readOnly, purpose: o.purpose, lock: o.lock, openFile: o.openFile, hasFile: o.hasFile });
  const ro: OpenRawOptions = { readOnly: o.readOnly, purpose: o.purpose, lock: o.lock, logicalSectorSize: o.logicalSectorSize, physicalSectorSize: o.physicalSectorSize, openFile: o.openFile };
  return RawDisk.open(path, ro);
}

/**
 * The files a disk reads: the disk itself, then each differencing parent up the chain (a raw image or a
 * fixed/dynamic VHDX is a chain of one). Opens nothing for writing and takes no lock.
 */
export async function diskChainPaths(path: string): Promise<string[]> {
  const disk = await openDisk(path, { readOnly: true, lock: false });
  try {
    const out: string[] = [];
    for (let d: Disk | null = disk; d; d = d instanceof VhdxDisk ? d.parent : null) out.push(d.path);
    return out;
  } finally {
    await disk.close();
  }
}
