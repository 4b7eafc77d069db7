/**
 * Whole-disk operations the CLI and REST API wrap: describe (Get-VHD), check, resize, merge, convert, optimize.
 * Long operations take an optional progress callback (bytes done, bytes total).
 */
import { stat, unlink } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { extname } from 'node:path';
import type { Disk } from '../disk.js';
import { NodeFile, readFull } from '../file-io.js';
import { openDisk, detectFormat } from '../open.js';
import { RawDisk } from '../raw.js';
import { payloadIndex } from './bat.js';
import { createVhdx, CreateDiskError, installFile, tempNameFor } from './create.js';
import {
  bytesToGuid, MiB, PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_ZERO, VhdxFormatError, VIRTUAL_DISK_SIZE_GUID,
  writeU64, view, isPowerOfTwo,
} from './format.js';
import { findItemOffset } from './metadata.js';
import { parentCandidates, VhdxDisk } from './vhdx-disk.js';
import { lockDisk, type HeldLock } from '../lock.js';

export type Progress = (done: number, total: number) => void;

/** Hyper-V's Get-VHD fields. */
export interface VhdInfo {
  Path: string;
  VhdFormat: 'VHDX' | 'RAW';
  VhdType: 'Fixed' | 'Dynamic' | 'Differencing';
  FileSize: number;
  Size: number;
  MinimumSize: number;
  LogicalSectorSize: number;
  PhysicalSectorSize: number;
  BlockSize: number;
  ParentPath: string | null;
  DiskIdentifier: string;
  FragmentationPercentage: number;
}

const COPY_CHUNK = MiB;

