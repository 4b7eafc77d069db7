/**
 * System instructions and state: segment loading, far control transfers, IRET, descriptor tables, control
 * and debug registers, port I/O with IOPL/TSS checks, MSRs, CPUID, TSC, SYSCALL/SYSRET/SYSENTER/SWAPGS,
 * HLT, mode recomputation, reset. OWNER: core-system.
 *
 * Conventions: `nextRip` is the address after the instruction; functions that transfer control set cpu.rip.
 * 64-bit results: low half returned, high half in cpu.memHi. cpu.codeBits is the CS default size in bits.
 * Not supported (raise #GP): task switches (task gates, TSS selectors in far jmp/call), call gates,
 * virtual-8086 mode, IRET to virtual-8086.
 */
import { type CpuState, Mode, Seg, F } from './cpu-state.js';
import type { BootCpuState } from '../backend.js';
import { raise, setRsp } from './exceptions.js';
import { getRflags, setRflags, setFlagBit } from './flags.js';
import * as mmu from './mmu.js';
import { fetchDescriptor, descAttr, descBase, descBase64, descLimit, desc, descAddr, markAccessed, loadFromDesc, restoreDesc } from './descriptors.js';
import { readMsr, writeMsr, guestTsc } from './msr.js';
import { execCpuid, CPU_SIGNATURE } from './cpuid.js';
import { updateDebugArm, generalDetect, queueDebugTrap, watchPort, DR6_BS } from './debug.js';

const TWO32 = 4294967296;
const ZF = 0x40;
const CR0_PE = 1, CR0_TS = 8, CR0_ET = 0x10, CR0_NE = 0x20, CR0_WP = 0x10000, CR0_NW = 1 << 29, CR0_CD = 1 << 30, CR0_PG = 1 << 31;
const CR0_VALID = 0xe005003f;
const CR4_VALID = 0x7fc | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 24); // TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT SMEP SMAP PKE PKS
const CR4_PAGING = 0xb0 | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 24); // bits that change what a translation allows
const EFER_SCE = 1, EFER_LME = 0x100, EFER_LMA = 0x400;

const rspOf = (cpu: CpuState): number => cpu.gpr[9] * TWO32 + (cpu.gpr[8] >>> 0);
function setGpr(cpu: CpuState, r: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  cpu.gpr[2 * r] = (v - hi * TWO32) | 0;
  cpu.gpr[2 * r + 1] = hi | 0;
}
const isCanonical = (v: number): boolean => v >= -0x800000000000 && v < 0x800000000000;
const requireCpl0 = (cpu: CpuState): void => { if (cpu.cpl !== 0) raise(cpu, 13, 0); };

// ------------------------------------------------------------------ reset / boot / mode

export function resetCpu(cpu: CpuState): void {
  cpu.gpr.fill(0);
  cpu.gpr[4] = CPU_SIGNATURE; // EDX = processor signature after reset
  cpu.rip = 0xfff0;
  setRflags(cpu, 2);
  for (let s = 0; s < 6; s++) {
    cpu.segSel[s] = 0; cpu.segBase[s] = 0; cpu.segLimit[s] = 0xffff; cpu.segAttr[s] = 0x93;
  }
  cpu.segSel[Seg.CS] = 0xf000; cpu.segBase[Seg.CS] = 0xffff0000; cpu.segAttr[Seg.CS] = 0x9b;
  cpu.gdtrBase = 0; cpu.gdtrLimit = 0xffff; cpu.idtrBase = 0; cpu.idtrLimit = 0xffff;
  cpu.ldtrSel = 0; cpu.ldtrBase = 0; cpu.ldtrLimit = 0xffff; cpu.ldtrAttr = 0x82;
  cpu.trSel = 0; cpu.trBase = 0; cpu.trLimit = 0xffff; cpu.trAttr = 0x8b;
  cpu.cr0 = 0x60000010; cpu.cr2 = 0; cpu.cr3 = 0; cpu.cr4 = 0; cpu.efer = 0; cpu.xcr0 = 1;
  cpu.dr.fill(0); cpu.dr[6] = 0xffff0ff0; cpu.dr[7] = 0x400;
  cpu.dbgPending = 0; cpu.dbgHits = 0; cpu.dbgEvent = 0; cpu.dbgMovSs = false;
  cpu.pkru = 0; cpu.pkrs = 0;
  cpu.star = 0; cpu.starHi = 0; cpu.lstar = 0; cpu.cstar = 0; cpu.sfmask = 0; cpu.kernelGsBase = 0;
  cpu.sysenterCs = 0; cpu.sysenterEsp = 0; cpu.sysenterEip = 0;
  cpu.patLo = 0x00070406; cpu.patHi = 0x00070406; cpu.tscAux = 0;
  cpu.apicBase = cpu.vp === 0 ? 0xfee00900 : 0xfee00800;
  cpu.miscEnable = 1; cpu.mtrr.clear();
  cpu.halted = false; cpu.intShadow = false; cpu.faultDepth = 0; cpu.deliveringVector = -1; cpu.nmiBlocked = false;
  cpu.cpl = 0;
  recomputeMode(cpu);
  updateDebugArm(cpu);
  mmu.flushTlb(cpu, true);
}

/** STARTUP IPI to a processor in wait-for-SIPI (after INIT): real mode at vector:0000. */
export function startupIpi(cpu: CpuState, vector: number): void {
  cpu.segSel[Seg.CS] = (vector & 0xff) << 8;
  cpu.segBase[Seg.CS] = (vector & 0xff) << 12;
  cpu.rip = 0;
  cpu.halted = false;
  recomputeMode(cpu);
}

export function applyBootState(cpu: CpuState, s: BootCpuState): void {
  resetCpu(cpu);
  for (const [k, v] of Object.entries(s.gpr)) {
    const r = Number(k);
    if (r >= 0 && r < 16 && v !== undefined) setGpr(cpu, r, v);
  }
  setRflags(cpu, s.rflags ?? 2);
  const flat = (seg: number, sel: number, attr: number): void => {
    cpu.segSel[seg] = sel; cpu.segBase[seg] = 0; cpu.segLimit[seg] = 0xffffffff; cpu.segAttr[seg] = attr;
  };
  if (s.mode === 'real') {
    const cs = s.cs ?? 0;
    cpu.segSel[Seg.CS] = cs; cpu.segBase[Seg.CS] = cs * 16;
    const ds = s.ds ?? 0;
    for (const seg of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) { cpu.segSel[seg] = ds; cpu.segBase[seg] = ds * 16; }
    cpu.rip = s.rip & 0xffff;
  } else {
    cpu.gdtrBase = s.gdtBase ?? 0; cpu.gdtrLimit = s.gdtLimit ?? 0xffff;
    const long = s.mode === 'long64';
    cpu.cr0 = s.cr0 ?? (long ? 0x80050033 : 0x00000011);
    cpu.cr0 |= CR0_PE | CR0_ET;
    if (long) cpu.cr0 |= CR0_PG;
    cpu.cr4 = s.cr4 ?? (long ? 0x20 : 0);
    if (long) cpu.cr4 |= 0x20;
    cpu.cr3 = s.cr3 ?? 0;
    cpu.efer = s.efer ?? (long ? EFER_LME : 0);
    if (long) cpu.efer |= EFER_LME | EFER_LMA;
    flat(Seg.CS, s.cs ?? 0x10, long ? 0xa09b : 0xc09b);
    for (const seg of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) flat(seg, s.ds ?? 0x18, 0xc093);
    cpu.rip = s.rip;
  }
  cpu.cpl = 0;
  recomputeMode(cpu);
  mmu.flushTlb(cpu, true);
}

