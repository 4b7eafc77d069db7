/**
 * Translation between hyperts' processor-neutral register descriptions (BootCpuState, snapshots) and
 * the kernel's struct kvm_regs / struct kvm_sregs bytes. Pure functions: unit-tested without /dev/kvm.
 */
import type { BootCpuState } from '../backend.js';
import { DTABLE, GPR_OFFSET, KVM_REGS_SIZE, KVM_SREGS_SIZE, REGS, SEG, SREGS } from './abi.js';

const TWO32 = 0x1_0000_0000;

export function getU64(v: DataView, off: number): number {
  return v.getUint32(off + 4, true) * TWO32 + v.getUint32(off, true);
}
/** Writes a non-negative integer < 2^64 given as a double (exact below 2^53). */
export function setU64(v: DataView, off: number, value: number): void {
  v.setUint32(off, value >>> 0, true);
  v.setUint32(off + 4, Math.floor(value / TWO32) >>> 0, true);
}

interface Segment {
  base: number; limit: number; selector: number; type: number; present: number; dpl: number;
  db: number; s: number; l: number; g: number; unusable?: number;
}

function writeSegment(v: DataView, off: number, s: Segment): void {
  setU64(v, off + SEG.base, s.base);
  v.setUint32(off + SEG.limit, s.limit >>> 0, true);
  v.setUint16(off + SEG.selector, s.selector, true);
  v.setUint8(off + SEG.type, s.type);
  v.setUint8(off + SEG.present, s.present);
  v.setUint8(off + SEG.dpl, s.dpl);
  v.setUint8(off + SEG.db, s.db);
  v.setUint8(off + SEG.s, s.s);
  v.setUint8(off + SEG.l, s.l);
  v.setUint8(off + SEG.g, s.g);
  v.setUint8(off + SEG.avl, 0);
  v.setUint8(off + SEG.unusable, s.unusable ?? 0);
}

const CR0_PE = 0x1;
const CR0_ET = 0x10;
const CR0_PG = 0x8000_0000;
const CR4_PAE = 0x20;
const EFER_LME = 0x100;
const EFER_LMA = 0x400;

/**
 * struct kvm_regs for the loader's state. Real mode: `rip` is the offset within CS (IP).
 */
export function encodeBootRegs(s: BootCpuState): Uint8Array {
  const b = new Uint8Array(KVM_REGS_SIZE);
  const v = new DataView(b.buffer);
  for (let i = 0; i < 16; i++) {
    const x = s.gpr[i];
    if (x !== undefined) setU64(v, GPR_OFFSET[i], x);
  }
  setU64(v, REGS.rip, s.rip);
  setU64(v, REGS.rflags, (s.rflags ?? 0x2) | 0x2); // bit 1 is reserved-as-one
  return b;
}

/**
 * struct kvm_sregs for the loader's state, starting from the vCPU's current sregs (`current`, from
 * KVM_GET_SREGS) so fields the loader does not describe (APIC base) keep the kernel's values.
 *
 * Real mode convention: `cs`/`ds` are real-mode segment values (base = selector * 16), `rip` is IP.
 * Protected and long mode: flat 4 GiB segments with the given GDT selectors (Linux boot protocol:
 * CS 0x10, data 0x18).
 */
