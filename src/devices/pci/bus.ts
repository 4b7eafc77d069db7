/**
 * PCI bus 0 behind configuration mechanism #1 (PCI 3.0 section 3.2.2.3.2): the guest writes
 * enable | bus << 16 | device << 11 | function << 8 | register to CONFIG_ADDRESS (0xCF8, 32-bit only) and
 * accesses CONFIG_DATA (0xCFC-0xCFF). Functions are registered at device/function numbers; the bus maps
 * their BARs on the I/O and MMIO buses while the guest has decoding enabled, and routes INTx pins to GSIs
 * the way the DSDT's _PRT says (pciIntxGsi).
 */
import type { AccessSize, IoBus, MmioBus, PioDevice } from '../../platform/bus.js';
import type { IrqRouter } from '../irq.js';
import { PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_INTERRUPT_PIN, type PciFunction, type PciFunctionState } from './function.js';

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
export const PCI_DEVICES = 32;
export const PCI_FUNCTIONS = 8;
/** The four PCI interrupt lines (PIRQA-D) are wired to IOAPIC inputs 16-19 (level, active low in _PRT terms). */
export const PCI_IRQ_GSI_BASE = 16;

/** Swizzle of a PCI interrupt pin (1 = INTA#) of device `dev` onto a GSI; the _PRT lists the same table. */
export function pciIntxGsi(dev: number, pin: number): number {
  return PCI_IRQ_GSI_BASE + ((dev + pin - 1) & 3);
}

interface Slot { fn: PciFunction; dev: number; func: number; mapped: Array<{ kind: 'io' | 'mem32'; base: number; size: number } | null> }

export class PciBus {
  private address = 0;
  private readonly slots = new Map<number, Slot>();
  /** Intx assertion count per GSI (functions sharing a line). */
  private readonly lineUsers = new Map<number, Set<PciFunction>>();
  /** Reported when a BAR cannot be mapped (the guest programmed it over something else). */
  onConflict: ((msg: string) => void) | null = null;

  constructor(private readonly io: IoBus, private readonly mmio: MmioBus, private readonly irq: IrqRouter | null) {
    const addrPort: PioDevice = {
      pioRead: (_o, size) => size === 4 ? this.address : (1 << (8 * size)) - 1,
      // Only dword accesses reach CONFIG_ADDRESS (byte writes to 0xCF8 belong to other chipset registers).
      pioWrite: (_o, size, v) => { if (size === 4) this.address = (v & 0x80fffffc) >>> 0; },
    };
    const dataPort: PioDevice = {
      pioRead: (o, size) => this.configRead(o, size),
      pioWrite: (o, size, v) => this.configWrite(o, size, v),
    };
    io.register(PCI_CONFIG_ADDRESS_PORT, 1, addrPort, 'pci-config-address');
    io.register(PCI_CONFIG_DATA_PORT, 4, dataPort, 'pci-config-data');
  }

  /** Plugs `fn` in as device `dev`, function `func` of bus 0. */
  add(fn: PciFunction, dev: number, func = 0): void {
    if (!Number.isInteger(dev) || dev < 0 || dev >= PCI_DEVICES || !Number.isInteger(func) || func < 0 || func >= PCI_FUNCTIONS) {
      throw new RangeError(`PCI ${fn.name}: device ${dev} function ${func} is out of range`);
    }
    const key = dev * PCI_FUNCTIONS + func;
    if (this.slots.has(key)) throw new Error(`PCI ${dev}.${func} is already taken by ${this.slots.get(key)!.fn.name}`);
    const slot: Slot = { fn, dev, func, mapped: [null, null, null, null, null, null] };
    this.slots.set(key, slot);
    fn.attach({ remap: () => this.remap(slot), setIntx: (level) => this.setIntx(slot, level) });
    this.remap(slot);
  }

  /** Functions in device/function order (the firmware and the DSDT walk them). */
  functions(): Array<{ fn: PciFunction; dev: number; func: number }> {
    return [...this.slots.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => ({ fn: s.fn, dev: s.dev, func: s.func }));
  }

  private target(): { slot: Slot | null; reg: number } | null {
    const a = this.address;
    if ((a & 0x80000000) === 0) return null;
    const bus = (a >>> 16) & 0xff;
    if (bus !== 0) return { slot: null, reg: 0 };
    return { slot: this.slots.get((a >>> 8) & 0xff) ?? null, reg: a & 0xfc };
  }

  private configRead(o: number, size: AccessSize): number {
    const t = this.target();
    const ones = size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    if (t === null || t.slot === null) return ones; // no device answers: master abort reads all ones
    const reg = t.reg + o;
    if (reg + size > 256) return ones;
    return t.slot.fn.readConfig(reg, size);
  }