export function recomputeMode(cpu: CpuState): void {
  // CPL is tracked separately (it only changes through CS loads, gates, SYSCALL/SYSRET...), like hardware,
  // except that real mode forces 0 and virtual-8086 mode 3.
  if ((cpu.cr0 & 1) === 0) { cpu.mode = Mode.Real; cpu.codeBits = 16; cpu.cpl = 0; return; }
  const cs = cpu.segAttr[Seg.CS];
  if ((cpu.efer & EFER_LMA) !== 0 && (cs & 0x2000) !== 0) { cpu.mode = Mode.Long64; cpu.codeBits = 64; }
  else if ((cs & 0x4000) !== 0) { cpu.mode = Mode.Protected32; cpu.codeBits = 32; }
  else { cpu.mode = Mode.Protected16; cpu.codeBits = 16; }
  if ((cpu.flagsRest & F.VM) !== 0) cpu.cpl = 3;
}

const realLike = (cpu: CpuState): boolean => (cpu.cr0 & 1) === 0 || (cpu.flagsRest & F.VM) !== 0;
const long = (cpu: CpuState): boolean => (cpu.efer & EFER_LMA) !== 0;

// ------------------------------------------------------------------ segments

function loadNull(cpu: CpuState, seg: number, sel: number): void {
  cpu.segSel[seg] = sel;
  // AMD keeps FS/GS bases on a NULL load in 64-bit mode (Linux probes this); other segments become unusable.
  if (!(cpu.mode === Mode.Long64 && (seg === Seg.FS || seg === Seg.GS))) cpu.segBase[seg] = 0;
  cpu.segLimit[seg] = 0;
  cpu.segAttr[seg] = 0;
}

export function loadSegment(cpu: CpuState, seg: number, selector: number): void {
  selector &= 0xffff;
  if (realLike(cpu)) {
    cpu.segSel[seg] = selector;
    cpu.segBase[seg] = selector * 16;
    if ((cpu.flagsRest & F.VM) !== 0) { cpu.segLimit[seg] = 0xffff; cpu.segAttr[seg] = seg === Seg.CS ? 0xfb : 0xf3; }
    if (seg === Seg.SS) { cpu.intShadow = true; cpu.dbgMovSs = true; }
    return;
  }
  if (seg === Seg.CS) raise(cpu, 6);
  const rpl = selector & 3;
  const err = selector & 0xfffc;
  if (seg === Seg.SS) {
    if ((selector & 0xfffc) === 0) {
      // 64-bit mode allows a NULL SS below CPL 3 when RPL = CPL.
      if (cpu.mode === Mode.Long64 && cpu.cpl !== 3 && rpl === cpu.cpl) { loadNull(cpu, seg, selector); cpu.segAttr[seg] = 0xc093 | (cpu.cpl << 5); cpu.intShadow = true; cpu.dbgMovSs = true; return; }
      raise(cpu, 13, 0);
    }
    if (!fetchDescriptor(cpu, selector)) raise(cpu, 13, err);
    const a = descAttr();
    if (rpl !== cpu.cpl || (a & 0x1a) !== 0x12 || ((a >> 5) & 3) !== cpu.cpl) raise(cpu, 13, err);
    if ((a & 0x80) === 0) raise(cpu, 12, err);
    markAccessed(cpu);
    loadFromDesc(cpu, seg, selector);
    cpu.intShadow = true;
    cpu.dbgMovSs = true;
    return;
  }
  if ((selector & 0xfffc) === 0) { loadNull(cpu, seg, selector); return; }
  if (!fetchDescriptor(cpu, selector)) raise(cpu, 13, err);
  const a = descAttr();
  const isData = (a & 0x18) === 0x10;
  const isReadableCode = (a & 0x1a) === 0x1a;
  if (!isData && !isReadableCode) raise(cpu, 13, err);
  const dpl = (a >> 5) & 3;
  const conformingCode = isReadableCode && (a & 4) !== 0;
  if (!conformingCode && Math.max(rpl, cpu.cpl) > dpl) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 11, err);
  markAccessed(cpu);
  const keepBase = cpu.mode === Mode.Long64 ? cpu.segBase[seg] : 0;
  loadFromDesc(cpu, seg, selector);
  // In 64-bit mode FS/GS take the 32-bit descriptor base; the others' base is ignored anyway.
  if (cpu.mode === Mode.Long64 && seg !== Seg.FS && seg !== Seg.GS) cpu.segBase[seg] = keepBase;
}

/** Check a code-segment target of far JMP/CALL; returns the attributes (desc holds the descriptor). */
function checkDirectCode(cpu: CpuState, selector: number): number {
  const err = selector & 0xfffc;
  if (err === 0) raise(cpu, 13, 0);
  if (!fetchDescriptor(cpu, selector)) raise(cpu, 13, err);
  const a = descAttr();
  if ((a & 0x18) !== 0x18) raise(cpu, 13, err); // system descriptors (call/task gates, TSS): not supported
  const dpl = (a >> 5) & 3;
  if ((a & 4) !== 0) { if (dpl > cpu.cpl) raise(cpu, 13, err); }
  else if ((selector & 3) > cpu.cpl || dpl !== cpu.cpl) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 11, err);
  return a;
}

function commitCs(cpu: CpuState, selector: number, cpl: number): void {
  markAccessed(cpu);
  cpu.segSel[Seg.CS] = (selector & 0xfffc) | cpl;
  cpu.segBase[Seg.CS] = descBase();
  cpu.segLimit[Seg.CS] = descLimit();
  cpu.segAttr[Seg.CS] = descAttr() | 1;
  cpu.cpl = cpl;
  recomputeMode(cpu);
}

function checkTarget(cpu: CpuState, a: number, offset: number): void {
  if ((cpu.efer & EFER_LMA) !== 0 && (a & 0x2000) !== 0) { if (!isCanonical(offset)) raise(cpu, 13, 0); }
  else if (offset > descLimit() || offset < 0) raise(cpu, 13, 0);
}

