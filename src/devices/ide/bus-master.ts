/**
 * PIIX4 bus-master IDE (SFF-8038i): per channel a command register (start, direction), a status register
 * (active, error, interrupt, drive DMA capable) and the physical address of a PRD table. A PRD entry is a
 * 32-bit buffer address, a 16-bit byte count (0 = 64 KiB) and bit 31 of its second dword as end of table.
 * The table is guest input: it is walked with a bound, and every buffer must be RAM, or the DMA aborts.
 */
import type { GuestMemory } from '../../platform/memory.js';

export const BM_CMD_START = 0x01, BM_CMD_TO_MEMORY = 0x08;
export const BM_STATUS_ACTIVE = 0x01, BM_STATUS_ERROR = 0x02, BM_STATUS_INTERRUPT = 0x04;
export const BM_STATUS_DRIVE0_DMA = 0x20, BM_STATUS_DRIVE1_DMA = 0x40;
/** A PRD table may not cross a 64 KiB boundary, so it holds at most 8192 entries. */
export const MAX_PRD_ENTRIES = 8192;

export interface DmaSegment { addr: number; len: number }

export class PrdError extends Error {}

/**
 * The buffers of the PRD table at `table`, enough to cover `need` bytes (entries past that are not read,
 * as the hardware stops fetching once the device is done). Throws PrdError when an entry lies outside RAM,
 * the table ends early, or no end-of-table bit comes within MAX_PRD_ENTRIES.
 * Returns the segments and whether the table offered more than `need` (the engine then stays active).
 * With `allowShort` (ATAPI, where `need` is only an upper bound) a table that ends early is fine.
 */
export function walkPrdTable(mem: GuestMemory, table: number, need: number, allowShort = false): { segments: DmaSegment[]; longer: boolean } {
  const segments: DmaSegment[] = [];
  let have = 0;
  let at = (table & ~3) >>> 0;
  for (let i = 0; i < MAX_PRD_ENTRIES; i++, at += 8) {
    if (!mem.isRam(at, 8)) throw new PrdError(`PRD entry at 0x${at.toString(16)} is outside guest RAM`);
    const addr = (mem.view.getUint32(mem.offsetOf(at), true) & ~1) >>> 0;
    const hi = mem.view.getUint32(mem.offsetOf(at) + 4, true);
    let len = hi & 0xfffe;
    if (len === 0) len = 0x10000;
    const eot = (hi & 0x8000_0000) !== 0;
    const take = Math.min(len, need - have);
    if (take > 0) {
      if (!mem.isRam(addr, take)) throw new PrdError(`PRD buffer 0x${addr.toString(16)}+${take} is outside guest RAM`);
      const last = segments[segments.length - 1];
      if (last && last.addr + last.len === addr) last.len += take; else segments.push({ addr, len: take });
      have += take;
    }
    if (have >= need) return { segments, longer: len > take || !eot };
    if (eot && allowShort) return { segments, longer: false };
    if (eot) throw new PrdError(`PRD table covers ${have} bytes, the command moves ${need}`);
  }
  throw new PrdError(`PRD table at 0x${table.toString(16)} has no end-of-table entry within ${MAX_PRD_ENTRIES} entries`);
}

/** Copies `src` into the segments starting `skip` bytes into them. */
export function scatter(mem: GuestMemory, segs: DmaSegment[], skip: number, src: Uint8Array): void {
  let pos = 0, off = skip;
  for (const s of segs) {
    if (pos >= src.length) return;
    if (off >= s.len) { off -= s.len; continue; }
    const n = Math.min(s.len - off, src.length - pos);
    mem.slice(s.addr + off, n).set(src.subarray(pos, pos + n));
    mem.deviceWrote(s.addr + off, n);
    pos += n; off = 0;
  }
}

/** Fills `dst` from the segments starting `skip` bytes into them. */
export function gather(mem: GuestMemory, segs: DmaSegment[], skip: number, dst: Uint8Array): void {
  let pos = 0, off = skip;
  for (const s of segs) {
    if (pos >= dst.length) return;
    if (off >= s.len) { off -= s.len; continue; }
    const n = Math.min(s.len - off, dst.length - pos);
    dst.set(mem.slice(s.addr + off, n), pos);
    pos += n; off = 0;
  }
}

/** One channel's bus-master registers. */
export class BusMasterRegs {
  command = 0;
  status = 0;
  prdTable = 0;
  /** Set by the channel: the guest set START (true) or cleared it (false). */
  onStartChange: ((start: boolean) => void) | null = null;

  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readByte(offset + i) << (8 * i);
    return v >>> 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  private readByte(o: number): number {
    switch (o) {
      case 0: return this.command;
      case 2: return this.status;
      case 4: case 5: case 6: case 7: return (this.prdTable >>> (8 * (o - 4))) & 0xff;
      default: return 0;
    }
  }

  private writeByte(o: number, b: number): void {
    switch (o) {
      case 0: {
        const was = this.command & BM_CMD_START;
        this.command = b & (BM_CMD_START | BM_CMD_TO_MEMORY);
        const now = this.command & BM_CMD_START;
        if (now && !was) { this.status |= BM_STATUS_ACTIVE; this.onStartChange?.(true); }
        if (!now && was) { this.status &= ~BM_STATUS_ACTIVE; this.onStartChange?.(false); }
        break;
      }
      case 2:
        // Error and interrupt are write-one-to-clear; the drive-capable bits are plain read/write.
        this.status = (this.status & ~(b & (BM_STATUS_ERROR | BM_STATUS_INTERRUPT)) & ~0x60) | (b & 0x60);
        break;
      case 4: case 5: case 6: case 7: {
        const sh = 8 * (o - 4);
        this.prdTable = ((this.prdTable & ~(0xff << sh)) | (b << sh)) >>> 0;
        this.prdTable = (this.prdTable & ~3) >>> 0;
        break;
      }
    }
  }

  reset(): void { this.command = 0; this.status &= 0x60; this.prdTable = 0; }
}