export function encodeBootSregs(s: BootCpuState, current: Uint8Array): Uint8Array {
  const b = new Uint8Array(KVM_SREGS_SIZE);
  b.set(current.subarray(0, KVM_SREGS_SIZE));
  const v = new DataView(b.buffer);
  const real = s.mode === 'real';
  const long = s.mode === 'long64';
  const csSel = s.cs ?? (real ? 0 : 0x10);
  const dsSel = s.ds ?? (real ? 0 : 0x18);
  const code: Segment = real
    ? { base: csSel * 16, limit: 0xffff, selector: csSel, type: 0xb, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0 }
    : { base: 0, limit: 0xffff_ffff, selector: csSel, type: 0xb, present: 1, dpl: 0, db: long ? 0 : 1, s: 1, l: long ? 1 : 0, g: 1 };
  const data: Segment = real
    ? { base: dsSel * 16, limit: 0xffff, selector: dsSel, type: 0x3, present: 1, dpl: 0, db: 0, s: 1, l: 0, g: 0 }
    : { base: 0, limit: 0xffff_ffff, selector: dsSel, type: 0x3, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1 };
  writeSegment(v, SREGS.cs, code);
  for (const off of [SREGS.ds, SREGS.es, SREGS.fs, SREGS.gs, SREGS.ss]) writeSegment(v, off, data);
  // VM entry requires a present busy TSS and a usable-or-null LDT even when the guest never loads them.
  writeSegment(v, SREGS.tr, { base: 0, limit: 0xffff, selector: 0, type: real ? 0x3 : 0xb, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0 });
  writeSegment(v, SREGS.ldt, { base: 0, limit: 0xffff, selector: 0, type: 0x2, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0 });
  setU64(v, SREGS.gdt + DTABLE.base, s.gdtBase ?? 0);
  v.setUint16(SREGS.gdt + DTABLE.limit, s.gdtLimit ?? (real ? 0xffff : 0), true);
  setU64(v, SREGS.idt + DTABLE.base, 0);
  v.setUint16(SREGS.idt + DTABLE.limit, real ? 0x3ff : 0, true);
  const cr0 = s.cr0 ?? (real ? CR0_ET : long ? CR0_PG | CR0_ET | CR0_PE : CR0_ET | CR0_PE);
  const cr4 = s.cr4 ?? (long ? CR4_PAE : 0);
  let efer = s.efer ?? (long ? EFER_LME | EFER_LMA : 0);
  // KVM refuses sregs where EFER.LMA disagrees with LME && CR0.PG.
  if (long) efer |= EFER_LME | EFER_LMA;
  setU64(v, SREGS.cr0, cr0 >>> 0);
  setU64(v, SREGS.cr2, 0);
  setU64(v, SREGS.cr3, s.cr3 ?? 0);
  setU64(v, SREGS.cr4, cr4 >>> 0);
  setU64(v, SREGS.cr8, 0);
  setU64(v, SREGS.efer, efer >>> 0);
  b.fill(0, SREGS.interrupt_bitmap, SREGS.interrupt_bitmap + 32);
  return b;
}

const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const SEG_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss'] as const;

/** Register names and values as `info registers` shows them (64-bit values above 2^53 as bigint). */
export function decodeSnapshot(regs: Uint8Array, sregs: Uint8Array): Record<string, number | bigint> {
  const r = new DataView(regs.buffer, regs.byteOffset, KVM_REGS_SIZE);
  const s = new DataView(sregs.buffer, sregs.byteOffset, KVM_SREGS_SIZE);
  const big = (v: DataView, off: number): number | bigint => {
    const hi = v.getUint32(off + 4, true);
    return hi < 0x200000 ? getU64(v, off) : v.getBigUint64(off, true);
  };
  const out: Record<string, number | bigint> = {};
  GPR_NAMES.forEach((n, i) => { out[n] = big(r, GPR_OFFSET[i]); });
  out.rip = big(r, REGS.rip);
  out.eflags = r.getUint32(REGS.rflags, true);
  for (const n of SEG_NAMES) {
    out[n] = s.getUint16(SREGS[n] + SEG.selector, true);
    out[`${n}_base`] = big(s, SREGS[n] + SEG.base);
  }
  out.cr0 = big(s, SREGS.cr0);
  out.cr2 = big(s, SREGS.cr2);
  out.cr3 = big(s, SREGS.cr3);
  out.cr4 = big(s, SREGS.cr4);
  out.cr8 = big(s, SREGS.cr8);
  out.efer = big(s, SREGS.efer);
  out.apic_base = big(s, SREGS.apic_base);
  out.gdt_base = big(s, SREGS.gdt + DTABLE.base);
  out.gdt_limit = s.getUint16(SREGS.gdt + DTABLE.limit, true);
  out.idt_base = big(s, SREGS.idt + DTABLE.base);
  out.idt_limit = s.getUint16(SREGS.idt + DTABLE.limit, true);
  return out;
}
