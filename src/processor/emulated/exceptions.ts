/**
 * Exceptions and interrupt delivery through the IVT (real mode) or IDT (protected/long mode, TSS stack
 * switch, IST), #DF escalation and triple fault (-> platform.onReset). OWNER: core-system.
 *
 * Delivery reads and checks everything, writes the new frame, and only then commits registers, so a fault
 * during delivery leaves the interrupted state intact for the #DF / serial re-delivery decision.
 * Not supported: task gates (#GP), virtual-8086 mode.
 */
import { type CpuState, Mode, Seg, F } from './cpu-state.js';
import { getRflags, setRflags, getOF } from './flags.js';
import { readSys32, readSys16, writeAs32, writeAs16, probeWriteAs, smapAcChanged } from './mmu.js';
import { softwareInterruptDebug } from './debug.js';
import { fetchDescriptor, descAttr, descBase, descLimit, desc, readSys64Canon, markAccessed } from './descriptors.js';

const TWO32 = 4294967296;

/** Vectors that push an error code in protected/long mode (#DF #TS #NP #SS #GP #PF #AC). */
export function vectorHasErrorCode(v: number): boolean {
  return v === 8 || (v >= 10 && v <= 14) || v === 17;
}

/** Fill cpu.fault and throw it. `cpu.rip` must still point at the faulting instruction (the core guarantees it). */
export function raise(cpu: CpuState, vector: number, errorCode?: number): never {
  const f = cpu.fault;
  f.vector = vector;
  f.hasError = errorCode !== undefined || vectorHasErrorCode(vector);
  f.errorCode = errorCode === undefined ? 0 : errorCode & 0xffff;
  if (vector === 14 && errorCode !== undefined) f.errorCode = errorCode >>> 0;
  throw f;
}

// Event sources: they decide the EXT bit of error codes and whether the gate DPL is checked.
const SRC_EXC = 0, SRC_EXT = 1, SRC_SOFT = 2, SRC_ICEBP = 3;

const CONTRIBUTORY = (v: number): boolean => v === 0 || (v >= 10 && v <= 13);

function tripleFault(cpu: CpuState): void {
  cpu.halted = true;
  cpu.exitRequested = true;
  cpu.platform.onReset('triple fault');
}

/** Deliver `vector`, escalating faults that happen during delivery (serial, #DF, triple fault). */
function dispatch(cpu: CpuState, vector: number, src: number, hasErr: boolean, err: number, retRip: number, rf = 0): void {
  cpu.deliveringVector = vector;
  try {
    deliverOnce(cpu, vector, src, hasErr, err, retRip, rf);
    cpu.halted = false;
  } catch (e) {
    if (e !== cpu.fault) throw e;
    const v2 = cpu.fault.vector, hasErr2 = cpu.fault.hasError, err2 = cpu.fault.errorCode;
    if (vector === 8 || cpu.faultDepth > 4) { cpu.faultDepth = 0; tripleFault(cpu); return; }
    cpu.faultDepth++;
    try {
      const df = (CONTRIBUTORY(vector) && CONTRIBUTORY(v2)) || (vector === 14 && (CONTRIBUTORY(v2) || v2 === 14));
      // The second event is an exception caused while delivering an external event: EXT is set.
      if (df) dispatch(cpu, 8, SRC_EXC, true, 0, cpu.rip, F.RF);
      else dispatch(cpu, v2, SRC_EXC, hasErr2, err2 | (src === SRC_EXT ? 1 : 0), cpu.rip, v2 === 1 ? 0 : F.RF);
    } finally {
      cpu.faultDepth--;
    }
  } finally {
    cpu.deliveringVector = -1;
  }
}

function deliverOnce(cpu: CpuState, vector: number, src: number, hasErr: boolean, err: number, retRip: number, rf: number): void {
  if ((cpu.cr0 & 1) === 0) deliverReal(cpu, vector, retRip);
  else if ((cpu.efer & 0x400) !== 0) deliverLong(cpu, vector, src, hasErr, err, retRip, rf);
  else deliverProtected(cpu, vector, src, hasErr, err, retRip, rf);
}

