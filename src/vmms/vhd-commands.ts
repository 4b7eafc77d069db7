/**
 * Hyper-V's VHD cmdlets (New-VHD, Get-VHD, Resize-VHD, Merge-VHD, Convert-VHD, Optimize-VHD, Test-VHD):
 * input checks, the rules about disks in use by VMs, and the calls into the VHD engine. The service runs
 * them for API clients; the CLI runs them in its own process on files (no service needed), asking the
 * service only which VMs use which disks.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { VmmsError, badRequest } from './errors.js';
import { parseSizeBytes } from './drives.js';
import { VhdEngineError, vhdEngine, type NewVhdOptions, type Progress, type VhdInfo, type VhdType } from './vhd-engine.js';

/** A disk file used by a VM of the inventory. */
export interface Attachment { vmName: string; vmState: string; slot: string; path: string; kind?: 'disk' | 'dvd' }

export interface VhdView extends VhdInfo {
  /** In use by a VM of the inventory; null when the inventory could not be asked (no service running). */
  attached: boolean | null;
  /** "VM (SCSI 0:0)" when attached. */
  attachedTo: string | null;
}

export interface VhdTestResult { path: string; ok: boolean; problems: string[]; message: string }

/** The same file whatever way its path is written. */
export function samePath(a: string, b: string): boolean {
  const canon = (p: string): string => { try { return realpathSync(p); } catch { return p; } };
  return canon(a) === canon(b);
}

const TYPES: Record<string, VhdType> = { fixed: 'Fixed', dynamic: 'Dynamic', differencing: 'Differencing' };

export function vhdType(v: unknown, field = 'type'): VhdType {
  const t = typeof v === 'string' ? TYPES[v.toLowerCase()] : undefined;
  if (!t) throw badRequest(`${field} must be Fixed, Dynamic or Differencing, not ${JSON.stringify(v)}`);
  return t;
}

function sectorSize(v: unknown, field: string): 512 | 4096 | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (n !== 512 && n !== 4096) throw badRequest(`${field} must be 512 or 4096, not ${JSON.stringify(v)}`);
  return n;
}

export class VhdCommands {
  /**
   * @param attachments which disks VMs use (null: unknown, e.g. no service running)
   * @param resolvePath turns a path the caller gave into the absolute one to use (the service confines API
   *   clients' paths to its allowed folders; the CLI takes the user's paths as they are, relative to its cwd)
   */
  constructor(private readonly attachments: () => Promise<Attachment[] | null>, private readonly resolvePath: (v: unknown, field: string) => string) {}

  path(v: unknown, field = 'path'): string { return this.resolvePath(v, field); }

  private existing(v: unknown, field = 'path'): string {
    const p = this.path(v, field);
    let st;
    try { st = statSync(p); } catch { throw new VmmsError(404, 'FileNotFound', `${p} does not exist`); }
    if (!st.isFile()) throw badRequest(`${p} is not a file`);
    return p;
  }

  private async users(path: string): Promise<Attachment[]> {
    return ((await this.attachments()) ?? []).filter((a) => samePath(a.path, path));
  }

  /** Refuses work on a disk a VM uses: any VM for `always`, else VMs that are not Off. */
  private async notInUse(path: string, action: string, always = false): Promise<void> {
    const u = (await this.users(path)).find((a) => always || a.vmState !== 'Off');
    if (u) {
      throw new VmmsError(409, 'DiskInUse', `cannot ${action} ${path}: it is attached to VM '${u.vmName}' at ${u.slot}` +
        (u.vmState !== 'Off' ? `, which is ${u.vmState} (stop-vm ${u.vmName} first)` : ` (remove-vmharddiskdrive ${u.vmName} first)`));
    }
  }

  private async run<T>(p: Promise<T>): Promise<T> {
    try { return await p; } catch (e) {
      if (e instanceof VhdEngineError) throw e.reason === 'locked' ? new VmmsError(409, 'DiskInUse', e.message) : new VmmsError(400, 'VhdError', e.message);
      throw e;
    }
  }

