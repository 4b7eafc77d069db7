/**
 * A small 64-bit machine for processor tests (implements testing-contract.ts): guest RAM, its own page
 * tables, GDT/TSS/IDT in a supervisor-only system area, flat segments, long mode at CPL 0 or 3.
 *
 * Physical layout: 0x1000 GDT, 0x2000 TSS, 0x3000 IDT, 0x10000.. stacks (RSP0 then IST1..7, 4 KiB each),
 * 0x100000..0x400000 page-table pool, data pages from 0x400000 upward. The system area is mapped at
 * SYS_VIRT (physical 0..0x20000). Virtual addresses are numbers in the signed canonical form
 * (0xffffff8000000000 is -0x8000000000); values >= 2^47 are converted.
 */
import type { TestMachine, TestRunResult } from './testing-contract.js';
import type { InterruptController, PlatformServices } from '../backend.js';
import { allocateEmulatedMemory } from './wasm/guest-memory.js';
import { IoBus, MmioBus } from '../../platform/bus.js';
import { VirtualClock } from '../../platform/clock.js';
import { Cpu } from './cpu.js';
import { simd } from './exec-system.js';
import { runCpu } from './run-loop.js';
import { Mode, Seg } from './cpu-state.js';
import { getRflags, setRflags } from './flags.js';
import { flushTlb, invlpg } from './mmu.js';
import { deliverFault } from './exceptions.js';

export const SYS_VIRT = -0x80_0000_0000;
export const GDT_PHYS = 0x1000, TSS_PHYS = 0x2000, IDT_PHYS = 0x3000, STACKS_PHYS = 0x10000;
/** Selectors (Linux's layout, so STAR values look familiar). */
export const SEL = { kernelCode32: 0x08, kernelCode: 0x10, kernelData: 0x18, userCode32: 0x23, userData: 0x2b, userCode: 0x33, tss: 0x40 } as const;
export const ATTR = { code64k: 0xa09b, data: 0xc093, code64u: 0xa0fb, datau: 0xc0f3, code32k: 0xc09b, code32u: 0xc0fb, tss: 0x008b } as const;
const PT_POOL_START = 0x100000, PT_POOL_END = 0x400000, DATA_START = 0x400000;
const PAGE = 4096;

/** Top of the ring-0 stack (TSS.RSP0) and of IST stack k (1..7). */
export function stackTop(k: number): number { return SYS_VIRT + STACKS_PHYS + (k + 1) * 0x1000; }

function canon(v: number | bigint): number {
  if (typeof v === 'bigint') return Number(BigInt.asIntN(64, v));
  return v >= 0x8000_0000_0000 ? v - 2 ** 64 : v;
}

class StubInterrupts implements InterruptController {
  tpr = 0;
  pendingVector(): number { return -1; }
  acknowledge(): number { return -1; }
  nmiPending(): boolean { return false; }
  acknowledgeNmi(): void {}
  getTpr(): number { return this.tpr; }
  setTpr(v: number): void { this.tpr = v & 0xf; }
}

export interface TestPlatform extends PlatformServices {
  resets: string[];
}

export function createTestPlatform(memoryBytes: number): TestPlatform {
  const resets: string[] = [];
  return {
    memory: allocateEmulatedMemory(memoryBytes, 1),
    io: new IoBus(),
    mmio: new MmioBus(),
    clock: new VirtualClock('realtime'),
    cpuid: { cpuid: () => ({ eax: 0, ebx: 0, ecx: 0, edx: 0 }) },
    msr: { read: () => false, write: () => false },
    hypercall: null,
    interrupts: [new StubInterrupts()],
    tscHz: 1_000_000_000,
    onReset: (reason: string) => { resets.push(reason); },
    onShutdown: () => {},
    resets,
  };
}

