/** Creating VHDX files (fixed, dynamic, differencing), written to a temporary name and renamed into place. */
import { basename, dirname, relative, resolve } from 'node:path';
import { existsSync, realpathSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { Bat, batGeometry, payloadIndex } from './bat.js';
import {
  BAT_GUID, FILE_SIGNATURE, HEADER_OFFSETS, isPowerOfTwo, MAX_BLOCK_SIZE, MAX_VIRTUAL_SIZE, METADATA_GUID, MiB,
  MIN_BLOCK_SIZE, PAYLOAD_FULLY_PRESENT, REGION_OFFSETS, roundUp,
} from './format.js';
import { freshHeader, serializeHeader, serializeRegionTable } from './header.js';
import { serializeMetadata, type VhdxParams } from './metadata.js';
import { VhdxDisk } from './vhdx-disk.js';

export interface CreateVhdxOptions {
  path: string;
  /** Virtual size; for differencing disks defaults to the parent's. */
  sizeBytes?: number;
  type: 'fixed' | 'dynamic' | 'differencing';
  parentPath?: string;
  /** Default 32 MiB (fixed, dynamic) or 2 MiB (differencing), as Hyper-V. */
  blockSizeBytes?: number;
  logicalSectorSize?: 512 | 4096;
  physicalSectorSize?: 512 | 4096;
  /** Keep this Page 83 disk id (convert, merge); default a new one. */
  diskId?: string;
}

export class CreateDiskError extends Error {
  constructor(readonly path: string, problem: string) { super(`${path}: ${problem}`); this.name = 'CreateDiskError'; }
}

const LOG_OFFSET = 1 * MiB;
const LOG_LENGTH = 1 * MiB;
const METADATA_OFFSET = 2 * MiB;
const METADATA_LENGTH = 1 * MiB;
const BAT_OFFSET = 3 * MiB;

/** Validated parameters for a new file (throws CreateDiskError with what to change). */
export async function resolveCreateParams(o: CreateVhdxOptions): Promise<VhdxParams> {
  const path = o.path;
  let virtualSize = o.sizeBytes;
  let logical = o.logicalSectorSize;
  let physical = o.physicalSectorSize;
  let parentLocator: Map<string, string> | undefined;
  if (o.type === 'differencing') {
    if (!o.parentPath) throw new CreateDiskError(path, 'a differencing disk needs a parent (parentPath)');
    const parent = await VhdxDisk.open(o.parentPath, { readOnly: true, purpose: 'creating a differencing disk' });
    try {
      virtualSize ??= parent.sizeBytes;
      if (logical && logical !== parent.logicalSectorSize) throw new CreateDiskError(path, `logical sector size must match the parent's (${parent.logicalSectorSize})`);
      logical = parent.logicalSectorSize;
      physical ??= parent.physicalSectorSize;
      const parentAbs = realpathSync(o.parentPath);
      const rel = relative(dirname(resolve(path)), parentAbs).replace(/\//g, '\\');
      parentLocator = new Map([
        ['parent_linkage', `{${parent.header.dataWriteGuid}}`],
        ['relative_path', rel.startsWith('..') ? rel : `.\\${rel}`],
        ['absolute_win32_path', parentAbs],
      ]);
    } finally {
      await parent.close();
    }
  } else if (o.parentPath) {
    throw new CreateDiskError(path, `a ${o.type} disk has no parent; use type 'differencing'`);
  }
  logical ??= 512;
  physical ??= 4096;
  if (logical !== 512 && logical !== 4096) throw new CreateDiskError(path, `logical sector size ${String(logical)} must be 512 or 4096`);
  if (physical !== 512 && physical !== 4096) throw new CreateDiskError(path, `physical sector size ${String(physical)} must be 512 or 4096`);
  if (virtualSize === undefined || !Number.isSafeInteger(virtualSize) || virtualSize <= 0) throw new CreateDiskError(path, 'a size in bytes is needed');
  if (virtualSize % logical !== 0) throw new CreateDiskError(path, `size ${virtualSize} must be a multiple of the ${logical}-byte logical sector`);
  if (virtualSize > MAX_VIRTUAL_SIZE) throw new CreateDiskError(path, `size ${virtualSize} exceeds the VHDX maximum of 64 TB`);
  const blockSize = o.blockSizeBytes ?? (o.type === 'differencing' ? 2 * MiB : 32 * MiB);
  if (!isPowerOfTwo(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
    throw new CreateDiskError(path, `block size ${blockSize} must be a power of two from 1 MiB to 256 MiB`);
  }
  return {
    blockSize, leaveBlocksAllocated: o.type === 'fixed', hasParent: o.type === 'differencing', virtualSize,
    diskId: o.diskId ?? crypto.randomUUID(), logicalSectorSize: logical, physicalSectorSize: physical, parentLocator,
  };
}

/** Writes the structures of a new VHDX at `tmpPath` (must not exist). Returns the file size. */
export async function writeNewVhdx(tmpPath: string, p: VhdxParams): Promise<number> {
  const g = batGeometry(p.virtualSize, p.blockSize, p.logicalSectorSize, p.hasParent);
  const batLength = roundUp(g.totalEntries * 8, MiB);
  const payloadStart = BAT_OFFSET + batLength;
  const bat = new Bat(new Uint8Array(batLength), g.totalEntries);
  let end = payloadStart;
  if (p.leaveBlocksAllocated) {
    for (let b = 0; b < g.payloadBlocks; b++) {
      bat.set(payloadIndex(g, b), PAYLOAD_FULLY_PRESENT, end);
      end += p.blockSize;
    }
  }
  const ident = new Uint8Array(64 * 1024);
  ident.set(Buffer.from(FILE_SIGNATURE, 'latin1'), 0);
  ident.set(Buffer.from('hyperts', 'utf16le'), 8);
  const h = freshHeader(LOG_OFFSET, LOG_LENGTH);
  const regions = serializeRegionTable([
    { guid: BAT_GUID, offset: BAT_OFFSET, length: batLength, required: true },
    { guid: METADATA_GUID, offset: METADATA_OFFSET, length: METADATA_LENGTH, required: true },
  ]);
  const f = await open(tmpPath, 'wx');
  try {
    await f.write(ident, 0, ident.length, 0);
    await f.write(serializeHeader({ ...h, sequence: 1n }), 0, 4096, HEADER_OFFSETS[0]);
    await f.write(serializeHeader({ ...h, sequence: 2n }), 0, 4096, HEADER_OFFSETS[1]);
    await f.write(regions, 0, regions.length, REGION_OFFSETS[0]);
    await f.write(regions, 0, regions.length, REGION_OFFSETS[1]);
    const md = serializeMetadata(p, METADATA_LENGTH);
    await f.write(md, 0, md.length, METADATA_OFFSET);
    await f.write(bat.bytes, 0, bat.bytes.length, BAT_OFFSET);
    await f.truncate(end);
    await f.sync();
  } finally {
    await f.close();
  }
  return end;
}

/** Renames `tmp` to `path` only if `path` does not exist, then makes the rename durable. */
export async function installFile(tmp: string, path: string, replace = false): Promise<void> {
  if (!replace && existsSync(path)) { await unlink(tmp).catch(() => undefined); throw new CreateDiskError(path, 'file already exists'); }
  await rename(tmp, path);
  const d = await open(dirname(resolve(path)), 'r');
  try { await d.sync(); } finally { await d.close(); }
}

export function tempNameFor(path: string): string {
  return resolve(dirname(resolve(path)), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

/** Creates a VHDX file. Fails if it exists. */
export async function createVhdx(o: CreateVhdxOptions): Promise<void> {
  if (existsSync(o.path)) throw new CreateDiskError(o.path, 'file already exists');
  const params = await resolveCreateParams(o);
  const tmp = tempNameFor(o.path);
  try {
    await writeNewVhdx(tmp, params);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new CreateDiskError(o.path, `cannot write: ${(e as Error).message}`);
  }
  await installFile(tmp, o.path);
}
