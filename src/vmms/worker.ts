/**
 * A VM's worker process (Hyper-V's vmwp): the service forks one per running VM, so a guest or device model
 * that crashes or hangs takes down only this process. It creates the Partition, runs it, forwards the
 * COM1 console both ways, reports status every second and executes the service's requests.
 */
import { Partition, type PartitionConfig } from '../platform/partition.js';
import { writeSavedStateFile } from '../platform/saved-state.js';
import { IC_NAMES } from '../vsp/ic/integration-services.js';
import { IcError } from '../vsp/ic/framework.js';
import { adapterStatus } from './adapter-status.js';
import type { AdapterStatus, FromWorker, ToWorker, WorkerOp, WorkerStatus, WorkerStartConfig } from './worker-protocol.js';
import type { DriveConfig } from '../platform/hardware.js';
import { WorkerDisks } from './worker-disks.js';
import { WorkerFiles } from './worker-files.js';

/** A disk-media change hook of the IDE controller (the ide branch provides it); looked up at run time. */
function changeMedia(p: Partition, drive: DriveConfig): Promise<void> | void {
  const f = (p as unknown as { changeMedia?: (d: DriveConfig) => Promise<void> | void }).changeMedia;
  if (typeof f !== 'function') throw new Error('this build cannot change DVD media while the VM runs (change it while the VM is off)');
  return f.call(p, drive);
}


const STATUS_MS = 1000;
/** Uplink states the service sent before the partition existed. */
const pendingLinks = new Map<string, boolean>();
const KVP_REFRESH_MS = 15_000;

