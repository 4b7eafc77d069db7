/**
 * The service's drive commands (Add-/Remove-/Get-VMHardDiskDrive, Add-VMScsiController, Set-/Get-VMDvdDrive,
 * New-VM -NewVHDPath/-VHDPath) and its VHD commands for API clients. Configuration changes go through the
 * service's narrow VmAccess; a SCSI disk added to or removed from a running VM reaches its worker first.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { holderRecordPath, type LockHolder } from '../storage/lock.js';
import { defaultVirtualDiskDir } from './paths.js';
import { resolveConfinedPath } from './confined-path.js';
import type { DriveConfig, HardwareConfig } from '../platform/hardware.js';
import type { VmConfig } from './config.js';
import { VmmsError, badRequest, conflict } from './errors.js';
import { chooseSlot, clientPath, controllerType, driveAt, driveView, intField, slotName, withDrive, withoutDrive, withScsiController, type DriveView } from './drives.js';
import { IDE_CONTROLLERS, IDE_LOCATIONS, SCSI_LOCATIONS, MAX_SCSI_CONTROLLERS } from '../platform/hardware.js';
import { Operations, type OperationView } from './operations.js';
import { VhdCommands, samePath, type Attachment, type VhdTestResult, type VhdView } from './vhd-commands.js';
import { vhdEngine } from './vhd-engine.js';
import type { VmState } from './states.js';
import type { WorkerOp } from './worker-protocol.js';

/** What the drive commands may see and do of the service. */
export interface VmAccess {
  dataDir: string;
  /** Folders API clients may name files in. */
  pathRoots: string[];
  /** The VM (case-insensitive name), or a 404. */
  vm(name: string): { name: string; state: VmState; config: VmConfig };
  all(): { name: string; state: VmState; config: VmConfig }[];
  /** Stores the VM's new hardware and records `message` in its event log. */
  setHardware(name: string, hw: HardwareConfig, message: string): void;
  /** Sends a request to the VM's worker. */
  request(name: string, op: WorkerOp): Promise<unknown>;
}

/** Hyper-V's default folder for new virtual hard disks, under the data directory. */
export const vhdFolder = defaultVirtualDiskDir;

const LIVE = new Set<VmState>(['Running', 'Paused']);

export class VmDrives {
  readonly operations = new Operations();
  readonly vhd: VhdCommands;

  constructor(private readonly s: VmAccess) {
    // Relative paths mean the default folder, which must exist to hold new disks; every path must then lie
    // under one of the host's allowed folders (resolved through symlinks: confined-path.ts).
    mkdirSync(vhdFolder(s.dataDir), { recursive: true, mode: 0o700 });
    this.vhd = new VhdCommands(async () => this.attachments(),
      (v, field) => resolveConfinedPath(clientPath(v, field, vhdFolder(s.dataDir)), s.pathRoots, { mayCreate: true, what: field }));
  }

  /** Every disk and ISO file VMs of the inventory use. */
  attachments(): Attachment[] {
    return this.s.all().flatMap((v) => v.config.hardware.drives.filter((d) => d.path).map((d) => ({ vmName: v.name, vmState: v.state, slot: slotName(d), path: d.path!, kind: d.kind })));
  }

  private body(input: unknown): Record<string, unknown> {
    if (input === undefined) return {};
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw badRequest('the request body must be a JSON object');
    return input as Record<string, unknown>;
  }

  /** A disk file to attach: exists, is a file, and no VM uses it yet. */
  private diskFile(vm: string, v: unknown): string {
    const path = this.vhd.path(v);
    let st;
    try { st = statSync(path); } catch { throw new VmmsError(404, 'FileNotFound', `the virtual hard disk ${path} does not exist (create it with 'hyperts new-vhd ${path} --size-bytes 10GB')`); }
    if (!st.isFile()) throw badRequest(`${path} is not a file`);
    const u = this.attachments().find((a) => samePath(a.path, path));
    if (u) {
      throw new VmmsError(409, 'DiskInUse', u.vmName.toLowerCase() === vm.toLowerCase()
        ? `${path} is already attached to VM '${u.vmName}' at ${u.slot}`
        : `${path} is already attached to VM '${u.vmName}' at ${u.slot}; a disk can belong to one VM only (remove-vmharddiskdrive ${u.vmName} there first)`);
    }
    return path;
  }