export function farJump(cpu: CpuState, selector: number, offset: number, nextRip: number): void {
  selector &= 0xffff;
  if (realLike(cpu)) {
    cpu.segSel[Seg.CS] = selector; cpu.segBase[Seg.CS] = selector * 16; cpu.rip = offset;
    return;
  }
  const a = checkDirectCode(cpu, selector);
  checkTarget(cpu, a, offset);
  commitCs(cpu, selector, cpu.cpl);
  cpu.rip = offset;
}

// Stack helpers honouring the stack size (64-bit in long mode, else SS.B) at the current privilege.
function stackAddr(cpu: CpuState, sp: number): number {
  if (cpu.mode === Mode.Long64) return sp;
  const big = (cpu.segAttr[Seg.SS] & 0x4000) !== 0;
  return (cpu.segBase[Seg.SS] + (big ? sp >>> 0 : sp & 0xffff)) >>> 0;
}
function stackPtr(cpu: CpuState): number {
  if (cpu.mode === Mode.Long64) return rspOf(cpu);
  return (cpu.segAttr[Seg.SS] & 0x4000) !== 0 ? cpu.gpr[8] >>> 0 : cpu.gpr[8] & 0xffff;
}
function setStackPtr(cpu: CpuState, v: number): void {
  if (cpu.mode === Mode.Long64) { setRsp(cpu, v); return; }
  if ((cpu.segAttr[Seg.SS] & 0x4000) !== 0) { cpu.gpr[8] = v | 0; cpu.gpr[9] = 0; }
  else cpu.gpr[8] = (cpu.gpr[8] & ~0xffff) | (v & 0xffff);
}
let popHi = 0;
/** Read an `size`-byte stack item at stack offset sp (no pointer update); 8-byte: high half in popHi. */
function peek(cpu: CpuState, sp: number, size: number): number {
  const user = cpu.cpl === 3;
  const lin = stackAddr(cpu, sp);
  if (size === 2) return mmu.readAs16(cpu, lin, user);
  if (size === 4) return mmu.readAs32(cpu, lin, user);
  const lo = mmu.readAs32(cpu, lin, user);
  popHi = mmu.readAs32(cpu, stackAddr(cpu, sp + 4), user) | 0;
  return lo;
}
function poke(cpu: CpuState, sp: number, size: number, v: number, hi = 0): void {
  const user = cpu.cpl === 3;
  const lin = stackAddr(cpu, sp);
  if (size === 2) mmu.writeAs16(cpu, lin, v, user);
  else { mmu.writeAs32(cpu, lin, v, user); if (size === 8) mmu.writeAs32(cpu, stackAddr(cpu, sp + 4), hi, user); }
}
function pushCanon(cpu: CpuState, sp: number, size: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  poke(cpu, sp, size, (v - hi * TWO32) | 0, hi | 0);
}

export function farCall(cpu: CpuState, selector: number, offset: number, opsize: number, nextRip: number): void {
  selector &= 0xffff;
  const sp = stackPtr(cpu);
  const w = opsize;
  if (realLike(cpu)) {
    poke(cpu, sp - w, w, cpu.segSel[Seg.CS]);
    pushCanon(cpu, sp - 2 * w, w, nextRip);
    setStackPtr(cpu, sp - 2 * w);
    cpu.segSel[Seg.CS] = selector; cpu.segBase[Seg.CS] = selector * 16; cpu.rip = offset;
    return;
  }
  const a = checkDirectCode(cpu, selector);
  checkTarget(cpu, a, offset);
  mmu.probeWriteAs(cpu, stackAddr(cpu, sp - 2 * w), 2 * w, cpu.cpl === 3);
  poke(cpu, sp - w, w, cpu.segSel[Seg.CS]);
  pushCanon(cpu, sp - 2 * w, w, nextRip);
  // desc was not touched by the stack writes.
  setStackPtr(cpu, sp - 2 * w);
  commitCs(cpu, selector, cpu.cpl);
  cpu.rip = offset;
}

/** After a return to an outer level: data segments the new CPL may not use become NULL. */
function nullInaccessible(cpu: CpuState): void {
  for (const s of [Seg.ES, Seg.DS, Seg.FS, Seg.GS]) {
    const a = cpu.segAttr[s];
    if ((cpu.segSel[s] & 0xfffc) === 0 && (a & 0x80) === 0) continue;
    const dpl = (a >> 5) & 3;
    const dataOrNonConf = (a & 0x18) === 0x10 || (a & 0x1c) === 0x18;
    if (dataOrNonConf && dpl < cpu.cpl) loadNull(cpu, s, 0);
  }
}

/** Validate CS for RET/IRET; returns the new CPL. */
function checkReturnCs(cpu: CpuState, cs: number): number {
  const err = cs & 0xfffc;
  if (err === 0) raise(cpu, 13, 0);
  const rpl = cs & 3;
  if (rpl < cpu.cpl) raise(cpu, 13, err);
  if (!fetchDescriptor(cpu, cs)) raise(cpu, 13, err);
  const a = descAttr();
  if ((a & 0x18) !== 0x18) raise(cpu, 13, err);
  const dpl = (a >> 5) & 3;
  if ((a & 4) !== 0 ? dpl > rpl : dpl !== rpl) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 11, err);
  return rpl;
}

/** Validate the SS popped on a return to `newCpl`; leaves its descriptor in desc unless NULL (returns false). */
function checkReturnSs(cpu: CpuState, ss: number, newCpl: number, to64: boolean): boolean {
  const err = ss & 0xfffc;
  if (err === 0) {
    if (long(cpu) && to64 && newCpl !== 3 && (ss & 3) === newCpl) return false;
    raise(cpu, 13, 0);
  }
  if ((ss & 3) !== newCpl || !fetchDescriptor(cpu, ss)) raise(cpu, 13, err);
  const a = descAttr();
  if ((a & 0x1a) !== 0x12 || ((a >> 5) & 3) !== newCpl) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 12, err);
  return true;
}

function loadReturnSs(cpu: CpuState, ss: number, newCpl: number, to64: boolean): void {
  if (checkReturnSs(cpu, ss, newCpl, to64)) { markAccessed(cpu); loadFromDesc(cpu, Seg.SS, ss); cpu.segAttr[Seg.SS] |= 1; }
  else { cpu.segSel[Seg.SS] = ss; cpu.segBase[Seg.SS] = 0; cpu.segLimit[Seg.SS] = 0xffffffff; cpu.segAttr[Seg.SS] = 0xc093 | (newCpl << 5); }
}

/** Save of desc for the CS descriptor while SS is checked. */
const csDesc = new Int32Array(2);
let csDescAddr = 0;

