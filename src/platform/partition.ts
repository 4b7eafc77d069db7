/**
 * A partition (VM): guest memory, buses, virtual clock, platform devices, the Hyper-V stack (when
 * enlightened), firmware and the virtual processors, plus the scheduler loop that runs them.
 *
 * Data flows one way: processor exit -> partition dispatch (buses, MSR/CPUID/hypercall handlers) ->
 * device or hypervisor -> VMBus -> provider.
 */
import { readFileSync, statSync } from 'node:fs';
import { GuestMemory } from './memory.js';
import { IoBus, MmioBus } from './bus.js';
import { VirtualClock, type ClockMode } from './clock.js';
import { createPlatformDevices, type PlatformDevices, type PlatformDevicesState } from '../devices/platform-devices.js';
import { HyperVStack, type HyperVStackState } from '../vsp/hyperv-stack.js';
import { checkShape, decodeSavedState, encodeSavedState, readSavedStateFile, SavedStateError, type SavedStateInfo } from './saved-state.js';
import type { IntegrationServices } from '../vsp/ic/integration-services.js';
import { emptyHardware, type DriveConfig, type HardwareConfig } from './hardware.js';
import { assembleNetwork, type NetworkAssembly, type NetworkState, type SwitchConfig } from './assemble-network.js';
import { GuestAddressMonitor } from '../net/guest-addresses.js';
import type { NetworkAdapterConfig } from './hardware.js';
import { ScsiStorage, diskOpener, type DiskOpener, type IdeAcceleratedDisk, type StorageState } from './assemble-storage.js';
import { writeAcpiTables, loadLinux, loadMultiboot, findMultibootHeader, BootError } from '../firmware/index.js';
import { partitionIdentity, stableVmUuid, writeSmbios } from '../firmware/smbios.js';
import type { Server } from 'node:net';
import { Gen1Chipset, openIdeDrives, type Gen1ChipsetState, type IdeDrives } from './assemble-ide.js';
import type { DebugControl } from '../debug/emulated-target.js';
import { VcpuScheduler, QUANTUM_INSNS, BOOST_INSNS, type VcpuSchedulerState } from './vcpu-scheduler.js';
import type { BackendKind, BootCpuState, CpuidProvider, CpuidResult, PlatformServices, ProcessorBackend, RunOutcome, VirtualProcessor } from '../processor/backend.js';
import { WLTIMEDELTA } from '../vsp/ic/timesync.js';

export interface PartitionConfig {
  name?: string;
  processor: BackendKind | 'auto';
  /** An open /dev/kvm handed in from outside (a sandboxed VM worker has no device node); default: open the path. */
  kvmDeviceFd?: number;
  memoryBytes: number;
  cpus: number;
  /** Expose Hyper-V (CPUID leaves, synthetic MSRs, hypercalls, SynIC, VMBus); false runs unenlightened. */
  enlightened: boolean;
  kernel: string;
  initrd?: string;
  cmdline: string;
  clockMode?: ClockMode;
  /**
   * Wall-clock time (ms since the epoch) the RTC shows at virtual time 0. Default: the host's clock, cut to a
   * whole second in icount mode so that two boots see the seconds change at the same instruction.
   */
  rtcBaseMs?: number;
  gdbPort?: number;
  /** With gdbPort: hold the vCPU stopped until the debugger continues it (like QEMU's -S). */
  gdbWait?: boolean;
  quiet?: boolean;
  /** Guest TSC frequency; default 1 GHz. */
  tscHz?: number;
  onConsoleOutput?: (bytes: Uint8Array) => void;
  log?: (msg: string) => void;
  /** Controllers, drives and adapters; absent = no storage or network devices. */
  hardware?: HardwareConfig;
  /**
   * The machine's UUID in SMBIOS (Hyper-V's BIOSGUID; the management service uses the VM's id). Default: derived from
   * the name, so a transient VM keeps it across runs and icount boots repeat exactly (Linux mixes DMI data into its
   * random pool, which steers what the kernel does).
   */
  biosGuid?: string;
  /** How drives' disk images are opened (default: raw images); tests pass in-memory disks. */
  openDisk?: DiskOpener;
  /** Virtual switches this VM's adapters may name (NAT through passt, or Private). */
  switches?: SwitchConfig[];
  /** Frames for the other VMs on a Private switch (the management service relays them). */
  networkRelay?: (switchName: string, frame: Uint8Array) => void;
}

export interface PartitionExit { code: number; reason: string }