  private slotOf(b: Record<string, unknown>): { controllerType: DriveConfig['controllerType']; controllerNumber?: number; controllerLocation?: number } {
    const t = b.controllerType !== undefined ? controllerType(b.controllerType) : 'scsi';
    const max = t === 'scsi' ? MAX_SCSI_CONTROLLERS : IDE_CONTROLLERS;
    return {
      controllerType: t,
      controllerNumber: b.controllerNumber !== undefined ? intField(b.controllerNumber, 'controllerNumber', max) : undefined,
      controllerLocation: b.controllerLocation !== undefined ? intField(b.controllerLocation, 'controllerLocation', t === 'scsi' ? SCSI_LOCATIONS : IDE_LOCATIONS) : undefined,
    };
  }

  /** Add-VMHardDiskDrive. Off: configuration only. Running or Paused: SCSI only, hot-added by the worker first. */
  async addHardDisk(name: string, input: unknown): Promise<DriveView> {
    const b = this.body(input);
    for (const k of Object.keys(b)) if (!['path', 'controllerType', 'controllerNumber', 'controllerLocation'].includes(k)) throw badRequest(`unknown option '${k}'; known: path, controllerType, controllerNumber, controllerLocation`);
    const vm = this.s.vm(name);
    const req = this.slotOf(b);
    if (vm.state !== 'Off' && !(LIVE.has(vm.state) && req.controllerType === 'scsi')) {
      throw conflict(`cannot add a disk to VM '${vm.name}' while it is ${vm.state}: ` +
        (LIVE.has(vm.state) ? `IDE disks can be added only while it is off (use --controller-type SCSI, or stop-vm ${vm.name})` : `wait until it is Off${vm.state === 'Saved' ? ` (start-vm ${vm.name} restores it; remove-vmsavedstate discards the state)` : ' or Running'}`));
    }
    const path = this.diskFile(vm.name, b.path);
    const slot = chooseSlot(vm.name, vm.config.hardware, req);
    const drive: DriveConfig = { controllerType: req.controllerType, ...slot, kind: 'disk', path };
    if (LIVE.has(vm.state)) await this.s.request(vm.name, { op: 'attachDrive', drive });
    this.s.setHardware(vm.name, withDrive(this.s.vm(vm.name).config.hardware, drive), `hard disk ${path} added at ${slotName(drive)}${LIVE.has(vm.state) ? ' (hot-added)' : ''}`);
    return this.describe(vm.name, drive);
  }

  /** Remove-VMHardDiskDrive: the file stays. */
  async removeHardDisk(name: string, t: unknown, n: unknown, l: unknown): Promise<void> {
    const vm = this.s.vm(name);
    const type = controllerType(t);
    const num = intField(n, 'controllerNumber', type === 'scsi' ? MAX_SCSI_CONTROLLERS : IDE_CONTROLLERS);
    const loc = intField(l, 'controllerLocation', type === 'scsi' ? SCSI_LOCATIONS : IDE_LOCATIONS);
    const d = driveAt(vm.config.hardware, type, num, loc);
    if (!d || d.kind !== 'disk') throw new VmmsError(404, 'DriveNotFound', `VM '${vm.name}' has no hard disk at ${type.toUpperCase()} ${num}:${loc} (get-vmharddiskdrive ${vm.name} lists them)`);
    if (vm.state !== 'Off' && !(LIVE.has(vm.state) && type === 'scsi')) {
      throw conflict(`cannot remove ${slotName(d)} from VM '${vm.name}' while it is ${vm.state}: ${type === 'ide' ? 'IDE disks can be removed only while it is off' : 'wait until it is Off or Running'} (stop-vm ${vm.name})`);
    }
    if (LIVE.has(vm.state)) await this.s.request(vm.name, { op: 'detachDrive', controllerType: type, controllerNumber: num, controllerLocation: loc });
    this.s.setHardware(vm.name, withoutDrive(this.s.vm(vm.name).config.hardware, d), `hard disk ${d.path} removed from ${slotName(d)}${LIVE.has(vm.state) ? ' (hot-removed)' : ''}; the file stays`);
  }

  /**
   * Lock-holder records (src/storage/lock.ts) for a sandboxed worker's writable disks: the worker holds the
   * locks but cannot write next to the files, so others would not learn which VM has a disk.
   */
  writeHolderRecords(vmName: string, pid: number, disks: string[]): string[] {
    const done: string[] = [];
    for (const d of disks) {
      const rec = holderRecordPath(d);
      const h: LockHolder = { pid, host: hostname(), purpose: `VM ${vmName}`, since: new Date().toISOString() };
      try { writeFileSync(`${rec}.tmp${process.pid}`, JSON.stringify(h)); renameSync(`${rec}.tmp${process.pid}`, rec); done.push(d); } catch { /* informational only */ }
    }
    return done;
  }