function send(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

/** Last words to the service, then leave (timers of the device models must not keep the process alive). */
function finish(m: FromWorker): void {
  if (process.connected) process.send!(m, () => process.exit(0));
  else process.exit(0);
}

let vm: Partition | null = null;
let guest: Record<string, string> | null = null;
let kvpBusy = false;
let kvpAt = 0;
const pendingInput: Uint8Array[] = [];

// Console output is batched so a chatty guest costs one IPC message per tick, not per byte.
let outChunks: Uint8Array[] = [];
let outTimer: NodeJS.Immediate | null = null;
function consoleOut(b: Uint8Array): void {
  outChunks.push(Uint8Array.from(b));
  if (!outTimer) outTimer = setImmediate(flushConsole);
}
function flushConsole(): void {
  outTimer = null;
  if (!outChunks.length) return;
  const data = Buffer.concat(outChunks);
  outChunks = [];
  send({ t: 'console', data });
}

function status(): WorkerStatus {
  const ics = vm?.hyperv.ics ?? null;
  const list = ics?.list() ?? null;
  return {
    paused: vm?.isPaused ?? false,
    backend: vm?.backendKind ?? '',
    heartbeat: list ? list.find((i) => i.name === 'Heartbeat')!.status : null,
    ics: list,
    guest,
    adapterAddresses: vm ? vm.network.adapters.map((a) => ({ macAddress: a.config.macAddress, addresses: vm!.guestAddresses.get(a.config.macAddress)?.addresses ?? [] })) : [],
  };
}

function refreshKvp(): void {
  const ics = vm?.hyperv.ics;
  if (!ics || kvpBusy || !ics.isEnabled('Key-Value Pair Exchange') || ics.kvp.status !== 'OK') return;
  if (guest && Date.now() - kvpAt < KVP_REFRESH_MS) return;
  kvpBusy = true;
  ics.kvp.guestIntrinsics().then((g) => { guest = g; kvpAt = Date.now(); }, () => { kvpAt = Date.now(); })
    .finally(() => { kvpBusy = false; });
}

/**
 * Writes the guest's state to `path`, paused at an instruction boundary. A checkpoint (`keepRunning`) lets a
 * running guest carry on afterwards; a save leaves it paused, since the worker ends, unless writing failed.
 */
async function writeState(vm: Partition, path: string, keepRunning: boolean): Promise<{ bytes: number }> {
  const wasPaused = vm.isPaused;
  vm.pause();
  let ok = false;
  try {
    await vm.quiesce(); // disk I/O the guest started lands in the saved state
    const bytes = vm.saveState();
    writeSavedStateFile(path, bytes);
    ok = true;
    return { bytes: bytes.length };
  } finally {
    if (!wasPaused && (keepRunning || !ok)) vm.resume();
  }
}

let workerVmName = '';
/** The VM's writable disks: online checkpoints and merges (worker-disks.ts). */
let disks = new WorkerDisks(() => workerVmName);

async function handle(r: WorkerOp): Promise<unknown> {
  if (!vm) throw new Error('the VM is not running yet');
  const ics = vm.hyperv.ics;
  const needIcs = (): NonNullable<typeof ics> => {
    if (!ics) throw new IcError('this VM is not enlightened, so it has no integration services (set-vm NAME --enlightened on, while it is off)');
    return ics;
  };
  switch (r.op) {
    case 'turnOff': vm.turnOff(r.reason); return null;
    case 'pause': vm.pause(); return null;
    case 'resume': vm.resume(); return null;
    case 'reset': guest = null; vm.reset('reset by the management service'); return null;
    case 'shutdown': await needIcs().requestShutdown({ reboot: r.reboot, force: r.force }); return null;
    case 'icList': return needIcs().list();
    case 'icSet': {
      const i = needIcs();
      if (r.enabled) i.enable(r.name); else i.disable(r.name);
      return i.list();
    }
    case 'kvpRead': {
      const i = needIcs();
      const g = await i.kvp.guestIntrinsics();
      guest = g; kvpAt = Date.now();
      return { guest: g, host: Object.fromEntries(i.kvp.hostKeys) };
    }
    case 'kvpSet': await needIcs().kvp.setHostKey(r.key, r.value); return null;
    case 'kvpRemove': await needIcs().kvp.removeHostKey(r.key); return null;
    case 'save': return writeState(vm, r.path, false);
    case 'checkpoint': return writeState(vm, r.path, true);
    case 'vssFreeze': {
      const vss = needIcs().vss;
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([vss.freeze(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the guest did not answer the freeze request within 60 s')), 60_000); })])
        .finally(() => clearTimeout(timer));
      if (!r.ok) throw new Error(`the guest's VSS service answered the freeze request: ${r.statusText}`);
      return null;
    }
    case 'vssThaw': {
      const r = await needIcs().vss.thaw();
      if (!r.ok) throw new Error(`the guest's VSS service answered the thaw request: ${r.statusText}`);
      return null;
    }
    case 'checkpointDetach': return disks.checkpointDetach(vm, r.path, r.disks, writeSavedStateFile);
    case 'checkpointAttach': return disks.checkpointAttach(vm, r.swaps);
    case 'mergeCopy': return disks.mergeCopy(r.child, r.parent);
    case 'mergeFinish': return disks.mergeFinish(vm, r.child, r.commit);
    case 'netConnect':
      vm.connectNetworkAdapter(r.adapter, r.switchName, r.switchConfig);
      return adapterStatus(vm);
    case 'netStatus': return adapterStatus(vm, { refresh: true });
    case 'netAdd':
      vm.addNetworkAdapter(r.adapter, r.switchConfig);
      return adapterStatus(vm);
    case 'netRemove':
      vm.removeNetworkAdapter(r.adapter);
      return adapterStatus(vm);
    // The partition keeps its hardware description in step, so a later save and restore has the drive.
    case 'attachDrive': await vm.addDrive(r.drive); return null;
    case 'detachDrive':
      if (r.controllerType !== 'scsi') throw new Error('only SCSI disks can be removed while the VM runs');
      await vm.removeDrive(r.controllerNumber, r.controllerLocation);
      return null;
    case 'changeMedia': await changeMedia(vm, r.drive); return null;
  }
}

async function start(c: WorkerStartConfig): Promise<void> {
  workerVmName = c.name;
  if (c.fileChannel !== undefined) disks = new WorkerDisks(() => workerVmName, new WorkerFiles(c.fileChannel));
  try {
    const pc: PartitionConfig = {
      name: c.name, processor: c.processor, kvmDeviceFd: c.kvmDeviceFd, memoryBytes: c.memoryBytes, cpus: c.cpus, enlightened: c.enlightened,
      kernel: c.kernel, initrd: c.initrd, cmdline: c.cmdline, quiet: true,
      onConsoleOutput: c.com1 ? consoleOut : undefined,
      log: (message) => send({ t: 'log', message }),
      hardware: c.hardware, biosGuid: c.biosGuid,
      switches: c.switches,
      networkRelay: (switchName, data) => send({ t: 'frame', switchName, data }),
      // VHDX or raw by content; the lock names this VM to anyone else who tries to open the disk.
      openDisk: disks.openVmDisk,
    };
    vm = c.restoreFrom ? await Partition.restore(pc, c.restoreFrom) : await Partition.create(pc);
  } catch (e) {
    finish({ t: 'failed', error: (e as Error).message });
    return;
  }
  // Disabled services are withdrawn before the guest's VMBus ever asks for offers.
  // (A restored VM applies settings changed while it was saved the same way: offered or rescinded now.)
  if (vm.hyperv.ics) for (const n of IC_NAMES) if (c.integrationServices[n]) vm.hyperv.ics.enable(n); else vm.hyperv.ics.disable(n);
  for (const b of pendingInput.splice(0)) vm.consoleInput(b);
  for (const [sw, up] of pendingLinks) vm.network.setLink(sw, up);
  pendingLinks.clear();
  send({ t: 'started', backend: vm.backendKind });
  const timer = setInterval(() => { refreshKvp(); send({ t: 'status', status: status() }); }, STATUS_MS);
  const exit = await vm.start();
  clearInterval(timer);
  flushConsole();
  finish({ t: 'exit', code: exit.code, reason: exit.reason });
}

process.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'start': void start(m.config); break;
    case 'console':
      if (vm) vm.consoleInput(m.data); else pendingInput.push(m.data);
      break;
    case 'frame':
      vm?.network.inject(m.switchName, m.data);
      break;
    case 'link':
      // Link news that arrives while the partition is being built is applied once it exists.
      if (vm) vm.network.setLink(m.switchName, m.up); else pendingLinks.set(m.switchName, m.up);
      break;
    case 'req':
      // Turned off while the partition is still being built: nothing to stop yet.
      if (!vm && m.req.op === 'turnOff') { finish({ t: 'exit', code: 0, reason: m.req.reason }); break; }
      disks.files.with(m.files, () => handle(m.req)).then(
        (value) => send({ t: 'res', id: m.id, ok: true, value }),
        (e: unknown) => send({ t: 'res', id: m.id, ok: false, error: e instanceof Error ? e.message : String(e), code: e instanceof IcError ? 'IntegrationService' : 'WorkerError' }),
      );
      break;
  }
});
// The service went away: nobody can operate this VM any more, so it stops.
process.on('disconnect', () => { if (vm) vm.turnOff('management service disconnected'); else process.exit(0); });