export function farReturn(cpu: CpuState, opsize: number, popBytes: number): void {
  const w = opsize;
  const sp = stackPtr(cpu);
  const ipLo = peek(cpu, sp, w);
  const ipHi = w === 8 ? popHi : 0;
  const cs = peek(cpu, sp + w, w) & 0xffff;
  const ip = w === 8 ? ipHi * TWO32 + ipLo : ipLo;
  if (realLike(cpu)) {
    setStackPtr(cpu, sp + 2 * w + popBytes);
    cpu.segSel[Seg.CS] = cs; cpu.segBase[Seg.CS] = cs * 16; cpu.rip = ip;
    return;
  }
  const newCpl = checkReturnCs(cpu, cs);
  const a = descAttr();
  const to64 = long(cpu) && (a & 0x2000) !== 0;
  if (to64 ? !isCanonical(ip) : ip > descLimit()) raise(cpu, 13, 0);
  if (newCpl === cpu.cpl) {
    commitCs(cpu, cs, newCpl);
    setStackPtr(cpu, sp + 2 * w + popBytes);
    cpu.rip = ip;
    return;
  }
  // Return to an outer privilege level: pop SS:SP too.
  const spLo = peek(cpu, sp + 2 * w + popBytes, w);
  const newSp = w === 8 ? popHi * TWO32 + spLo : spLo;
  const ss = peek(cpu, sp + 3 * w + popBytes, w) & 0xffff;
  csDesc[0] = desc[0]; csDesc[1] = desc[1]; csDescAddr = descAddr;
  loadReturnSsChecked(cpu, ss, newCpl, to64);
  commitCsAt(cpu, cs, newCpl, csDescAddr);
  loadReturnSsCommit(cpu, ss, newCpl, to64);
  setStackPtrWide(cpu, newSp + popBytes, w);
  nullInaccessible(cpu);
  cpu.rip = ip;
}

// SS check and commit split so CS can be committed in between (both descriptors validated first).
const ssDesc = new Int32Array(2);
let ssIsNull = false;
let ssDescAddr = 0;
function loadReturnSsChecked(cpu: CpuState, ss: number, newCpl: number, to64: boolean): void {
  ssIsNull = !checkReturnSs(cpu, ss, newCpl, to64);
  ssDesc[0] = desc[0]; ssDesc[1] = desc[1]; ssDescAddr = descAddr;
}
function loadReturnSsCommit(cpu: CpuState, ss: number, newCpl: number, to64: boolean): void {
  if (ssIsNull) { loadReturnSs(cpu, ss, newCpl, to64); return; }
  restoreDesc(ssDesc[0], ssDesc[1], ssDescAddr);
  markAccessed(cpu);
  loadFromDesc(cpu, Seg.SS, ss);
  cpu.segAttr[Seg.SS] |= 1;
}
function commitCsAt(cpu: CpuState, cs: number, cpl: number, addr: number): void {
  restoreDesc(csDesc[0], csDesc[1], addr);
  commitCs(cpu, cs, cpl);
}

function setStackPtrWide(cpu: CpuState, v: number, w: number): void {
  if (cpu.mode === Mode.Long64 || w === 8) { setRsp(cpu, v); return; }
  setStackPtr(cpu, v);
}

export function iret(cpu: CpuState, opsize: number): void {
  const w = opsize;
  const sp = stackPtr(cpu);
  const ipLo = peek(cpu, sp, w);
  const ipHi = w === 8 ? popHi : 0;
  const cs = peek(cpu, sp + w, w) & 0xffff;
  const fl = peek(cpu, sp + 2 * w, w);
  const ip = w === 8 ? ipHi * TWO32 + ipLo : ipLo;
  if ((cpu.cr0 & 1) === 0) {
    setStackPtr(cpu, sp + 3 * w);
    cpu.segSel[Seg.CS] = cs; cpu.segBase[Seg.CS] = cs * 16; cpu.rip = ip;
    const mask = w === 2 ? 0xffff : 0x257fd5;
    setRflags(cpu, (getRflags(cpu) & ~mask) | (fl & mask));
    mmu.smapAcChanged(cpu);
    cpu.nmiBlocked = false;
    return;
  }
  if ((cpu.flagsRest & F.VM) !== 0) raise(cpu, 13, 0);
  if ((cpu.flagsRest & F.NT) !== 0) raise(cpu, 13, 0); // task return: not supported (and #GP in long mode)
  const lm = long(cpu);
  if (!lm && w !== 2 && (fl & F.VM) !== 0 && cpu.cpl === 0) raise(cpu, 13, 0); // return to virtual-8086
  const oldCpl = cpu.cpl;
  const newCpl = checkReturnCs(cpu, cs);
  const a = descAttr();
  const to64 = lm && (a & 0x2000) !== 0;
  if (to64 ? !isCanonical(ip) : ip > descLimit()) raise(cpu, 13, 0);
  const popStack = cpu.mode === Mode.Long64 || newCpl !== oldCpl;
  let newSp = 0, ss = 0;
  if (popStack) {
    const spLo = peek(cpu, sp + 3 * w, w);
    newSp = w === 8 ? popHi * TWO32 + spLo : spLo;
    ss = peek(cpu, sp + 4 * w, w) & 0xffff;
    csDesc[0] = desc[0]; csDesc[1] = desc[1]; csDescAddr = descAddr;
    loadReturnSsChecked(cpu, ss, newCpl, to64);
  } else {
    csDesc[0] = desc[0]; csDesc[1] = desc[1]; csDescAddr = descAddr;
  }
  commitCsAt(cpu, cs, newCpl, csDescAddr);
  writeFlagsFor(cpu, fl, w, oldCpl, true);
  if (popStack) {
    const wasLong = lm;
    loadReturnSsCommit(cpu, ss, newCpl, to64);
    if (wasLong && (w === 8 || to64)) setRsp(cpu, newSp);
    else if ((cpu.segAttr[Seg.SS] & 0x4000) !== 0) { cpu.gpr[8] = newSp | 0; cpu.gpr[9] = 0; }
    else cpu.gpr[8] = (cpu.gpr[8] & ~0xffff) | (newSp & 0xffff);
    if (newCpl !== oldCpl) nullInaccessible(cpu);
  } else {
    setStackPtr(cpu, sp + 3 * w);
  }
  recomputeMode(cpu);
  cpu.rip = to64 ? ip : ip >>> 0;
  cpu.nmiBlocked = false;
}

// ------------------------------------------------------------------ descriptor tables

function readTableReg(cpu: CpuState, lin: number): number {
  const limit = mmu.read16(cpu, lin);
  let base: number;
  if (cpu.mode === Mode.Long64) {
    const lo = mmu.read32(cpu, lin + 2);
    const hi = mmu.read32(cpu, lin + 6) | 0;
    base = hi * TWO32 + lo;
    if (!isCanonical(base)) raise(cpu, 13, 0);
  } else base = mmu.read32(cpu, lin + 2);
  cpu.memHi = limit;
  return base;
}
function writeTableReg(cpu: CpuState, lin: number, limit: number, base: number): void {
  mmu.probeWrite(cpu, lin, cpu.mode === Mode.Long64 ? 10 : 6);
  mmu.write16(cpu, lin, limit);
  if (cpu.mode === Mode.Long64) {
    const hi = Math.floor(base / TWO32);
    mmu.write32(cpu, lin + 2, (base - hi * TWO32) | 0);
    mmu.write32(cpu, lin + 6, hi | 0);
  } else mmu.write32(cpu, lin + 2, base | 0);
}

