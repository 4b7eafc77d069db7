/**
 * The PIIX4 IDE function (PCI 8086:7111, 00:07.1 on Hyper-V Gen 1): two channels in ISA compatibility mode
 * (1F0-1F7/3F6 on IRQ 14, 170-177/376 on IRQ 15; programming interface 0x80, not switchable to native
 * mode) and the bus-master registers in BAR4. Each channel decodes its legacy ports only while the PCI
 * command register enables I/O and its IDETIM register (0x40/0x42) has the decode-enable bit, which
 * libata's ata_piix checks before it probes a port (piix_enable_bits).
 */
import type { AccessSize, IoBus, PioDevice } from '../../platform/bus.js';
import type { GuestMemory } from '../../platform/memory.js';
import type { IrqRouter } from '../irq.js';
import * as L from '../../platform/layout.js';
import { PciFunction, PCI_COMMAND_IO } from '../pci/function.js';
import { INTEL_VENDOR_ID } from '../pci/chipset.js';
import { IdeChannel, type IdeChannelState, type IdeMedia } from './channel.js';
import type { DriveIdentity } from './identify.js';

export const PIIX4_IDE_DEVICE_ID = 0x7111;
export const PIIX4_IDE_FUNCTION = 1;
const IDETIM_DECODE_ENABLE = 0x80; // bit 15 of IDETIM, in its high byte

export interface Piix4IdeOptions {
  io: IoBus;
  memory: GuestMemory;
  irq: IrqRouter | null;
  /** media[channel][device]; null = no drive there. */
  media: [[IdeMedia | null, IdeMedia | null], [IdeMedia | null, IdeMedia | null]];
  identities: [[DriveIdentity, DriveIdentity], [DriveIdentity, DriveIdentity]];
  log?: (msg: string) => void;
}

export interface Piix4IdeState { channels: IdeChannelState[] }

export class Piix4Ide extends PciFunction {
  readonly channels: [IdeChannel, IdeChannel];

  constructor(o: Piix4IdeOptions) {
    // The BAR4 handler exists before `this` does (it goes to super); it reaches the channels through `ref`.
    const ref: { channels: IdeChannel[] } = { channels: [] };
    const bmPorts: PioDevice = {
      pioRead: (off, size) => ref.channels[off >> 3].bm.read(off & 7, size),
      pioWrite: (off, size, v) => ref.channels[off >> 3].bm.write(off & 7, size, v),
    };
    super('piix4-ide', { vendorId: INTEL_VENDOR_ID, deviceId: PIIX4_IDE_DEVICE_ID, revision: 0x01, classCode: 0x01, subclass: 0x01, progIf: 0x80 },
      [null, null, null, null, { kind: 'io', size: 16, io: bmPorts, name: 'piix4-ide-busmaster' }]);
    // IDETIM (primary, secondary), SIDETIM, UDMACTL, UDMATIM: timing registers the driver programs; stored.
    this.writable(0x40, 5);
    this.writable(0x48, 1, 0x0f);
    this.writable(0x4a, 2, 0x33);
    // What the BIOS leaves: both channels' decoding enabled.
    this.setResetValue(0x40, [0x00, IDETIM_DECODE_ENABLE, 0x00, IDETIM_DECODE_ENABLE]);
    const mk = (n: 0 | 1): IdeChannel => new IdeChannel({
      memory: o.memory, irq: o.irq, irqLine: n === 0 ? L.IDE_PRIMARY_IRQ : L.IDE_SECONDARY_IRQ, busMaster: () => this.busMaster, log: o.log,
    }, o.media[n], o.identities[n]);
    this.channels = [mk(0), mk(1)];
    ref.channels = this.channels;
    const legacy = [[L.IDE_PRIMARY_PORT, L.IDE_PRIMARY_CTRL_PORT], [L.IDE_SECONDARY_PORT, L.IDE_SECONDARY_CTRL_PORT]] as const;
    legacy.forEach(([cmd, ctl], n) => {
      const ch = this.channels[n];
      const on = (): boolean => this.decodes(n);
      o.io.register(cmd, 8, {
        pioRead: (off, size) => on() ? ch.read(off, size) : ones(size),
        pioWrite: (off, size, v) => { if (on()) ch.write(off, size, v); },
      }, `ide${n}`);
      o.io.register(ctl, 1, {
        pioRead: (_off, size) => on() ? ch.readAltStatus() : ones(size),
        pioWrite: (_off, _size, v) => { if (on()) ch.writeDeviceControl(v); },
      }, `ide${n}-control`);
    });
  }

  private decodes(channel: number): boolean {
    return (this.command & PCI_COMMAND_IO) !== 0 && (this.config[0x41 + 2 * channel] & IDETIM_DECODE_ENABLE) !== 0;
  }

  /** Resolves once no disk I/O of either channel is in flight. */
  async idle(): Promise<void> { await Promise.all(this.channels.map((c) => c.idle())); }

  reset(): void {
    this.resetConfigSpace();
    for (const c of this.channels) c.reset();
  }

  saveState(): Piix4IdeState { return { channels: this.channels.map((c) => c.saveState()) }; }

  restoreState(s: Piix4IdeState): void { s.channels.forEach((c, i) => this.channels[i].restoreState(c)); }
}

function ones(size: AccessSize): number { return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1; }