function deliverReal(cpu: CpuState, vector: number, retRip: number): void {
  if (vector * 4 + 3 > cpu.idtrLimit) raise(cpu, 13, 0);
  const ent = readSys32(cpu, cpu.idtrBase + vector * 4);
  const ssBase = cpu.segBase[Seg.SS];
  let sp = cpu.gpr[8] & 0xffff;
  const flags = getRflags(cpu);
  sp = (sp - 2) & 0xffff; writeAs16(cpu, (ssBase + sp) >>> 0, flags, false);
  sp = (sp - 2) & 0xffff; writeAs16(cpu, (ssBase + sp) >>> 0, cpu.segSel[Seg.CS], false);
  sp = (sp - 2) & 0xffff; writeAs16(cpu, (ssBase + sp) >>> 0, retRip, false);
  cpu.gpr[8] = (cpu.gpr[8] & ~0xffff) | sp;
  setRflags(cpu, flags & ~(F.IF | F.TF | F.AC | F.RF));
  smapAcChanged(cpu);
  const cs = ent >>> 16;
  cpu.segSel[Seg.CS] = cs;
  cpu.segBase[Seg.CS] = cs * 16;
  cpu.rip = ent & 0xffff;
}

/** Validate the handler's code segment from a gate; returns the new CPL (desc holds the descriptor). */
function gateTarget(cpu: CpuState, sel: number, ext: number, long: boolean): number {
  if ((sel & 0xfffc) === 0) raise(cpu, 13, ext);
  const selErr = (sel & 0xfffc) | ext;
  if (!fetchDescriptor(cpu, sel)) raise(cpu, 13, selErr);
  const a = descAttr();
  if ((a & 0x18) !== 0x18) raise(cpu, 13, selErr); // not a code segment
  const dpl = (a >> 5) & 3;
  if (dpl > cpu.cpl) raise(cpu, 13, selErr);
  if (long && ((a & 0x2000) === 0 || (a & 0x4000) !== 0)) raise(cpu, 13, selErr);
  if ((a & 0x80) === 0) raise(cpu, 11, selErr);
  return (a & 4) !== 0 ? cpu.cpl : dpl;
}

function readGate(cpu: CpuState, vector: number, src: number, size: 8 | 16): number {
  const ext = src === SRC_SOFT ? 0 : 1;
  const idtErr = vector * 8 + 2 + ext;
  if (vector * size + size - 1 > cpu.idtrLimit) raise(cpu, 13, idtErr);
  return idtErr;
}

function deliverLong(cpu: CpuState, vector: number, src: number, hasErr: boolean, err: number, retRip: number, rf: number): void {
  const ext = src === SRC_SOFT ? 0 : 1;
  const idtErr = readGate(cpu, vector, src, 16);
  const ga = cpu.idtrBase + vector * 16;
  const g0 = readSys32(cpu, ga), g1 = readSys32(cpu, ga + 4), g2 = readSys32(cpu, ga + 8) | 0;
  const type = (g1 >>> 8) & 0x1f;
  if (type !== 0xe && type !== 0xf) raise(cpu, 13, idtErr);
  if (src === SRC_SOFT && ((g1 >>> 13) & 3) < cpu.cpl) raise(cpu, 13, idtErr);
  if ((g1 & 0x8000) === 0) raise(cpu, 11, idtErr);
  const sel = g0 >>> 16;
  const target = g2 * TWO32 + (((g1 & 0xffff0000) | (g0 & 0xffff)) >>> 0);
  const newCpl = gateTarget(cpu, sel, ext, true);
  const csAttr = descAttr();
  if (target < -0x800000000000 || target >= 0x800000000000) raise(cpu, 13, ext);
  const ist = g1 & 7;
  const oldRsp = cpu.gpr[9] * TWO32 + (cpu.gpr[8] >>> 0);
  let rsp = oldRsp;
  if (ist !== 0) rsp = tssRead64(cpu, 0x24 + (ist - 1) * 8);
  else if (newCpl < cpu.cpl) rsp = tssRead64(cpu, 4 + newCpl * 8);
  rsp -= rsp & 0xf; // 16-byte alignment of the frame
  const withErr = hasErr && src === SRC_EXC && vectorHasErrorCode(vector);
  const frameBytes = withErr ? 48 : 40;
  const user = newCpl === 3;
  probeWriteAs(cpu, rsp - frameBytes, frameBytes, user);
  const flags = getRflags(cpu);
  let p = rsp;
  p -= 8; push64(cpu, p, cpu.segSel[Seg.SS], 0, user);
  p -= 8; push64(cpu, p, cpu.gpr[8], cpu.gpr[9], user);
  p -= 8; push64(cpu, p, flags | rf, 0, user);
  p -= 8; push64(cpu, p, cpu.segSel[Seg.CS], 0, user);
  p -= 8; pushCanon(cpu, p, retRip, user);
  if (withErr) { p -= 8; push64(cpu, p, err, 0, user); }
  // Commit.
  markAccessed(cpu);
  if (newCpl !== cpu.cpl) {
    cpu.segSel[Seg.SS] = newCpl; // NULL selector with RPL = new CPL
    cpu.segBase[Seg.SS] = 0;
    cpu.segAttr[Seg.SS] = 0xc093 | (newCpl << 5);
    cpu.segLimit[Seg.SS] = 0xffffffff;
  }
  setRsp(cpu, p);
  cpu.segSel[Seg.CS] = (sel & 0xfffc) | newCpl;
  cpu.segBase[Seg.CS] = 0;
  cpu.segLimit[Seg.CS] = 0xffffffff;
  cpu.segAttr[Seg.CS] = csAttr | 1;
  cpu.cpl = newCpl;
  cpu.mode = Mode.Long64;
  cpu.codeBits = 64;
  let nf = flags & ~(F.TF | F.NT | F.RF | F.VM);
  if (type === 0xe) nf &= ~F.IF;
  setRflags(cpu, nf);
  cpu.rip = target;
}

