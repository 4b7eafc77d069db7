/**
 * One PCI function's type-0 configuration space (PCI Local Bus 3.0 chapter 6): identification, command and
 * status, up to six BARs, interrupt pin/line, and device-specific registers above 0x40. Writes go through a
 * per-byte write mask, so read-only fields stay read-only whatever the guest writes; BAR sizing (write all
 * ones, read back the size mask) falls out of the same mask. The bus maps BARs when the guest enables them.
 */
import type { AccessSize, MmioDevice, PioDevice } from '../../platform/bus.js';

export const PCI_CONFIG_SIZE = 256;

/** Configuration header offsets. */
export const PCI_VENDOR_ID = 0x00, PCI_DEVICE_ID = 0x02, PCI_COMMAND = 0x04, PCI_STATUS = 0x06, PCI_REVISION = 0x08,
  PCI_PROG_IF = 0x09, PCI_SUBCLASS = 0x0a, PCI_CLASS = 0x0b, PCI_LATENCY_TIMER = 0x0d, PCI_HEADER_TYPE = 0x0e,
  PCI_BAR0 = 0x10, PCI_SUBSYSTEM_VENDOR_ID = 0x2c, PCI_SUBSYSTEM_ID = 0x2e, PCI_INTERRUPT_LINE = 0x3c, PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1, PCI_COMMAND_MEMORY = 0x2, PCI_COMMAND_MASTER = 0x4, PCI_COMMAND_INTX_DISABLE = 0x400;
/** Status bits cleared by writing one (RW1C): parity, SERR, master/target aborts. */
const PCI_STATUS_RW1C = 0xf900;
const PCI_STATUS_INTERRUPT = 0x08;

export type PciBarKind = 'io' | 'mem32';

export interface PciBarSpec {
  kind: PciBarKind;
  /** Power of two: at least 4 for I/O, 16 for memory (the bus rounds memory BARs up to 4 KiB when it maps them). */
  size: number;
  /** The handler the bus attaches at the BAR's base when decoding is on; offsets are within the BAR. */
  io?: PioDevice;
  mmio?: MmioDevice;
  name: string;
}

export interface PciIds {
  vendorId: number; deviceId: number; revision: number;
  classCode: number; subclass: number; progIf: number;
  subsystemVendorId?: number; subsystemId?: number;
  /** Header type bit 7: the device has several functions (set on function 0 of a multi-function device). */
  multiFunction?: boolean;
  /** 0 = no INTx, 1-4 = INTA#-INTD#. */
  interruptPin?: number;
}

/** What the bus gives a function once it is plugged in. */
export interface PciAttachment {
  /** Re-evaluates the BAR mappings of this function (command or BAR writes). */
  remap(): void;
  /** Drives this function's INTx line (already gated by the command register's INTx disable). */
  setIntx(level: boolean): void;
}

export interface PciFunctionState { config: number[] }

export class PciFunction {
  readonly config = new Uint8Array(PCI_CONFIG_SIZE);
  /** Per byte: which bits a configuration write may change. */
  protected readonly writeMask = new Uint8Array(PCI_CONFIG_SIZE);
  readonly bars: ReadonlyArray<PciBarSpec | null>;
  private attachment: PciAttachment | null = null;
  private intx = false;
  private readonly resetConfig: Uint8Array;