interface PartitionState {
  vcpus: unknown[]; clock: { mode: string; nowNs: number; nsPerInsn: number }; devices: PlatformDevicesState; hyperv: HyperVStackState;
  resetPending: string | null;
  storage: StorageState | null;
  network: NetworkState | null;
  chipset: Gen1ChipsetState;
  /** Run state of each vCPU (application processors waiting for a startup IPI); absent in older files. */
  run: VcpuSchedulerState;
}

const NO_LEAVES: CpuidProvider = { cpuid: (): CpuidResult => ({ eax: 0, ebx: 0, ecx: 0, edx: 0 }) };

/** Host time slice per vCPU run before the loop lets Node's event loop (console, sockets) in. */
const SLICE_MS = 20;
/** Host time per vCPU turn while several are runnable. */
const TURN_MS = 4;
/** With several vCPUs, the event loop gets a turn at least this often (ms of host time). */
const HOST_TURN_MS = 10;
/**
 * With an icount clock the host gets its turns (microtasks, deferred VMBus work, console) every this many
 * instructions instead of every HOST_TURN_MS: work the guest started then completes at the same instruction
 * in every run, and boots repeat exactly (host I/O such as disk reads still completes when the host says).
 */
const ICOUNT_HOST_TURN_INSNS = 200_000;

export class Partition {
  readonly memory: GuestMemory;
  readonly io = new IoBus();
  readonly mmio = new MmioBus();
  readonly clock: VirtualClock;
  readonly devices: PlatformDevices;
  readonly hyperv: HyperVStack;
  /** PCI bus, host and ISA bridges, PIIX4 IDE (Hyper-V Gen 1 has them in every VM). */
  readonly chipset: Gen1Chipset;
  readonly services: PlatformServices;
  readonly vcpus: VirtualProcessor[] = [];
  /** Run states and turn-taking of the vCPUs (set up once they exist). */
  scheduler!: VcpuScheduler;
  readonly backendKind: BackendKind;
  private exitInfo: PartitionExit | null = null;
  private resetReason: string | null = null;
  /** SMBIOS UUID: kept across resets of this partition. */
  private readonly biosGuid: string;
  private paused = false;
  private wakeup: (() => void) | null = null;
  private readonly log: (msg: string) => void;
  /** Present while a GDB stub serves this partition (--gdb). */
  private debug: DebugControl | null = null;
  /** The vCPU that ran the last turn (the one GDB hears about after Ctrl-C). */
  private lastRan = 0;
  private gdbServer: Server | null = null;
  /** Network adapters, their switches and backends (empty when the hardware has no adapters). */
  network: NetworkAssembly = assembleNetwork(null, undefined);
  /** Synthetic SCSI controllers and their drives (null when the hardware has none). */
  storage: ScsiStorage | null = null;
  /** The guest's addresses per adapter, from its KVP daemon (polled while the partition runs). */
  readonly guestAddresses = new GuestAddressMonitor({
    source: () => {
      const ics = this.hyperv.ics;
      return ics && ics.isEnabled('Key-Value Pair Exchange') && ics.kvp.status === 'OK' ? ics.kvp : null;
    },
    macs: () => this.network.adapters.map((a) => a.config.macAddress),
  });

