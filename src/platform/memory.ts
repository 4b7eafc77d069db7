/**
 * Guest physical memory: one contiguous RAM block shared by the processor backends and device models.
 * RAM below 4 GiB stops at `lowRamEnd` (the MMIO hole holds the IOAPIC, HPET and LAPIC windows);
 * anything above continues at 4 GiB. Addresses are plain numbers (< 2^53).
 */
export const FOUR_GIB = 0x1_0000_0000;
export const MMIO_HOLE_START = 0xc000_0000;

/**
 * Guest RAM placed inside a WebAssembly.Memory after per-vCPU areas (emulated processor: translated wasm code
 * reads registers, the TLB and RAM from one linear memory). Area k is [k * areaSize, (k + 1) * areaSize).
 */
export interface WasmRamLayout {
  readonly memory: WebAssembly.Memory;
  /** Byte offset of guest RAM in the memory. */
  readonly ramBase: number;
  readonly areaSize: number;
  /** Number of per-vCPU areas before RAM. */
  readonly areas: number;
}

export class GuestMemory {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Bytes of RAM mapped below 4 GiB. */
  readonly lowRamEnd: number;
  /** Bytes of RAM mapped at and above 4 GiB. */
  readonly highRamSize: number;

  /** `buffer` (optional) holds RAM at `byteOffset`; `wasm` describes it when it is a WebAssembly.Memory. */
  constructor(readonly size: number, buffer?: ArrayBufferLike, byteOffset = 0, readonly wasm: WasmRamLayout | null = null) {
    if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(`guest memory size must be a positive multiple of 4096 bytes, got ${size}`);
    }
    this.bytes = buffer ? new Uint8Array(buffer, byteOffset, size) : new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
    this.lowRamEnd = Math.min(size, MMIO_HOLE_START);
    this.highRamSize = size - this.lowRamEnd;
  }

  /** Offset into `bytes` of guest physical address `gpa`, or -1 if it is not RAM. */
  offsetOf(gpa: number): number {
    if (gpa >= 0 && gpa < this.lowRamEnd) return gpa;
    if (gpa >= FOUR_GIB && gpa < FOUR_GIB + this.highRamSize) return gpa - FOUR_GIB + this.lowRamEnd;
    return -1;
  }

  /** True when [gpa, gpa+len) is entirely RAM (and contiguous in `bytes`). */
  isRam(gpa: number, len: number): boolean {
    const o = this.offsetOf(gpa);
    return o >= 0 && this.offsetOf(gpa + len - 1) === o + len - 1;
  }

  /** A view of guest RAM; throws a RangeError when the range is not RAM (callers validate guest input first). */
  slice(gpa: number, len: number): Uint8Array {
    if (!this.isRam(gpa, len)) throw new RangeError(`guest range 0x${gpa.toString(16)}+${len} is not RAM`);
    const o = this.offsetOf(gpa);
    return this.bytes.subarray(o, o + len);
  }

  write(gpa: number, data: Uint8Array): void {
    this.slice(gpa, data.length).set(data);
    this.deviceWrote(gpa, data.length);
  }

  private readonly writeListeners: Array<(firstPage: number, lastPage: number) => void> = [];

  /**
   * `fn` learns of every write to RAM that did not come from a processor store (device DMA, loaders), by page
   * number. On x86, DMA is coherent with instruction fetch: the emulated processor drops code it decoded from
   * those pages, or a page the guest reads from disk where code used to be would run the old instructions.
   */
  onDeviceWrite(fn: (firstPage: number, lastPage: number) => void): void { this.writeListeners.push(fn); }

  /** Devices call this after writing guest RAM at [gpa, gpa+len) directly. */
  deviceWrote(gpa: number, len: number): void {
    const ls = this.writeListeners;
    if (len <= 0 || ls.length === 0) return;
    const first = Math.floor(gpa / 4096), last = Math.floor((gpa + len - 1) / 4096);
    for (let i = 0; i < ls.length; i++) ls[i](first, last);
  }

  /** Physical RAM ranges as [start, length] pairs, for the e820 map and the KVM memory slots. */
  ranges(): Array<[number, number]> {
    const r: Array<[number, number]> = [[0, this.lowRamEnd]];
    if (this.highRamSize > 0) r.push([FOUR_GIB, this.highRamSize]);
    return r;
  }
}