  constructor(readonly name: string, ids: PciIds, bars: Array<PciBarSpec | null> = []) {
    const c = this.config, v = new DataView(c.buffer);
    v.setUint16(PCI_VENDOR_ID, ids.vendorId, true);
    v.setUint16(PCI_DEVICE_ID, ids.deviceId, true);
    c[PCI_REVISION] = ids.revision;
    c[PCI_PROG_IF] = ids.progIf;
    c[PCI_SUBCLASS] = ids.subclass;
    c[PCI_CLASS] = ids.classCode;
    c[PCI_HEADER_TYPE] = ids.multiFunction ? 0x80 : 0;
    v.setUint16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystemVendorId ?? 0, true);
    v.setUint16(PCI_SUBSYSTEM_ID, ids.subsystemId ?? 0, true);
    c[PCI_INTERRUPT_PIN] = ids.interruptPin ?? 0;
    v.setUint16(PCI_STATUS, 0x0280, true); // medium DEVSEL timing, fast back-to-back capable
    // Command: I/O, memory, bus master, SERR/parity and INTx disable are writable.
    this.writeMask[PCI_COMMAND] = 0x47;
    this.writeMask[PCI_COMMAND + 1] = 0x05;
    this.writeMask[PCI_STATUS + 1] = PCI_STATUS_RW1C >>> 8;
    this.writeMask[PCI_LATENCY_TIMER] = 0xff;
    this.writeMask[PCI_INTERRUPT_LINE] = 0xff;
    if (bars.length > 6) throw new RangeError('a type-0 header has six BARs');
    const list: Array<PciBarSpec | null> = [];
    for (let i = 0; i < 6; i++) {
      const b = bars[i] ?? null;
      list.push(b);
      if (!b) continue;
      const min = b.kind === 'io' ? 4 : 16;
      if (b.size < min || (b.size & (b.size - 1)) !== 0 || b.size > 0x8000_0000) throw new RangeError(`${name}: BAR${i} size ${b.size} is not a power of two >= ${min}`);
      if (b.kind === 'io' && b.size > 256) throw new RangeError(`${name}: I/O BAR${i} larger than 256 ports`);
      const mask = (~(b.size - 1) >>> 0) & (b.kind === 'io' ? 0xfffffffc : 0xfffffff0);
      for (let k = 0; k < 4; k++) this.writeMask[PCI_BAR0 + 4 * i + k] = (mask >>> (8 * k)) & 0xff;
      c[PCI_BAR0 + 4 * i] = b.kind === 'io' ? 1 : 0; // I/O space indicator; memory: 32-bit, not prefetchable
    }
    this.bars = list;
    this.resetConfig = this.config.slice();
  }

  /** Marks `len` bytes at `offset` (device-specific registers) guest-writable with `mask` per byte. */
  protected writable(offset: number, len: number, mask = 0xff): void {
    for (let i = 0; i < len; i++) this.writeMask[offset + i] = mask;
  }

  /** Sets the power-on value of device-specific registers (kept across resets). */
  protected setResetValue(offset: number, bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) { this.config[offset + i] = bytes[i]; this.resetConfig[offset + i] = bytes[i]; }
  }

  attach(a: PciAttachment): void { this.attachment = a; }

  get command(): number { return this.config[PCI_COMMAND] | (this.config[PCI_COMMAND + 1] << 8); }
  get busMaster(): boolean { return (this.command & PCI_COMMAND_MASTER) !== 0; }

  /** Base address currently programmed in BAR `i` (flag bits removed). */
  barBase(i: number): number {
    const v = new DataView(this.config.buffer).getUint32(PCI_BAR0 + 4 * i, true);
    return (this.bars[i]?.kind === 'io' ? v & 0xfffffffc : v & 0xfffffff0) >>> 0;
  }

  /** Firmware programming (what a BIOS does before the OS): BAR base, then the command register. */
  programBar(i: number, base: number): void {
    const b = this.bars[i];
    if (!b) throw new Error(`${this.name} has no BAR${i}`);
    new DataView(this.config.buffer).setUint32(PCI_BAR0 + 4 * i, ((base & ~(b.size - 1)) | (b.kind === 'io' ? 1 : 0)) >>> 0, true);
    this.attachment?.remap();
  }

  readConfig(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > PCI_CONFIG_SIZE) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.config[offset + i];
    return v >>> 0;
  }

  writeConfig(offset: number, size: AccessSize, value: number): void {
    if (offset < 0 || offset + size > PCI_CONFIG_SIZE) return;
    const before = this.command;
    let barTouched = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i, b = (value >>> (8 * i)) & 0xff, m = this.writeMask[o];
      if (o === PCI_STATUS || o === PCI_STATUS + 1) { this.config[o] &= ~(b & m); continue; } // RW1C
      this.config[o] = (this.config[o] & ~m) | (b & m);
      if (o >= PCI_BAR0 && o < PCI_BAR0 + 24) barTouched = true;
    }
    this.onConfigWrite(offset, size);
    const after = this.command;
    if (barTouched || ((before ^ after) & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY)) !== 0) this.attachment?.remap();
    if ((before ^ after) & PCI_COMMAND_INTX_DISABLE) this.driveIntx();
  }

  /** Device-specific reaction to a configuration write (after the masked bytes landed). */
  protected onConfigWrite(_offset: number, _size: AccessSize): void { /* none by default */ }

  /** The device's INTx level; reflected in the status register and gated by the command register. */
  protected setInterrupt(level: boolean): void {
    this.intx = level;
    this.driveIntx();
  }

  private driveIntx(): void {
    if (this.intx) this.config[PCI_STATUS] |= PCI_STATUS_INTERRUPT; else this.config[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
    this.attachment?.setIntx(this.intx && (this.command & PCI_COMMAND_INTX_DISABLE) === 0);
  }

  /** Back to power-on configuration (device-specific state is the subclass's to reset). */
  resetConfigSpace(): void {
    this.config.set(this.resetConfig);
    this.intx = false;
    this.attachment?.remap();
    this.attachment?.setIntx(false);
  }

  saveConfig(): PciFunctionState { return { config: [...this.config] }; }

  restoreConfig(s: PciFunctionState): void {
    if (!Array.isArray(s.config) || s.config.length !== PCI_CONFIG_SIZE) throw new Error(`${this.name}: saved configuration space has the wrong size`);
    // Read-only bytes keep this build's values; only what the guest could write comes back.
    for (let i = 0; i < PCI_CONFIG_SIZE; i++) {
      const m = this.writeMask[i];
      this.config[i] = (this.config[i] & ~m) | (s.config[i] & m);
    }
    this.attachment?.remap();
  }
}