  private constructor(readonly config: PartitionConfig, private readonly backend: ProcessorBackend, memory: GuestMemory, private readonly ideDrives: IdeDrives) {
    this.biosGuid = config.biosGuid ?? stableVmUuid(config.name ?? '');
    // Own copy: hot add/remove updates it, and the caller's description stays as it was.
    if (config.hardware) config = this.config = { ...config, hardware: structuredClone(config.hardware) };
    this.backendKind = backend.kind;
    this.memory = memory;
    this.log = config.log ?? (() => {});
    this.clock = new VirtualClock(config.clockMode ?? 'realtime');
    // Read when the firmware loads them (start and every reset), not kept: ~18 MB for the default image.
    checkImage(config.kernel, 'kernel');
    if (config.initrd) checkImage(config.initrd, 'initrd');
    this.devices = createPlatformDevices({
      io: this.io, mmio: this.mmio, clock: this.clock, vcpuCount: config.cpus,
      rtcEpochMs: config.rtcBaseMs ?? (this.clock.mode === 'icount' ? Math.floor(Date.now() / 1000) * 1000 : Date.now()),
      onShutdown: (code, reason) => this.shutdown(code, reason),
      onReset: (reason) => this.requestReset(reason),
    });
    if (config.onConsoleOutput) this.devices.uart.onTransmit(config.onConsoleOutput);
    this.chipset = new Gen1Chipset({ io: this.io, mmio: this.mmio, irq: this.devices.irq, memory, drives: ideDrives, log: this.log });
    const tscHz = config.tscHz ?? 1_000_000_000;
    const lapics = this.devices.lapics;
    this.hyperv = new HyperVStack({
      memory, clock: this.clock, vpCount: config.cpus, tscHz, enlightened: config.enlightened,
      // The emulated processor's TSC is the virtual clock, one time base for every vCPU: offering TSC_INVARIANT
      // keeps Linux from marking it unstable ("running on Hyper-V"), so it uses the TSC without a watchdog.
      hypervisor: { tscInvariant: backend.kind === 'emulated' },
      inject: (vp, vector, autoEoi) => lapics[vp]?.deliver(vector, false, autoEoi),
      log: (area, msg) => this.log(`${area}: ${msg}`),
      // A pinned RTC base makes the guest's wall clock virtual: time sync then offers the same virtual time
      // the RTC shows, not the host's (so runs with --rtc-base repeat exactly).
      integrationServices: config.rtcBaseMs === undefined ? undefined : {
        hostTime: () => BigInt(Math.floor(config.rtcBaseMs! + this.clock.now() / 1e6)) * 10_000n + WLTIMEDELTA,
      },
    });
    // With several vCPUs an interrupt for the running one needs no exit (it sees it at the next block);
    // one for another vCPU ends the current turn so that vCPU runs soon (IPIs, TLB shootdowns).
    lapics.forEach((l, i) => {
      l.onInterruptPending = config.cpus === 1 ? () => this.kick() : () => { if (this.scheduler.running !== i) this.kick(); };
      l.onInitSipi = (kind, vector) => { if (kind === 'init') this.scheduler.init(i); else { this.scheduler.startup(i, vector); this.kick(); } };
    });
    this.services = {
      memory, io: this.io, mmio: this.mmio, clock: this.clock,
      cpuid: this.hyperv.cpuid(NO_LEAVES),
      msr: this.hyperv.msr,
      hypercall: this.hyperv.hypercall,
      interrupts: lapics,
      vcpuCount: config.cpus,
      tscHz,
      onReset: (reason) => this.requestReset(reason),
      onShutdown: (code, reason) => this.shutdown(code, reason),
    };
  }

  static async create(config: PartitionConfig): Promise<Partition> {
    const log = config.log ?? (() => {});
    let kind: BackendKind;
    if (config.processor === 'auto' && config.cpus > 1) {
      // Application processors (INIT/SIPI, turn-taking) exist on the emulated processor only so far.
      kind = 'emulated';
      log(`processor: emulated (${config.cpus} virtual processors)`);
    } else if (config.processor === 'auto') {
      const { chooseBackend, probeHost } = await import('../host/probe.js');
      const c = await chooseBackend(config.kvmDeviceFd !== undefined ? await probeHost({ deviceFd: config.kvmDeviceFd }) : undefined);
      kind = c.kind;
      log(`processor: ${kind} (${c.reason})`);
    } else kind = config.processor;
    let backend: ProcessorBackend;
    let memory: GuestMemory;
    if (kind === 'kvm') {
      const kvm = await import('../processor/kvm/processor.js');
      // The user-space irqchip keeps one set of interrupt controller models (ours) for both backends.
      backend = new kvm.KvmBackend({ irqchip: 'user', deviceFd: config.kvmDeviceFd });
      memory = kvm.allocateGuestMemory(config.memoryBytes);
    } else {
      const { EmulatedBackend } = await import('../processor/emulated/processor.js');
      backend = new EmulatedBackend();
      // RAM inside a WebAssembly.Memory after the vCPUs' state areas (translated code reaches all of it inline).
      const { allocateEmulatedMemory } = await import('../processor/emulated/wasm/guest-memory.js');
      memory = allocateEmulatedMemory(config.memoryBytes, config.cpus);
    }
    // The same opener as storvsp's: VHDX or raw by content, locked; a VHDX must never be presented raw.
    const ideDrives = await openIdeDrives(config.hardware, config.openDisk ?? diskOpener(config.name ? `VM '${config.name}'` : 'the VM'));
    const p = new Partition(config, backend, memory, ideDrives);
    for (let i = 0; i < config.cpus; i++) p.vcpus.push(await backend.createVcpu(i, p.services));
    if (config.cpus > 1 && p.vcpus.some((v) => !v.runQuantum || !v.startup)) {
      backend.destroy();
      throw new Error(`several processors (--cpus ${config.cpus}) need the emulated processor for now; use --processor emulated or --cpus 1`);
    }
    p.scheduler = new VcpuScheduler(p.vcpus, p.devices.lapics);
    if (config.cpus > 1) p.devices.apicBus.onIpi = (l) => p.scheduler.boost(l.index);
    if (config.cpus > 1) {
      // Remote TLB flush and IPI hypercalls (advertised by the CPUID hints only with several VPs).
      const lapics = p.devices.lapics;
      p.hyperv.hypervisor.hypercalls.processors = {
        count: config.cpus,
        flushTlb: (vp, nonGlobalOnly) => p.vcpus[vp].flushTlb?.(nonGlobalOnly),
        sendIpi: (vp, vector) => { lapics[vp].deliver(vector, false); p.scheduler.boost(vp); },
      };
    }
    if (p.clock.mode === 'icount') {
      const vs = p.vcpus;
      if (vs.some((v) => v.instructions === undefined)) throw new Error("--clock icount needs the emulated processor (KVM does not count instructions); use warp or realtime");
      // Summed over all vCPUs: the clock advances with whichever one runs, so icount boots stay deterministic.
      p.clock.useInstructionCount(vs.length === 1 ? () => vs[0].instructions! : () => {
        let n = 0;
        for (const v of vs) n += v.instructions!;
        return n;
      });
    }
    try {
      await p.assembleStorage();
      // After storage: the SCSI controller is offered first, then the NICs (contract §12.1).
      p.network = assembleNetwork(p.hyperv.vmbus, config.hardware, config.switches, {
        log: p.log, relay: config.networkRelay,
        legacyHost: { memory: p.memory, clock: p.clock, addPciFunction: (fn, dev) => p.chipset.addPciFunction(fn, dev) },
      });
      p.loadFirmware(true);
    } catch (e) {
      p.network.stop();
      await p.storage?.close().catch(() => {});
      backend.destroy();
      throw e;
    }
    return p;
  }

