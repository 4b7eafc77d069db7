/**
 * The VHD engine over the project's own disk code (src/storage: openDisk, createVhdx, VhdxDisk). New-VHD,
 * Get-VHD and Test-VHD read and write the files directly; Convert-VHD, Merge-VHD and Optimize-VHD are built
 * on the Disk interface (copy what differs, unmap what is zero), so they work for every backend and take the
 * disks' locks like any other user. Resize-VHD of a VHDX needs the VHDX code to grow its BAT and is refused
 * with a message until it does.
 */
import { closeSync, existsSync, openSync, realpathSync, rmSync, statSync } from 'node:fs';
import { open, rename, truncate } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { createVhdx, detectFormat, openDisk, VhdxDisk } from '../storage/open.js';
import type { Disk } from '../storage/disk.js';
import { lockDisk, type HeldLock } from '../storage/lock.js';
import { VhdEngineError, type NewVhdOptions, type Progress, type VhdCheck, type VhdEngine, type VhdInfo, type VhdType } from './vhd-engine.js';

const CHUNK = 1024 * 1024;

/** Engine failures keep the storage code's message (it names the file and the problem). */
async function engine<T>(p: Promise<T>): Promise<T> {
  try { return await p; } catch (e) {
    if (e instanceof VhdEngineError) throw e;
    throw new VhdEngineError((e as Error).message);
  }
}

