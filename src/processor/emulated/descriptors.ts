/**
 * Segment descriptor access shared by exceptions.ts and system.ts. OWNER: core-system.
 * Attributes use cpu-state's packed layout: type[3:0] s[4] dpl[6:5] p[7] avl[12] l[13] db[14] g[15].
 */
import { type CpuState } from './cpu-state.js';
import { readSys32, writeSys8 } from './mmu.js';

/** Last descriptor read: [0] low dword, [1] high dword, [2] bits 64..95 (system descriptors in long mode). */
export const desc = new Int32Array(3);
/** Linear address of the last descriptor read (for accessed/busy bit updates). */
export let descAddr = 0;

/** Read the 8-byte descriptor of `sel` from the GDT or LDT into `desc`; false when outside the table. */
export function fetchDescriptor(cpu: CpuState, sel: number, bytes: 8 | 16 = 8): boolean {
  const index = sel & 0xfff8;
  let base: number, limit: number;
  if ((sel & 4) !== 0) {
    if ((cpu.ldtrSel & 0xfffc) === 0) return false;
    base = cpu.ldtrBase; limit = cpu.ldtrLimit;
  } else {
    base = cpu.gdtrBase; limit = cpu.gdtrLimit;
  }
  if (index + bytes - 1 > limit) return false;
  descAddr = base + index;
  desc[0] = readSys32(cpu, descAddr);
  desc[1] = readSys32(cpu, descAddr + 4);
  desc[2] = bytes === 16 ? readSys32(cpu, descAddr + 8) : 0;
  return true;
}

export function descAttr(): number { return (desc[1] >>> 8) & 0xf0ff; }
export function descBase(): number {
  return (((desc[0] >>> 16) | ((desc[1] & 0xff) << 16) | (desc[1] & 0xff000000)) >>> 0);
}
/** Base of a 16-byte system descriptor (LDT/TSS in long mode), signed canonical form. */
export function descBase64(): number { return (desc[2] | 0) * 4294967296 + descBase(); }
export function descLimit(): number {
  const raw = (desc[0] & 0xffff) | (desc[1] & 0xf0000);
  return (desc[1] & 0x800000) !== 0 ? raw * 4096 + 0xfff : raw;
}

/** Set the accessed bit of a code/data descriptor just read (hardware does this on every load). */
export function markAccessed(cpu: CpuState): void {
  if ((desc[1] & 0x100) === 0) {
    desc[1] |= 0x100;
    writeSys8(cpu, descAddr + 5, (desc[1] >>> 8) & 0xff);
  }
}

/** Load a segment register's hidden part from `desc`. */
export function loadFromDesc(cpu: CpuState, seg: number, sel: number): void {
  cpu.segSel[seg] = sel;
  cpu.segBase[seg] = descBase();
  cpu.segLimit[seg] = descLimit();
  cpu.segAttr[seg] = descAttr();
}

/** 64-bit value at linear `lin` read as supervisor, in signed canonical form. */
export function readSys64Canon(cpu: CpuState, lin: number): number {
  const lo = readSys32(cpu, lin);
  const hi = readSys32(cpu, lin + 4) | 0;
  return hi * 4294967296 + lo;
}

/** Put back a descriptor saved earlier (when two descriptors are validated before either is committed). */
export function restoreDesc(lo: number, hi: number, addr: number): void {
  desc[0] = lo; desc[1] = hi; desc[2] = 0; descAddr = addr;
}
