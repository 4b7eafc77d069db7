/**
 * The management service (Hyper-V's VMMS): owns the inventory, runs each started VM in its own worker
 * process, drives the VM state machine and records every transition in the event log. Clients (REST API,
 * WebSocket, CLI, web console) only ever talk to this class.
 */
import { fork, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { removeFileDurably } from '../platform/state-files.js';
import { checkPrivateDirectory } from './file-checks.js';
import { closeFds, isolationSupport } from './sandbox.js';
import { defaultVirtualDiskDir } from './paths.js';
import { cpus, freemem, totalmem, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applySettings, defaultConfig, icName, validateName, type VmConfig } from './config.js';
import { VmmsError, badRequest, conflict, notFound } from './errors.js';
import { Inventory, type VmEvent } from './store.js';
import type { VmState } from './states.js';
import type { AdapterStatus, FromWorker, ToWorker, WorkerOp, WorkerStartConfig } from './worker-protocol.js';
import { SwitchStore, PrivateRelay, newAdapter, switchesFor, type SwitchRecord } from './network.js';
import { ensureBridge, isRoot, removeBridge } from '../net/host-bridge.js';
import type { NetworkAdapterConfig } from '../platform/hardware.js';
import type { SwitchConfig } from '../platform/assemble-network.js';
import { defaultImagePaths, imageCacheDir, imagePaths } from '../image/builder.js';
import type { HardwareConfig } from '../platform/hardware.js';
import { slotName } from './drives.js';
import { VmDrives } from './vm-drives.js';
import { capturedDrives } from './checkpoint-disks.js';
import { resolveConfinedPath } from './confined-path.js';
import { FileChannel, filesFor, WORKER_FILE_CHANNEL_FD, WORKER_KVM_FD } from './worker-grants.js';
import type { FileGrant } from './worker-files.js';
import { VmCheckpoints, type CheckpointView } from './checkpoint-ops.js';
import { newEntry, type Entry, type Runtime } from './vm-entry.js';
import { sandboxedLaunch, type WorkerLaunch } from './worker-launch.js';
export { MAX_CHECKPOINTS, type CheckpointView } from './checkpoint-ops.js';
import { IC_NAMES, type IcName, type IntegrationServiceInfo } from '../vsp/ic/integration-services.js';
import { WORKER_NODE_FLAGS } from './worker-flags.js';


export interface ServiceOptions {
  dataDir: string;
  /** Worker module (tests may substitute one); default: ./worker.js next to this file. */
  workerPath?: string;
  /** Where the default guest image is looked up; default: src/image/builder.ts's defaultImagePaths(). */
  defaultImage?: () => { kernel: string; initrd: string; cmdline: string };
  /** Grace time of a turn-off before the worker is killed. */
  turnOffGraceMs?: number;
  log?: (msg: string) => void;
  /**
   * Folders API clients may name files in (virtual disks, ISOs, export folders; see confined-path.ts).
   * Default: the data directory and its "Virtual Hard Disks" folder.
   */
  pathRoots?: string[];
  /**
   * Folders a VM's kernel and initrd may come from (confined as pathRoots are). Default: the path roots and the
   * guest image cache (hyperts image build).
   */
  bootRoots?: string[];
  /**
   * Worker sandbox (sandbox.ts): 'auto' (default) uses it when bubblewrap works here and records an event
   * when a VM runs without it; 'required' refuses to start a VM without it; 'off' never uses it.
   */
  isolation?: 'auto' | 'required' | 'off';
  /** Memory the worker may use beyond the guest's (Node, the emulator, device models). */
  workerOverheadBytes?: number;
}

const WORKER_OVERHEAD_BYTES = 768 * 1024 * 1024;

export interface VmView {
  id: string;
  name: string;
  state: VmState;
  /** Hyper-V's Status column: "Operating normally" or what went wrong last. */
  status: string;
  /** Share of the host's total processor time used by the VM's worker, in percent. */
  cpuUsage: number;
  memoryAssignedBytes: number;
  uptimeSeconds: number;
  heartbeat: string | null;
  osName: string | null;
  osVersion: string | null;
  ipAddresses: string[];
  backend: string | null;
  workerPid: number | null;
  created: string;
  config: VmConfig;
}


export interface IntegrationServiceView { name: IcName; enabled: boolean; status: string | null; protocol: string | null }

export interface StopOptions { turnOff?: boolean; force?: boolean; wait?: boolean; timeoutMs?: number }

const CONSOLE_HISTORY = 256 * 1024;
/** Worker requests that open files (they get them as descriptors: worker-grants.ts). */
const OPENS_FILES = new Set<WorkerOp['op']>(['checkpointDetach', 'checkpointAttach', 'mergeCopy', 'mergeFinish', 'attachDrive', 'changeMedia']);
const REQUEST_TIMEOUT_MS = 60_000;
const CLK_TCK = 100;


/** Get-VMSwitch: a switch and the adapters connected to it. */
export interface SwitchView extends SwitchRecord { adapters: Array<{ vmName: string; adapter: string }> }
/** Get-VMNetworkAdapter: the configured adapter, and its live state while the VM runs. */
export interface AdapterView extends NetworkAdapterConfig { vmName: string; status: AdapterStatus | null; ipAddresses: string[] }

export class VmmsService extends EventEmitter {
  readonly inventory: Inventory;
  /** Virtual switches (New-VMSwitch); Private ones are relayed between the VMs' workers. */
  readonly switches: SwitchStore;
  private readonly relay = new PrivateRelay();
  private readonly entries = new Map<string, Entry>();
  private readonly workerPath: string;
  private readonly metricsTimer: NodeJS.Timeout;
  private hostCache: { at: number; value: unknown } | null = null;
  private closing = false;
  private readonly log: (msg: string) => void;
  /** Checkpoints, their disks, export and import (checkpoint-ops.ts). */
  private readonly cps: VmCheckpoints;
  /** Drive and VHD commands (Add-VMHardDiskDrive, New-VHD...). */
  readonly drives: VmDrives;
  /** VMs whose worker runs under another uid (nobody, for a root service): their folders belong to it. */
  private readonly workerUid = new Map<string, number>();
  /** Folders client-given paths are confined to (resolveConfinedPath(path, service.pathRoots)). */
  readonly pathRoots: string[];
  /** Folders kernel and initrd files are confined to. */
  readonly bootRoots: string[];

  constructor(private readonly o: ServiceOptions) {
    super();
    mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
    checkPrivateDirectory(o.dataDir);
    this.inventory = new Inventory(join(o.dataDir, 'inventory.sqlite'));
    this.switches = new SwitchStore(o.dataDir);
    // Internal and External switches' bridges do not survive a host reboot: set them up again.
    for (const sw of this.switches.list()) {
      if (!sw.bridge) continue;
      try { ensureBridge(sw.bridge, sw.netAdapterName); } catch (err) {
        this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: `virtual switch '${sw.name}' (${sw.type}): its host bridge could not be set up: ${(err as Error).message}` });
      }
    }
    this.pathRoots = o.pathRoots ?? [o.dataDir, defaultVirtualDiskDir(o.dataDir)];
    this.bootRoots = o.bootRoots ?? [...this.pathRoots, imageCacheDir()];
    this.workerPath = o.workerPath ?? fileURLToPath(new URL('./worker.js', import.meta.url));
    this.log = o.log ?? (() => {});
    this.cps = new VmCheckpoints({
      inventory: this.inventory, dataDir: o.dataDir, pathRoots: this.pathRoots,
      entry: (n) => this.entry(n),
      find: (n) => this.find(n),
      has: (id) => this.entries.has(id),
      add: (e) => { this.entries.set(e.rec.id, e); },
      request: (e, req, timeoutMs) => this.request(e, req, timeoutMs),
      requireState: (e, allowed, action, fix) => this.requireState(e, allowed, action, fix),
      record: (e, from, to, message) => this.record(e, from, to, message),
      transition: (e, to, message) => this.transition(e, to, message),
      changed: (e) => this.changed(e),
      refreshHolderRecords: (e, rt) => this.refreshHolderRecords(e, rt),
      view: (e) => this.view(e),
      vmDir: (e) => this.vmDir(e),
      savedStatePath: (e) => this.savedStatePath(e),
      workerUid: (e) => this.workerUid.get(e.rec.id),
    });
    for (const rec of this.inventory.list()) {
      const e = newEntry(rec);
      this.entries.set(rec.id, e);
      // A VM is only running while a worker of this service runs it: after a restart none does.
      if (rec.state !== 'Off' && rec.state !== 'Saved') {
        this.transition(e, 'Off', 'the management service restarted and the VM\'s worker process was gone');
      }
      this.cps.sweepUnfinishedFiles(e);
      void this.cps.consolidateDisks(e);
    }
    this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: `management service started (data directory ${o.dataDir})` });
    this.drives = new VmDrives({
      dataDir: o.dataDir, pathRoots: this.pathRoots,
      vm: (n) => this.entry(n).rec,
      all: () => [...this.entries.values()].map((e) => e.rec),
      setHardware: (n, hardware, message) => {
        const e = this.entry(n);
        // A checkpoint's differencing disk taken out of the VM stays the user's: never merged away or deleted.
        const still = new Set(capturedDrives(hardware).map((d) => d.path));
        const removed = capturedDrives(e.rec.config.hardware).filter((d) => !still.has(d.path)).map((d) => d.path!);
        e.rec.config = { ...e.rec.config, hardware };
        this.inventory.transaction(() => {
          this.inventory.updateConfig(e.rec.id, e.rec.config);
          for (const p of removed) this.inventory.keepCheckpointFile(p);
        });
        if (e.rt) this.refreshHolderRecords(e, e.rt);
        this.record(e, null, null, message);
        this.changed(e);
      },
      request: (n, op) => {
        const e = this.entry(n);
        // bubblewrap's binds are fixed when the worker starts: a file added later reaches it as a descriptor.
        if (op.op === 'attachDrive' && e.rt?.isolated && !e.rt.files) {
          return Promise.reject(conflict(`cannot hot-add ${op.drive.path} to VM '${n}': its worker is isolated and this host cannot hand it the file (descriptor passing is unavailable: koffi could not load libc); ` +
            `stop-vm ${n}, add the disk, and start it again (or run the service with --no-isolation)`));
        }
        return this.request(e, op);
      },
    });
    this.metricsTimer = setInterval(() => this.sampleMetrics(), 1000);
    this.metricsTimer.unref();
  }

  // ---- inventory -------------------------------------------------------------------------------------

  private entry(name: string): Entry {
    if (typeof name !== 'string') throw notFound(String(name));
    for (const e of this.entries.values()) if (e.rec.name.toLowerCase() === name.toLowerCase()) return e;
    throw notFound(name);
  }

  list(): VmView[] {
    return [...this.entries.values()].sort((a, b) => a.rec.name.localeCompare(b.rec.name)).map((e) => this.view(e));
  }

  get(name: string): VmView { return this.view(this.entry(name)); }

  /**
   * New-VM, with its disk options: newVhdPath + newVhdSizeBytes (a new dynamic VHDX) or vhdPath (an existing
   * disk), attached at SCSI 0:0. The settings are checked before any file is created; a created file is
   * deleted again if the VM cannot be.
   */
  async newVm(input: unknown): Promise<VmView> {
    const body = (typeof input === 'object' && input !== null && !Array.isArray(input)) ? input as Record<string, unknown> : null;
    if (!body) throw badRequest('the request body must be a JSON object with at least a "name"');
    const { newVhdPath, newVhdSizeBytes, vhdPath, ...settings } = body;
    this.checkNew(settings);
    const disk = await this.drives.newVmDisk(String(settings.name), { newVhdPath, newVhdSizeBytes, vhdPath });
    try { return this.create(settings, disk?.hardware); } catch (e) { disk?.undo(); throw e; }
  }

  private checkNew(body: Record<string, unknown>): VmConfig {
    const name = validateName(body.name);
    if (this.find(name)) throw new VmmsError(409, 'DuplicateName', `a virtual machine named '${name}' already exists (pick another name, or remove-vm ${name} first)`);
    return this.confineBootFiles(applySettings(defaultConfig(name), body).config, body);
  }

  /**
   * A kernel or initrd given in the settings is resolved and confined to the boot roots (confined-path.ts: no
   * `..` or symlink out of them, no FIFO, device or /proc file); the real path is kept. Checked again at start.
   */
  private confineBootFiles(c: VmConfig, given: Record<string, unknown>): VmConfig {
    for (const k of ['kernel', 'initrd'] as const) {
      const v = c.boot[k];
      if (typeof given[k] === 'string' && v) c.boot[k] = resolveConfinedPath(v, this.bootRoots, { what: k });
    }
    return c;
  }

  /** A boot file at start: still inside the boot roots, still a regular file (a link may have been swapped in). */
  private bootFile(vm: string, path: string, what: 'kernel' | 'initrd'): string {
    try { return resolveConfinedPath(path, this.bootRoots, { what }); } catch (e) {
      throw conflict(`cannot start VM '${vm}': ${(e as Error).message} (set-vm ${vm} --${what} FILE)`);
    }
  }

  create(input: unknown, hardware?: HardwareConfig): VmView {
    const body = (typeof input === 'object' && input !== null && !Array.isArray(input)) ? input as Record<string, unknown> : null;
    if (!body) throw badRequest('the request body must be a JSON object with at least a "name"');
    const config = this.checkNew(body);
    if (hardware) config.hardware = hardware;
    const rec = this.inventory.insert(config);
    const e = newEntry(rec);
    this.entries.set(rec.id, e);
    this.record(e, null, 'Off', `created (${config.memoryBytes / 1048576} MB, ${config.cpus} vCPU, processor ${config.processor})`);
    this.changed(e);
    return this.view(e);
  }

  update(name: string, input: unknown): VmView {
    const e = this.entry(name);
    const { config, changed } = applySettings(e.rec.config, input);
    if (typeof input === 'object' && input !== null) this.confineBootFiles(config, input as Record<string, unknown>);
    if (!changed.length) return this.view(e);
    if (changed.includes('name')) {
      const other = this.find(config.name);
      if (other && other !== e) throw new VmmsError(409, 'DuplicateName', `a virtual machine named '${config.name}' already exists`);
    }
    const live = new Set(['notes', 'integrationServices', 'name', 'checkpointType']);
    const offline = changed.filter((c) => !live.has(c));
    if (offline.length && e.rec.state !== 'Off') {
      throw conflict(`VM '${e.rec.name}' is ${e.rec.state}: ${offline.join(', ')} can be changed only while it is Off (stop-vm ${e.rec.name} first)`);
    }
    const before = e.rec.config;
    e.rec.config = config;
    e.rec.name = config.name;
    this.inventory.updateConfig(e.rec.id, config);
    this.record(e, null, null, `configuration changed: ${changed.join(', ')}`);
    if (changed.includes('integrationServices') && e.rt) {
      for (const n of IC_NAMES) {
        if (before.integrationServices[n] !== config.integrationServices[n]) void this.request(e, { op: 'icSet', name: n, enabled: config.integrationServices[n] }).catch(() => {});
      }
    }
    this.changed(e);
    return this.view(e);
  }

  remove(name: string): void {
    const e = this.entry(name);
    if (e.rec.state !== 'Off' && e.rec.state !== 'Saved') {
      throw conflict(`VM '${e.rec.name}' is ${e.rec.state}: turn it off before removing it (stop-vm ${e.rec.name} --turn-off)`);
    }
    this.inventory.remove(e.rec.id);
    this.entries.delete(e.rec.id);
    rmSync(this.vmDir(e), { recursive: true, force: true });
    const disks = e.rec.config.hardware.drives.filter((d) => d.kind === 'disk').map((d) => d.path);
    this.record(e, e.rec.state, null, `removed${disks.length ? ` (its virtual hard disks stay: ${disks.join(', ')})` : ''}`);
    this.emit('removed', e.rec.name);
  }

  events(o: { name?: string; limit?: number; after?: number } = {}): VmEvent[] {
    const vmId = o.name !== undefined ? this.entry(o.name).rec.id : undefined;
    return this.inventory.events({ vmId, limit: o.limit, after: o.after });
  }

  private find(name: string): Entry | null {
    for (const e of this.entries.values()) if (e.rec.name.toLowerCase() === name.toLowerCase()) return e;
    return null;
  }

  // ---- state machine ---------------------------------------------------------------------------------

  private record(e: Entry, from: VmState | null, to: VmState | null, message: string): void {
    const ev = this.inventory.addEvent({ vmId: e.rec.id, vmName: e.rec.name, from, to, message });
    this.log(`${e.rec.name}: ${from && to ? `${from} -> ${to}: ` : ''}${message}`);
    this.emit('event', ev);
  }

  private transition(e: Entry, to: VmState, message: string): void {
    const from = e.rec.state;
    e.rec.state = to;
    this.inventory.setState(e.rec.id, to);
    this.record(e, from, to, message);
    this.changed(e);
  }

  private changed(e: Entry): void { this.emit('changed', e.rec.name); }

  private requireState(e: Entry, allowed: VmState[], action: string, fix: string): void {
    if (!allowed.includes(e.rec.state)) throw conflict(`cannot ${action} VM '${e.rec.name}': it is ${e.rec.state}${fix ? ` (${fix})` : ''}`);
  }

  private workerConfig(c: VmConfig): WorkerStartConfig {
    let kernel = c.boot.kernel;
    let initrd = c.boot.initrd ?? undefined;
    let cmdline = c.boot.cmdline;
    if (!kernel) {
      // Debian's cloud kernel has no driver for the legacy network adapter (tulip): such VMs boot the
      // generic-kernel image.
      const generic = !this.o.defaultImage && c.hardware.networkAdapters.some((a) => a.legacy);
      const img = this.o.defaultImage ? this.o.defaultImage() : generic ? imagePaths('generic') : defaultImagePaths();
      if (generic && (!existsSync(img.kernel) || !existsSync(img.initrd))) {
        throw conflict(`cannot start VM '${c.name}': its legacy network adapter needs the generic-kernel guest image, which is not built yet; run 'hyperts image build --generic' (or set-vm ${c.name} --kernel FILE)`);
      }
      if (!existsSync(img.kernel) || !existsSync(img.initrd)) {
        throw conflict(`cannot start VM '${c.name}': the default guest image is not built yet; run 'hyperts image build' (or set-vm ${c.name} --kernel FILE)`);
      }
      kernel = img.kernel;
      initrd = img.initrd;
      cmdline = `${img.cmdline} ${cmdline}`.trim();
    } else {
      kernel = this.bootFile(c.name, kernel, 'kernel');
      if (initrd) initrd = this.bootFile(c.name, initrd, 'initrd');
    }
    for (const d of c.hardware.drives) {
      if (d.path && !existsSync(d.path)) {
        throw conflict(`cannot start VM '${c.name}': the ${d.kind === 'dvd' ? 'ISO image' : 'virtual hard disk'} ${d.path} at ${slotName(d)} does not exist ` +
          `(put the file back, or remove the drive: ${d.kind === 'dvd' ? `set-vmdvddrive ${c.name} --path ''` : `remove-vmharddiskdrive ${c.name} --controller-type ${d.controllerType.toUpperCase()} --controller-number ${d.controllerNumber} --controller-location ${d.controllerLocation}`})`);
      }
    }
    const hardware = structuredClone(c.hardware);
    if (!c.enlightened) {
      // SCSI controllers are synthetic (VMBus) devices: an unenlightened VM has none to offer.
      const d = hardware.drives.find((x) => x.controllerType === 'scsi');
      if (d) throw conflict(`cannot start VM '${c.name}': it is not enlightened, so it has no synthetic SCSI controller for ${slotName(d)} (set-vm ${c.name} --enlightened on, or attach the disk to IDE)`);
      hardware.scsiControllers = 0;
      if (hardware.networkAdapters.length) throw conflict(`cannot start VM '${c.name}': it is not enlightened, so its synthetic network adapters have no VMBus (set-vm ${c.name} --enlightened on, or remove-vmnetworkadapter)`);
    }
    for (const a of c.hardware.networkAdapters) this.requireSwitchRights(a.switchName, `cannot start VM '${c.name}'`, `disconnect-vmnetworkadapter ${c.name} "${a.name}"`);
    return {
      name: c.name, processor: c.processor, memoryBytes: c.memoryBytes, cpus: c.cpus, enlightened: c.enlightened,
      kernel, initrd, cmdline, integrationServices: c.integrationServices, com1: c.com1 === 'console', hardware,
      switches: switchesFor(c.hardware.networkAdapters, this.switches).map((x) => ({ ...x, relayed: true })),
    };
  }

  /** Where a VM's own files live (its saved state): <data directory>/vms/<id>. */
  vmDirectory(name: string): string { return this.vmDir(this.entry(name)); }
  private vmDir(e: Entry): string { return join(this.o.dataDir, 'vms', e.rec.id); }
  private savedStatePath(e: Entry): string { return join(this.vmDir(e), 'saved-state.vmrs'); }

  /**
   * Start-VM: Off -> Starting -> Running once the worker has built the partition. A Saved VM is restored
   * instead (Saved -> Starting -> Running): the guest carries on where it was saved, and the consumed saved
   * state is deleted. A restore that fails leaves the VM Saved with its file, and says how to get out.
   */
  async start(name: string): Promise<VmView> {
    const e = this.entry(name);
    if (this.closing) throw new VmmsError(503, 'ServiceStopping', 'the management service is stopping');
    this.requireState(e, ['Off', 'Saved'], 'start', e.rec.state === 'Paused' ? `resume-vm ${e.rec.name}` : '');
    // A merge of its checkpoint disks under way finishes first (it may change which file the VM opens).
    await this.checkpointDisksSettled();
    this.requireState(e, ['Off', 'Saved'], 'start', e.rec.state === 'Paused' ? `resume-vm ${e.rec.name}` : '');
    const restoring = e.rec.state === 'Saved';
    const wc = { ...this.workerConfig(e.rec.config), biosGuid: e.rec.id };
    if (restoring) {
      const path = this.savedStatePath(e);
      if (!existsSync(path)) {
        this.transition(e, 'Off', `the saved-state file ${path} is missing; the VM is off`);
        throw conflict(`cannot restore VM '${e.rec.name}': its saved-state file ${path} is missing, so the saved state is lost; the VM is now Off (start-vm ${e.rec.name} boots it afresh)`);
      }
      wc.restoreFrom = path;
    }
    e.lastError = null;
    // A restored guest continues its console session, so its history stays.
    if (!restoring) { e.history = []; e.historyBytes = 0; }
    this.transition(e, 'Starting', restoring ? 'start requested: restoring the saved state' : 'start requested');
    let launch: WorkerLaunch | null;
    try { launch = await this.sandbox(e, wc); } catch (err) { this.transition(e, restoring ? 'Saved' : 'Off', `start failed: ${(err as Error).message}`); throw err; }
    // Descriptors at fixed places (worker-grants.ts): 4 bwrap's seccomp program, 5 the file channel, 6 an open
    // /dev/kvm, 7 and 8 the kernel and initrd bubblewrap binds.
    const files = FileChannel.create();
    const extra = launch ? launch.fds : ['ignore' as const];
    if (files) wc.fileChannel = WORKER_FILE_CHANNEL_FD;
    const kvmFd = launch?.kvmFd;
    if (kvmFd !== undefined) wc.kvmDeviceFd = WORKER_KVM_FD;
    const stdio = ['ignore' as const, 'ignore' as const, 'pipe' as const, 'ipc' as const, ...extra,
      files ? files.workerEnd : 'ignore' as const, kvmFd ?? 'ignore' as const, ...(launch?.bootFds ?? [])];
    const child = launch
      ? spawn(launch.command, launch.args, { serialization: 'advanced', stdio })
      : fork(this.workerPath, [], { serialization: 'advanced', stdio, execArgv: [...WORKER_NODE_FLAGS] });
    if (launch) closeFds([...launch.fds, ...(kvmFd !== undefined ? [kvmFd] : []), ...launch.bootFds]);
    files?.closeWorkerEnd();
    if (wc.fileChannel === undefined) files?.close();
    let resolveExit!: () => void;
    const rt: Runtime = {
      child, pid: child.pid ?? -1, startedAt: 0, backend: null, status: null, pending: new Map(), nextId: 1, exitReason: null, isolated: launch !== null,
      files: wc.fileChannel !== undefined ? files : null, mergeParents: new Map(),
      stderrTail: '', exited: new Promise((r) => { resolveExit = r; }), cpuTicks: 0, cpuAt: Date.now(), cpuUsage: 0,
      finalState: restoring ? 'Saved' : 'Off', heldDisks: [],
    };
    e.rt = rt;
    child.stderr!.on('data', (d: Buffer) => { rt.stderrTail = (rt.stderrTail + d.toString()).slice(-2000); });
    const started = new Promise<void>((resolve, reject) => {
      child.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'started':
            rt.backend = m.backend;
            rt.startedAt = Date.now();
            // A sandboxed worker cannot leave its lock-holder records next to the disks: the service does.
            if (rt.isolated) {
              const writable = e.rec.config.hardware.drives.filter((d) => d.kind === 'disk' && !d.readOnly && d.path).map((d) => d.path!);
              rt.heldDisks = this.drives.writeHolderRecords(e.rec.name, rt.pid, writable);
            }
            if (restoring) {
              // The state now lives in the running worker; a stale file must never be restored again.
              rt.finalState = 'Off';
              removeFileDurably(wc.restoreFrom!);
            }
            this.transition(e, 'Running', restoring
              ? `worker process ${rt.pid} restored the VM from its saved state (processor ${m.backend})`
              : `worker process ${rt.pid} started the VM (processor ${m.backend})`);
            resolve();
            break;
          case 'failed':
            rt.exitReason = restoring ? `restore failed: ${m.error}` : `start failed: ${m.error}`;
            e.lastError = rt.exitReason;
            reject(conflict(restoring
              ? `cannot restore VM '${e.rec.name}': ${m.error}. The VM stays Saved; fix the cause, or discard the saved state with 'remove-vmsavedstate ${e.rec.name}' and start it afresh`
              : `cannot start VM '${e.rec.name}': ${m.error}`));
            break;
          case 'status': rt.status = m.status; break;
          case 'console': this.consoleOutput(e, m.data); break;
          case 'log': this.log(`${e.rec.name}: ${m.message}`); break;
          case 'frame': this.relay.fromWorker(e.rec.id, m.switchName, m.data); break;
          case 'exit':
            rt.exitReason ??= m.code === 0 ? `the guest powered off (${m.reason})` : `the guest stopped: ${m.reason} (exit code ${m.code})`;
            break;
          case 'res': {
            const p = rt.pending.get(m.id);
            if (!p) break;
            rt.pending.delete(m.id);
            clearTimeout(p.timer);
            if (m.ok) p.resolve(m.value);
            else p.reject(new VmmsError(409, m.code, m.error));
            break;
          }
        }
      });
      child.on('exit', (code, signal) => {
        // A killed worker leaves its lock-holder records behind (its OFD locks died with it): they would name it.
        const writable = e.rec.config.hardware.drives.filter((d) => d.kind === 'disk' && !d.readOnly && d.path).map((d) => d.path!);
        this.drives.clearHolderRecords(rt.pid, [...new Set([...rt.heldDisks, ...writable])]);
        rt.files?.close();
        const oom = launch?.cleanup().oomKilled ?? false;
        const unexpected = rt.exitReason === null;
        const why = rt.exitReason ?? (oom ? `the worker exceeded its memory limit (${Math.round(this.memoryLimit(e.rec.config) / 1048576)} MB) and was killed` : null) ?? `worker process ${rt.pid} ended unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})` +
          (rt.stderrTail.trim() ? `: ${rt.stderrTail.trim().split('\n').slice(-3).join(' | ')}` : '');
        if (unexpected) e.lastError = why;
        for (const p of rt.pending.values()) { clearTimeout(p.timer); p.reject(conflict(`VM '${e.rec.name}' stopped: ${why}`)); }
        rt.pending.clear();
        e.rt = null;
        this.relay.detachVm(e.rec.id);
        if (this.entries.has(e.rec.id)) this.transition(e, rt.finalState, why);
        // Merges that had to wait for the worker to let go of its disks.
        if (this.entries.has(e.rec.id)) void this.cps.consolidateDisks(e);
        reject(conflict(`cannot start VM '${e.rec.name}': ${why}`));
        resolveExit();
      });
      child.on('error', (err) => { rt.stderrTail += `\n${err.message}`; });
    });
    for (const sw of wc.switches ?? []) this.plugRelay(e, rt, sw);
    child.send({ t: 'start', config: wc } satisfies ToWorker);
    try {
      await started;
    } catch (err) {
      // Answer once the VM's state has settled (Off, or Saved after a failed restore).
      await Promise.race([rt.exited, sleep(this.o.turnOffGraceMs ?? 5000)]);
      throw err;
    }
    return this.view(e);
  }

  private memoryLimit(c: VmConfig): number { return c.memoryBytes + (this.o.workerOverheadBytes ?? WORKER_OVERHEAD_BYTES); }

  /** The sandboxed command of a VM's worker, or null to fork it plainly (worker-launch.ts). */
  private sandbox(e: Entry, wc: WorkerStartConfig): Promise<WorkerLaunch | null> {
    return sandboxedLaunch({
      isolation: this.o.isolation ?? 'auto', workerPath: this.workerPath, vmDir: this.vmDir(e),
      pathRoots: this.pathRoots, bootRoots: this.bootRoots, memoryLimitBytes: this.memoryLimit(e.rec.config),
      note: (message) => this.record(e, null, null, message),
      setWorkerUid: (uid) => { if (uid === undefined) this.workerUid.delete(e.rec.id); else this.workerUid.set(e.rec.id, uid); },
    }, e.rec.config, wc);
  }

  /**
   * A request to the worker. One that opens files (checkpoint, merge, hot-add) gets them as descriptors first
   * (worker-grants.ts), so an isolated worker can use files it did not start with.
   */
  private request(e: Entry, req: WorkerOp, timeoutMs = REQUEST_TIMEOUT_MS): Promise<unknown> {
    const rt = e.rt;
    if (!rt || !rt.child.connected) return Promise.reject(conflict(`VM '${e.rec.name}' is not running`));
    if (rt.files && OPENS_FILES.has(req.op)) return this.requestWithFiles(e, rt, req, timeoutMs);
    return this.sendRequest(e, rt, req, timeoutMs, undefined);
  }

  private async requestWithFiles(e: Entry, rt: Runtime, req: WorkerOp, timeoutMs: number): Promise<unknown> {
    const wanted = await filesFor(req, req.op === 'mergeFinish' ? rt.mergeParents.get(req.child) : undefined)
      .catch((err: Error) => { throw conflict(`VM '${e.rec.name}': cannot open the files for ${req.op}: ${err.message}`); });
    if (req.op === 'mergeCopy') rt.mergeParents.set(req.child, req.parent);
    if (req.op === 'mergeFinish') rt.mergeParents.delete(req.child);
    if (e.rt !== rt || !rt.child.connected || !rt.files) throw conflict(`VM '${e.rec.name}' is not running`);
    let grants: FileGrant[] | undefined;
    try { grants = wanted.length ? rt.files.send(wanted, this.pathRoots) : undefined; } catch (err) {
      throw conflict(`VM '${e.rec.name}': cannot hand the worker the files for ${req.op}: ${(err as Error).message}`);
    }
    return this.sendRequest(e, rt, req, timeoutMs, grants);
  }

  private sendRequest(e: Entry, rt: Runtime, req: WorkerOp, timeoutMs: number, files: FileGrant[] | undefined): Promise<unknown> {
    const id = rt.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        rt.pending.delete(id);
        reject(new VmmsError(504, 'Timeout', `VM '${e.rec.name}': the worker did not answer ${req.op} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      rt.pending.set(id, { resolve, reject, timer });
      rt.child.send({ t: 'req', id, req, ...(files ? { files } : {}) } satisfies ToWorker);
    });
  }

  /** An isolated worker's lock-holder records follow the disks it writes (checkpoints, merges, hot-add/remove). */
  private refreshHolderRecords(e: Entry, rt: Runtime): void {
    if (!rt.isolated || rt.backend === null) return;
    const writable = e.rec.config.hardware.drives.filter((d) => d.kind === 'disk' && !d.readOnly && d.path).map((d) => d.path!);
    const gone = rt.heldDisks.filter((p) => !writable.includes(p));
    this.drives.clearHolderRecords(rt.pid, gone);
    const added = this.drives.writeHolderRecords(e.rec.name, rt.pid, writable.filter((p) => !rt.heldDisks.includes(p)));
    rt.heldDisks = [...rt.heldDisks.filter((p) => writable.includes(p)), ...added];
  }

  /** Stop-VM: graceful through the Shutdown integration service, or --turn-off, or --force (graceful, then off). */
  async stop(name: string, o: StopOptions = {}): Promise<VmView> {
    const e = this.entry(name);
    if (e.rec.state === 'Saved' && (o.turnOff || o.force)) return this.discardSavedState(name);
    if (e.rec.state === 'Saved') throw conflict(`cannot shut down VM '${e.rec.name}': it is Saved, not running (start-vm ${e.rec.name} to restore it, or stop-vm ${e.rec.name} --turn-off to discard the saved state)`);
    if (o.turnOff) {
      this.requireState(e, ['Starting', 'Running', 'Paused', 'Pausing', 'Resuming', 'Reset', 'Stopping'], 'turn off', 'it is already off');
      await this.turnOff(e, 'turned off by the user');
      return this.view(e);
    }
    this.requireState(e, ['Running', 'Paused'], 'shut down', e.rec.state === 'Off' ? 'it is already off' : 'wait for it to be Running');
    if (e.rec.state === 'Paused') {
      if (!o.force) throw conflict(`cannot shut down VM '${e.rec.name}': it is Paused and a paused guest cannot answer (resume-vm ${e.rec.name} first, or stop-vm ${e.rec.name} --turn-off)`);
      await this.turnOff(e, 'forced stop of a paused VM: turned off');
      return this.view(e);
    }
    this.transition(e, 'Stopping', `shut down requested through the Shutdown integration service${o.force ? ' (forced)' : ''}`);
    const rt = e.rt!;
    try {
      await this.request(e, { op: 'shutdown', reboot: false, force: o.force === true });
    } catch (err) {
      const msg = (err as Error).message;
      if (o.force && e.rt) {
        await this.turnOff(e, `forced stop: the guest did not accept the shutdown (${msg}), turned off`);
        return this.view(e);
      }
      if (e.rt === rt && e.rec.state === 'Stopping') this.transition(e, 'Running', `shut down failed: ${msg}`);
      throw conflict(`cannot shut down VM '${e.rec.name}' gracefully: ${msg} Use 'stop-vm ${e.rec.name} --turn-off' to power it off (unsaved guest data is lost).`);
    }
    rt.exitReason = 'shut down by the guest operating system at the host\'s request';
    if (o.wait === false) return this.view(e);
    const timeoutMs = o.timeoutMs ?? 120_000;
    const done = await Promise.race([rt.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!done && e.rt === rt) {
      if (o.force) { await this.turnOff(e, `forced stop: the guest did not power off within ${timeoutMs / 1000} s, turned off`); return this.view(e); }
      throw new VmmsError(504, 'Timeout', `VM '${e.rec.name}' accepted the shutdown but has not powered off after ${timeoutMs / 1000} s (stop-vm ${e.rec.name} --turn-off to force it)`);
    }
    return this.view(e);
  }

  /**
   * Save-VM: Running or Paused -> Saving -> Saved. The worker pauses the VM at an instruction boundary and
   * writes the saved-state file into the VM's directory; then the worker ends. On failure the VM goes back
   * to the state it was in.
   */
  async save(name: string): Promise<VmView> {
    const e = this.entry(name);
    this.requireState(e, ['Running', 'Paused'], 'save', e.rec.state === 'Off' ? `only a running or paused VM has a state to save; start-vm ${e.rec.name} first`
      : e.rec.state === 'Saved' ? 'it is already saved; start-vm restores it' : 'wait for it to be Running');
    const rt = e.rt!;
    if (rt.backend === 'kvm') {
      throw conflict(`cannot save VM '${e.rec.name}': saved state is supported on the emulated processor only, and this VM runs on kvm ` +
        `(stop-vm ${e.rec.name} to shut it down; set-vm ${e.rec.name} --processor emulated while it is off to make it saveable)`);
    }
    const from = e.rec.state;
    const path = this.savedStatePath(e);
    mkdirSync(this.vmDir(e), { recursive: true, mode: 0o700 });
    this.transition(e, 'Saving', 'save requested');
    let result: { bytes: number };
    try {
      result = await this.request(e, { op: 'save', path }, 10 * 60_000) as { bytes: number };
    } catch (err) {
      const msg = (err as Error).message;
      if (e.rt === rt) this.transition(e, from, `save failed: ${msg}`);
      throw conflict(`cannot save VM '${e.rec.name}': ${msg}`);
    }
    rt.finalState = 'Saved';
    rt.exitReason = `saved (${(result.bytes / 1048576).toFixed(1)} MB saved-state file ${path})`;
    if (rt.child.connected) rt.child.send({ t: 'req', id: 0, req: { op: 'turnOff', reason: 'saved' } } satisfies ToWorker);
    const ended = await Promise.race([rt.exited.then(() => true), sleep(this.o.turnOffGraceMs ?? 5000).then(() => false)]);
    if (!ended) { rt.child.kill('SIGKILL'); await rt.exited; }
    return this.view(e);
  }

  /** Remove-VMSavedState (and stop-vm --turn-off of a Saved VM): Saved -> Off, the saved state is deleted. */
  discardSavedState(name: string): VmView {
    const e = this.entry(name);
    this.requireState(e, ['Saved'], 'discard the saved state of', e.rec.state === 'Off' ? 'it has no saved state' : `only a Saved VM has one; save-vm ${e.rec.name} saves it`);
    removeFileDurably(this.savedStatePath(e));
    e.lastError = null;
    this.transition(e, 'Off', 'saved state discarded');
    return this.view(e);
  }

  // ---- checkpoints, export and import (checkpoint-ops.ts) ----------------------------------------------

  /** Wait for the checkpoint disk work queued so far (service start recovery, deferred merges). */
  checkpointDisksSettled(): Promise<void> { return this.cps.checkpointDisksSettled(); }
  /** Get-VMSnapshot: the VM's checkpoints, oldest first. */
  checkpoints(name: string): CheckpointView[] { return this.cps.checkpoints(name); }
  getCheckpoint(name: string, snapshot: string): CheckpointView { return this.cps.getCheckpoint(name, snapshot); }
  /** Checkpoint-VM (production or standard, as the VM's checkpoint type says). */
  checkpoint(name: string, snapshotName?: unknown): Promise<CheckpointView> { return this.cps.checkpoint(name, snapshotName); }
  /** Restore-VMSnapshot (Apply). */
  restoreCheckpoint(name: string, snapshot: string): Promise<VmView> { return this.cps.restoreCheckpoint(name, snapshot); }
  /** Remove-VMSnapshot. */
  removeCheckpoint(name: string, snapshot: string): Promise<void> { return this.cps.removeCheckpoint(name, snapshot); }
  /** Rename-VMSnapshot. */
  renameCheckpoint(name: string, snapshot: string, newName: unknown): CheckpointView { return this.cps.renameCheckpoint(name, snapshot, newName); }
  /** Export-VM NAME --path DIR. */
  exportVm(name: string, input: unknown): Promise<{ path: string }> { return this.cps.exportVm(name, input); }
  /** Import-VM PATH [--copy] [--generate-new-id]. */
  importVm(input: unknown): Promise<VmView> { return this.cps.importVm(input); }

  private async turnOff(e: Entry, reason: string): Promise<void> {
    const rt = e.rt;
    if (!rt) return;
    rt.exitReason = reason;
    if (e.rec.state !== 'Stopping') this.transition(e, 'Stopping', 'turn off requested');
    if (rt.child.connected) rt.child.send({ t: 'req', id: 0, req: { op: 'turnOff', reason } } satisfies ToWorker);
    const graceful = await Promise.race([rt.exited.then(() => true), sleep(this.o.turnOffGraceMs ?? 5000).then(() => false)]);
    if (!graceful) {
      rt.exitReason = `${reason} (the worker did not stop within the grace time and was killed)`;
      rt.child.kill('SIGKILL');
      await rt.exited;
    }
  }

  /** Suspend-VM: Running -> Pausing -> Paused. */
  async suspend(name: string): Promise<VmView> {
    const e = this.entry(name);
    this.requireState(e, ['Running'], 'pause', '');
    this.transition(e, 'Pausing', 'pause requested');
    try { await this.request(e, { op: 'pause' }); } catch (err) { if (e.rt) this.transition(e, 'Running', `pause failed: ${(err as Error).message}`); throw err; }
    this.transition(e, 'Paused', 'paused');
    return this.view(e);
  }

  /** Resume-VM: Paused -> Resuming -> Running. */
  async resume(name: string): Promise<VmView> {
    const e = this.entry(name);
    this.requireState(e, ['Paused'], 'resume', e.rec.state === 'Off' ? `start-vm ${e.rec.name}` : '');
    this.transition(e, 'Resuming', 'resume requested');
    try { await this.request(e, { op: 'resume' }); } catch (err) { if (e.rt) this.transition(e, 'Paused', `resume failed: ${(err as Error).message}`); throw err; }
    this.transition(e, 'Running', 'resumed');
    return this.view(e);
  }

  /** Restart-VM (Hyper-V's Reset): a hard reset of the running machine. */
  async restart(name: string): Promise<VmView> {
    const e = this.entry(name);
    this.requireState(e, ['Running', 'Paused'], 'reset', e.rec.state === 'Off' ? `start-vm ${e.rec.name}` : '');
    const wasPaused = e.rec.state === 'Paused';
    this.transition(e, 'Reset', 'reset requested');
    await this.request(e, { op: 'reset' });
    if (wasPaused) await this.request(e, { op: 'resume' });
    this.transition(e, 'Running', 'reset done: the machine restarts from its firmware');
    return this.view(e);
  }

  // ---- integration services and KVP --------------------------------------------------------------------

  async integrationServices(name: string): Promise<IntegrationServiceView[]> {
    const e = this.entry(name);
    if (e.rt && e.rec.config.enlightened && e.rec.state !== 'Starting') {
      const list = await this.request(e, { op: 'icList' }) as IntegrationServiceInfo[];
      return list.map((i) => ({ name: i.name, enabled: i.enabled, status: i.status, protocol: i.protocol }));
    }
    return IC_NAMES.map((n) => ({ name: n, enabled: e.rec.config.integrationServices[n], status: null, protocol: null }));
  }

  async setIntegrationService(name: string, service: string, enabled: boolean): Promise<IntegrationServiceView[]> {
    const n = icName(service);
    this.update(name, { integrationServices: { [n]: enabled } });
    return this.integrationServices(name);
  }

  async kvp(name: string): Promise<{ guest: Record<string, string>; host: Record<string, string> }> {
    const e = this.entry(name);
    this.requireRunningIcs(e, 'read the key-value pairs of');
    return await this.request(e, { op: 'kvpRead' }) as { guest: Record<string, string>; host: Record<string, string> };
  }

  async setKvp(name: string, key: unknown, value: unknown): Promise<void> {
    const e = this.entry(name);
    if (typeof key !== 'string' || key.length === 0) throw badRequest('a KVP key must be a non-empty string');
    if (typeof value !== 'string') throw badRequest('a KVP value must be a string');
    this.requireRunningIcs(e, 'set a key-value pair on');
    await this.request(e, { op: 'kvpSet', key, value });
    this.record(e, null, null, `host KVP key '${key}' set`);
  }

  async removeKvp(name: string, key: string): Promise<void> {
    const e = this.entry(name);
    this.requireRunningIcs(e, 'remove a key-value pair from');
    await this.request(e, { op: 'kvpRemove', key });
    this.record(e, null, null, `host KVP key '${key}' removed`);
  }

  // ---- virtual switches and network adapters ----------------------------------------------------------

  private plugRelay(e: Entry, rt: Runtime, sw: SwitchConfig): void {
    const switchName = sw.name;
    const to = (m: ToWorker): void => { if (rt.child.connected) rt.child.send(m); };
    this.relay.attach(e.rec.id, sw, (data) => to({ t: 'frame', switchName, data }), (up) => to({ t: 'link', switchName, up }),
      (m) => this.log(`${e.rec.name}: network: switch '${switchName}': ${m}`),
      (m) => { if (e.rt === rt) this.record(e, null, null, `network: switch '${switchName}': ${m}`); });
  }

  /** A VM on an Internal or External switch needs a root service (its TAP devices). */
  private requireSwitchRights(switchName: string | null, what: string, fix: string): void {
    const sw = switchName ? this.switches.find(switchName) : undefined;
    if (sw?.bridge && !isRoot()) {
      throw new VmmsError(403, 'RootRequired', `${what}: virtual switch '${sw.name}' is ${sw.type}, and its TAP devices need a management service running as root ` +
        `(sudo hyperts serve); or connect the adapter to a NAT or Private switch (${fix})`);
    }
  }

  /** Get-VMSwitch. */
  listSwitches(): SwitchView[] { return this.switches.list().map((s) => this.switchView(s)); }
  getSwitch(name: string): SwitchView { return this.switchView(this.switches.get(name)); }

  private switchView(s: SwitchRecord): SwitchView {
    const adapters: SwitchView['adapters'] = [];
    for (const e of this.entries.values()) for (const a of e.rec.config.hardware.networkAdapters) if (a.switchName === s.name) adapters.push({ vmName: e.rec.name, adapter: a.name });
    return { ...s, adapters };
  }

  /** New-VMSwitch. */
  newSwitch(input: unknown): SwitchView {
    const s = this.switches.create(input, (rec) => { if (rec.bridge) ensureBridge(rec.bridge, rec.netAdapterName); });
    this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: `virtual switch '${s.name}' (${s.type}) created${s.bridge ? ` (host bridge ${s.bridge}${s.netAdapterName ? ` with ${s.netAdapterName}` : ''})` : ''}` });
    return this.switchView(s);
  }

  /** Remove-VMSwitch: adapters of VMs that are off are left disconnected; running VMs must disconnect first. */
  removeSwitch(name: string): void {
    const s = this.switches.get(name);
    const users = [...this.entries.values()].filter((e) => (e.rec.config.hardware.networkAdapters).some((a) => a.switchName === s.name));
    const busy = users.filter((e) => e.rt);
    if (busy.length) throw conflict(`virtual switch '${s.name}' is in use by running VM ${busy.map((e) => `'${e.rec.name}'`).join(', ')}; disconnect-vmnetworkadapter or stop the VM first`);
    this.switches.remove(s.name);
    if (s.bridge) {
      try { removeBridge(s.bridge); } catch (err) {
        this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: `virtual switch '${s.name}': its host bridge ${s.bridge} could not be removed: ${(err as Error).message} (ip link del ${s.bridge})` });
      }
    }
    for (const e of users) {
      this.setAdapters(e, (e.rec.config.hardware.networkAdapters).map((a) => (a.switchName === s.name ? { ...a, switchName: null } : a)), `network adapters disconnected: switch '${s.name}' removed`);
    }
    this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: `virtual switch '${s.name}' removed` });
  }

  private setAdapters(e: Entry, adapters: NetworkAdapterConfig[], message: string): void {
    e.rec.config = { ...e.rec.config, hardware: { ...e.rec.config.hardware, networkAdapters: adapters } };
    this.inventory.updateConfig(e.rec.id, e.rec.config);
    this.record(e, null, null, message);
    this.changed(e);
  }

  /**
   * Get-VMNetworkAdapter. The addresses are what the guest's KVP daemon last reported for each adapter's MAC
   * (the worker answers from its cache at once and asks the guest again in the background).
   */
  async networkAdapters(name: string): Promise<AdapterView[]> {
    const e = this.entry(name);
    let live: AdapterStatus[] = [];
    if (e.rt && e.rec.state !== 'Starting') live = await this.request(e, { op: 'netStatus' }).then((x) => x as AdapterStatus[], () => []);
    const reported = e.rt?.status?.adapterAddresses ?? [];
    return (e.rec.config.hardware.networkAdapters).map((a) => {
      const status = live.find((l) => l.name === a.name) ?? null;
      const ips = status?.ipAddresses ?? reported.find((r) => r.macAddress === a.macAddress)?.addresses ?? [];
      return { ...a, vmName: e.rec.name, status, ipAddresses: e.rt ? ips : [] };
    });
  }

  /**
   * Add-VMNetworkAdapter. On a running VM (Hyper-V's hot add) the worker offers a new netvsp channel and the
   * guest gets a new interface; the configuration changes only once the worker took it.
   */
  async addNetworkAdapter(name: string, input: unknown): Promise<AdapterView> {
    const e = this.entry(name);
    this.requireState(e, ['Off', 'Running', 'Paused'], 'add a network adapter to', e.rec.state === 'Saved' ? `start-vm ${e.rec.name} first, or remove-vmsavedstate ${e.rec.name}` : 'wait until it has started');
    const a = newAdapter(input, e.rec.config.hardware.networkAdapters, this.switches);
    if (!a.legacy && !e.rec.config.enlightened) throw conflict(`VM '${e.rec.name}' is unenlightened: a synthetic network adapter needs VMBus; add a legacy adapter (--is-legacy) or turn enlightenments on (set-vm ${e.rec.name} --enlightened true)`);
    const rt = e.rt;
    // The legacy adapter is a PCI device of the Gen 1 chipset: like on Hyper-V, only added while the VM is off.
    if (rt && a.legacy) throw conflict(`cannot add a legacy network adapter to running VM '${e.rec.name}': it is a PCI device, added while the VM is off (stop-vm ${e.rec.name})`);
    if (rt) {
      this.requireSwitchRights(a.switchName, `cannot add the adapter to running VM '${e.rec.name}'`, 'or add it while the VM is off');
      const sw = a.switchName ? this.switches.get(a.switchName) : null;
      const cfg: SwitchConfig | undefined = sw ? { name: sw.name, type: sw.type, forwards: sw.forwards, bridge: sw.bridge, relayed: true } : undefined;
      await this.request(e, { op: 'netAdd', adapter: a, switchConfig: cfg });
      if (cfg) this.plugRelay(e, rt, cfg);
    }
    this.setAdapters(e, [...(e.rec.config.hardware.networkAdapters), a], `${a.legacy ? 'legacy ' : ''}network adapter '${a.name}' (${a.macAddress}) added${a.switchName ? `, connected to '${a.switchName}'` : ''}${rt ? ' while the VM runs' : ''}`);
    return (await this.networkAdapters(e.rec.name)).find((x) => x.name === a.name) ?? { ...a, vmName: e.rec.name, status: null, ipAddresses: [] };
  }

  /** Remove-VMNetworkAdapter. On a running VM the worker rescinds the adapter's channel (the guest loses the interface). */
  async removeNetworkAdapter(name: string, adapter: string): Promise<void> {
    const e = this.entry(name);
    this.requireState(e, ['Off', 'Running', 'Paused'], 'remove a network adapter from', e.rec.state === 'Saved' ? `start-vm ${e.rec.name} first, or remove-vmsavedstate ${e.rec.name}` : 'wait until it has started');
    const list = e.rec.config.hardware.networkAdapters;
    const a = list.find((x) => x.name.toLowerCase() === adapter.toLowerCase());
    if (!a) throw new VmmsError(404, 'AdapterNotFound', `VM '${e.rec.name}' has no network adapter named '${adapter}' (get-vmnetworkadapter ${e.rec.name})`);
    if (e.rt && a.legacy) throw conflict(`cannot remove legacy network adapter '${a.name}' from running VM '${e.rec.name}': it is a PCI device, removed while the VM is off (stop-vm ${e.rec.name})`);
    if (e.rt) await this.request(e, { op: 'netRemove', adapter: a.name });
    this.setAdapters(e, e.rec.config.hardware.networkAdapters.filter((x) => x.name !== a.name), `network adapter '${a.name}' removed${e.rt ? ' while the VM runs' : ''}`);
  }

  /** Connect-VMNetworkAdapter / Disconnect-VMNetworkAdapter (switchName null); a running guest sees its link change. */
  async connectNetworkAdapter(name: string, adapter: string, switchName: string | null): Promise<AdapterView> {
    const e = this.entry(name);
    const list = e.rec.config.hardware.networkAdapters;
    const a = list.find((x) => x.name.toLowerCase() === adapter.toLowerCase());
    if (!a) throw new VmmsError(404, 'AdapterNotFound', `VM '${e.rec.name}' has no network adapter named '${adapter}' (get-vmnetworkadapter ${e.rec.name})`);
    const sw = switchName === null ? null : this.switches.get(switchName);
    if (e.rec.state === 'Starting' || e.rec.state === 'Saved') throw conflict(`VM '${e.rec.name}' is ${e.rec.state}: connect its adapters while it is Off, Running or Paused`);
    const rt = e.rt;
    if (rt) {
      this.requireSwitchRights(sw?.name ?? null, `cannot connect the adapter of running VM '${e.rec.name}'`, 'pick another switch');
      const cfg: SwitchConfig | undefined = sw ? { name: sw.name, type: sw.type, forwards: sw.forwards, bridge: sw.bridge, relayed: true } : undefined;
      await this.request(e, { op: 'netConnect', adapter: a.name, switchName: sw?.name ?? null, switchConfig: cfg });
      if (cfg) this.plugRelay(e, rt, cfg);
    }
    this.setAdapters(e, list.map((x) => (x === a ? { ...x, switchName: sw?.name ?? null } : x)), sw ? `network adapter '${a.name}' connected to '${sw.name}'` : `network adapter '${a.name}' disconnected`);
    return (await this.networkAdapters(e.rec.name)).find((x) => x.name === a.name)!;
  }

  private requireRunningIcs(e: Entry, action: string): void {
    this.requireState(e, ['Running'], action, e.rec.state === 'Off' ? `KVP data exists only while the guest runs: start-vm ${e.rec.name}` : '');
    if (!e.rec.config.enlightened) throw conflict(`cannot ${action} VM '${e.rec.name}': it is not enlightened, so it has no integration services`);
  }

  // ---- console -----------------------------------------------------------------------------------------

  private consoleOutput(e: Entry, data: Uint8Array): void {
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    e.history.push(b);
    e.historyBytes += b.length;
    while (e.historyBytes > CONSOLE_HISTORY && e.history.length > 1) e.historyBytes -= e.history.shift()!.length;
    for (const l of e.consoleListeners) l(b);
  }

  /** COM1 of the VM: recent output first, then live output to `onOutput`; `write` sends keystrokes. */
  attachConsole(name: string, onOutput: (b: Uint8Array) => void): { history: Buffer; write: (b: Uint8Array) => void; detach: () => void } {
    const e = this.entry(name);
    if (e.rec.config.com1 !== 'console') throw conflict(`VM '${e.rec.name}' has no console: its COM1 is not connected (set-vm ${e.rec.name} --com1 console, while it is off)`);
    e.consoleListeners.add(onOutput);
    return {
      history: Buffer.concat(e.history),
      write: (b) => { const rt = e.rt; if (rt?.child.connected && b.length) rt.child.send({ t: 'console', data: Buffer.from(b) } satisfies ToWorker); },
      detach: () => { e.consoleListeners.delete(onOutput); },
    };
  }

  // ---- metrics and views -------------------------------------------------------------------------------

  private sampleMetrics(): void {
    const n = cpus().length || 1;
    let any = false;
    for (const e of this.entries.values()) {
      const rt = e.rt;
      if (!rt) continue;
      any = true;
      const ticks = treeTicks(rt.pid);
      const now = Date.now();
      if (ticks !== null) {
        const dt = (now - rt.cpuAt) / 1000;
        if (rt.cpuTicks > 0 && dt > 0) rt.cpuUsage = Math.max(0, Math.min(100, ((ticks - rt.cpuTicks) / CLK_TCK) / dt / n * 100));
        rt.cpuTicks = ticks;
        rt.cpuAt = now;
      }
    }
    if (any) this.emit('metrics');
  }

  private view(e: Entry): VmView {
    const rt = e.rt;
    const running = rt !== null && e.rec.state !== 'Starting';
    const g = rt?.status?.guest ?? null;
    // Per adapter from KVP_OP_GET_IP_INFO; the daemon's pool-2 summary when no adapter has reported yet.
    const perAdapter = [...new Set((rt?.status?.adapterAddresses ?? []).flatMap((a) => a.addresses))];
    const ips = perAdapter.length ? perAdapter : [g?.NetworkAddressIPv4, g?.NetworkAddressIPv6].filter((x): x is string => !!x).flatMap((s) => s.split(';')).filter(Boolean);
    return {
      id: e.rec.id, name: e.rec.name, state: e.rec.state,
      status: e.lastError ? `Error: ${e.lastError}` : 'Operating normally',
      cpuUsage: running ? Math.round(rt.cpuUsage) : 0,
      memoryAssignedBytes: rt ? e.rec.config.memoryBytes : 0,
      uptimeSeconds: running && rt.startedAt ? Math.floor((Date.now() - rt.startedAt) / 1000) : 0,
      heartbeat: rt?.status?.heartbeat ?? null,
      osName: g?.OSName ?? null, osVersion: g?.OSVersion ?? null, ipAddresses: ips,
      backend: rt?.backend ?? null, workerPid: rt?.pid ?? null,
      created: new Date(e.rec.created).toISOString(),
      config: structuredClone(e.rec.config),
    };
  }

  /** Get-VMHost: the host check plus capacity. */
  async host(): Promise<unknown> {
    if (!this.hostCache || Date.now() - this.hostCache.at > 60_000) {
      const { probeHost } = await import('../host/probe.js');
      const { evaluateHost } = await import('../host/check.js');
      const facts = await probeHost({ measureSpeed: false });
      this.hostCache = { at: Date.now(), value: { facts, check: evaluateHost(facts) } };
    }
    const running = [...this.entries.values()].filter((e) => e.rt);
    const c = cpus();
    return {
      name: hostname(),
      logicalProcessorCount: c.length,
      processorModel: c[0]?.model ?? null,
      memoryCapacityBytes: totalmem(),
      memoryAvailableBytes: freemem(),
      memoryAssignedToVmsBytes: running.reduce((s, e) => s + e.rec.config.memoryBytes, 0),
      virtualMachines: this.entries.size,
      runningVirtualMachines: running.length,
      dataDirectory: this.o.dataDir,
      workerIsolation: this.o.isolation === 'off' ? { available: false, notes: ['disabled with --no-isolation'] } : isolationSupport(),
      nodeVersion: process.version,
      ...(this.hostCache.value as object),
    };
  }

  /** Turns every running VM off (Hyper-V's automatic stop action, without saved state yet) and closes the store. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.metricsTimer);
    await Promise.all([...this.entries.values()].filter((e) => e.rt).map((e) => this.turnOff(e, 'the management service stopped')));
    // Merges started by the workers' exits end before the inventory closes (a killed service finishes them at start).
    await this.cps.checkpointDisksSettled();
    this.inventory.addEvent({ vmId: null, vmName: null, from: null, to: null, message: 'management service stopped' });
    this.inventory.close();
  }

  /** Worker pid of a running VM (tests and diagnostics). */
  workerPid(name: string): number | null { return this.entry(name).rt?.pid ?? null; }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => { const t = setTimeout(r, ms); t.unref(); });
}

/** utime + stime of a process and its descendants (the sandboxed worker under bwrap), null when it is gone. */
function treeTicks(pid: number, depth = 0): number | null {
  const own = procTicks(pid);
  if (own === null || depth > 4) return own;
  let sum = own;
  let kids: string[] = [];
  try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean); } catch { /* no children file */ }
  for (const k of kids) sum += treeTicks(Number(k), depth + 1) ?? 0;
  return sum;
}

/** utime + stime of a process in clock ticks, from /proc (null when it is gone). */
function procTicks(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch { return null; }
}
