/**
 * Storage of a partition, assembled from its HardwareConfig: one storvsp (synthetic SCSI controller) per
 * configured controller, offered on the VMBus host, with a SCSI target over each drive's disk; and, in an
 * enlightened partition, an IDE accelerator channel for each IDE hard disk, as Hyper-V offers: Linux then
 * reaches those disks through hv_storvsc while ata_piix leaves them alone (it sees Hyper-V's SMBIOS identity).
 * The IDE controller itself is assembled in assemble-ide.ts and owns those disks.
 */
import type { Disk } from '../storage/disk.js';
import { openDisk } from '../storage/open.js';
import { ScsiDisk } from '../scsi/disk-target.js';
import { LUNS_PER_CONTROLLER, StorvspController, type StorvspState } from '../vsp/storvsp/controller.js';
import { MAX_TRANSFER_BYTES } from '../vsp/storvsp/protocol.js';
import type { VmbusDevice, VmbusHost } from '../vmbus/host.js';
import type { GuestMemory } from './memory.js';
import { MAX_SCSI_CONTROLLERS, SCSI_LOCATIONS, type DriveConfig, type HardwareConfig } from './hardware.js';

export type DiskOpener = (path: string, readOnly: boolean) => Promise<Disk>;

/** VHDX or raw images, locked while open (named after `purpose` in "in use" errors). */
export function diskOpener(purpose: string): DiskOpener {
  return (path, readOnly) => openDisk(path, { readOnly, purpose });
}

export interface StorageState {
  scsi: StorvspState[];
  /** IDE accelerator channels, in the order of `ideAccelerators`. */
  ide: StorvspState[];
}

/** An IDE hard disk (opened by the IDE controller's assembly) to offer over an accelerator channel. */
export interface IdeAcceleratedDisk { channel: number; drive: number; disk: Disk }

interface Attached { drive: DriveConfig; disk: Disk | null; target: ScsiDisk }

export class ScsiStorage {
  readonly controllers: StorvspController[] = [];
  /** IDE accelerator channels (their disks belong to the IDE controller: never closed here). */
  readonly ideAccelerators: StorvspController[] = [];
  private readonly devices: VmbusDevice[] = [];
  private readonly ideDevices: VmbusDevice[] = [];
  private readonly attached = new Map<string, Attached>();

  private constructor(private readonly vmbus: VmbusHost, private readonly open: DiskOpener) {}

  /**
   * Opens every SCSI drive of `hw` and registers its controllers with `vmbus`. On any error the disks opened
   * so far are closed again and the error names the drive.
   */
  static async assemble(hw: HardwareConfig, vmbus: VmbusHost, memory: GuestMemory, o: { open?: DiskOpener; log?: (m: string) => void; busy?: () => () => void; ideDisks?: IdeAcceleratedDisk[] } = {}): Promise<ScsiStorage> {
    const n = hw.scsiControllers;
    if (!Number.isInteger(n) || n < 0 || n > MAX_SCSI_CONTROLLERS) throw new Error(`a VM has 0-${MAX_SCSI_CONTROLLERS} SCSI controllers, not ${n}`);
    const s = new ScsiStorage(vmbus, o.open ?? diskOpener('a VM'));
    for (let i = 0; i < n; i++) s.controllers.push(new StorvspController(memory, { controller: i, log: o.log, busy: o.busy }));
    try {
      for (const d of hw.drives) if (d.controllerType === 'scsi') await s.addDrive(d);
    } catch (e) {
      await s.close();
      throw e;
    }
    for (const c of s.controllers) s.devices.push(vmbus.addDevice(c));
    for (const d of o.ideDisks ?? []) {
      const c = new StorvspController(memory, { controller: d.channel, ide: { channel: d.channel, drive: d.drive }, log: o.log, busy: o.busy });
      c.attach(0, new ScsiDisk(d.disk, { kind: 'disk', maxTransferBytes: MAX_TRANSFER_BYTES }));
      s.ideAccelerators.push(c);
      s.ideDevices.push(vmbus.addDevice(c));
    }
    return s;
  }