  private async assembleStorage(): Promise<void> {
    const hw = this.config.hardware ?? emptyHardware();
    const vmbus = this.hyperv.vmbus;
    // Enlightened: each IDE hard disk is offered over an IDE accelerator channel too, as Hyper-V does (the guest
    // sees Hyper-V's SMBIOS identity, so ata_piix leaves ATA disks to hv_storvsc).
    const ideDisks: IdeAcceleratedDisk[] = [];
    if (vmbus) {
      this.ideDrives.media.forEach((channel, c) => channel.forEach((m, d) => { if (m?.kind === 'disk') ideDisks.push({ channel: c, drive: d, disk: m.disk }); }));
    }
    const scsi = hw.scsiControllers > 0 || hw.drives.some((d) => d.controllerType === 'scsi');
    if (!scsi && ideDisks.length === 0) return;
    if (!vmbus) throw new Error(`${this.label} has SCSI controllers, which are synthetic (VMBus) devices; turn enlightenments on or attach the drives to IDE`);
    this.storage = await ScsiStorage.assemble(hw, vmbus, this.memory, {
      open: this.config.openDisk ?? diskOpener(this.label), log: (m) => this.log(`storvsp: ${m}`), busy: () => this.clock.holdWarp(), ideDisks,
    });
  }

  /** Puts the boot environment (ACPI tables, kernel, initrd, boot CPU state) into a zeroed memory. */
  private loadFirmware(fresh = false): void {
    // A new memory is already zero: filling it would touch every page (~2 s of CPU and all of RAM resident at 512M).
    if (!fresh) this.memory.bytes.fill(0);
    const acpi = writeAcpiTables(this.memory, { vcpus: this.config.cpus, vmbus: this.config.enlightened, pci: true });
    writeSmbios(this.memory, partitionIdentity({ enlightened: this.config.enlightened, uuid: this.biosGuid }));
    const k = readImage(this.config.kernel, 'kernel');
    const initrd = this.config.initrd ? readImage(this.config.initrd, 'initrd') : undefined;
    const isBzImage = k.length > 0x206 && k[0x202] === 0x48 && k[0x203] === 0x64 && k[0x204] === 0x72 && k[0x205] === 0x53;
    let boot: BootCpuState;
    try {
      if (!isBzImage && findMultibootHeader(k)) {
        boot = loadMultiboot(this.memory, { kernel: k, kernelName: this.config.kernel, cmdline: this.config.cmdline, initrd }).cpu;
        this.log('boot: multiboot kernel');
      } else {
        boot = loadLinux(this.memory, { kernel: k, initrd, cmdline: this.config.cmdline, acpiRsdpAddr: acpi.rsdpAddr }).cpu;
      }
    } catch (e) {
      if (e instanceof BootError) throw new Error(`cannot boot ${this.config.kernel}: ${e.message}`);
      throw e;
    }
    this.vcpus[0].setBootState(boot);
  }