export function lgdt(cpu: CpuState, lin: number): void {
  requireCpl0(cpu);
  const base = readTableReg(cpu, lin);
  cpu.gdtrBase = base; cpu.gdtrLimit = cpu.memHi;
}
export function lidt(cpu: CpuState, lin: number): void {
  requireCpl0(cpu);
  const base = readTableReg(cpu, lin);
  cpu.idtrBase = base; cpu.idtrLimit = cpu.memHi;
}
export function sgdt(cpu: CpuState, lin: number): void { writeTableReg(cpu, lin, cpu.gdtrLimit, cpu.gdtrBase); }
export function sidt(cpu: CpuState, lin: number): void { writeTableReg(cpu, lin, cpu.idtrLimit, cpu.idtrBase); }

function requireProtected(cpu: CpuState): void { if (realLike(cpu)) raise(cpu, 6); }

export function lldt(cpu: CpuState, selector: number): void {
  requireProtected(cpu);
  requireCpl0(cpu);
  selector &= 0xffff;
  if ((selector & 0xfffc) === 0) { cpu.ldtrSel = selector; cpu.ldtrBase = 0; cpu.ldtrLimit = 0; cpu.ldtrAttr = 0; return; }
  const err = selector & 0xfffc;
  if ((selector & 4) !== 0 || !fetchDescriptor(cpu, selector, long(cpu) ? 16 : 8)) raise(cpu, 13, err);
  const a = descAttr();
  if ((a & 0x1f) !== 2) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 11, err);
  cpu.ldtrSel = selector;
  cpu.ldtrBase = long(cpu) ? descBase64() : descBase();
  cpu.ldtrLimit = descLimit();
  cpu.ldtrAttr = a;
}

export function ltr(cpu: CpuState, selector: number): void {
  requireProtected(cpu);
  requireCpl0(cpu);
  selector &= 0xffff;
  const err = selector & 0xfffc;
  if (err === 0) raise(cpu, 13, 0);
  if ((selector & 4) !== 0 || !fetchDescriptor(cpu, selector, long(cpu) ? 16 : 8)) raise(cpu, 13, err);
  const a = descAttr();
  const type = a & 0x1f;
  if (type !== 9 && !(type === 1 && !long(cpu))) raise(cpu, 13, err);
  if ((a & 0x80) === 0) raise(cpu, 11, err);
  const addr = descAddr;
  mmu.writeSys8(cpu, addr + 5, ((desc[1] >>> 8) & 0xff) | 2); // busy
  cpu.trSel = selector;
  cpu.trBase = long(cpu) ? descBase64() : descBase();
  cpu.trLimit = descLimit();
  cpu.trAttr = a | 2;
}

/** Shared LAR/LSL/VERR/VERW visibility rule; returns the attributes or -1. */
function visibleDescriptor(cpu: CpuState, selector: number, forLsl: boolean): number {
  if ((selector & 0xfffc) === 0 || !fetchDescriptor(cpu, selector)) return -1;
  const a = descAttr();
  const dpl = (a >> 5) & 3;
  if ((a & 0x10) === 0) {
    const t = a & 0xf;
    const okLong = t === 2 || t === 9 || t === 0xb || (!forLsl && t === 0xc);
    const okLegacy = t === 1 || t === 2 || t === 3 || t === 9 || t === 0xb || (!forLsl && (t === 4 || t === 5 || t === 0xc));
    if (!(long(cpu) ? okLong : okLegacy)) return -1;
  }
  const conformingCode = (a & 0x1c) === 0x1c;
  if (!conformingCode && Math.max(cpu.cpl, selector & 3) > dpl) return -1;
  return a;
}

export function lar(cpu: CpuState, selector: number): number {
  requireProtected(cpu);
  const a = visibleDescriptor(cpu, selector & 0xffff, false);
  setFlagBit(cpu, ZF, a >= 0);
  return a < 0 ? -1 : (desc[1] & 0x00ffff00) >>> 0; // AMD keeps limit[19:16] (Intel: undefined)
}
export function lsl(cpu: CpuState, selector: number): number {
  requireProtected(cpu);
  const a = visibleDescriptor(cpu, selector & 0xffff, true);
  setFlagBit(cpu, ZF, a >= 0);
  return a < 0 ? -1 : descLimit();
}
export function verr(cpu: CpuState, selector: number, write: boolean): boolean {
  requireProtected(cpu);
  selector &= 0xffff;
  let ok = false;
  if ((selector & 0xfffc) !== 0 && fetchDescriptor(cpu, selector)) {
    const a = descAttr();
    if ((a & 0x10) !== 0) {
      const code = (a & 8) !== 0;
      const conforming = code && (a & 4) !== 0;
      const privOk = conforming || Math.max(cpu.cpl, selector & 3) <= ((a >> 5) & 3);
      ok = privOk && (write ? !code && (a & 2) !== 0 : !code || (a & 2) !== 0);
    }
  }
  setFlagBit(cpu, ZF, ok);
  return ok;
}

// ------------------------------------------------------------------ control / debug registers

export function movToCr(cpu: CpuState, n: number, lo: number, hi: number): void {
  requireCpl0(cpu);
  lo >>>= 0; hi |= 0;
  switch (n) {
    case 0: {
      if (hi !== 0 || (lo & ~CR0_VALID) !== 0) raise(cpu, 13, 0);
      let v = lo | CR0_ET;
      if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) raise(cpu, 13, 0);
      if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) raise(cpu, 13, 0);
      const old = cpu.cr0;
      const pgOn = (v & CR0_PG) !== 0 && (old & CR0_PG) === 0;
      const pgOff = (v & CR0_PG) === 0 && (old & CR0_PG) !== 0;
      if (pgOn && (cpu.efer & EFER_LME) !== 0) {
        if ((cpu.cr4 & 0x20) === 0) raise(cpu, 13, 0);
        if ((cpu.segAttr[Seg.CS] & 0x2000) !== 0) raise(cpu, 13, 0);
        cpu.efer |= EFER_LMA;
      }
      if (pgOff && (cpu.efer & EFER_LMA) !== 0) {
        if (cpu.mode === Mode.Long64) raise(cpu, 13, 0);
        cpu.efer &= ~EFER_LMA;
      }
      cpu.cr0 = v | 0;
      if (((old ^ v) & (CR0_PG | CR0_PE | CR0_WP)) !== 0) mmu.flushTlb(cpu, true);
      recomputeMode(cpu);
      return;
    }
    case 2: cpu.cr2 = hi * TWO32 + lo; return;
    case 3: {
      if (long(cpu) && (hi & ~0xff) !== 0) raise(cpu, 13, 0); // beyond the physical address width
      cpu.cr3 = long(cpu) ? (hi & 0xff) * TWO32 + lo : lo;
      mmu.flushTlb(cpu, false);
      return;
    }
    case 4: {
      if (hi !== 0 || (lo & ~CR4_VALID) !== 0) raise(cpu, 13, 0);
      if (long(cpu) && (lo & 0x20) === 0) raise(cpu, 13, 0); // PAE cannot be cleared in long mode
      const old = cpu.cr4;
      cpu.cr4 = lo;
      if (((old ^ lo) & CR4_PAGING) !== 0) mmu.flushTlb(cpu, true);
      return;
    }
    case 8:
      if (hi !== 0 || (lo & ~0xf) !== 0) raise(cpu, 13, 0);
      cpu.platform.interrupts[cpu.vp]?.setTpr(lo);
      return;
    default:
      raise(cpu, 6);
  }
}