export interface EmulatedTestMachine extends TestMachine {
  readonly cpu: Cpu;
  readonly platform: TestPlatform;
  /** Guest-physical address backing `virt`, or -1 when unmapped (host-side walk of the machine's tables). */
  virtToPhys(virt: number): number;
  /** Page-table entry (low 32 bits) of `virt`'s 4K leaf, for A/D checks; -1 when unmapped. */
  pteLow(virt: number): number;
  /** Set raw leaf flags of `virt` (keeps the frame): for NX/U/W/G experiments. Flushes nothing. */
  setPteFlags(virt: number, lowFlags: number, nx: boolean): void;
  /** IST index (1..7, 0 none) and DPL used for a vector's gate by `installIdt`. */
  gateOptions(vector: number, opts: { ist?: number; dpl?: number; trap?: boolean }): void;
  /** Vectors installIdt gave handlers: delivered to the guest instead of reported. */
  readonly handled: Set<number>;
}

export function createTestMachine(opts?: { memoryBytes?: number; cpl?: 0 | 3; stringVendor?: 'amd' | 'intel' }): EmulatedTestMachine {
  const memoryBytes = opts?.memoryBytes ?? 32 * 1024 * 1024;
  const platform = createTestPlatform(memoryBytes);
  const mem = platform.memory;
  const view = mem.view;
  const cpu = new Cpu(0, platform);
  cpu.intelStrings = opts?.stringVendor === 'intel';
  if (simd !== null) { cpu.fpu = simd.createFpuState(); simd.resetFpuState(cpu.fpu); }
  let ptNext = PT_POOL_START + PAGE; // first pool page is the PML4
  let dataNext = DATA_START;
  const pml4 = PT_POOL_START;
  const gateOpts = new Map<number, { ist: number; dpl: number; trap: boolean }>();
  const handled = new Set<number>();

  const allocTable = (): number => {
    if (ptNext >= PT_POOL_END) throw new Error('test machine: page-table pool exhausted');
    const p = ptNext; ptNext += PAGE;
    mem.bytes.fill(0, p, p + PAGE);
    return p;
  };
  const allocData = (): number => {
    if (dataNext + PAGE > mem.lowRamEnd) throw new Error('test machine: out of guest memory');
    const p = dataNext; dataNext += PAGE;
    mem.bytes.fill(0, p, p + PAGE);
    return p;
  };
  const indices = (virt: number): number[] => {
    const u = virt < 0 ? virt + 2 ** 48 : virt;
    return [Math.floor(u / 2 ** 39) & 511, Math.floor(u / 2 ** 30) & 511, (u >>> 21) & 511, (u >>> 12) & 511];
  };
  /** Physical address of the leaf PTE for virt (creating tables when `create`), or -1. */
  const leafAddr = (virt: number, create: boolean): number => {
    let table = pml4;
    const idx = indices(virt);
    for (let level = 0; level < 3; level++) {
      const ea = table + idx[level] * 8;
      let lo = view.getUint32(ea, true);
      if ((lo & 1) === 0) {
        if (!create) return -1;
        const t = allocTable();
        lo = t | 7;
        view.setUint32(ea, lo, true);
        view.setUint32(ea + 4, 0, true);
      }
      if ((lo & 0x80) !== 0) return -1; // large pages are not made by this machine
      table = (lo & 0xfffff000) >>> 0;
    }
    return table + idx[3] * 8;
  };
  const mapPage = (virt: number, phys: number, user: boolean, writable: boolean, exec: boolean): void => {
    const ea = leafAddr(virt, true);
    view.setUint32(ea, (phys | 1 | (writable ? 2 : 0) | (user ? 4 : 0)) >>> 0, true);
    view.setUint32(ea + 4, exec ? 0 : 0x80000000, true);
  };
  const virtToPhys = (virt: number): number => {
    const v = canon(virt);
    const ea = leafAddr(v - (v & 0xfff), false);
    if (ea < 0) return -1;
    const lo = view.getUint32(ea, true);
    if ((lo & 1) === 0) return -1;
    return ((lo & 0xfffff000) >>> 0) + (v & 0xfff);
  };

  // System area: GDT, TSS, IDT, stacks (supervisor, writable, not executable).
  for (let p = 0; p < 0x20000; p += PAGE) mapPage(SYS_VIRT + p, p, false, true, false);
  const gdt = [
    [0, 0],
    [0xffff, 0xcf9b00],
    [0xffff, 0xaf9b00], // 0x10 kernel code64
    [0xffff, 0xcf9300], // 0x18 kernel data
    [0xffff, 0xcffb00], // 0x20 user code32
    [0xffff, 0xcff300], // 0x28 user data
    [0xffff, 0xaffb00], // 0x30 user code64
    [0, 0],
  ];
  gdt.forEach(([lo, hi], i) => { view.setUint32(GDT_PHYS + i * 8, lo, true); view.setUint32(GDT_PHYS + i * 8 + 4, hi, true); });
  // 64-bit TSS descriptor at 0x40: base = SYS_VIRT + TSS_PHYS, limit 0x67, type 9 (available; ltr marks busy).
  const tssBase = SYS_VIRT + TSS_PHYS;
  const tbU = tssBase + 2 ** 64; // unsigned form for splitting
  const tbLo = tbU % 2 ** 32, tbHi = Math.floor(tbU / 2 ** 32);
  view.setUint32(GDT_PHYS + 0x40, ((tbLo & 0xffff) << 16 | 0x67) >>> 0, true);
  view.setUint32(GDT_PHYS + 0x44, (((tbLo >>> 16) & 0xff) | 0x8b00 | (tbLo & 0xff000000)) >>> 0, true);
  view.setUint32(GDT_PHYS + 0x48, tbHi >>> 0, true);
  view.setUint32(GDT_PHYS + 0x4c, 0, true);
  // TSS: RSP0 and IST1..7; I/O bitmap base beyond the limit (no bitmap).
  const setTss64 = (off: number, v: number): void => {
    const u = v < 0 ? v + 2 ** 64 : v;
    view.setUint32(TSS_PHYS + off, u % 2 ** 32, true);
    view.setUint32(TSS_PHYS + off + 4, Math.floor(u / 2 ** 32) >>> 0, true);
  };
  setTss64(4, stackTop(0));
  for (let k = 1; k <= 7; k++) setTss64(0x24 + (k - 1) * 8, stackTop(k));
  view.setUint16(TSS_PHYS + 0x66, 0x68, true);

  // Architectural state: long mode, paging, flat segments.
  cpu.cr0 = 0x80050033; // PG WP NE ET MP PE
  cpu.cr4 = 0x6a0; // PAE PGE OSFXSR OSXMMEXCPT
  cpu.efer = 0xd01; // SCE LME LMA NXE
  cpu.cr3 = pml4;
  cpu.gdtrBase = SYS_VIRT + GDT_PHYS; cpu.gdtrLimit = 0x4f;
  cpu.idtrBase = SYS_VIRT + IDT_PHYS; cpu.idtrLimit = 0xfff;
  cpu.trSel = SEL.tss; cpu.trBase = tssBase; cpu.trLimit = 0x67; cpu.trAttr = 0x8b;
  view.setUint8(GDT_PHYS + 0x45, 0x8b); // busy, as after LTR
  cpu.ldtrSel = 0; cpu.ldtrBase = 0; cpu.ldtrLimit = 0; cpu.ldtrAttr = 0;
  // STAR[47:32] = SYSCALL CS (0x10, SS 0x18); STAR[63:48] = SYSRET base 0x23 (CS 0x33, SS 0x2b), as Linux.
  cpu.star = 0; cpu.starHi = (SEL.userCode32 << 16) | SEL.kernelCode;
  setRflags(cpu, 0x2);

  const setCpl = (cpl: 0 | 3): void => {
    const user = cpl === 3;
    const cs = user ? SEL.userCode : SEL.kernelCode;
    const ds = user ? SEL.userData : SEL.kernelData;
    const csAttr = user ? ATTR.code64u : ATTR.code64k;
    const dsAttr = user ? ATTR.datau : ATTR.data;
    for (let s = 0; s < 6; s++) {
      if (s === Seg.FS || s === Seg.GS) { cpu.segSel[s] = 0; cpu.segAttr[s] = dsAttr; cpu.segLimit[s] = 0xffffffff; continue; }
      cpu.segSel[s] = s === Seg.CS ? cs : ds;
      cpu.segAttr[s] = s === Seg.CS ? csAttr : dsAttr;
      cpu.segBase[s] = 0;
      cpu.segLimit[s] = 0xffffffff;
    }
    cpu.cpl = cpl;
    cpu.mode = Mode.Long64;
    cpu.codeBits = 64;
  };
  setCpl(opts?.cpl ?? 0);
  cpu.gpr[2 * 4] = 0; // RSP: tests set their own
  cpu.stopOnFault = true;
  flushTlb(cpu, true);

  const writeGate = (vector: number, target: number): void => {
    const o = gateOpts.get(vector) ?? { ist: 0, dpl: vector === 3 || vector === 4 ? 3 : 0, trap: false };
    const u = target < 0 ? target + 2 ** 64 : target;
    const lo = u % 2 ** 32, hi = Math.floor(u / 2 ** 32) >>> 0;
    const ea = IDT_PHYS + vector * 16;
    view.setUint32(ea, ((SEL.kernelCode << 16) | (lo & 0xffff)) >>> 0, true);
    view.setUint32(ea + 4, ((lo & 0xffff0000) | 0x8000 | (o.dpl << 13) | ((o.trap ? 0xf : 0xe) << 8) | o.ist) >>> 0, true);
    view.setUint32(ea + 8, hi, true);
    view.setUint32(ea + 12, 0, true);
  };

  const machine: EmulatedTestMachine = {
    cpu,
    platform,
    handled,
    map(virt, length, flags) {
      const v0 = canon(virt);
      if ((v0 & 0xfff) !== 0 || length % PAGE !== 0) throw new RangeError('map: virt and length must be page aligned');
      for (let off = 0; off < length; off += PAGE) {
        const v = v0 + off;
        mapPage(v, allocData(), flags?.user ?? true, flags?.writable ?? true, flags?.exec ?? true);
        invlpg(cpu, v);
      }
    },
    unmap(virt, length) {
      const v0 = canon(virt);
      for (let off = 0; off < length; off += PAGE) {
        const ea = leafAddr(v0 + off, false);
        if (ea >= 0) { view.setUint32(ea, 0, true); view.setUint32(ea + 4, 0, true); }
        invlpg(cpu, v0 + off);
      }
    },
    writeVirt(virt, bytes) {
      const v0 = canon(virt);
      for (let i = 0; i < bytes.length; i++) {
        const pa = virtToPhys(v0 + i);
        if (pa < 0) throw new RangeError(`writeVirt: 0x${(v0 + i).toString(16)} is not mapped`);
        mem.bytes[pa] = bytes[i];
        const ppn = Math.floor(pa / PAGE);
        if (ppn < cpu.codePages.length && cpu.codePages[ppn] !== 0) cpu.onCodeWrite(ppn);
      }
    },
    readVirt(virt, length) {
      const v0 = canon(virt);
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) {
        const pa = virtToPhys(v0 + i);
        if (pa < 0) throw new RangeError(`readVirt: 0x${(v0 + i).toString(16)} is not mapped`);
        out[i] = mem.bytes[pa];
      }
      return out;
    },
    getReg(i) { return (BigInt(cpu.gpr[2 * i + 1] >>> 0) << 32n) | BigInt(cpu.gpr[2 * i] >>> 0); },
    setReg(i, v) {
      const u = BigInt.asUintN(64, v);
      cpu.gpr[2 * i] = Number(u & 0xffffffffn) | 0;
      cpu.gpr[2 * i + 1] = Number(u >> 32n) | 0;
    },
    get rip() { return BigInt.asUintN(64, BigInt(cpu.rip)); },
    set rip(v: bigint) { cpu.rip = canon(v); },
    get rflags() { return BigInt(getRflags(cpu) >>> 0); },
    set rflags(v: bigint) { setRflags(cpu, Number(BigInt.asUintN(32, v))); },
    getXmm(i) {
      let r = 0n;
      for (let l = 3; l >= 0; l--) r = (r << 32n) | BigInt(cpu.xmm[4 * i + l] >>> 0);
      return r;
    },
    setXmm(i, v) {
      const u = BigInt.asUintN(128, v);
      for (let l = 0; l < 4; l++) cpu.xmm[4 * i + l] = Number((u >> BigInt(32 * l)) & 0xffffffffn) | 0;
    },
    get mxcsr() { return cpu.fpu ? cpu.fpu.mxcsr : 0x1f80; },
    set mxcsr(v: number) { if (cpu.fpu) cpu.fpu.mxcsr = v; },
    get fpuControlWord() {
      const f = cpu.fpu as unknown as Record<string, number> | undefined;
      return f?.fcw ?? f?.controlWord ?? 0x37f;
    },
    set fpuControlWord(v: number) {
      const f = cpu.fpu as unknown as Record<string, number> | undefined;
      if (!f) return;
      if ('controlWord' in f) f.controlWord = v; else f.fcw = v;
    },
    setCpl,
    setSegmentBase(seg, base) { cpu.segBase[seg === 'fs' ? Seg.FS : Seg.GS] = canon(base); },
    virtToPhys,
    pteLow(virt) {
      const ea = leafAddr(canon(virt), false);
      return ea < 0 ? -1 : view.getUint32(ea, true);
    },
    setPteFlags(virt, lowFlags, nx) {
      const ea = leafAddr(canon(virt), false);
      if (ea < 0) throw new RangeError('setPteFlags: not mapped');
      const lo = view.getUint32(ea, true);
      view.setUint32(ea, ((lo & 0xfffff000) | (lowFlags & 0xfff)) >>> 0, true);
      view.setUint32(ea + 4, nx ? 0x80000000 : 0, true);
    },
    gateOptions(vector, o) {
      gateOpts.set(vector, { ist: o.ist ?? 0, dpl: o.dpl ?? (vector === 3 || vector === 4 ? 3 : 0), trap: o.trap ?? false });
    },
    installIdt(handlers) {
      for (const [k, addr] of Object.entries(handlers)) {
        if (addr === undefined) continue;
        const vector = Number(k);
        writeGate(vector, canon(addr));
        handled.add(vector);
      }
    },
    run(o): TestRunResult {
      const maxInsns = o.maxInsns ?? 1_000_000;
      const stop = o.stopAt !== undefined ? canon(o.stopAt) : NaN;
      const start = cpu.insnCount;
      let stalls = 0;
      cpu.stopOnFault = true;
      for (;;) {
        const done = cpu.insnCount - start;
        if (cpu.rip === stop && done > 0) return { kind: 'stopped', insns: done };
        if (done >= maxInsns) return { kind: 'limit', insns: done };
        if (cpu.halted) return { kind: 'halt', insns: done };
        cpu.faultStopped = false;
        cpu.exitRequested = false;
        const before = cpu.insnCount;
        runCpu(cpu, o.stopAt !== undefined ? 1 : Math.min(maxInsns - done, 100_000));
        if (cpu.faultStopped) {
          cpu.faultStopped = false;
          const f = cpu.fault;
          if (handled.has(f.vector)) { deliverFault(cpu); stalls = 0; continue; }
          const r: TestRunResult = { kind: 'exception', vector: f.vector, rip: BigInt.asUintN(64, BigInt(cpu.rip)), insns: cpu.insnCount - start };
          if (f.hasError) r.errorCode = f.errorCode >>> 0;
          if (f.vector === 14) r.cr2 = BigInt.asUintN(64, BigInt(cpu.cr2));
          return r;
        }
        if (cpu.insnCount === before && !cpu.halted) {
          if (++stalls > 3) return { kind: 'limit', insns: cpu.insnCount - start };
        } else stalls = 0;
      }
    },
  };
  return machine;
}