  clearHolderRecords(pid: number, disks: string[]): void {
    for (const d of disks) {
      const rec = holderRecordPath(d);
      try { if ((JSON.parse(readFileSync(rec, 'utf8')) as LockHolder).pid === pid) unlinkSync(rec); } catch { /* gone already */ }
    }
  }

  /** Get-VMHardDiskDrive (kind 'disk') and Get-VMDvdDrive (kind 'dvd'), of one VM or all. */
  async drives(name: string | undefined, kind: DriveConfig['kind']): Promise<DriveView[]> {
    const vms = name !== undefined ? [this.s.vm(name)] : this.s.all();
    const list = vms.flatMap((v) => v.config.hardware.drives.filter((d) => d.kind === kind).map((d) => ({ vm: v.name, d })));
    return Promise.all(list.map(({ vm, d }) => this.describe(vm, d)));
  }

  /** A drive with its file's virtual size and size on the host (null when the file cannot be read). */
  private async describe(vm: string, d: DriveConfig): Promise<DriveView> {
    const v: DriveView = { ...driveView(vm, d), sizeBytes: null, fileSizeBytes: null };
    if (!d.path) return v;
    try { v.fileSizeBytes = statSync(d.path).size; } catch { return v; }
    if (d.kind === 'dvd') { v.sizeBytes = v.fileSizeBytes; return v; }
    try { v.sizeBytes = (await vhdEngine().describe(d.path)).size; } catch { /* shown as unknown */ }
    return v;
  }

  /** Add-VMScsiController: while the VM is off, up to four. */
  addScsiController(name: string): number {
    const vm = this.s.vm(name);
    if (vm.state !== 'Off') throw conflict(`cannot add a SCSI controller to VM '${vm.name}' while it is ${vm.state} (stop-vm ${vm.name} first)`);
    const hw = withScsiController(vm.name, vm.config.hardware);
    this.s.setHardware(vm.name, hw, `SCSI controller ${hw.scsiControllers - 1} added`);
    return hw.scsiControllers;
  }

  /**
   * Set-VMDvdDrive: puts an ISO into the VM's DVD drive on IDE (path null or '' ejects it). Without a DVD drive,
   * one is added (at the slot given, else the first free IDE slot) while the VM is off.
   */
  async setDvd(name: string, input: unknown): Promise<DriveView> {
    const b = this.body(input);
    for (const k of Object.keys(b)) if (!['path', 'controllerNumber', 'controllerLocation'].includes(k)) throw badRequest(`unknown option '${k}'; known: path, controllerNumber, controllerLocation`);
    const vm = this.s.vm(name);
    if (b.path === undefined) throw badRequest('give path: the ISO image, or "" to eject the disc');
    const eject = b.path === null || b.path === '';
    let path: string | null = null;
    if (!eject) {
      path = this.vhd.path(b.path);
      let st;
      try { st = statSync(path); } catch { throw new VmmsError(404, 'FileNotFound', `the ISO image ${path} does not exist`); }
      if (!st.isFile()) throw badRequest(`${path} is not a file`);
      // One ISO may sit in several DVD drives (it is read-only); a VM's hard disk may not.
      const u = this.attachments().find((a) => a.kind === 'disk' && samePath(a.path, path!));
      if (u) {
        throw new VmmsError(409, 'DiskInUse', `${path} is a hard disk of VM '${u.vmName}' (${u.slot}); it cannot go into a DVD drive`);
      }
    }
    const n = b.controllerNumber !== undefined ? intField(b.controllerNumber, 'controllerNumber', IDE_CONTROLLERS) : undefined;
    const l = b.controllerLocation !== undefined ? intField(b.controllerLocation, 'controllerLocation', IDE_LOCATIONS) : undefined;
    const hw = vm.config.hardware;
    const dvds = hw.drives.filter((d) => d.kind === 'dvd' && d.controllerType === 'ide' && (n === undefined || d.controllerNumber === n) && (l === undefined || d.controllerLocation === l));
    let drive = dvds[0];
    if (!drive) {
      if (eject) throw new VmmsError(404, 'DriveNotFound', `VM '${vm.name}' has no DVD drive${n !== undefined ? ` at IDE ${n}:${l ?? 0}` : ''} to eject`);
      if (vm.state !== 'Off') throw conflict(`cannot add a DVD drive to VM '${vm.name}' while it is ${vm.state} (stop-vm ${vm.name} first; the disc of an existing drive can be changed while it runs)`);
      const slot = chooseSlot(vm.name, hw, { controllerType: 'ide', controllerNumber: n, controllerLocation: l });
      drive = { controllerType: 'ide', ...slot, kind: 'dvd', path };
      this.s.setHardware(vm.name, withDrive(hw, drive), `DVD drive added at ${slotName(drive)} with ${path}`);
      return this.describe(vm.name, drive);
    }
    if (vm.state !== 'Off' && !LIVE.has(vm.state)) throw conflict(`cannot change the disc of VM '${vm.name}' while it is ${vm.state}`);
    const next: DriveConfig = { ...drive, path };
    if (LIVE.has(vm.state)) await this.s.request(vm.name, { op: 'changeMedia', drive: next });
    this.s.setHardware(vm.name, withDrive(withoutDrive(hw, drive), next), eject ? `disc ejected from the DVD drive at ${slotName(drive)}` : `${path} inserted into the DVD drive at ${slotName(drive)}`);
    return this.describe(vm.name, next);
  }