export function movFromCr(cpu: CpuState, n: number): number {
  requireCpl0(cpu);
  cpu.memHi = 0;
  switch (n) {
    case 0: return cpu.cr0 >>> 0;
    case 2: case 3: {
      const v = n === 2 ? cpu.cr2 : cpu.cr3;
      const hi = Math.floor(v / TWO32);
      cpu.memHi = hi | 0;
      return (v - hi * TWO32) >>> 0;
    }
    case 4: return cpu.cr4 >>> 0;
    case 8: return (cpu.platform.interrupts[cpu.vp]?.getTpr() ?? 0) & 0xf;
    default: return raise(cpu, 6);
  }
}

function drIndex(cpu: CpuState, n: number): number {
  if (n === 4 || n === 5) {
    if ((cpu.cr4 & 8) !== 0) raise(cpu, 6); // CR4.DE: DR4/DR5 are reserved
    return n + 2;
  }
  if (n > 7) raise(cpu, 6);
  return n;
}

export function movToDr(cpu: CpuState, n: number, lo: number, hi: number): void {
  requireCpl0(cpu);
  const i = drIndex(cpu, n);
  generalDetect(cpu);
  if (i >= 6 && (hi | 0) !== 0) raise(cpu, 13, 0);
  if (i === 6) { cpu.dr[6] = ((lo & 0xe00f) | 0xffff0ff0) >>> 0; return; }
  if (i === 7) cpu.dr[7] = ((lo & 0xffff2bff) | 0x400) >>> 0;
  else cpu.dr[i] = (hi | 0) * TWO32 + (lo >>> 0);
  updateDebugArm(cpu);
}

export function movFromDr(cpu: CpuState, n: number): number {
  requireCpl0(cpu);
  const i = drIndex(cpu, n);
  generalDetect(cpu);
  const v = cpu.dr[i];
  const hi = Math.floor(v / TWO32);
  cpu.memHi = hi | 0;
  return (v - hi * TWO32) >>> 0;
}

export function lmsw(cpu: CpuState, v: number): void {
  requireCpl0(cpu);
  // Only PE MP EM TS; PE can be set but not cleared.
  const nv = (cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & 1);
  const old = cpu.cr0;
  cpu.cr0 = nv;
  if (((old ^ nv) & 1) !== 0) { mmu.flushTlb(cpu, true); recomputeMode(cpu); }
}
export function clts(cpu: CpuState): void { requireCpl0(cpu); cpu.cr0 &= ~CR0_TS; }
export function invlpgInsn(cpu: CpuState, lin: number): void { requireCpl0(cpu); mmu.invlpg(cpu, lin); }

// ------------------------------------------------------------------ privileged and model-specific

export function rdmsr(cpu: CpuState): void {
  requireCpl0(cpu);
  const lo = readMsr(cpu, cpu.gpr[2]);
  cpu.gpr[0] = lo | 0; cpu.gpr[1] = 0;
  cpu.gpr[4] = cpu.memHi | 0; cpu.gpr[5] = 0;
}
export function wrmsr(cpu: CpuState): void {
  requireCpl0(cpu);
  writeMsr(cpu, cpu.gpr[2], cpu.gpr[0], cpu.gpr[4]);
}
export function cpuid(cpu: CpuState): void { execCpuid(cpu); }

function setEdxEax(cpu: CpuState, v: number): void {
  const hi = Math.floor(v / TWO32);
  cpu.gpr[0] = (v - hi * TWO32) | 0; cpu.gpr[1] = 0;
  cpu.gpr[4] = hi | 0; cpu.gpr[5] = 0;
}
export function rdtsc(cpu: CpuState): void {
  if ((cpu.cr4 & 4) !== 0 && cpu.cpl !== 0 && (cpu.cr0 & 1) !== 0) raise(cpu, 13, 0);
  setEdxEax(cpu, guestTsc(cpu));
}
export function rdtscp(cpu: CpuState): void {
  rdtsc(cpu);
  cpu.gpr[2] = cpu.tscAux | 0; cpu.gpr[3] = 0;
}
/**
 * RDPMC: the four legacy AMD counters (PerfCtr0-3, msr.ts) by ECX; #GP at CPL > 0 unless CR4.PCE, or for
 * another counter index. Linux's AMD PMU driver reads them with RDPMC (e.g. on power-off).
 */
export function rdpmc(cpu: CpuState): void {
  if (cpu.cpl > 0 && (cpu.cr4 & (1 << 8)) === 0) raise(cpu, 13, 0);
  const n = cpu.gpr[2] >>> 0;
  if (n > 3) raise(cpu, 13, 0);
  const lo = readMsr(cpu, 0xc0010004 + n);
  cpu.gpr[0] = lo | 0; cpu.gpr[1] = 0;
  cpu.gpr[4] = cpu.memHi & 0xffff; cpu.gpr[5] = 0;
}
export function xgetbv(cpu: CpuState): void { raise(cpu, 6); } // no XSAVE
export function xsetbv(cpu: CpuState): void { raise(cpu, 6); }
export function hlt(cpu: CpuState): void { requireCpl0(cpu); cpu.halted = true; }

// Hypercall register access for platform.hypercall (one adapter; hypercalls are not the hot path).
let hcCpu: CpuState | null = null;
const hcOut = { lo: 0, hi: 0 };
const hcRegs = {
  get(reg: number): { lo: number; hi: number } {
    hcOut.lo = hcCpu!.gpr[2 * reg] >>> 0; hcOut.hi = hcCpu!.gpr[2 * reg + 1] >>> 0;
    return hcOut;
  },
  set(reg: number, lo: number, hi: number): void { hcCpu!.gpr[2 * reg] = lo | 0; hcCpu!.gpr[2 * reg + 1] = hi | 0; },
  getXmm(reg: number, out: Uint32Array): void { for (let i = 0; i < 4; i++) out[i] = hcCpu!.xmm[4 * reg + i] >>> 0; },
};