  private configWrite(o: number, size: AccessSize, v: number): void {
    const t = this.target();
    if (t === null || t.slot === null) return;
    const reg = t.reg + o;
    if (reg + size > 256) return;
    t.slot.fn.writeConfig(reg, size, v);
  }

  private remap(slot: Slot): void {
    const fn = slot.fn, cmd = fn.command;
    for (let i = 0; i < 6; i++) {
      const spec = fn.bars[i];
      const old = slot.mapped[i];
      let want: { kind: 'io' | 'mem32'; base: number; size: number } | null = null;
      if (spec) {
        const base = fn.barBase(i);
        if (spec.kind === 'io' && (cmd & PCI_COMMAND_IO) && base !== 0 && base + spec.size <= 0x10000) want = { kind: 'io', base, size: spec.size };
        if (spec.kind === 'mem32' && (cmd & PCI_COMMAND_MEMORY) && base !== 0) want = { kind: 'mem32', base, size: spec.size };
      }
      if (old && want && old.base === want.base) continue;
      if (old) {
        if (old.kind === 'io') this.io.unregister(old.base, spec!.io!); else this.mmio.unregister(old.base, spec!.mmio!);
        slot.mapped[i] = null;
      }
      if (!want || !spec) continue;
      const label = `${fn.name} BAR${i}`;
      // A guest may program a BAR over another device's ports; the BAR then stays unmapped (no host error).
      if (want.kind === 'io' && spec.io) {
        if (this.io.claimed(want.base, want.size)) { this.onConflict?.(`${label} at I/O 0x${want.base.toString(16)} overlaps another device; not decoded`); continue; }
        this.io.register(want.base, want.size, spec.io, label);
      } else if (want.kind === 'mem32' && spec.mmio) {
        if (this.mmio.overlaps(want.base, want.size)) { this.onConflict?.(`${label} at 0x${want.base.toString(16)} overlaps another device; not decoded`); continue; }
        this.mmio.register(want.base, want.size, spec.mmio, label);
      } else continue;
      slot.mapped[i] = want;
    }
  }

  private setIntx(slot: Slot, level: boolean): void {
    const pin = slot.fn.config[PCI_INTERRUPT_PIN];
    if (pin < 1 || pin > 4 || !this.irq) return;
    const gsi = pciIntxGsi(slot.dev, pin);
    let users = this.lineUsers.get(gsi);
    if (!users) { users = new Set(); this.lineUsers.set(gsi, users); }
    if (level) users.add(slot.fn); else users.delete(slot.fn);
    // Shared level line: asserted while any function asserts it (wired-OR).
    this.irq.setLevel(gsi, users.size > 0);
  }

  /** Machine reset: CONFIG_ADDRESS and every function's configuration space back to power-on. */
  reset(): void {
    this.address = 0;
    for (const s of this.slots.values()) s.fn.resetConfigSpace();
  }

  saveState(): PciBusState {
    return { address: this.address, functions: this.functions().map(({ fn, dev, func }) => ({ dev, func, state: fn.saveConfig() })) };
  }

  restoreState(s: PciBusState): void {
    this.address = s.address >>> 0;
    for (const f of s.functions) {
      const slot = this.slots.get(f.dev * PCI_FUNCTIONS + f.func);
      if (!slot) throw new Error(`saved PCI function ${f.dev}.${f.func} does not exist in this VM`);
      slot.fn.restoreConfig(f.state);
    }
  }
}

export interface PciBusState { address: number; functions: Array<{ dev: number; func: number; state: PciFunctionState }> }

/**
 * What a PC BIOS does before the OS starts: give every BAR an address (I/O from `ioBase` up, memory from
 * `memBase` up, each aligned to its size) and turn on decoding and bus mastering, so the OS finds the
 * devices already configured. INTx functions get their routed GSI in the interrupt line register.
 */
export function programPciLikeFirmware(bus: PciBus, ioBase: number, memBase: number): void {
  let io = ioBase, mem = memBase;
  for (const { fn, dev } of bus.functions()) {
    let cmd = 0;
    fn.bars.forEach((b, i) => {
      if (!b) return;
      if (b.kind === 'io') {
        io = Math.ceil(io / b.size) * b.size;
        fn.programBar(i, io); io += b.size; cmd |= PCI_COMMAND_IO;
      } else {
        const align = Math.max(b.size, 4096);
        mem = Math.ceil(mem / align) * align;
        fn.programBar(i, mem); mem += align; cmd |= PCI_COMMAND_MEMORY;
      }
    });
    const pin = fn.config[PCI_INTERRUPT_PIN];
    if (pin >= 1 && pin <= 4) fn.writeConfig(0x3c, 1, pciIntxGsi(dev, pin));
    if (cmd !== 0) fn.writeConfig(0x04, 2, fn.command | cmd | 0x4);
  }
}