function deliverProtected(cpu: CpuState, vector: number, src: number, hasErr: boolean, err: number, retRip: number, rf: number): void {
  const ext = src === SRC_SOFT ? 0 : 1;
  const idtErr = readGate(cpu, vector, src, 8);
  const ga = cpu.idtrBase + vector * 8;
  const g0 = readSys32(cpu, ga), g1 = readSys32(cpu, ga + 4);
  const type = (g1 >>> 8) & 0x1f;
  if (type !== 6 && type !== 7 && type !== 0xe && type !== 0xf) raise(cpu, 13, idtErr); // incl. task gates
  if (src === SRC_SOFT && ((g1 >>> 13) & 3) < cpu.cpl) raise(cpu, 13, idtErr);
  if ((g1 & 0x8000) === 0) raise(cpu, 11, idtErr);
  if ((cpu.flagsRest & F.VM) !== 0) raise(cpu, 13, 0); // virtual-8086 mode is not supported
  const gate32 = (type & 8) !== 0;
  const sel = g0 >>> 16;
  const target = gate32 ? (((g1 & 0xffff0000) | (g0 & 0xffff)) >>> 0) : g0 & 0xffff;
  const newCpl = gateTarget(cpu, sel, ext, false);
  const csAttr = descAttr(), csBase = descBase(), csLimit = descLimit();
  if (target > csLimit) raise(cpu, 13, 0);
  const w = gate32 ? 4 : 2;
  const withErr = hasErr && src === SRC_EXC && vectorHasErrorCode(vector);
  const flags = getRflags(cpu);
  const oldSs = cpu.segSel[Seg.SS], oldEsp = cpu.gpr[8] >>> 0;
  let ssSel = oldSs, ssBase = cpu.segBase[Seg.SS], ssLimit = cpu.segLimit[Seg.SS], ssAttr = cpu.segAttr[Seg.SS];
  let esp = oldEsp;
  const outer = newCpl < cpu.cpl;
  if (outer) {
    const tss32 = (cpu.trAttr & 8) !== 0;
    const off = tss32 ? 4 + newCpl * 8 : 2 + newCpl * 4;
    if (off + (tss32 ? 5 : 3) > cpu.trLimit) raise(cpu, 10, cpu.trSel & 0xfffc);
    esp = tss32 ? readSys32(cpu, cpu.trBase + off) : readSys16(cpu, cpu.trBase + off);
    ssSel = readSys16(cpu, cpu.trBase + off + (tss32 ? 4 : 2));
    const ssErr = (ssSel & 0xfffc) | ext;
    if ((ssSel & 0xfffc) === 0 || (ssSel & 3) !== newCpl || !fetchDescriptor(cpu, ssSel)) raise(cpu, 10, ssErr);
    const a = descAttr();
    if ((a & 0x1a) !== 0x12 || ((a >> 5) & 3) !== newCpl) raise(cpu, 10, ssErr);
    if ((a & 0x80) === 0) raise(cpu, 12, ssErr);
    ssBase = descBase(); ssLimit = descLimit(); ssAttr = a;
    markAccessed(cpu);
    // Re-read the code descriptor: `desc` was overwritten.
    gateTarget(cpu, sel, ext, false);
  }
  const big = (ssAttr & 0x4000) !== 0;
  const mask = big ? 0xffffffff : 0xffff;
  const count = (outer ? 5 : 3) + (withErr ? 1 : 0);
  const user = newCpl === 3;
  let sp = esp;
  const push = (v: number): void => {
    sp = (sp - w) & mask;
    const lin = (ssBase + (sp >>> 0)) >>> 0;
    if (w === 4) writeAs32(cpu, lin, v, user); else writeAs16(cpu, lin, v, user);
  };
  probeWriteAs(cpu, (ssBase + ((esp - count * w) & mask)) >>> 0, count * w, user);
  if (outer) { push(oldSs); push(oldEsp); }
  push(flags | rf);
  push(cpu.segSel[Seg.CS]);
  push(retRip >>> 0);
  if (withErr) push(err);
  // Commit.
  markAccessed(cpu);
  if (outer) {
    cpu.segSel[Seg.SS] = ssSel; cpu.segBase[Seg.SS] = ssBase; cpu.segLimit[Seg.SS] = ssLimit; cpu.segAttr[Seg.SS] = ssAttr | 1;
  }
  cpu.gpr[8] = big ? sp | 0 : (cpu.gpr[8] & ~0xffff) | (sp & 0xffff);
  if (big || outer) cpu.gpr[9] = 0;
  cpu.segSel[Seg.CS] = (sel & 0xfffc) | newCpl;
  cpu.segBase[Seg.CS] = csBase;
  cpu.segLimit[Seg.CS] = csLimit;
  cpu.segAttr[Seg.CS] = csAttr | 1;
  cpu.cpl = newCpl;
  cpu.mode = (csAttr & 0x4000) !== 0 ? Mode.Protected32 : Mode.Protected16;
  cpu.codeBits = (csAttr & 0x4000) !== 0 ? 32 : 16;
  let nf = flags & ~(F.TF | F.NT | F.RF | F.VM);
  if ((type & 1) === 0) nf &= ~F.IF;
  setRflags(cpu, nf);
  cpu.rip = target;
}