  consoleInput(bytes: Uint8Array): void {
    this.devices.uart.receive(bytes);
    this.kick();
  }

  turnOff(reason = 'turned off'): void { this.shutdown(0, reason); }

  /** Hard reset (Hyper-V's Reset / Restart-VM): the machine restarts from its firmware. */
  reset(reason = 'reset by the host'): void { this.requestReset(reason); }

  pause(): void { if (!this.paused) { this.paused = true; this.clock.pause(); this.kick(); } }
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.clock.resume();
    // Like Hyper-V after a resume: push the host's time so the guest clock catches up.
    void this.hyperv.ics?.timeSync.syncNow().catch(() => {});
    this.kick();
  }
  get isPaused(): boolean { return this.paused; }

  /**
   * Call before saveState (with the partition paused): resolves once device I/O the guest started (IDE disk
   * reads and writes, SCSI requests) has finished, so the saved state holds its result and no write is lost.
   * (storvsp also saves requests still running and runs them again after a restore.)
   */
  async quiesce(): Promise<void> { await Promise.all([this.chipset.idle(), this.storage?.idle()]); }

  /**
   * Save-VM: the whole partition (processors, memory, clock, devices, Hyper-V stack) as a saved-state file
   * image. Synchronous, so it is one consistent instant: the emulated processor only runs inside `run`
   * slices, so here it sits at an instruction boundary. The caller stops the partition afterwards.
   */
  saveState(): Buffer {
    if (this.exitInfo) throw new Error(`cannot save ${this.label}: it has already stopped (${this.exitInfo.reason})`);
    if (this.vcpus.some((v) => !v.saveState)) {
      throw new Error(`saved state is supported on the emulated processor only; ${this.label} runs on ${this.backendKind} (turn it off or shut it down instead)`);
    }
    this.devices.uart.flush?.();
    const info: SavedStateInfo = {
      name: this.config.name ?? '', processor: this.backendKind, memoryBytes: this.memory.size, cpus: this.config.cpus,
      enlightened: this.config.enlightened, savedAt: new Date().toISOString(), virtualTimeNs: this.clock.now(),
      clockMode: this.clock.mode,
    };
    return encodeSavedState(info, this.collectState(), this.memory.bytes);
  }

  private get label(): string { return this.config.name ? `VM '${this.config.name}'` : 'the VM'; }

  private collectState(): PartitionState {
    return {
      vcpus: this.vcpus.map((v) => v.saveState!()), clock: this.clock.saveState(), devices: this.devices.saveState(),
      hyperv: this.hyperv.saveState(), resetPending: this.resetReason, storage: this.storage?.saveState() ?? null,
      network: this.network.saveState(),
      chipset: this.chipset.saveState(), run: this.scheduler.saveState(),
    };
  }

  /**
   * Start-VM of a saved VM: a new partition built from `config` that continues from `saved` (a file path
   * or the bytes of one) instead of booting. Everything is checked before the partition is handed out;
   * on any error the half-built partition is discarded and a SavedStateError says why.
   */
  static async restore(config: PartitionConfig, saved: string | Uint8Array): Promise<Partition> {
    const d = typeof saved === 'string' ? readSavedStateFile(saved) : decodeSavedState(saved);
    const i = d.info;
    const what = config.name ? `VM '${config.name}'` : 'the VM';
    const mismatch = (field: string, was: unknown, is: unknown): never => {
      throw new SavedStateError(`the saved state of ${what} was taken with ${field} ${was}, the VM now has ${is}; ` +
        'change the setting back, or discard the saved state (remove-vmsavedstate) to boot afresh');
    };
    if (i.memoryBytes !== config.memoryBytes) mismatch('memory', i.memoryBytes, config.memoryBytes);
    if (i.cpus !== config.cpus) mismatch('processor count', i.cpus, config.cpus);
    if (i.enlightened !== config.enlightened) mismatch('enlightened', i.enlightened, config.enlightened);
    if (config.processor === 'kvm') throw new SavedStateError('saved state is supported on the emulated processor only; set the VM\'s processor to emulated (or auto)');
    const p = await Partition.create({ ...config, processor: 'emulated' });
    try {
      const template: Omit<PartitionState, 'run'> & { run: VcpuSchedulerState | null } = p.collectState();
      if (!('run' in (d.state as object))) template.run = null; // files from before several vCPUs
      const savedStorage = (d.state as { storage?: unknown }).storage;
      if (template.storage && savedStorage && typeof savedStorage === 'object' && !('ide' in savedStorage)) {
        (template.storage as { ide: unknown }).ide = null; // files from before IDE accelerator channels
      }
      checkShape(template, d.state);
      const s = d.state as PartitionState;
      if (s.vcpus.length !== p.vcpus.length) throw new SavedStateError(`the saved state has ${s.vcpus.length} processors, the VM ${p.vcpus.length}`);
      d.loadMemory(p.memory.bytes);
      // Order matters: the processors (an icount clock reads their instruction count), then the clock,
      // then devices and the Hyper-V stack, which re-arm their timers against the restored time.
      p.vcpus.forEach((v, n) => v.restoreState!(s.vcpus[n]));
      if (s.run) p.scheduler.restoreState(s.run);
      p.clock.restoreState(s.clock);
      p.devices.restoreState(s.devices);
      p.hyperv.restoreState(s.hyperv);
      // After the VMBus host reopened the channels: storvsp's negotiation and the requests it had running.
      if (p.storage && s.storage) p.storage.restoreState(s.storage);
      p.network.restoreState(s.network ?? null);
      p.chipset.restoreState(s.chipset);
      if (s.resetPending !== null) p.resetReason = s.resetPending;
    } catch (e) {
      p.network.stop();
      await p.storage?.close().catch(() => {});
      p.backend.destroy();
      void p.chipset.close();
      if (e instanceof SavedStateError) throw e;
      throw new SavedStateError(`the saved state of ${what} cannot be restored: ${(e as Error).message}`);
    }
    p.log(`restored from the state saved at ${i.savedAt} (uptime ${(i.virtualTimeNs / 1e9).toFixed(3)} s)`);
    // Like Hyper-V after a restore: push the host's time so the guest clock catches up.
    setImmediate(() => { void p.hyperv.ics?.timeSync.syncNow().catch(() => {}); });
    return p;
  }

  /**
   * Add-VMHardDiskDrive on a running VM: opens the drive's disk and attaches it (the guest rescans its SCSI
   * bus). The partition's hardware description follows, so a later save and restore keeps the drive.
   */
  async addDrive(d: DriveConfig): Promise<void> {
    if (d.controllerType !== 'scsi') throw new Error('only SCSI drives can be added while the VM runs (IDE drives need the VM off)');
    if (!this.storage) throw new Error(`${this.label} has no SCSI controller; add one while it is off`);
    await this.storage.addDrive(d);
    const hw = this.config.hardware!;
    hw.drives = [...hw.drives, { ...d }];
  }

  /** Remove-VMHardDiskDrive on a running VM: the guest drops the disk; it is closed once its I/O finished. */
  async removeDrive(controllerNumber: number, controllerLocation: number): Promise<void> {
    if (!this.storage) throw new Error(`${this.label} has no SCSI controller`);
    await this.storage.removeDrive(controllerNumber, controllerLocation);
    const hw = this.config.hardware!;
    hw.drives = hw.drives.filter((x) => !(x.controllerType === 'scsi' && x.controllerNumber === controllerNumber && x.controllerLocation === controllerLocation));
  }

  /** Add-VMNetworkAdapter on a running VM: offered on VMBus at once; the hardware description follows. */
  addNetworkAdapter(a: NetworkAdapterConfig, sw?: SwitchConfig): void {
    this.network.add(a, sw);
    const hw = this.config.hardware ??= { scsiControllers: 0, drives: [], networkAdapters: [] };
    hw.networkAdapters = [...hw.networkAdapters, { ...a }];
    this.guestAddresses.request();
  }

  /** Remove-VMNetworkAdapter on a running VM: the guest's channel is rescinded. */
  removeNetworkAdapter(name: string): void {
    this.network.remove(name);
    const hw = this.config.hardware;
    if (hw) hw.networkAdapters = hw.networkAdapters.filter((x) => x.name.toLowerCase() !== name.toLowerCase());
  }

  /** Connect-/Disconnect-VMNetworkAdapter on a running VM: the guest sees its link go up or down. */
  connectNetworkAdapter(name: string, switchName: string | null, sw?: SwitchConfig): void {
    this.network.connect(name, switchName, sw);
    const hw = this.config.hardware;
    if (hw) hw.networkAdapters = hw.networkAdapters.map((x) => (x.name.toLowerCase() === name.toLowerCase() ? { ...x, switchName } : x));
  }

  /** The VM's integration services (heartbeat, shutdown, time sync, KVP, VSS); null when unenlightened. */
  get integrationServices(): IntegrationServices | null { return this.hyperv.ics; }

  private shutdown(code: number, reason: string): void {
    if (!this.exitInfo) this.exitInfo = { code, reason };
    this.kick();
  }

  private requestReset(reason: string): void {
    this.resetReason = reason;
    this.kick();
  }

  /** Make the scheduler loop look again soon (interrupt raised, input arrived, state change). */
  private kick(): void {
    for (const v of this.vcpus) v.requestExit();
    const w = this.wakeup;
    if (w) { this.wakeup = null; w(); }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeup = null; resolve(); }, ms);
      this.wakeup = () => { clearTimeout(t); resolve(); };
    });
  }

  /** Serve the GDB remote protocol on 127.0.0.1:port (emulated processor), a GDB thread per vCPU. The VM keeps running until GDB stops it. */
  private async startGdb(port: number): Promise<void> {
    const vcpus = this.vcpus as unknown as import('../processor/emulated/processor.js').EmulatedVcpu[];
    if (this.backendKind !== 'emulated' || vcpus.some((v) => !v.cpu)) throw new Error('--gdb is supported with the emulated processor');
    const { EmulatedDebugTarget, DebugControl } = await import('../debug/emulated-target.js');
    const { serveGdb } = await import('../debug/gdb-stub.js');
    const control = new DebugControl();
    control.stopped = this.config.gdbWait === true;
    const target = new EmulatedDebugTarget(vcpus, this.memory, control, {
      runState: (i) => this.scheduler.state(i),
      asVcpu: (i, fn) => {
        const s = this.scheduler, w = this.devices.lapicWindow;
        const was = w.current;
        w.current = i;
        s.running = i;
        try { return fn(); } finally { s.running = -1; w.current = was; }
      },
      kick: () => this.kick(),
      kill: () => this.turnOff('killed by the debugger'),
    });
    this.gdbServer = await serveGdb(target, port, (m) => this.log(m), () => target.interrupt());
    this.debug = control;
    this.log(`gdb: listening on 127.0.0.1:${port} (gdb vmlinux -ex 'target remote :${port}')${control.stopped ? '; waiting for the debugger to continue' : ''}`);
  }

  /** All-stop: after a slice, a vCPU on a breakpoint stops every vCPU and GDB learns which one it was. */
  private debugStopAfterSlice(dbg: DebugControl): boolean {
    dbg.onSlice?.();
    const v = dbg.breakpointVcpu;
    if (v < 0) return false;
    dbg.breakpointVcpu = -1;
    dbg.reportStop({ signal: 5, breakpoint: true, vcpu: v });
    return true;
  }

  /**
   * One turn of the next runnable vCPU (round robin); null when none can run. While several are runnable
   * the turn is a quantum of instructions; alone, a vCPU runs a whole slice.
   */
  private runTurn(): RunOutcome | null {
    const s = this.scheduler;
    const i = s.pick();
    if (i < 0) return null;
    const several = s.runnableCount() > 1;
    const icount = this.clock.mode === 'icount';
    // With icount, turns end on instruction counts only, never host time, so runs repeat exactly.
    const budgetMs = icount ? Infinity : several ? TURN_MS : SLICE_MS;
    this.devices.lapicWindow.current = i;
    s.running = i;
    this.lastRan = i;
    try {
      return this.vcpus[i].runQuantum!(budgetMs, several ? (s.boostedTurn ? BOOST_INSNS : QUANTUM_INSNS) : icount ? QUANTUM_INSNS * 50 : Infinity);
    } finally {
      s.running = -1;
    }
  }

  /** Runs the partition until the guest powers off or the VM is turned off. */
  async start(): Promise<PartitionExit> {
    if (this.config.gdbPort !== undefined) await this.startGdb(this.config.gdbPort);
    this.guestAddresses.start();
    const vcpu = this.vcpus[0];
    const lapic = this.devices.lapics[0];
    const yieldToHost = (): Promise<void> => new Promise((r) => setImmediate(r));
    let lastHostTurn = performance.now();
    const icount = this.clock.mode === 'icount';
    const retired = (): number => { let n = 0; for (const v of this.vcpus) n += v.instructions ?? 0; return n; };
    let lastHostTurnInsns = retired();
    const hostTurnDue = (): boolean => (icount ? retired() - lastHostTurnInsns >= ICOUNT_HOST_TURN_INSNS : performance.now() - lastHostTurn >= HOST_TURN_MS);
    const hostTurnTaken = (): void => { lastHostTurn = performance.now(); lastHostTurnInsns = retired(); };
    while (!this.exitInfo) {
      if (this.resetReason !== null) {
        this.log(`reset: ${this.resetReason}`);
        this.resetReason = null;
        this.devices.reset();
        this.hyperv.reset();
        this.chipset.reset();
        this.scheduler.reset();
        try { this.loadFirmware(); } catch (e) { this.shutdown(1, `reset failed: ${(e as Error).message}`); break; }
      }
      const dbg = this.debug;
      if (dbg !== null && dbg.interruptRequested) { dbg.interruptRequested = false; dbg.reportStop({ signal: 2, vcpu: this.lastRan }); }
      if (this.paused || (dbg !== null && dbg.stopped)) { await this.sleep(50); continue; }
      if (this.vcpus.length > 1) {
        const r = this.runTurn();
        if (dbg !== null && this.debugStopAfterSlice(dbg)) continue;
        this.clock.poll();
        if (r === null) {
          // Every vCPU halted or waiting for SIPI: the host sleeps until the next timer or event.
          const wait = this.clock.idle();
          if (wait > 0) await this.sleep(Math.min(wait / 1e6, 100));
          else await yieldToHost();
          this.clock.poll();
          hostTurnTaken();
          continue;
        }
        if (r.kind === 'shutdown') { this.shutdown(r.code, r.reason); break; }
        if (r.kind === 'reset') { this.requestReset(r.reason); continue; }
        // Short turns must not starve the host (console, sockets, disk completions).
        if (hostTurnDue()) { await yieldToHost(); hostTurnTaken(); }
        continue;
      }
      this.devices.lapicWindow.current = 0;
      // icount: the turn ends on an instruction count, never on host time (see ICOUNT_HOST_TURN_INSNS).
      const r = icount && vcpu.runQuantum ? vcpu.runQuantum(Infinity, ICOUNT_HOST_TURN_INSNS) : await vcpu.run(SLICE_MS);
      if (dbg !== null && this.debugStopAfterSlice(dbg)) continue;
      // The emulated processor polls the clock itself when it resumes; polling here too, at a point that host
      // time chose, would fire timers one instruction earlier or later from run to run (icount must repeat).
      if (this.backendKind !== 'emulated' || r.kind !== 'yield') this.clock.poll();
      if (r.kind === 'shutdown') { this.shutdown(r.code, r.reason); break; }
      if (r.kind === 'reset') { this.requestReset(r.reason); continue; }
      if (r.kind === 'halted') {
        if (lapic.pendingVector() >= 0 || lapic.nmiPending()) continue;
        const wait = this.clock.idle();
        if (wait > 0) await this.sleep(Math.min(wait / 1e6, 100));
        else await yieldToHost();
        this.clock.poll();
        continue;
      }
      await yieldToHost();
    }
    this.devices.uart.flush?.();
    this.debug?.reportStop({ exited: this.exitInfo?.code ?? 0 });
    this.gdbServer?.close();
    this.guestAddresses.stop();
    this.network.stop();
    this.backend.destroy();
    // Running disk I/O finishes and every disk is flushed and closed before the VM counts as stopped.
    try { await this.storage?.close(); } catch (e) { this.log(`storage: closing the disks failed: ${(e as Error).message}`); }
    await this.chipset.close();
    return this.exitInfo ?? { code: 1, reason: 'stopped' };
  }
}

function imageError(path: string, what: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new Error(code === 'ENOENT' ? `${what} file '${path}' does not exist` : `cannot read ${what} file '${path}': ${(e as Error).message}`);
}

function readImage(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw imageError(path, what, e);
  }
}

/** The errors readImage would give, without reading the file. */
function checkImage(path: string, what: string): void {
  let regular: boolean;
  try { regular = statSync(path).isFile(); } catch (e) { throw imageError(path, what, e); }
  if (!regular) throw new Error(`cannot read ${what} file '${path}': not a regular file`);
}
