/**
 * What the VHD commands (New-VHD, Get-VHD, Resize-VHD, Merge-VHD, Convert-VHD, Optimize-VHD, Test-VHD) need
 * from the virtual-disk code, as one interface. The service and the CLI call only this; the engine behind it
 * is swappable. Until the native VHDX engine (src/storage/, branch vhdx) is on main, an interim engine drives
 * qemu-img, which covers dynamic and fixed VHDX (create, inspect, convert, compact, check) but not
 * differencing disks or resizing: those fail with a message that says so.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

export type VhdType = 'Fixed' | 'Dynamic' | 'Differencing';

/** Get-VHD's fields. Sizes in bytes; null where the engine cannot tell. */
export interface VhdInfo {
  path: string;
  vhdFormat: 'VHDX' | 'VHD' | 'RAW';
  vhdType: VhdType;
  fileSize: number;
  size: number;
  minimumSize: number | null;
  logicalSectorSize: number;
  physicalSectorSize: number;
  blockSize: number;
  parentPath: string | null;
  diskIdentifier: string | null;
  fragmentationPercentage: number | null;
}

export interface NewVhdOptions {
  path: string;
  sizeBytes: number;
  type: VhdType;
  parentPath?: string;
  blockSizeBytes?: number;
  logicalSectorSizeBytes?: 512 | 4096;
  physicalSectorSizeBytes?: 512 | 4096;
}

/** Called as work proceeds: `done` of `total` units (bytes where the engine knows them). */
export type Progress = (done: number, total: number) => void;

export interface VhdCheck { ok: boolean; problems: string[] }

export interface VhdEngine {
  readonly name: string;
  create(o: NewVhdOptions, progress?: Progress): Promise<void>;
  describe(path: string): Promise<VhdInfo>;
  resize(path: string, sizeBytes: number, progress?: Progress): Promise<void>;
  /** Merges a differencing disk into its parent (or into `destination`, an ancestor). */
  merge(path: string, destination: string | undefined, progress?: Progress): Promise<void>;
  convert(path: string, destination: string, type: VhdType | undefined, progress?: Progress): Promise<void>;
  /** Gives unused space back (compacts a dynamic disk). */
  optimize(path: string, progress?: Progress): Promise<void>;
  check(path: string): Promise<VhdCheck>;
}

/** Raised for a request the engine understands but cannot carry out (bad file, unsupported kind). */
export class VhdEngineError extends Error { constructor(message: string) { super(message); this.name = 'VhdEngineError'; } }

let current: VhdEngine | null = null;

/** The engine in use: the interim qemu-img one until the native engine registers itself with setVhdEngine. */
export function vhdEngine(): VhdEngine { return (current ??= new QemuImgEngine()); }
export function setVhdEngine(e: VhdEngine): void { current = e; }

// ---- interim engine: qemu-img ------------------------------------------------------------------------------

interface Run { code: number; stdout: string; stderr: string }

function qemuImg(args: string[], progress?: (percent: number) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      const s = d.toString();
      stdout += s;
      // `-p` draws "    (42.00/100%)" followed by a carriage return.
      if (progress) for (const m of s.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) progress(Number(m[1]));
    });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('error', (e: NodeJS.ErrnoException) => reject(new VhdEngineError(e.code === 'ENOENT'
      ? 'qemu-img is not installed (Debian package qemu-utils); the interim VHD engine needs it until the native VHDX engine is built in'
      : `qemu-img: ${e.message}`)));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const failure = (r: Run, what: string): VhdEngineError =>
  new VhdEngineError(`${what}: ${(r.stderr || r.stdout).trim().replace(/^qemu-img: /gm, '') || `qemu-img exit status ${r.code}`}`);

function formatOf(path: string): 'vhdx' | 'vpc' | 'raw' {
  const l = path.toLowerCase();
  return l.endsWith('.vhdx') ? 'vhdx' : l.endsWith('.vhd') ? 'vpc' : 'raw';
}

function unsupported(what: string): never {
  throw new VhdEngineError(`${what} is not available yet: it needs the native VHDX engine (the interim qemu-img engine supports dynamic and fixed VHDX only)`);
}

/** Replaces `path` by `tmp` atomically (fsync the file, rename, fsync the directory). */
function replaceFile(tmp: string, path: string): void {
  const fd = openSync(tmp, 'r+');
  try { fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, path);
  const d = openSync(dirname(path), 'r');
  try { fsyncSync(d); } finally { closeSync(d); }
}

class QemuImgEngine implements VhdEngine {
  readonly name = 'qemu-img (interim)';