function tssRead64(cpu: CpuState, off: number): number {
  if (off + 7 > cpu.trLimit) raise(cpu, 10, cpu.trSel & 0xfffc);
  return readSys64Canon(cpu, cpu.trBase + off);
}

function push64(cpu: CpuState, lin: number, lo: number, hi: number, user: boolean): void {
  writeAs32(cpu, lin, lo, user);
  writeAs32(cpu, lin + 4, hi, user);
}

/** Push a signed canonical number (RIP) as 64 bits. */
function pushCanon(cpu: CpuState, lin: number, v: number, user: boolean): void {
  const hi = Math.floor(v / TWO32);
  push64(cpu, lin, (v - hi * TWO32) | 0, hi | 0, user);
}

/** Set RSP from a signed canonical number. */
export function setRsp(cpu: CpuState, v: number): void {
  const hi = Math.floor(v / TWO32);
  cpu.gpr[8] = (v - hi * TWO32) | 0;
  cpu.gpr[9] = hi | 0;
}

/** Deliver the fault in cpu.fault (called by the run loop after catching it). */
export function deliverFault(cpu: CpuState): void {
  const f = cpu.fault;
  // SDM 6.13/18.3.1.1: faults save RFLAGS with RF set, so the handler's IRET does not re-trigger an
  // instruction breakpoint on the restarted instruction. #DB here is a trap (or the breakpoint itself): RF clear.
  dispatch(cpu, f.vector, SRC_EXC, f.hasError, f.errorCode, cpu.rip, f.vector === 1 ? 0 : F.RF);
}

/** Deliver an external interrupt (already acknowledged at the interrupt controller). cpu.rip = return address. */
export function deliverInterrupt(cpu: CpuState, vector: number): void {
  dispatch(cpu, vector & 0xff, SRC_EXT, false, 0, cpu.rip);
}

/** INT n / INT3 / INTO / INT1: software interrupt; `nextRip` is the return address. */
export function softwareInterrupt(cpu: CpuState, vector: number, nextRip: number, kind: 'int' | 'int3' | 'into' | 'int1'): void {
  if (kind === 'into') {
    if (cpu.mode === Mode.Long64) raise(cpu, 6);
    if (getOF(cpu) === 0) { cpu.rip = nextRip; return; }
    vector = 4;
  } else if (kind === 'int3') {
    if (cpu.breakpointHook !== null && cpu.breakpointHook(cpu)) { cpu.exitRequested = true; return; }
    vector = 3;
  } else if (kind === 'int1') vector = 1;
  softwareInterruptDebug(cpu, kind === 'int1');
  // INT1 (ICEBP) is delivered like a hardware #DB: no gate DPL check.
  dispatch(cpu, vector & 0xff, kind === 'int1' ? SRC_ICEBP : SRC_SOFT, false, 0, nextRip);
}

export function deliverNmi(cpu: CpuState): void {
  cpu.nmiBlocked = true;
  dispatch(cpu, 2, SRC_EXT, false, 0, cpu.rip);
}