function isZero(b: Uint8Array): boolean {
  const w = new BigUint64Array(b.buffer, b.byteOffset, b.byteLength >> 3);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false;
  for (let i = w.length << 3; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The smallest size the disk can shrink to without cutting a partition: the end of the last partition (GPT: plus
 * room for the backup table); without a partition table, the end of the last block holding data.
 */
export async function minimumSize(disk: Disk): Promise<number> {
  const ss = disk.logicalSectorSize;
  const mbr = new Uint8Array(512);
  const s0 = new Uint8Array(ss);
  await disk.read(0, s0);
  mbr.set(s0.subarray(0, 512));
  if (mbr[510] === 0x55 && mbr[511] === 0xaa) {
    const dv = view(mbr);
    let end = 0, gpt = false;
    for (let p = 0; p < 4; p++) {
      const at = 446 + p * 16;
      if (mbr[at + 4] === 0xee) gpt = true;
      const startLba = dv.getUint32(at + 8, true), count = dv.getUint32(at + 12, true);
      if (mbr[at + 4] !== 0 && count > 0) end = Math.max(end, (startLba + count) * ss);
    }
    if (gpt && disk.sizeBytes >= 2 * ss) {
      const h = new Uint8Array(ss);
      await disk.read(ss, h);
      if (Buffer.from(h.subarray(0, 8)).toString('latin1') === 'EFI PART') {
        const hv = view(h);
        const entriesLba = Number(hv.getBigUint64(72, true));
        const count = hv.getUint32(80, true), esize = hv.getUint32(84, true);
        const bytes = count * esize;
        if (esize >= 128 && bytes <= 4 * MiB && (entriesLba + 1) * ss + bytes <= disk.sizeBytes) {
          const t = new Uint8Array(Math.ceil(bytes / ss) * ss);
          await disk.read(entriesLba * ss, t);
          const tv = view(t);
          let last = 0;
          for (let i = 0; i < count; i++) {
            const at = i * esize;
            if (isZero(t.subarray(at, at + 16))) continue;
            last = Math.max(last, Number(tv.getBigUint64(at + 40, true)));
          }
          // Backup header + entries after the last partition.
          return Math.min(disk.sizeBytes, (last + 1) * ss + Math.ceil(bytes / ss) * ss + ss);
        }
      }
      return disk.sizeBytes;
    }
    if (end > 0) return Math.min(disk.sizeBytes, end);
  }
  if (disk instanceof VhdxDisk && disk.type !== 'fixed') {
    let end = 0;
    for (const e of disk.extents()) {
      const m = /^block (\d+)$/.exec(e.what);
      if (m) end = Math.max(end, Math.min(disk.sizeBytes, (Number(m[1]) + 1) * disk.params.blockSize));
    }
    const p = disk.parent ? await minimumSize(disk.parent) : 0;
    return Math.max(end, p);
  }
  return disk.sizeBytes;
}

export async function describeVhd(path: string): Promise<VhdInfo> {
  const fileSize = (await stat(path)).size;
  const disk = await openDisk(path, { readOnly: true, lock: false });
  try {
    const minimum = await minimumSize(disk);
    if (!(disk instanceof VhdxDisk)) {
      return { Path: path, VhdFormat: 'RAW', VhdType: 'Fixed', FileSize: fileSize, Size: disk.sizeBytes, MinimumSize: minimum,
        LogicalSectorSize: disk.logicalSectorSize, PhysicalSectorSize: disk.physicalSectorSize, BlockSize: 0, ParentPath: null,
        DiskIdentifier: bytesToGuid(disk.diskId).toUpperCase(), FragmentationPercentage: 0 };
    }
    const ext = disk.extents().filter((e) => e.what.startsWith('block')).sort((a, b) => a.offset - b.offset);
    let breaks = 0;
    for (let k = 1; k < ext.length; k++) if (ext[k]!.offset !== ext[k - 1]!.offset + disk.params.blockSize) breaks++;
    return {
      Path: path, VhdFormat: 'VHDX', VhdType: disk.type === 'fixed' ? 'Fixed' : disk.type === 'dynamic' ? 'Dynamic' : 'Differencing',
      FileSize: fileSize, Size: disk.sizeBytes, MinimumSize: minimum, LogicalSectorSize: disk.logicalSectorSize,
      PhysicalSectorSize: disk.physicalSectorSize, BlockSize: disk.type === 'fixed' ? 0 : disk.params.blockSize,
      ParentPath: disk.parent ? disk.parent.path : null, DiskIdentifier: disk.params.diskId.toUpperCase(),
      FragmentationPercentage: ext.length > 1 ? Math.round((breaks * 100) / ext.length) : 0,
    };
  } finally {
    await disk.close();
  }
}

/** Structural problems of a disk file (each names the file); empty when clean. Never writes the file. */
export async function checkVhd(path: string): Promise<string[]> {
  const problems: string[] = [];
  let disk: Disk;
  try {
    disk = await openDisk(path, { readOnly: true, lock: false });
  } catch (e) {
    return [e instanceof VhdxFormatError ? e.message : `${path}: ${(e as Error).message}`];
  }
  try {
    if (disk instanceof VhdxDisk) {
      for (const w of disk.warnings) problems.push(`${path}: ${w}`);
      if (disk.header.logGuid !== '00000000-0000-0000-0000-000000000000') problems.push(`${path}: the log holds changes not yet applied (open it writable once to replay)`);
      const g = disk.geometry;
      for (let b = 0; b < g.payloadBlocks; b++) {
        if (disk.bat.state(payloadIndex(g, b)) === 7 && disk.bat.state((Math.floor(b / g.chunkRatio) + 1) * g.chunkRatio + Math.floor(b / g.chunkRatio)) !== 6) {
          problems.push(`${path}: block ${b} is partially present but its chunk has no sector bitmap`);
        }
      }
    }
  } finally {
    await disk.close();
  }
  return problems;
}

/** Changes the virtual size: grow, or shrink down to the minimum size. Offline (takes the write lock). */
export async function resizeVhd(path: string, newSize: number, progress?: Progress): Promise<void> {
  const disk = await VhdxDisk.open(path, { purpose: 'resize' });
  try {
    const ls = disk.logicalSectorSize;
    if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize % ls !== 0) throw new VhdxFormatError(path, `new size ${newSize} must be a positive multiple of ${ls}`);
    if (newSize > 64 * 1024 * 1024 * MiB) throw new VhdxFormatError(path, 'new size exceeds the VHDX maximum of 64 TB');
    if (newSize === disk.sizeBytes) return;
    const bs = disk.params.blockSize;
    const oldBlocks = disk.geometry.payloadBlocks;
    const newBlocks = Math.ceil(newSize / bs);
    const g = disk.geometry;
    const newEntries = disk.params.hasParent ? Math.ceil(newBlocks / g.chunkRatio) * (g.chunkRatio + 1) : newBlocks + Math.floor((newBlocks - 1) / g.chunkRatio);
    if (newEntries * 8 > disk.regions.bat.length) throw new VhdxFormatError(path, `growing to ${newSize} bytes needs a larger BAT than this file has; convert it to a new file of that size instead`);
    if (newSize < disk.sizeBytes) {
      if (disk.parent) throw new VhdxFormatError(path, 'a differencing disk cannot shrink; merge it first');
      const min = await minimumSize(disk);
      if (newSize < min) throw new VhdxFormatError(path, `cannot shrink below the minimum size ${min} bytes (the end of the last partition or data)`);
      for (let b = newBlocks; b < oldBlocks; b++) {
        const i = payloadIndex(g, b);
        if (disk.bat.state(i) !== PAYLOAD_NOT_PRESENT) await disk.setEntryForMaintenance(i, PAYLOAD_NOT_PRESENT, 0);
        progress?.(b - newBlocks + 1, oldBlocks - newBlocks);
      }
      // The tail of the new last block must read zeros if the disk later grows again.
      const tail = newSize % bs;
      const li = payloadIndex(g, newBlocks - 1);
      if (tail !== 0 && disk.bat.state(li) === PAYLOAD_FULLY_PRESENT) await disk.file.zeroRange(disk.bat.offset(li) + tail, bs - tail);
    } else if (disk.type === 'fixed') {
      let at = disk.allocatedEnd;
      for (let b = oldBlocks; b < newBlocks; b++) {
        await disk.setEntryForMaintenance(payloadIndex(g, b), PAYLOAD_FULLY_PRESENT, at);
        at += bs;
        progress?.(b - oldBlocks + 1, newBlocks - oldBlocks);
      }
      await disk.file.truncate(at);
    }
    const md = new Uint8Array(disk.regions.metadata.length);
    await readFull(disk.file, md, disk.regions.metadata.offset);
    const itemAt = findItemOffset(md, VIRTUAL_DISK_SIZE_GUID);
    writeU64(view(md), itemAt, newSize);
    const page = Math.floor(itemAt / 4096) * 4096;
    await disk.commitMetadataChange([{ offset: disk.regions.metadata.offset + page, data: md.slice(page, page + 4096) }]);
    progress?.(1, 1);
  } finally {
    await disk.close();
  }
}

async function copyDisk(src: Disk, dst: Disk, skipZeros: boolean, progress?: Progress, ranges?: [number, number][]): Promise<void> {
  const todo = ranges ?? [[0, src.sizeBytes] as [number, number]];
  const total = todo.reduce((a, r) => a + r[1], 0);
  let done = 0;
  const buf = new Uint8Array(COPY_CHUNK);
  for (const [start, len] of todo) {
    for (let o = 0; o < len; o += COPY_CHUNK) {
      const n = Math.min(COPY_CHUNK, len - o);
      const b = buf.subarray(0, n);
      await src.read(start + o, b);
      if (isZero(b)) { if (!skipZeros) await dst.unmap(start + o, n); }
      else await dst.write(start + o, b);
      done += n;
      progress?.(done, total);
    }
  }
  await dst.flush();
}

export interface ConvertOptions {
  /** 'raw' or a VHDX type; default: raw for .raw/.img names, else the source's type (differencing becomes dynamic). */
  type?: 'raw' | 'fixed' | 'dynamic';
  blockSizeBytes?: number;
  progress?: Progress;
}

/** Copies a disk into a new file of another format or type (a differencing chain is flattened). */
export async function convertVhd(srcPath: string, dstPath: string, o: ConvertOptions = {}): Promise<void> {
  if (existsSync(dstPath)) throw new CreateDiskError(dstPath, 'file already exists');
  const src = await openDisk(srcPath, { readOnly: true, purpose: 'conversion' });
  const tmp = tempNameFor(dstPath);
  try {
    const ext = extname(dstPath).toLowerCase();
    const type = o.type ?? (ext === '.raw' || ext === '.img' ? 'raw' : src instanceof VhdxDisk && src.type === 'fixed' ? 'fixed' : 'dynamic');
    let dst: Disk;
    if (type === 'raw') {
      const f = await NodeFile.open(tmp, false, true);
      await f.truncate(src.sizeBytes);
      await f.close();
      dst = await RawDisk.open(tmp, { logicalSectorSize: src.logicalSectorSize, physicalSectorSize: src.physicalSectorSize, purpose: 'conversion' });
    } else {
      await createVhdx({ path: tmp, sizeBytes: src.sizeBytes, type, blockSizeBytes: o.blockSizeBytes, logicalSectorSize: src.logicalSectorSize,
        physicalSectorSize: src.physicalSectorSize, diskId: src instanceof VhdxDisk ? src.params.diskId : undefined });
      dst = await VhdxDisk.open(tmp, { purpose: 'conversion' });
    }
    try {
      // A fresh target already reads zeros: skip zero chunks (keeps dynamic files small, raw files sparse).
      await copyDisk(src, dst, true, o.progress);
    } finally {
      await dst.close();
    }
    await installFile(tmp, dstPath);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  } finally {
    await src.close();
  }
}

export interface MergeOptions {
  /** The ancestor to merge into (default: the immediate parent). */
  destinationPath?: string;
  /** Delete the merged files afterwards, as Hyper-V's Merge-VHD does (default true). */
  deleteMerged?: boolean;
  progress?: Progress;
}

/**
 * Merges a differencing disk (and any disks between it and the destination) into its parent or an ancestor.
 * Other children of the destination become invalid (its DataWriteGuid changes), as with Hyper-V.
 */
export async function mergeVhd(childPath: string, o: MergeOptions = {}): Promise<{ merged: string[]; into: string }> {
  // The chain is read without locks; the locks taken below decide who may merge.
  const child = await VhdxDisk.open(childPath, { readOnly: true, lock: false });
  const layers: VhdxDisk[] = [];
  let target: VhdxDisk | null = null;
  const held: HeldLock[] = [];
  let dst: VhdxDisk | null = null;
  try {
    if (!child.parent) throw new VhdxFormatError(childPath, 'is not a differencing disk; nothing to merge');
    const want = o.destinationPath ? realpathSync(o.destinationPath) : null;
    for (let d: VhdxDisk | null = child; d; d = d.parent as VhdxDisk | null) {
      if (d !== child && (want === null || realpathSync(d.path) === want)) { target = d; break; }
      layers.push(d);
    }
    if (!target) throw new VhdxFormatError(childPath, `${o.destinationPath} is not an ancestor of this disk`);
    if (target.sizeBytes !== child.sizeBytes) throw new VhdxFormatError(childPath, `its size (${child.sizeBytes}) differs from ${target.path} (${target.sizeBytes}); resize the destination first`);
    const targetPath = target.path;
    // The destination exclusively (no VM uses it, nor a differencing disk on it); the merged layers at least
    // shared (no VM is writing to them).
    for (const l of layers) held.push(lockDisk(l.file.fd, l.path, false, 'merge'));
    dst = await VhdxDisk.open(targetPath, { purpose: 'merge' });
    const ranges: [number, number][] = [];
    for (let b = 0; b < child.geometry.payloadBlocks; b++) {
      const bs = child.params.blockSize;
      const start = b * bs, end = Math.min(child.sizeBytes, start + bs);
      const covered = new Uint8Array((end - start) / child.logicalSectorSize);
      for (const l of layers) {
        const lb = Math.floor(start / l.params.blockSize);
        for (let bb = lb; bb * l.params.blockSize < end; bb++) {
          for (const [ro, rl] of await l.ownRuns(bb)) {
            const a = Math.max(ro, start), z = Math.min(ro + rl, end);
            for (let o2 = a; o2 < z; o2 += child.logicalSectorSize) covered[(o2 - start) / child.logicalSectorSize] = 1;
          }
        }
      }
      for (let s = 0; s < covered.length;) {
        if (!covered[s]) { s++; continue; }
        let e = s; while (e < covered.length && covered[e]) e++;
        ranges.push([start + s * child.logicalSectorSize, (e - s) * child.logicalSectorSize]);
        s = e;
      }
    }
    await copyDisk(child, dst, false, o.progress, ranges);
    await dst.close();
    const merged = layers.map((l) => l.path);
    for (const h of held.splice(0)) h.release();
    await child.close();
    if (o.deleteMerged ?? true) for (const p of merged) await unlink(p);
    return { merged, into: targetPath };
  } finally {
    for (const h of held) h.release();
    await dst?.close();
    await child.close();
  }
}

/** Gives back space of blocks that hold only zeros or were unmapped (dynamic and differencing). */
export async function optimizeVhd(path: string, progress?: Progress): Promise<{ fileSizeBefore: number; fileSizeAfter: number; blocksFreed: number }> {
  const before = await stat(path);
  const disk = await VhdxDisk.open(path, { purpose: 'optimize' });
  let freed = 0;
  try {
    if (disk.type === 'fixed') throw new VhdxFormatError(path, 'a fixed disk cannot be compacted; convert it to dynamic');
    const g = disk.geometry;
    const bs = disk.params.blockSize;
    const buf = new Uint8Array(bs);
    for (let b = 0; b < g.payloadBlocks; b++) {
      const i = payloadIndex(g, b);
      if (disk.bat.state(i) === PAYLOAD_FULLY_PRESENT) {
        const len = Math.min(bs, disk.sizeBytes - b * bs);
        const piece = buf.subarray(0, len);
        await readFull(disk.file, piece, disk.bat.offset(i));
        if (isZero(piece)) { await disk.unmap(b * bs, len); freed++; }
      }
      progress?.((b + 1) * bs, g.payloadBlocks * bs);
    }
    await disk.flush();
    // Cut the file after the last structure still in use.
    let end = Math.max(disk.regions.bat.offset + disk.regions.bat.length, disk.regions.metadata.offset + disk.regions.metadata.length, disk.header.logOffset + disk.header.logLength);
    for (const e of disk.extents()) end = Math.max(end, e.offset + bs);
    if (end < (await disk.file.size())) { await disk.file.truncate(end); await disk.file.flush(); }
  } finally {
    await disk.close();
  }
  const after = await stat(path);
  return { fileSizeBefore: before.blocks * 512, fileSizeAfter: after.blocks * 512, blocksFreed: freed };
}

export { detectFormat, parentCandidates, isPowerOfTwo };