  /** New-VHD's options from an API body or CLI flags. */
  parseNew(input: unknown): NewVhdOptions {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw badRequest('the request body must be a JSON object like {"path": "d.vhdx", "sizeBytes": "10GB"}');
    const b = input as Record<string, unknown>;
    const known = new Set(['path', 'sizeBytes', 'type', 'parentPath', 'blockSizeBytes', 'logicalSectorSizeBytes', 'physicalSectorSizeBytes']);
    for (const k of Object.keys(b)) if (!known.has(k)) throw badRequest(`unknown New-VHD option '${k}'; known: ${[...known].join(', ')}`);
    const path = this.path(b.path);
    const parentPath = b.parentPath !== undefined ? this.existing(b.parentPath, 'parentPath') : undefined;
    const type = b.type !== undefined ? vhdType(b.type) : parentPath ? 'Differencing' : 'Dynamic';
    if (type === 'Differencing' && !parentPath) throw badRequest('a differencing disk needs parentPath (the disk it records changes against)');
    if (type !== 'Differencing' && parentPath) throw badRequest(`parentPath is only for differencing disks, not ${type.toLowerCase()} ones`);
    if (b.sizeBytes === undefined && type !== 'Differencing') throw badRequest('give sizeBytes, the virtual size (e.g. 10GB)');
    const o: NewVhdOptions = { path, type, sizeBytes: b.sizeBytes !== undefined ? parseSizeBytes(b.sizeBytes, 'sizeBytes') : 0 };
    if (parentPath) o.parentPath = parentPath;
    if (b.blockSizeBytes !== undefined) {
      const bs = parseSizeBytes(b.blockSizeBytes, 'blockSizeBytes');
      if (bs < 1048576 || bs > 256 * 1048576 || (bs & (bs - 1)) !== 0) throw badRequest(`blockSizeBytes must be a power of two from 1MB to 256MB, not ${bs}`);
      o.blockSizeBytes = bs;
    }
    o.logicalSectorSizeBytes = sectorSize(b.logicalSectorSizeBytes, 'logicalSectorSizeBytes');
    o.physicalSectorSizeBytes = sectorSize(b.physicalSectorSizeBytes, 'physicalSectorSizeBytes');
    if (o.sizeBytes % (o.logicalSectorSizeBytes ?? 512) !== 0) throw badRequest(`sizeBytes ${o.sizeBytes} must be a multiple of the ${o.logicalSectorSizeBytes ?? 512}-byte logical sector size`);
    if (o.sizeBytes > 64 * 1024 ** 4) throw badRequest('sizeBytes is above 64TB, the largest VHDX');
    return o;
  }

  /** New-VHD: refuses to overwrite anything. */
  async create(o: NewVhdOptions, progress?: Progress): Promise<VhdView> {
    if (existsSync(o.path)) throw new VmmsError(409, 'FileExists', `${o.path} already exists (pick another path, or remove the file first)`);
    if (!existsSync(dirname(o.path))) throw new VmmsError(404, 'FileNotFound', `the folder ${dirname(o.path)} does not exist (create it first)`);
    await this.run(vhdEngine().create(o, progress));
    return this.get(o.path);
  }

  /** Get-VHD. */
  async get(v: unknown): Promise<VhdView> {
    const path = this.existing(v);
    const info = await this.run(vhdEngine().describe(path));
    const all = await this.attachments();
    const u = all?.find((a) => samePath(a.path, path));
    return { ...info, attached: all ? !!u : null, attachedTo: u ? `${u.vmName} (${u.slot})` : null };
  }

  /** Resize-VHD. */
  async resize(v: unknown, size: unknown, progress?: Progress): Promise<VhdView> {
    const path = this.existing(v);
    const bytes = parseSizeBytes(size, 'sizeBytes');
    await this.notInUse(path, 'resize');
    await this.run(vhdEngine().resize(path, bytes, progress));
    return this.get(path);
  }

  /** Merge-VHD: the differencing disk goes away into its parent (or `destination`, an ancestor). */
  async merge(v: unknown, destination: unknown, progress?: Progress): Promise<VhdView> {
    const path = this.existing(v);
    const dest = destination !== undefined && destination !== null ? this.existing(destination, 'destinationPath') : undefined;
    await this.notInUse(path, 'merge', true);
    const info = await this.run(vhdEngine().describe(path));
    if (info.vhdType !== 'Differencing') throw badRequest(`${path} is a ${info.vhdType.toLowerCase()} disk: only a differencing disk can be merged into its parent`);
    const target = dest ?? info.parentPath!;
    await this.notInUse(target, 'merge into');
    await this.run(vhdEngine().merge(path, dest, progress));
    return this.get(target);
  }

  /** Convert-VHD: a new file; the source stays. */
  async convert(v: unknown, destination: unknown, type: unknown, progress?: Progress): Promise<VhdView> {
    const path = this.existing(v);
    const dest = this.path(destination, 'destinationPath');
    if (existsSync(dest)) throw new VmmsError(409, 'FileExists', `${dest} already exists (convert-vhd writes a new file; pick another destination)`);
    const t = type !== undefined && type !== null ? vhdType(type, 'vhdType') : undefined;
    await this.notInUse(path, 'convert');
    await this.run(vhdEngine().convert(path, dest, t, progress));
    return this.get(dest);
  }

  /** Optimize-VHD. */
  async optimize(v: unknown, progress?: Progress): Promise<VhdView> {
    const path = this.existing(v);
    await this.notInUse(path, 'optimize');
    await this.run(vhdEngine().optimize(path, progress));
    return this.get(path);
  }

  /** Test-VHD: ok, or what is wrong (a missing file, a damaged structure, a missing parent). */
  async test(v: unknown): Promise<VhdTestResult> {
    const path = this.path(v);
    if (!existsSync(path)) return { path, ok: false, problems: [`${path} does not exist`], message: `${path} does not exist` };
    const r = await this.run(vhdEngine().check(path));
    const ok = r.problems.length === 0 && r.ok;
    return { path, ok, problems: r.problems, message: ok ? `${path} is a usable virtual hard disk` : `${path} is not usable: ${r.problems.join('; ')}` };
  }
}