  private static key(controller: number, location: number): string { return `${controller}:${location}`; }

  /** Opens the drive's disk and attaches it; on a running guest this is a hot add. */
  async addDrive(d: DriveConfig): Promise<void> {
    const where = `SCSI ${d.controllerNumber}:${d.controllerLocation}`;
    if (d.controllerType !== 'scsi') throw new Error(`${where}: not a SCSI drive`);
    const c = this.controllers[d.controllerNumber];
    if (!c) throw new Error(`${where}: the VM has ${this.controllers.length} SCSI controller(s); add one first`);
    if (!Number.isInteger(d.controllerLocation) || d.controllerLocation < 0 || d.controllerLocation >= Math.min(SCSI_LOCATIONS, LUNS_PER_CONTROLLER)) {
      throw new Error(`${where}: location must be 0-${SCSI_LOCATIONS - 1}`);
    }
    const key = ScsiStorage.key(d.controllerNumber, d.controllerLocation);
    if (this.attached.has(key)) throw new Error(`${where} already holds a drive; pick a free location`);
    if (d.kind === 'disk' && !d.path) throw new Error(`${where}: a hard disk drive needs a disk image path`);
    let disk: Disk | null = null;
    try {
      if (d.path) disk = await this.open(d.path, d.kind === 'dvd' || d.readOnly === true);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    const target = new ScsiDisk(disk, { kind: d.kind, maxTransferBytes: MAX_TRANSFER_BYTES });
    this.attached.set(key, { drive: d, disk, target });
    c.attach(d.controllerLocation, target);
  }

  /** Hot remove: the guest rescans and drops the disk; the disk is closed once its I/O finished. */
  async removeDrive(controller: number, location: number): Promise<void> {
    const key = ScsiStorage.key(controller, location);
    const a = this.attached.get(key);
    if (!a) throw new Error(`SCSI ${controller}:${location} holds no drive`);
    this.attached.delete(key);
    await this.controllers[controller].detach(location);
    await a.disk?.close();
  }

  /** Completes when no guest request is running on any controller (before a save). */
  async idle(): Promise<void> { await Promise.all([...this.controllers, ...this.ideAccelerators].map((c) => c.idle())); }

  /** The disk at a location (tests, management). */
  disk(controller: number, location: number): Disk | null { return this.attached.get(ScsiStorage.key(controller, location))?.disk ?? null; }

  saveState(): StorageState { return { scsi: this.controllers.map((c) => c.saveState()), ide: this.ideAccelerators.map((c) => c.saveState()) }; }

  /** After the VMBus host was restored (its channels reopened). */
  restoreState(s: StorageState): void {
    if (!Array.isArray(s.scsi) || s.scsi.length !== this.controllers.length) {
      throw new Error(`the saved state has ${s.scsi?.length ?? 0} SCSI controller(s), the VM ${this.controllers.length}`);
    }
    const ide = s.ide ?? [];
    if (!Array.isArray(ide) || ide.length !== this.ideAccelerators.length) {
      throw new Error(`the saved state has ${Array.isArray(ide) ? ide.length : 0} IDE accelerator channel(s), the VM ${this.ideAccelerators.length}`);
    }
    this.controllers.forEach((c, i) => c.restoreState(s.scsi[i], this.vmbus.channelOf(this.devices[i])));
    this.ideAccelerators.forEach((c, i) => c.restoreState(ide[i], this.vmbus.channelOf(this.ideDevices[i])));
  }

  /** Partition stop: let running I/O finish, then flush and close every disk. Idempotent. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.controllers, ...this.ideAccelerators].map((c) => c.idle()));
    const all = [...this.attached.values()];
    this.attached.clear();
    const r = await Promise.allSettled(all.map((a) => a.disk?.close()));
    const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