/**
 * Outside 64-bit mode a hypercall passes each 64-bit value in two registers (TLFS 32-bit convention):
 * control EDX:EAX, input GPA EBX:ECX, output GPA EDI:ESI, result EDX:EAX. [lo, hi] GPR per 64-bit register.
 */
const HC32: Record<number, [number, number]> = { 0: [0, 2], 1: [0, 2], 2: [1, 3], 8: [6, 7] };
const hcRegs32 = {
  get(reg: number): { lo: number; hi: number } {
    const m = HC32[reg];
    hcOut.lo = m ? hcCpu!.gpr[2 * m[0]] >>> 0 : 0; hcOut.hi = m ? hcCpu!.gpr[2 * m[1]] >>> 0 : 0;
    return hcOut;
  },
  set(reg: number, lo: number, hi: number): void {
    const m = HC32[reg];
    if (m) { hcCpu!.gpr[2 * m[0]] = lo | 0; hcCpu!.gpr[2 * m[1]] = hi | 0; }
  },
};

export function vmcall(cpu: CpuState): void {
  const h = cpu.platform.hypercall;
  if (h === null || cpu.cpl !== 0 || realLike(cpu)) raise(cpu, 6); // Hyper-V: #UD outside CPL 0
  hcCpu = cpu;
  try { h.hypercall(cpu.vp, cpu.mode === Mode.Long64 ? hcRegs : hcRegs32); } finally { hcCpu = null; }
}

// ------------------------------------------------------------------ fast system calls

function flatSeg(cpu: CpuState, seg: number, sel: number, attr: number): void {
  cpu.segSel[seg] = sel; cpu.segBase[seg] = 0; cpu.segLimit[seg] = 0xffffffff; cpu.segAttr[seg] = attr;
}

export function syscall(cpu: CpuState, nextRip: number): void {
  if ((cpu.efer & EFER_SCE) === 0 || realLike(cpu)) raise(cpu, 6);
  const csSel = cpu.starHi & 0xfffc;
  const flags = getRflags(cpu);
  if (long(cpu)) {
    setGpr(cpu, 1, nextRip); // RCX
    cpu.gpr[22] = flags & ~F.RF; cpu.gpr[23] = 0; // R11
    const target = cpu.mode === Mode.Long64 ? cpu.lstar : cpu.cstar;
    flatSeg(cpu, Seg.CS, csSel, 0xa09b);
    flatSeg(cpu, Seg.SS, (csSel + 8) & 0xffff, 0xc093);
    setRflags(cpu, flags & ~cpu.sfmask & ~F.RF);
    cpu.cpl = 0;
    recomputeMode(cpu);
    cpu.rip = target;
    fastCallSingleStep(cpu);
    return;
  }
  // Legacy-mode SYSCALL (AMD): ECX = return EIP, target STAR[31:0].
  cpu.gpr[2] = nextRip | 0; cpu.gpr[3] = 0;
  flatSeg(cpu, Seg.CS, csSel, 0xc09b);
  flatSeg(cpu, Seg.SS, (csSel + 8) & 0xffff, 0xc093);
  setRflags(cpu, flags & ~(F.VM | F.IF | F.RF));
  cpu.cpl = 0;
  recomputeMode(cpu);
  cpu.rip = cpu.star >>> 0;
  fastCallSingleStep(cpu);
}

/**
 * SYSCALL/SYSRET single-step on the flags they leave, not the ones they start with: SYSCALL with FMASK clearing
 * TF does not trap in the kernel, SYSRET to a TF=1 context traps at once at the user instruction.
 */
function fastCallSingleStep(cpu: CpuState): void {
  mmu.smapAcChanged(cpu); // they may have cleared RFLAGS.AC
  cpu.dbgEvent = 1;
  if ((cpu.flagsRest & F.TF) !== 0) queueDebugTrap(cpu, DR6_BS);
}

export function sysret(cpu: CpuState, rexW: boolean): void {
  if ((cpu.efer & EFER_SCE) === 0 || realLike(cpu)) raise(cpu, 6);
  if (cpu.cpl !== 0) raise(cpu, 13, 0);
  const base = (cpu.starHi >>> 16) & 0xffff;
  if (long(cpu)) {
    let target: number;
    if (rexW) {
      target = cpu.gpr[3] * TWO32 + (cpu.gpr[2] >>> 0);
      if (!isCanonical(target)) raise(cpu, 13, 0);
      flatSeg(cpu, Seg.CS, ((base + 16) & 0xfffc) | 3, 0xa0fb);
    } else {
      target = cpu.gpr[2] >>> 0;
      flatSeg(cpu, Seg.CS, (base & 0xfffc) | 3, 0xc0fb);
    }
    // SS selector comes from STAR; its cached attributes are fixed (flat, DPL 3).
    cpu.segSel[Seg.SS] = ((base + 8) & 0xfffc) | 3;
    cpu.segAttr[Seg.SS] = 0xc0f3;
    setRflags(cpu, ((cpu.gpr[22] & 0x3c7fd7) | 2) & ~F.RF);
    cpu.cpl = 3;
    recomputeMode(cpu);
    cpu.rip = target;
    fastCallSingleStep(cpu);
    return;
  }
  flatSeg(cpu, Seg.CS, (base & 0xfffc) | 3, 0xc0fb);
  cpu.segSel[Seg.SS] = ((base + 8) & 0xfffc) | 3;
  cpu.segAttr[Seg.SS] = 0xc0f3;
  setRflags(cpu, getRflags(cpu) | F.IF);
  cpu.cpl = 3;
  recomputeMode(cpu);
  cpu.rip = cpu.gpr[2] >>> 0;
  fastCallSingleStep(cpu);
}

export function sysenter(cpu: CpuState): void {
  // AMD: SYSENTER/SYSEXIT are #UD in long mode (compatibility mode included).
  if (realLike(cpu) || long(cpu)) raise(cpu, (cpu.cr0 & 1) === 0 ? 13 : 6, 0);
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0) raise(cpu, 13, 0);
  flatSeg(cpu, Seg.CS, cs, 0xc09b);
  flatSeg(cpu, Seg.SS, cs + 8, 0xc093);
  setRflags(cpu, getRflags(cpu) & ~(F.VM | F.IF | F.RF));
  cpu.cpl = 0;
  recomputeMode(cpu);
  cpu.gpr[8] = cpu.sysenterEsp | 0; cpu.gpr[9] = 0;
  cpu.rip = cpu.sysenterEip >>> 0;
}

