/**
 * The Hyper-V Generation 1 chipset every partition has, enlightened or not: PCI bus 0 (mechanism #1) with
 * the 440BX host bridge (00:00.0), the PIIX4 ISA bridge (00:07.0) and the PIIX4 IDE controller (00:07.1),
 * whose four locations take the HardwareConfig's IDE drives (disks and DVD drives). Built from the
 * hardware description; the firmware step programs the PCI functions as a BIOS would.
 */
import type { IoBus, MmioBus } from './bus.js';
import type { GuestMemory } from './memory.js';
import type { IrqRouter } from '../devices/irq.js';
import { IDE_CONTROLLERS, IDE_LOCATIONS, type DriveConfig, type HardwareConfig } from './hardware.js';
import { PCI_IO_BAR_BASE, PCI_MMIO_BASE } from './layout.js';
import { PciBus, programPciLikeFirmware, type PciBusState } from '../devices/pci/bus.js';
import { I440bxHostBridge, Piix4IsaBridge, PIIX4_PCI_DEVICE } from '../devices/pci/chipset.js';
import type { PciFunction } from '../devices/pci/function.js';
import { Piix4Ide, PIIX4_IDE_FUNCTION, type Piix4IdeState } from '../devices/ide/piix4-ide.js';
import type { IdeMedia } from '../devices/ide/channel.js';
import type { DriveIdentity } from '../devices/ide/identify.js';
import { ScsiDisk } from '../scsi/disk-target.js';
import type { Disk } from '../storage/disk.js';

/** The IDE drives of a VM, opened: media[controller][location]. */
export interface IdeDrives {
  media: [[IdeMedia | null, IdeMedia | null], [IdeMedia | null, IdeMedia | null]];
  disks: Disk[];
}

/** A user mistake in the IDE part of the hardware description (said so the user knows what to change). */
export class IdeConfigError extends Error {}

/** Checks the IDE drives of `hw` and opens their files (raw images and ISOs). */
export async function openIdeDrives(hw: HardwareConfig | undefined, opener: (path: string, readOnly: boolean) => Promise<Disk>): Promise<IdeDrives> {
  const out: IdeDrives = { media: [[null, null], [null, null]], disks: [] };
  const ide = (hw?.drives ?? []).filter((d) => d.controllerType === 'ide');
  try {
    for (const d of ide) {
      const where = `IDE ${d.controllerNumber}:${d.controllerLocation}`;
      if (!Number.isInteger(d.controllerNumber) || d.controllerNumber < 0 || d.controllerNumber >= IDE_CONTROLLERS ||
          !Number.isInteger(d.controllerLocation) || d.controllerLocation < 0 || d.controllerLocation >= IDE_LOCATIONS) {
        throw new IdeConfigError(`${where}: Generation 1 VMs have IDE controllers 0-1 with locations 0-1`);
      }
      if (out.media[d.controllerNumber][d.controllerLocation]) throw new IdeConfigError(`${where} has two drives; give each drive its own location`);
      out.media[d.controllerNumber][d.controllerLocation] = await openMedia(d, where, out.disks, opener);
    }
  } catch (e) {
    await Promise.allSettled(out.disks.map((x) => x.close()));
    throw e;
  }
  return out;
}

/** `opener` is the partition's openDisk (VHDX or raw by content, locked), so a VHDX is never presented raw. */
async function openMedia(d: DriveConfig, where: string, opened: Disk[], opener: (path: string, readOnly: boolean) => Promise<Disk>): Promise<IdeMedia> {
  if (d.kind === 'dvd') {
    let disk: Disk | null = null;
    if (d.path !== null) { disk = await opener(d.path, true); opened.push(disk); }
    return { kind: 'dvd', target: new ScsiDisk(disk, { kind: 'dvd', vendor: 'Msft', product: 'Virtual CD/ROM' }) };
  }
  if (d.path === null) throw new IdeConfigError(`${where}: a hard disk drive needs a disk file`);
  const disk = await opener(d.path, d.readOnly === true);
  opened.push(disk);
  return { kind: 'disk', disk };
}

export interface Gen1ChipsetOptions {
  io: IoBus;
  mmio: MmioBus;
  irq: IrqRouter;
  memory: GuestMemory;
  drives: IdeDrives;
  log?: (msg: string) => void;
}

export interface Gen1ChipsetState { pci: PciBusState; ide: Piix4IdeState }

export class Gen1Chipset {
  readonly pci: PciBus;
  readonly hostBridge = new I440bxHostBridge();
  readonly isaBridge = new Piix4IsaBridge();
  readonly ide: Piix4Ide;

  constructor(o: Gen1ChipsetOptions, private readonly disks: Disk[] = o.drives.disks) {
    this.pci = new PciBus(o.io, o.mmio, o.irq);
    this.pci.onConflict = (m) => o.log?.(`pci: ${m}`);
    const identity = (c: number, l: number): DriveIdentity => {
      const m = o.drives.media[c][l];
      const isDvd = m?.kind === 'dvd';
      const id = m?.kind === 'disk' ? m.disk.diskId : new Uint8Array(16);
      const serial = [...id].map((b) => b.toString(16).padStart(2, '0')).join('').slice(0, 20);
      return { model: isDvd ? 'Virtual CD' : 'Virtual HD', serial: isDvd ? `DVD${c}${l}` : serial, firmware: '1.1.0' };
    };
    this.ide = new Piix4Ide({
      io: o.io, memory: o.memory, irq: o.irq, media: o.drives.media,
      identities: [[identity(0, 0), identity(0, 1)], [identity(1, 0), identity(1, 1)]], log: o.log,
    });
    this.pci.add(this.hostBridge, 0);
    this.pci.add(this.isaBridge, PIIX4_PCI_DEVICE, 0);
    this.pci.add(this.ide, PIIX4_PCI_DEVICE, PIIX4_IDE_FUNCTION);
    this.firmware();
  }

  /**
   * Plugs another PCI function in (a legacy network adapter) as device `dev`, function 0, before the guest
   * runs; the firmware step programs every function again, so it gets its BARs, decoding and INTx line.
   */
  addPciFunction(fn: PciFunction, dev: number): void {
    this.pci.add(fn, dev, 0);
    this.firmware();
  }

  private firmware(): void { programPciLikeFirmware(this.pci, PCI_IO_BAR_BASE, PCI_MMIO_BASE); }

  /** Machine reset: power-on state, then programmed again by the firmware. */
  reset(): void {
    this.pci.reset();
    for (const c of this.ide.channels) c.reset();
    this.firmware();
  }

  /** Waits until no disk I/O is in flight (Save-VM: nothing a guest saw started may be lost). */
  idle(): Promise<void> { return this.ide.idle(); }

  saveState(): Gen1ChipsetState { return { pci: this.pci.saveState(), ide: this.ide.saveState() }; }

  restoreState(s: Gen1ChipsetState): void {
    this.pci.restoreState(s.pci);
    this.ide.restoreState(s.ide);
  }

  /** Finishes in-flight I/O and closes the disk files (flushing them). */
  async close(): Promise<void> {
    await this.idle();
    await Promise.allSettled(this.disks.map((d) => d.close()));
  }
}