  /**
   * New-VM's disk options: newVhdPath + newVhdSizeBytes creates a dynamic VHDX, vhdPath uses an existing disk;
   * either goes to SCSI 0:0. Returns the hardware for the new VM, and a cleanup that deletes a created file.
   */
  async newVmDisk(vmName: string, body: Record<string, unknown>): Promise<{ hardware: HardwareConfig; undo: () => void } | null> {
    const { newVhdPath, newVhdSizeBytes, vhdPath } = body;
    if (newVhdPath === undefined && newVhdSizeBytes === undefined && vhdPath === undefined) return null;
    if (vhdPath !== undefined && (newVhdPath !== undefined || newVhdSizeBytes !== undefined)) throw badRequest('give either vhdPath (an existing disk) or newVhdPath with newVhdSizeBytes, not both');
    const hardware: HardwareConfig = { scsiControllers: 1, drives: [], networkAdapters: [] };
    if (vhdPath !== undefined) {
      const path = this.diskFile(vmName, vhdPath);
      hardware.drives.push({ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path });
      return { hardware, undo: () => {} };
    }
    if (newVhdPath === undefined || newVhdSizeBytes === undefined) throw badRequest('a new virtual hard disk needs both newVhdPath and newVhdSizeBytes (e.g. 10GB)');
    const o = this.vhd.parseNew({ path: newVhdPath, sizeBytes: newVhdSizeBytes, type: 'dynamic' });
    mkdirSync(vhdFolder(this.s.dataDir), { recursive: true });
    await this.vhd.create(o);
    hardware.drives.push({ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: o.path });
    return { hardware, undo: () => rmSync(o.path, { force: true }) };
  }

  // ---- VHD commands for API clients: long ones as operations ---------------------------------------------

  private op(kind: string, path: string, work: (p: (d: number, t: number) => void) => Promise<unknown>): OperationView {
    return this.operations.start(kind, path, work);
  }

  newVhd(input: unknown): OperationView {
    const o = this.vhd.parseNew(input);
    if (o.path.startsWith(vhdFolder(this.s.dataDir))) mkdirSync(vhdFolder(this.s.dataDir), { recursive: true });
    return this.op('new-vhd', o.path, (p) => this.vhd.create(o, p));
  }

  getVhd(path: unknown): Promise<VhdView> { return this.vhd.get(path); }
  testVhd(path: unknown): Promise<VhdTestResult> { return this.vhd.test(path); }

  resizeVhd(input: unknown): OperationView {
    const b = this.body(input);
    const path = this.vhd.path(b.path);
    return this.op('resize-vhd', path, (p) => this.vhd.resize(path, b.sizeBytes, p));
  }

  mergeVhd(input: unknown): OperationView {
    const b = this.body(input);
    const path = this.vhd.path(b.path);
    return this.op('merge-vhd', path, (p) => this.vhd.merge(path, b.destinationPath, p));
  }

  convertVhd(input: unknown): OperationView {
    const b = this.body(input);
    const path = this.vhd.path(b.path);
    const dest = this.vhd.path(b.destinationPath, 'destinationPath');
    return this.op('convert-vhd', path, (p) => this.vhd.convert(path, dest, b.vhdType, p));
  }

  optimizeVhd(input: unknown): OperationView {
    const b = this.body(input);
    const path = this.vhd.path(b.path);
    return this.op('optimize-vhd', path, (p) => this.vhd.optimize(path, p));
  }
}