  async create(o: NewVhdOptions, progress?: Progress): Promise<void> {
    if (o.type === 'Differencing') unsupported('creating a differencing disk');
    if ((o.logicalSectorSizeBytes ?? 512) !== 512) unsupported('a 4096-byte logical sector size');
    const fmt = formatOf(o.path);
    if (fmt !== 'vhdx') throw new VhdEngineError(`${o.path}: give the new disk a .vhdx name (only VHDX files are created)`);
    const opts = [`subformat=${o.type === 'Fixed' ? 'fixed' : 'dynamic'}`];
    if (o.blockSizeBytes) opts.push(`block_size=${o.blockSizeBytes}`);
    // Fixed disks get their blocks marked present, so they read as written space (what "fixed" means).
    if (o.type === 'Fixed') opts.push('block_state_zero=off');
    progress?.(0, o.sizeBytes);
    const r = await qemuImg(['create', '-q', '-f', 'vhdx', '-o', opts.join(','), o.path, String(o.sizeBytes)]);
    if (r.code !== 0) { rmSync(o.path, { force: true }); throw failure(r, `cannot create ${o.path}`); }
    progress?.(o.sizeBytes, o.sizeBytes);
  }

  async describe(path: string): Promise<VhdInfo> {
    const r = await qemuImg(['info', '--output=json', path]);
    if (r.code !== 0) throw failure(r, `cannot read ${path}`);
    const j = JSON.parse(r.stdout) as { format: string; 'virtual-size': number; 'cluster-size'?: number; 'backing-filename'?: string; 'format-specific'?: { data?: { type?: string } } };
    const format = j.format === 'vhdx' ? 'VHDX' : j.format === 'vpc' ? 'VHD' : 'RAW';
    const fileSize = statSync(path).size;
    let type: VhdType = 'Fixed';
    if (format !== 'RAW') type = fileSize >= j['virtual-size'] ? 'Fixed' : 'Dynamic';
    return {
      path, vhdFormat: format, vhdType: j['backing-filename'] ? 'Differencing' : type, fileSize, size: j['virtual-size'],
      minimumSize: null, logicalSectorSize: 512, physicalSectorSize: format === 'VHDX' ? 4096 : 512,
      blockSize: format === 'RAW' ? 0 : j['cluster-size'] ?? 0, parentPath: j['backing-filename'] ?? null,
      diskIdentifier: null, fragmentationPercentage: null,
    };
  }

  async resize(): Promise<void> { unsupported('resizing a virtual hard disk'); }
  async merge(): Promise<void> { unsupported('merging a differencing disk'); }

  async convert(path: string, destination: string, type: VhdType | undefined, progress?: Progress): Promise<void> {
    if (type === 'Differencing') unsupported('converting to a differencing disk');
    const src = await this.describe(path);
    const fmt = formatOf(destination);
    const args = ['convert', '-p', '-f', formatOf(path), '-O', fmt];
    const t = type ?? src.vhdType;
    if (fmt === 'vhdx') args.push('-o', t === 'Fixed' ? 'subformat=fixed,block_state_zero=off' : 'subformat=dynamic');
    const tmp = `${destination}.tmp-${process.pid}`;
    const r = await qemuImg([...args, path, tmp], (pc) => progress?.(Math.round(src.size * pc / 100), src.size));
    if (r.code !== 0) { rmSync(tmp, { force: true }); throw failure(r, `cannot convert ${path}`); }
    if (existsSync(destination)) { rmSync(tmp, { force: true }); throw new VhdEngineError(`${destination} appeared while converting; nothing was overwritten`); }
    replaceFile(tmp, destination);
  }

  async optimize(path: string, progress?: Progress): Promise<void> {
    const info = await this.describe(path);
    if (info.vhdType !== 'Dynamic') throw new VhdEngineError(`${path} is a ${info.vhdType.toLowerCase()} disk: only dynamic disks can be optimized`);
    // Copying keeps only blocks that hold data; the copy then replaces the original atomically.
    const tmp = `${path}.tmp-optimize-${process.pid}`;
    const r = await qemuImg(['convert', '-p', '-f', 'vhdx', '-O', 'vhdx', '-o', 'subformat=dynamic', path, tmp], (pc) => progress?.(Math.round(info.size * pc / 100), info.size));
    if (r.code !== 0) { rmSync(tmp, { force: true }); throw failure(r, `cannot optimize ${path}`); }
    replaceFile(tmp, path);
  }

  async check(path: string): Promise<VhdCheck> {
    if (!existsSync(path)) return { ok: false, problems: [`${path} does not exist`] };
    const fmt = formatOf(path);
    const r = await qemuImg(['check', '-f', fmt, path]);
    // Raw images have nothing to check beyond being readable.
    if (fmt === 'raw' && /does not support checks/.test(r.stderr)) return { ok: true, problems: [] };
    if (r.code === 0) return { ok: true, problems: [] };
    const lines = (r.stderr + r.stdout).split('\n').map((l) => l.replace(/^qemu-img: /, '').trim()).filter((l) => l && !/^No errors/.test(l));
    return { ok: false, problems: lines.length ? lines : [`qemu-img check exit status ${r.code}`] };
  }
}
