/**
 * The VHD engine over the project's own disk code: createVhdx and the whole-disk operations of
 * src/storage/vhdx/ops.ts (describe, check, resize, merge, convert, optimize). Only glue: field names in the
 * API's style, raw images grown here (ops.ts resizes VHDX), and a lock conflict kept distinguishable.
 */
import { open, truncate } from 'node:fs/promises';
import { extname } from 'node:path';
import { createVhdx, DiskLockedError, openDisk } from '../storage/open.js';
import { checkVhd, convertVhd, describeVhd, mergeVhd, optimizeVhd, resizeVhd } from '../storage/vhdx/ops.js';
import { VhdEngineError, type NewVhdOptions, type Progress, type VhdCheck, type VhdEngine, type VhdInfo, type VhdType } from './vhd-engine.js';

/** Failures keep the storage code's message (it names the file and the problem). */
async function engine<T>(p: Promise<T>): Promise<T> {
  try { return await p; } catch (e) {
    if (e instanceof VhdEngineError) throw e;
    throw new VhdEngineError((e as Error).message, e instanceof DiskLockedError ? 'locked' : 'failed');
  }
}

export class NativeVhdEngine implements VhdEngine {
  readonly name = 'native';

  async create(o: NewVhdOptions, progress?: Progress): Promise<void> {
    const ext = extname(o.path).toLowerCase();
    if (ext !== '.vhdx' && ext !== '.avhdx') throw new VhdEngineError(`${o.path}: give the new disk a .vhdx name (new-vhd makes VHDX files; legacy VHD is not supported)`);
    progress?.(0, o.sizeBytes);
    await engine(createVhdx({
      path: o.path, sizeBytes: o.type === 'Differencing' && !o.sizeBytes ? undefined : o.sizeBytes, type: o.type.toLowerCase() as 'fixed' | 'dynamic' | 'differencing',
      parentPath: o.parentPath, blockSizeBytes: o.blockSizeBytes, logicalSectorSize: o.logicalSectorSizeBytes, physicalSectorSize: o.physicalSectorSizeBytes,
    }));
    progress?.(o.sizeBytes, o.sizeBytes);
  }

  async describe(path: string): Promise<VhdInfo> {
    const i = await engine(describeVhd(path));
    return {
      path: i.Path, vhdFormat: i.VhdFormat, vhdType: i.VhdType, fileSize: i.FileSize, size: i.Size, minimumSize: i.MinimumSize,
      logicalSectorSize: i.LogicalSectorSize, physicalSectorSize: i.PhysicalSectorSize, blockSize: i.BlockSize, parentPath: i.ParentPath,
      diskIdentifier: i.DiskIdentifier, fragmentationPercentage: i.FragmentationPercentage,
    };
  }

  async resize(path: string, sizeBytes: number, progress?: Progress): Promise<void> {
    const info = await this.describe(path);
    if (info.vhdFormat === 'VHDX') { await engine(resizeVhd(path, sizeBytes, progress)); return; }
    // A raw image only grows here: shrinking would cut off data with nothing to say where it ends.
    if (sizeBytes < info.size) throw new VhdEngineError(`${path}: shrinking a raw image from ${info.size} to ${sizeBytes} bytes would cut off data; only growing is supported`);
    if (sizeBytes % info.logicalSectorSize !== 0) throw new VhdEngineError(`${path}: the new size ${sizeBytes} must be a multiple of ${info.logicalSectorSize} bytes`);
    const d = await engine(openDisk(path, { purpose: 'resize-vhd' }));
    try {
      progress?.(0, sizeBytes);
      await truncate(path, sizeBytes);
      const f = await open(path, 'r+');
      try { await f.sync(); } finally { await f.close(); }
      progress?.(sizeBytes, sizeBytes);
    } finally { await d.close(); }
  }

  async merge(path: string, destination: string | undefined, progress?: Progress): Promise<void> {
    await engine(mergeVhd(path, { destinationPath: destination, progress }));
  }

  async convert(path: string, destination: string, type: VhdType | undefined, progress?: Progress): Promise<void> {
    const ext = extname(destination).toLowerCase();
    if (ext === '.vhd') throw new VhdEngineError(`${destination}: legacy VHD is not supported; name the destination .vhdx (or .img for a raw image)`);
    if (type === 'Differencing') throw new VhdEngineError('convert-vhd makes fixed or dynamic disks, not differencing ones');
    const raw = ext !== '.vhdx' && ext !== '.avhdx';
    await engine(convertVhd(path, destination, { type: raw ? 'raw' : type ? (type.toLowerCase() as 'fixed' | 'dynamic') : undefined, progress }));
  }

  async optimize(path: string, progress?: Progress): Promise<void> {
    const info = await this.describe(path);
    if (info.vhdFormat !== 'VHDX' || info.vhdType === 'Fixed') {
      throw new VhdEngineError(`${path} is a ${info.vhdFormat === 'RAW' ? 'raw image' : 'fixed disk'}: only dynamic and differencing VHDX disks can be optimized`);
    }
    await engine(optimizeVhd(path, progress));
  }

  async check(path: string): Promise<VhdCheck> {
    const problems = await engine(checkVhd(path));
    return { ok: problems.length === 0, problems };
  }
}
