/**
 * Guest Physical Address Descriptor Lists: a guest buffer described page by page (contract §6.3).
 * PFNs come from the guest, so every page is checked to be RAM before the GPADL is accepted, and every
 * access is bounds-checked against the described byte range.
 */
import type { GuestMemory } from '../platform/memory.js';

export const GPADL_MAX_PAGES = 16384; // 64 MiB per GPADL: far above Linux's 16 MiB netvsc buffer
const PAGE = 4096;

export class Gpadl {
  /** Byte offset in guest RAM of every page (validated at completion). */
  readonly pageOffsets: number[] = [];
  complete = false;
  /** Set while the GPADL backs an open channel's rings. */
  inUseBy: number | null = null;

  constructor(readonly handle: number, readonly relid: number, readonly byteCount: number, readonly byteOffset: number,
    readonly expectedPages: number, readonly pfns: number[] = []) {}

  /** Add PFNs from a header/body message; false when the guest sent more than it announced. */
  addPfns(pfns: number[]): boolean {
    if (this.pfns.length + pfns.length > this.expectedPages) return false;
    for (const p of pfns) this.pfns.push(p);
    return true;
  }

  get received(): boolean { return this.pfns.length === this.expectedPages; }

  /** Resolve all pages; returns an error text, or null on success. */
  finish(memory: GuestMemory): string | null {
    for (const pfn of this.pfns) {
      const gpa = pfn * PAGE;
      if (!Number.isSafeInteger(gpa) || !memory.isRam(gpa, PAGE)) return `PFN 0x${pfn.toString(16)} is not guest RAM`;
      this.pageOffsets.push(memory.offsetOf(gpa));
    }
    this.complete = true;
    return null;
  }

  get size(): number { return this.byteCount; }

  /** Copy `len` bytes at `offset` of the described buffer out of guest RAM; null when out of bounds. */
  read(memory: GuestMemory, offset: number, len: number): Uint8Array | null {
    if (!this.inBounds(offset, len)) return null;
    const out = new Uint8Array(len);
    this.walk(offset, len, (ramOff, pos, n) => out.set(memory.bytes.subarray(ramOff, ramOff + n), pos));
    return out;
  }

  /** Copy `data` into the described buffer at `offset`; false when out of bounds. */
  write(memory: GuestMemory, offset: number, data: Uint8Array): boolean {
    if (!this.inBounds(offset, data.length)) return false;
    this.walk(offset, data.length, (ramOff, pos, n, page, inPage) => {
      memory.bytes.set(data.subarray(pos, pos + n), ramOff);
      memory.deviceWrote(this.pfns[page] * PAGE + inPage, n);
    });
    return true;
  }

  private inBounds(offset: number, len: number): boolean {
    return this.complete && Number.isInteger(offset) && Number.isInteger(len) && offset >= 0 && len >= 0 && offset + len <= this.byteCount;
  }

  private walk(offset: number, len: number, f: (ramOff: number, pos: number, n: number, page: number, inPage: number) => void): void {
    let abs = this.byteOffset + offset, pos = 0;
    while (pos < len) {
      const page = Math.floor(abs / PAGE), inPage = abs % PAGE;
      const n = Math.min(len - pos, PAGE - inPage);
      f(this.pageOffsets[page] + inPage, pos, n, page, inPage);
      pos += n; abs += n;
    }
  }
}
