/**
 * GPA-direct packets (VM_PKT_DATA_USING_GPA_DIRECT): the guest names the memory of a transfer as page
 * ranges after the packet descriptor, and the host reads or writes those pages itself. storvsc sends one
 * multi-page range per request; netvsc sends one single-page range per fragment.
 *
 * Layout of the packet extension (after the 16-byte descriptor): u32 reserved, u32 range count, then per
 * range: u32 byte count, u32 byte offset into the first page, u64 PFNs, as many as the range spans.
 * Everything is guest input: counts, offsets and PFNs are checked, and guest RAM is checked on every copy.
 */
import type { GuestMemory } from '../platform/memory.js';

const PAGE = 4096;

export class GpaRangeError extends Error {}

/** A scatter-gather list of guest physical memory: segments in order, none crossing a page. */
export class GuestBuffer {
  /** Segment i is [gpa[i], gpa[i] + len[i]); each lies within one page. */
  constructor(readonly gpas: number[], readonly lens: number[], readonly length: number) {}

  static empty(): GuestBuffer { return new GuestBuffer([], [], 0); }

  /** Copies guest memory [offset, offset+dst.length) of this buffer into dst. Throws GpaRangeError on non-RAM. */
  readInto(memory: GuestMemory, offset: number, dst: Uint8Array): void { this.walk(memory, offset, dst.length, (ram, at, n, done) => dst.set(ram.subarray(at, at + n), done)); }

  /** Copies src into guest memory at [offset, offset+src.length) of this buffer. */
  writeFrom(memory: GuestMemory, offset: number, src: Uint8Array): void {
    this.walk(memory, offset, src.length, (ram, at, n, done, gpa) => { ram.set(src.subarray(done, done + n), at); memory.deviceWrote(gpa, n); });
  }

  private walk(memory: GuestMemory, offset: number, count: number, f: (ram: Uint8Array, at: number, n: number, done: number, gpa: number) => void): void {
    if (offset < 0 || count < 0 || offset + count > this.length) throw new GpaRangeError(`access ${offset}+${count} outside a guest buffer of ${this.length} bytes`);
    let skip = offset, done = 0;
    for (let i = 0; i < this.gpas.length && done < count; i++) {
      const len = this.lens[i];
      if (skip >= len) { skip -= len; continue; }
      const n = Math.min(len - skip, count - done);
      const gpa = this.gpas[i] + skip;
      if (!memory.isRam(gpa, n)) throw new GpaRangeError(`guest buffer page 0x${gpa.toString(16)} is not RAM`);
      f(memory.bytes, memory.offsetOf(gpa), n, done, gpa);
      done += n;
      skip = 0;
    }
  }
}

/**
 * Parses the page ranges of a GPA-direct packet's extension into one GuestBuffer (all ranges concatenated).
 * `maxBytes` bounds the total a guest can name in one packet.
 */
export function parseGpaDirect(extension: Uint8Array, maxBytes: number): GuestBuffer {
  const v = new DataView(extension.buffer, extension.byteOffset, extension.byteLength);
  if (extension.length < 8) throw new GpaRangeError(`GPA-direct header of ${extension.length} bytes (need 8)`);
  const rangeCount = v.getUint32(4, true);
  let at = 8, total = 0;
  const gpas: number[] = [], lens: number[] = [];
  for (let r = 0; r < rangeCount; r++) {
    if (at + 8 > extension.length) throw new GpaRangeError(`GPA range ${r} of ${rangeCount} runs past the packet`);
    const len = v.getUint32(at, true), off = v.getUint32(at + 4, true);
    at += 8;
    if (off >= PAGE) throw new GpaRangeError(`GPA range ${r}: offset ${off} is not inside the first page`);
    if (len === 0) continue;
    total += len;
    if (total > maxBytes) throw new GpaRangeError(`GPA ranges name more than ${maxBytes} bytes`);
    const pages = Math.ceil((off + len) / PAGE);
    if (at + pages * 8 > extension.length) throw new GpaRangeError(`GPA range ${r} lists ${pages} pages but the packet ends first`);
    let left = len, inPage = off;
    for (let p = 0; p < pages; p++, at += 8) {
      const lo = v.getUint32(at, true), hi = v.getUint32(at + 4, true);
      if (hi >= 1 << 20) throw new GpaRangeError(`GPA range ${r}: PFN beyond the 52-bit physical space`);
      const gpa = (hi * 0x1_0000_0000 + lo) * PAGE + inPage;
      const n = Math.min(PAGE - inPage, left);
      gpas.push(gpa); lens.push(n);
      left -= n; inPage = 0;
    }
  }
  return new GuestBuffer(gpas, lens, total);
}