export function sysexit(cpu: CpuState, rexW: boolean): void {
  if (realLike(cpu) || long(cpu)) raise(cpu, (cpu.cr0 & 1) === 0 ? 13 : 6, 0);
  const cs = cpu.sysenterCs & 0xfffc;
  if (cs === 0 || cpu.cpl !== 0) raise(cpu, 13, 0);
  void rexW;
  flatSeg(cpu, Seg.CS, (cs + 16) | 3, 0xc0fb);
  flatSeg(cpu, Seg.SS, (cs + 24) | 3, 0xc0f3);
  cpu.cpl = 3;
  recomputeMode(cpu);
  cpu.gpr[8] = cpu.gpr[2]; cpu.gpr[9] = 0; // ESP = ECX
  cpu.rip = cpu.gpr[4] >>> 0; // EIP = EDX
}

export function swapgs(cpu: CpuState): void {
  if (cpu.mode !== Mode.Long64) raise(cpu, 6);
  requireCpl0(cpu);
  const t = cpu.segBase[Seg.GS];
  cpu.segBase[Seg.GS] = cpu.kernelGsBase;
  cpu.kernelGsBase = t;
}

// ------------------------------------------------------------------ flags with privilege rules

const iopl = (cpu: CpuState): number => (cpu.flagsRest >> 12) & 3;

export function cli(cpu: CpuState): void {
  if ((cpu.cr0 & 1) !== 0 && ((cpu.flagsRest & F.VM) !== 0 ? iopl(cpu) < 3 : iopl(cpu) < cpu.cpl)) raise(cpu, 13, 0);
  cpu.flagsRest &= ~F.IF;
}
export function sti(cpu: CpuState): void {
  if ((cpu.cr0 & 1) !== 0 && ((cpu.flagsRest & F.VM) !== 0 ? iopl(cpu) < 3 : iopl(cpu) < cpu.cpl)) raise(cpu, 13, 0);
  if ((cpu.flagsRest & F.IF) === 0) { cpu.flagsRest |= F.IF; cpu.intShadow = true; }
}

const POPF_MASK = 0x247fd5 | 0x10000; // CF PF AF ZF SF TF IF DF OF IOPL NT AC ID (+RF, handled below)

function writeFlagsFor(cpu: CpuState, value: number, opsize: number, cpl: number, isIret: boolean): void {
  const old = getRflags(cpu);
  let mask = 0x247fd5; // CF PF AF ZF SF TF IF DF OF IOPL NT AC ID
  if ((cpu.cr0 & 1) !== 0) {
    if (cpl > 0) mask &= ~F.IOPL;
    if (cpl > ((old >> 12) & 3)) mask &= ~F.IF;
  }
  if (isIret) mask |= cpl === 0 && (cpu.cr0 & 1) !== 0 ? F.VIF | F.VIP : 0;
  if (opsize === 2) mask &= 0xffff;
  // RF from an IRET frame suppresses instruction breakpoints for one instruction; debug.ts clears it when that
  // instruction completes, which only happens while a breakpoint is enabled: otherwise it would stick.
  let nv = ((old & ~mask) | (value & mask)) & ~F.RF;
  if (isIret && opsize !== 2 && (value & F.RF) !== 0 && (cpu.dr[7] & 0xff) !== 0) nv |= F.RF;
  setRflags(cpu, nv | 2);
  mmu.smapAcChanged(cpu);
}

/** POPF-style write of RFLAGS honouring CPL/IOPL rules; `opsize` 2, 4 or 8. */
export function writeFlagsChecked(cpu: CpuState, value: number, opsize: number): void {
  if ((cpu.flagsRest & F.VM) !== 0 && iopl(cpu) < 3) raise(cpu, 13, 0);
  void POPF_MASK;
  writeFlagsFor(cpu, value, opsize, cpu.cpl, false);
}

// ------------------------------------------------------------------ port I/O

function checkIo(cpu: CpuState, port: number, size: number): void {
  if ((cpu.cr0 & 1) === 0) return;
  if ((cpu.flagsRest & F.VM) === 0 && cpu.cpl <= iopl(cpu)) return;
  // Consult the TSS I/O permission bitmap (32/64-bit TSS only).
  const type = cpu.trAttr & 0xf;
  if ((type !== 9 && type !== 0xb) || cpu.trLimit < 0x67) raise(cpu, 13, 0);
  const bitmap = mmu.readSys16(cpu, cpu.trBase + 0x66);
  const off = bitmap + (port >>> 3);
  if (off + 1 > cpu.trLimit) raise(cpu, 13, 0);
  const bits = mmu.readSys16(cpu, cpu.trBase + off);
  const want = ((1 << size) - 1) << (port & 7);
  if ((bits & want) !== 0) raise(cpu, 13, 0);
}

export function portIn(cpu: CpuState, port: number, size: 1 | 2 | 4): number {
  port &= 0xffff;
  checkIo(cpu, port, size);
  if (cpu.debugArmed !== 0) watchPort(cpu, port, size);
  cpu.irqCheck = true; // a device access may raise or clear an interrupt line
  return cpu.platform.io.read(port, size) >>> 0;
}
export function portOut(cpu: CpuState, port: number, size: 1 | 2 | 4, value: number): void {
  port &= 0xffff;
  checkIo(cpu, port, size);
  if (cpu.debugArmed !== 0) watchPort(cpu, port, size);
  cpu.irqCheck = true;
  cpu.platform.io.write(port, size, size === 4 ? value >>> 0 : value & (size === 1 ? 0xff : 0xffff));
}

// ------------------------------------------------------------------ SMAP and protection keys

/** STAC / CLAC (CPL 0 only; #UD elsewhere, as without the feature). Clearing AC ends SMAP-allowed accesses. */
export function setAc(cpu: CpuState, on: boolean): void {
  if (cpu.cpl !== 0) raise(cpu, 6);
  if (on) cpu.flagsRest |= F.AC;
  else { cpu.flagsRest &= ~F.AC; mmu.smapAcChanged(cpu); }
}

/** RDPKRU: EAX = PKRU, EDX = 0; #UD without CR4.PKE, #GP(0) when ECX != 0. */
export function rdpkru(cpu: CpuState): void {
  if ((cpu.cr4 & (1 << 22)) === 0) raise(cpu, 6);
  if (cpu.gpr[2] !== 0) raise(cpu, 13, 0);
  cpu.gpr[0] = cpu.pkru | 0; cpu.gpr[1] = 0;
  cpu.gpr[4] = 0; cpu.gpr[5] = 0;
}

/** WRPKRU: PKRU = EAX; #UD without CR4.PKE, #GP(0) when ECX or EDX != 0. Cached translations assumed the old rights. */
export function wrpkru(cpu: CpuState): void {
  if ((cpu.cr4 & (1 << 22)) === 0) raise(cpu, 6);
  if (cpu.gpr[2] !== 0 || cpu.gpr[4] !== 0) raise(cpu, 13, 0);
  const v = cpu.gpr[0] >>> 0;
  if (v !== cpu.pkru >>> 0) { cpu.pkru = v; mmu.flushTlb(cpu, true); }
}
