/**
 * Device buses: port I/O and MMIO. A device model implements the small interfaces below and is
 * attached over an address range; the bus hands it the offset within its range (Firecracker/crosvm style).
 * Values are unsigned numbers of 1, 2 or 4 bytes; wider MMIO accesses are split by the caller.
 * Unclaimed reads return all ones, unclaimed writes are dropped (like real hardware).
 */
export type AccessSize = 1 | 2 | 4;

export interface PioDevice {
  pioRead(offset: number, size: AccessSize): number;
  pioWrite(offset: number, size: AccessSize, value: number): void;
}

export interface MmioDevice {
  mmioRead(offset: number, size: AccessSize): number;
  mmioWrite(offset: number, size: AccessSize, value: number): void;
}

interface Range<D> { start: number; end: number; dev: D; name: string }
/** A slot freed by `unregister` (PCI BARs move when the guest reprograms them). */
const FREE = { start: 0, end: 0, dev: null, name: '' } as unknown as Range<never>;

const ONES = [0, 0xff, 0xffff, 0, 0xffffffff];

export class IoBus {
  /** Per-port lookup: port -> index into `ranges` (+1), 0 if unclaimed. 64K entries make PIO O(1). */
  private readonly map = new Uint16Array(0x10000);
  private readonly ranges: Range<PioDevice>[] = [];
  /** Called for accesses to unclaimed ports (debug tracing). */
  onUnhandled: ((port: number, size: AccessSize, write: boolean, value: number) => void) | null = null;

  register(start: number, length: number, dev: PioDevice, name: string): void {
    if (start < 0 || length <= 0 || start + length > 0x10000) throw new RangeError(`bad I/O range for ${name}`);
    for (let p = start; p < start + length; p++) {
      if (this.map[p] !== 0) throw new Error(`I/O port 0x${p.toString(16)} of ${name} already claimed by ${this.ranges[this.map[p] - 1].name}`);
    }
    // Reuse a freed slot, so a guest that keeps moving a BAR cannot grow the table past the map's 16 bits.
    let slot = this.ranges.indexOf(FREE);
    if (slot < 0) { slot = this.ranges.length; this.ranges.push(FREE); }
    this.ranges[slot] = { start, end: start + length, dev, name };
    const idx = slot + 1;
    for (let p = start; p < start + length; p++) this.map[p] = idx;
  }

  /** True when any port of [start, start+length) is claimed. */
  claimed(start: number, length: number): boolean {
    for (let p = start; p < start + length && p < 0x10000; p++) if (this.map[p] !== 0) return true;
    return false;
  }

  /** Releases the range `dev` registered at `start` (no-op if there is none). */
  unregister(start: number, dev: PioDevice): void {
    const i = this.ranges.findIndex((r) => r.start === start && r.dev === dev);
    if (i < 0) return;
    const r = this.ranges[i];
    for (let p = r.start; p < r.end; p++) this.map[p] = 0;
    this.ranges[i] = FREE;
  }

  read(port: number, size: AccessSize): number {
    const i = this.map[port & 0xffff];
    if (i === 0) { this.onUnhandled?.(port, size, false, 0); return ONES[size]; }
    const r = this.ranges[i - 1];
    return r.dev.pioRead(port - r.start, size);
  }

  write(port: number, size: AccessSize, value: number): void {
    const i = this.map[port & 0xffff];
    if (i === 0) { this.onUnhandled?.(port, size, true, value); return; }
    const r = this.ranges[i - 1];
    r.dev.pioWrite(port - r.start, size, value);
  }
}

export class MmioBus {
  private readonly ranges: Range<MmioDevice>[] = [];
  private last: Range<MmioDevice> | null = null;
  onUnhandled: ((addr: number, size: AccessSize, write: boolean, value: number) => void) | null = null;

  register(start: number, length: number, dev: MmioDevice, name: string): void {
    const end = start + length;
    for (const r of this.ranges) {
      if (start < r.end && r.start < end) throw new Error(`MMIO range of ${name} overlaps ${r.name}`);
    }
    this.ranges.push({ start, end, dev, name });
  }

  /** True when some range overlaps [start, start+length). */
  overlaps(start: number, length: number): boolean {
    return this.ranges.some((r) => start < r.end && r.start < start + length);
  }

  /** Releases the range `dev` registered at `start` (no-op if there is none). */
  unregister(start: number, dev: MmioDevice): void {
    const i = this.ranges.findIndex((r) => r.start === start && r.dev === dev);
    if (i < 0) return;
    this.ranges.splice(i, 1);
    this.last = null;
  }

  private find(addr: number): Range<MmioDevice> | null {
    const l = this.last;
    if (l !== null && addr >= l.start && addr < l.end) return l;
    for (const r of this.ranges) {
      if (addr >= r.start && addr < r.end) { this.last = r; return r; }
    }
    return null;
  }

  /** True when some device claims `addr`. */
  claims(addr: number): boolean { return this.find(addr) !== null; }

  read(addr: number, size: AccessSize): number {
    const r = this.find(addr);
    if (r === null) { this.onUnhandled?.(addr, size, false, 0); return ONES[size]; }
    return r.dev.mmioRead(addr - r.start, size);
  }

  write(addr: number, size: AccessSize, value: number): void {
    const r = this.find(addr);
    if (r === null) { this.onUnhandled?.(addr, size, true, value); return; }
    r.dev.mmioWrite(addr - r.start, size, value);
  }
}