const isZero = (b: Uint8Array): boolean => { for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false; return true; };

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Copies `src` into `dst` chunk by chunk: only chunks that differ from what `dst` already reads (so a new
 * dynamic target stays small and a merge writes only the child's changes). Flushes at the end.
 */
async function copyDisk(src: Disk, dst: Disk, progress?: Progress): Promise<void> {
  const a = new Uint8Array(CHUNK);
  const b = new Uint8Array(CHUNK);
  progress?.(0, src.sizeBytes);
  for (let off = 0; off < src.sizeBytes; off += CHUNK) {
    const n = Math.min(CHUNK, src.sizeBytes - off);
    const x = a.subarray(0, n);
    const y = b.subarray(0, n);
    await src.read(off, x);
    await dst.read(off, y);
    if (!same(x, y)) await dst.write(off, x);
    progress?.(off + n, src.sizeBytes);
  }
  await dst.flush();
}

/** Durable rename of a finished temporary file into place. */
async function install(tmp: string, path: string): Promise<void> {
  const f = await open(tmp, 'r+');
  try { await f.sync(); } finally { await f.close(); }
  await rename(tmp, path);
  const d = await open(dirname(path), 'r');
  try { await d.sync(); } finally { await d.close(); }
}

const tempFor = (path: string, ext: string): string => resolve(dirname(path), `.${basename(path)}.tmp-${process.pid}${ext}`);

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
    const fmt = await engine(detectFormat(path));
    const fileSize = statSync(path).size;
    if (fmt === 'vhd') throw new VhdEngineError(`${path} is a legacy VHD file, which is not supported (convert it to VHDX with qemu-img convert -O vhdx)`);
    if (fmt === 'raw') {
      return {
        path, vhdFormat: 'RAW', vhdType: 'Fixed', fileSize, size: fileSize, minimumSize: null, logicalSectorSize: 512, physicalSectorSize: 512,
        blockSize: 0, parentPath: null, diskIdentifier: null, fragmentationPercentage: null,
      };
    }
    // Inspection only: no lock, so a disk a running VM holds can still be described.
    const d = await engine(VhdxDisk.open(path, { readOnly: true, lock: false }));
    try {
      const p = d.params;
      return {
        path, vhdFormat: 'VHDX', vhdType: d.type === 'fixed' ? 'Fixed' : d.type === 'dynamic' ? 'Dynamic' : 'Differencing', fileSize, size: d.sizeBytes,
        minimumSize: null, logicalSectorSize: d.logicalSectorSize, physicalSectorSize: d.physicalSectorSize, blockSize: p.blockSize,
        parentPath: d.parent?.path ?? null, diskIdentifier: p.diskId.toUpperCase(), fragmentationPercentage: null,
      };
    } finally { await d.close(); }
  }

  async resize(path: string, sizeBytes: number, progress?: Progress): Promise<void> {
    const info = await this.describe(path);
    if (info.vhdFormat !== 'RAW') throw new VhdEngineError(`resizing a VHDX is not available yet: the VHDX code cannot grow or shrink its block table (${path} stays ${info.size} bytes)`);
    if (sizeBytes < info.size) throw new VhdEngineError(`${path}: shrinking a raw image from ${info.size} to ${sizeBytes} bytes would cut off data; only growing is supported`);
    if (sizeBytes % 512 !== 0) throw new VhdEngineError(`${path}: the new size ${sizeBytes} must be a multiple of 512 bytes`);
    // The exclusive lock keeps VMs and other tools off it while the size changes.
    const d = await engine(openDisk(path, { purpose: 'resize-vhd' }));
    try {
      progress?.(0, sizeBytes);
      await truncate(path, sizeBytes);
      progress?.(sizeBytes, sizeBytes);
    } finally { await d.close(); }
  }

  async merge(path: string, destination: string | undefined, progress?: Progress): Promise<void> {
    // The chain from the child up: each file and its parent, to find the destination and what goes away.
    const chain: string[] = [];
    const child = await engine(VhdxDisk.open(path, { readOnly: true, lock: false }));
    try {
      for (let d: Disk | null = child; d; d = d instanceof VhdxDisk ? d.parent : null) chain.push(realpathSync(d.path));
    } finally { await child.close(); }
    if (chain.length < 2) throw new VhdEngineError(`${path} is not a differencing disk: it has no parent to merge into`);
    const dest = destination ? realpathSync(destination) : chain[1];
    const at = chain.indexOf(dest);
    if (at < 1) throw new VhdEngineError(`${destination} is not a parent or ancestor of ${path} (its chain: ${chain.join(' -> ')})`);
    // The child is locked against writers; the destination is opened for writing (exclusively); the child
    // reads through its chain without locks, since the destination's own lock is held here.
    const fd = openSync(path, 'r');
    let held: HeldLock;
    try { held = lockDisk(fd, path, true, 'merge-vhd'); } catch (e) { closeSync(fd); throw new VhdEngineError((e as Error).message); }
    try {
      const reader = await engine(VhdxDisk.open(path, { readOnly: true, lock: false }));
      try {
        const target = await engine(openDisk(dest, { purpose: `merge-vhd of ${path}` }));
        try { await engine(copyDisk(reader, target, progress)); } finally { await target.close(); }
      } finally { await reader.close(); }
    } finally { held.release(); closeSync(fd); }
    // Hyper-V deletes the merged child and the disks between it and the destination.
    for (const f of chain.slice(0, at)) rmSync(f, { force: true });
  }

  async convert(path: string, destination: string, type: VhdType | undefined, progress?: Progress): Promise<void> {
    const src = await engine(openDisk(path, { readOnly: true, purpose: 'convert-vhd' }));
    const ext = extname(destination).toLowerCase();
    const toVhdx = ext === '.vhdx';
    if (ext === '.vhd') { await src.close(); throw new VhdEngineError(`${destination}: legacy VHD is not supported; name the destination .vhdx (or .img for a raw image)`); }
    const tmp = tempFor(destination, toVhdx ? '.vhdx' : '.img');
    try {
      const srcType = src instanceof VhdxDisk ? src.type : 'fixed';
      const t = (type ?? (srcType === 'differencing' ? 'Dynamic' : srcType === 'fixed' ? 'Fixed' : 'Dynamic')).toLowerCase();
      if (t === 'differencing') throw new VhdEngineError('convert-vhd makes fixed or dynamic disks, not differencing ones');
      if (toVhdx) {
        await engine(createVhdx({ path: tmp, sizeBytes: src.sizeBytes, type: t as 'fixed' | 'dynamic', logicalSectorSize: src.logicalSectorSize, physicalSectorSize: src.physicalSectorSize }));
      } else {
        const f = await open(tmp, 'wx');
        try { await f.truncate(src.sizeBytes); } finally { await f.close(); }
      }
      const dst = await engine(openDisk(tmp, { purpose: 'convert-vhd', logicalSectorSize: src.logicalSectorSize, physicalSectorSize: src.physicalSectorSize }));
      try { await engine(copyDisk(src, dst, progress)); } finally { await dst.close(); }
      if (existsSync(destination)) throw new VhdEngineError(`${destination} appeared while converting; nothing was overwritten`);
      await install(tmp, destination);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    } finally { await src.close(); }
  }

  async optimize(path: string, progress?: Progress): Promise<void> {
    const info = await this.describe(path);
    if (info.vhdType !== 'Dynamic' || info.vhdFormat !== 'VHDX') {
      throw new VhdEngineError(`${path} is a ${info.vhdFormat === 'RAW' ? 'raw image' : `${info.vhdType.toLowerCase()} disk`}: only dynamic VHDX disks can be optimized`);
    }
    // Blocks that read as zeros are given back (unmap frees a dynamic disk's whole blocks).
    const d = await engine(openDisk(path, { purpose: 'optimize-vhd' }));
    try {
      const bs = info.blockSize;
      const buf = new Uint8Array(bs);
      progress?.(0, d.sizeBytes);
      for (let off = 0; off < d.sizeBytes; off += bs) {
        const n = Math.min(bs, d.sizeBytes - off);
        const b = buf.subarray(0, n);
        await d.read(off, b);
        if (isZero(b)) await d.unmap(off, n);
        progress?.(off + n, d.sizeBytes);
      }
      await d.flush();
    } finally { await d.close(); }
  }

  async check(path: string): Promise<VhdCheck> {
    let fmt;
    try { fmt = await detectFormat(path); } catch (e) { return { ok: false, problems: [(e as Error).message] }; }
    if (fmt === 'vhd') return { ok: false, problems: ['a legacy VHD file, which is not supported'] };
    try {
      if (fmt === 'raw') {
        const d = await openDisk(path, { readOnly: true, lock: false });
        await d.close();
        return { ok: true, problems: [] };
      }
      const d = await VhdxDisk.open(path, { readOnly: true, lock: false });
      await d.close();
      return { ok: true, problems: [] };
    } catch (e) {
      return { ok: false, problems: [(e as Error).message] };
    }
  }
}
