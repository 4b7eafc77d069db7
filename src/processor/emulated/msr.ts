/**
 * Model-specific registers owned by the processor; anything else goes to `platform.msr` (Hyper-V synthetic
 * MSRs), and #GP(0) when neither knows it. OWNER: core-system. Values are (lo, hi) 32-bit halves.
 */
import { type CpuState, Seg } from './cpu-state.js';
import { raise } from './exceptions.js';
import { flushTlb } from './mmu.js';
import { PHYS_ADDR_BITS } from './mmu.js';

const TWO32 = 4294967296;

export const MSR = {
  TSC: 0x10, TSC_ADJUST: 0x3b, APIC_BASE: 0x1b, PATCH_LEVEL: 0x8b, MTRRCAP: 0xfe,
  SYSENTER_CS: 0x174, SYSENTER_ESP: 0x175, SYSENTER_EIP: 0x176,
  MCG_CAP: 0x179, MCG_STATUS: 0x17a, MCG_CTL: 0x17b, MISC_ENABLE: 0x1a0,
  MTRR_PHYS_FIRST: 0x200, MTRR_PHYS_LAST: 0x20f, MTRR_FIX64K: 0x250, MTRR_FIX16K_80000: 0x258, MTRR_FIX16K_A0000: 0x259,
  PKRS: 0x6e1,
  MTRR_FIX4K_FIRST: 0x268, MTRR_FIX4K_LAST: 0x26f, PAT: 0x277, MTRR_DEF_TYPE: 0x2ff,
  EFER: 0xc0000080, STAR: 0xc0000081, LSTAR: 0xc0000082, CSTAR: 0xc0000083, SFMASK: 0xc0000084,
  FS_BASE: 0xc0000100, GS_BASE: 0xc0000101, KERNEL_GS_BASE: 0xc0000102, TSC_AUX: 0xc0000103,
  AMD_SYSCFG: 0xc0010010, AMD_HWCR: 0xc0010015, AMD_INT_PENDING: 0xc0010055,
  AMD_PERF_EVTSEL0: 0xc0010000, AMD_PERF_EVTSEL3: 0xc0010003, AMD_PERF_CTR0: 0xc0010004, AMD_PERF_CTR3: 0xc0010007,
} as const;

/**
 * The four legacy AMD performance counters (PerfEvtSel0-3, PerfCtr0-3) exist on every AMD64 processor, so
 * guests that see AuthenticAMD program them without asking CPUID (kvm-unit-tests' setup resets them). They
 * hold what is written but count nothing, like a hypervisor whose virtual PMU is off: the counters stay put.
 * Reserved event-select bits: 19, 21 and 36-63 (HG_ONLY needs SVM, which we do not offer).
 */
const EVTSEL_RSVD_LO = (1 << 19) | (1 << 21);
const EVTSEL_RSVD_HI = ~0xf;
const isAmdPmc = (index: number): boolean => index >= MSR.AMD_PERF_EVTSEL0 && index <= MSR.AMD_PERF_CTR3;

/** Guest TSC now: virtual clock in TSC ticks plus the offset IA32_TSC writes set. */
export function guestTsc(cpu: CpuState): number {
  return Math.floor(cpu.platform.clock.now() * (cpu.platform.tscHz / 1e9)) + cpu.tscOffset;
}

function canon(lo: number, hi: number): number { return (hi | 0) * TWO32 + (lo >>> 0); }
function isCanonical(v: number): boolean { return v >= -0x800000000000 && v < 0x800000000000; }
function split(cpu: CpuState, v: number): number {
  const hi = Math.floor(v / TWO32);
  cpu.memHi = hi | 0;
  return (v - hi * TWO32) >>> 0;
}

// MTRR and other stored MSRs live in cpu.mtrr keyed by index*2 (lo) and index*2+1 (hi).
function stored(cpu: CpuState, index: number, defLo = 0, defHi = 0): number {
  const lo = cpu.mtrr.get(index * 2);
  cpu.memHi = lo === undefined ? defHi : (cpu.mtrr.get(index * 2 + 1) ?? 0);
  return lo === undefined ? defLo : lo;
}
function store(cpu: CpuState, index: number, lo: number, hi: number): void {
  cpu.mtrr.set(index * 2, lo >>> 0);
  cpu.mtrr.set(index * 2 + 1, hi | 0);
}

const VALID_MEMTYPE = (t: number): boolean => t === 0 || t === 1 || t === 4 || t === 5 || t === 6;
const PHYS_HI_RSVD = ~((1 << (PHYS_ADDR_BITS - 32)) - 1); // bits >= PHYS_ADDR_BITS in the high half

function isMtrr(index: number): boolean {
  return (index >= MSR.MTRR_PHYS_FIRST && index <= MSR.MTRR_PHYS_LAST) || index === MSR.MTRR_FIX64K ||
    index === MSR.MTRR_FIX16K_80000 || index === MSR.MTRR_FIX16K_A0000 ||
    (index >= MSR.MTRR_FIX4K_FIRST && index <= MSR.MTRR_FIX4K_LAST) || index === MSR.MTRR_DEF_TYPE;
}

/** Read MSR `index`: low half returned (unsigned), high half in cpu.memHi. Raises #GP(0) when unknown. */
export function readMsr(cpu: CpuState, index: number): number {
  index >>>= 0;
  switch (index) {
    case MSR.TSC: return split(cpu, guestTsc(cpu));
    case MSR.TSC_ADJUST: return stored(cpu, index);
    case MSR.APIC_BASE: cpu.memHi = 0; return cpu.apicBase >>> 0;
    case MSR.PATCH_LEVEL: cpu.memHi = 0; return 0;
    case MSR.MTRRCAP: cpu.memHi = 0; return 0x508; // 8 variable ranges, fixed ranges, write-combining
    case MSR.SYSENTER_CS: cpu.memHi = 0; return cpu.sysenterCs & 0xffff;
    case MSR.SYSENTER_ESP: return split(cpu, cpu.sysenterEsp);
    case MSR.SYSENTER_EIP: return split(cpu, cpu.sysenterEip);
    case MSR.MCG_CAP: case MSR.MCG_STATUS: cpu.memHi = 0; return 0; // no banks
    case MSR.MISC_ENABLE: return stored(cpu, index, cpu.miscEnable >>> 0, 0);
    case MSR.PAT: cpu.memHi = cpu.patHi; return cpu.patLo >>> 0;
    case MSR.EFER: cpu.memHi = 0; return cpu.efer >>> 0;
    case MSR.STAR: cpu.memHi = cpu.starHi; return cpu.star >>> 0;
    case MSR.LSTAR: return split(cpu, cpu.lstar);
    case MSR.CSTAR: return split(cpu, cpu.cstar);
    case MSR.SFMASK: cpu.memHi = 0; return cpu.sfmask >>> 0;
    case MSR.FS_BASE: return split(cpu, cpu.segBase[Seg.FS]);
    case MSR.GS_BASE: return split(cpu, cpu.segBase[Seg.GS]);
    case MSR.KERNEL_GS_BASE: return split(cpu, cpu.kernelGsBase);
    case MSR.TSC_AUX: cpu.memHi = 0; return cpu.tscAux >>> 0;
    case MSR.PKRS: cpu.memHi = 0; return cpu.pkrs >>> 0;
    case MSR.AMD_HWCR: return stored(cpu, index);
    // SYSCFG: Linux's AMD MTRR code reads it unconditionally; 0 = no fixed-range DRAM attributes, no SME.
    case MSR.AMD_SYSCFG: return stored(cpu, index);
    // Interrupt-pending message register: Linux's E400 idle check for family 0xf reads it; 0 = C1E off.
    case MSR.AMD_INT_PENDING: return stored(cpu, index);
  }
  if (isMtrr(index) || isAmdPmc(index)) return stored(cpu, index);
  const out = cpu.msrOut;
  if (!cpu.platform.msr.read(cpu.vp, index, out)) raise(cpu, 13, 0);
  cpu.memHi = out.hi | 0;
  return out.lo >>> 0;
}

/** Write MSR `index` = hi:lo, with the architectural reserved-bit checks (#GP(0)). */
export function writeMsr(cpu: CpuState, index: number, lo: number, hi: number): void {
  index >>>= 0;
  lo >>>= 0; hi |= 0;
  switch (index) {
    case MSR.TSC: {
      // SDM 17.17.3: a TSC write moves IA32_TSC_ADJUST by the same amount.
      const delta = canon(lo, hi) - guestTsc(cpu);
      cpu.tscOffset += delta;
      const adj = canon(stored(cpu, MSR.TSC_ADJUST), cpu.memHi) + delta;
      store(cpu, MSR.TSC_ADJUST, split(cpu, adj), cpu.memHi);
      return;
    }
    case MSR.TSC_ADJUST: {
      // Writing the adjustment moves the TSC by the difference (as on hardware with CPUID.7.0:EBX[1]).
      const v = canon(lo, hi);
      cpu.tscOffset += v - canon(stored(cpu, index), cpu.memHi);
      store(cpu, index, lo, hi);
      return;
    }
    case MSR.APIC_BASE:
      // Bit 10 (x2APIC) is not supported; bits above the physical width are reserved.
      if ((lo & 0x6ff) !== 0 || (hi & PHYS_HI_RSVD) !== 0 || hi !== 0) raise(cpu, 13, 0);
      cpu.apicBase = lo & 0xfffff900;
      // The enable bit reaches the local APIC model (disabling it resets the APIC, as on hardware).
      cpu.platform.interrupts[cpu.vp]?.writeApicBase?.(lo & ~0x100);
      return;
    case MSR.PATCH_LEVEL: case MSR.MCG_STATUS:
      if (index === MSR.MCG_STATUS && (lo | hi) !== 0) raise(cpu, 13, 0);
      return;
    case MSR.MTRRCAP: case MSR.MCG_CAP: raise(cpu, 13, 0);
    case MSR.SYSENTER_CS: cpu.sysenterCs = lo & 0xffff; return;
    case MSR.SYSENTER_ESP: case MSR.SYSENTER_EIP: {
      const v = canon(lo, hi);
      if (!isCanonical(v)) raise(cpu, 13, 0);
      if (index === MSR.SYSENTER_ESP) cpu.sysenterEsp = v; else cpu.sysenterEip = v;
      return;
    }
    case MSR.MISC_ENABLE: cpu.miscEnable = lo; store(cpu, index, lo, hi); return;
    case MSR.PAT:
      for (let i = 0; i < 4; i++) if (!VALID_MEMTYPE((lo >>> (8 * i)) & 0xff) && ((lo >>> (8 * i)) & 0xff) !== 7) raise(cpu, 13, 0);
      for (let i = 0; i < 4; i++) if (!VALID_MEMTYPE((hi >>> (8 * i)) & 0xff) && ((hi >>> (8 * i)) & 0xff) !== 7) raise(cpu, 13, 0);
      cpu.patLo = lo; cpu.patHi = hi;
      return;
    case MSR.EFER: {
      if ((lo & ~0xd01) !== 0 || hi !== 0) raise(cpu, 13, 0); // SCE, LME, LMA (read-only), NXE
      const pg = (cpu.cr0 & 0x80000000) !== 0;
      if (pg && ((lo ^ cpu.efer) & 0x100) !== 0) raise(cpu, 13, 0); // LME cannot change while paging
      const nv = (lo & 0x901) | (cpu.efer & 0x400);
      if (((nv ^ cpu.efer) & 0x800) !== 0) flushTlb(cpu, true);
      cpu.efer = nv;
      return;
    }
    case MSR.STAR: cpu.star = lo; cpu.starHi = hi; return;
    case MSR.LSTAR: case MSR.CSTAR: case MSR.FS_BASE: case MSR.GS_BASE: case MSR.KERNEL_GS_BASE: {
      const v = canon(lo, hi);
      if (!isCanonical(v)) raise(cpu, 13, 0);
      if (index === MSR.LSTAR) cpu.lstar = v;
      else if (index === MSR.CSTAR) cpu.cstar = v;
      else if (index === MSR.FS_BASE) cpu.segBase[Seg.FS] = v;
      else if (index === MSR.GS_BASE) cpu.segBase[Seg.GS] = v;
      else cpu.kernelGsBase = v;
      return;
    }
    case MSR.SFMASK: cpu.sfmask = lo; return;
    case MSR.TSC_AUX: if (hi !== 0) raise(cpu, 13, 0); cpu.tscAux = lo; return;
    case MSR.PKRS: // supervisor protection-key rights: cached translations assumed the old ones
      if (hi !== 0) raise(cpu, 13, 0);
      if (lo !== cpu.pkrs >>> 0) { cpu.pkrs = lo; flushTlb(cpu, true); }
      return;
    case MSR.AMD_HWCR: store(cpu, index, lo, hi); return;
    case MSR.AMD_INT_PENDING: store(cpu, index, lo, hi); return;
    case MSR.AMD_SYSCFG:
      if (hi !== 0 || (lo & ~0x001f0000) !== 0) raise(cpu, 13, 0);
      store(cpu, index, lo, hi);
      return;
  }
  if (isAmdPmc(index)) {
    if (index <= MSR.AMD_PERF_EVTSEL3) {
      if ((lo & EVTSEL_RSVD_LO) !== 0 || (hi & EVTSEL_RSVD_HI) !== 0) raise(cpu, 13, 0);
      store(cpu, index, lo, hi);
    } else {
      store(cpu, index, lo, hi & 0xffff); // 48-bit counters: upper bits are dropped, not checked
    }
    return;
  }
  if (isMtrr(index)) {
    if (index === MSR.MTRR_DEF_TYPE) {
      if ((lo & ~0xcff) !== 0 || hi !== 0 || !VALID_MEMTYPE(lo & 0xff)) raise(cpu, 13, 0);
    } else if (index >= MSR.MTRR_PHYS_FIRST && index <= MSR.MTRR_PHYS_LAST) {
      const isMask = (index & 1) === 1;
      if ((hi & PHYS_HI_RSVD) !== 0) raise(cpu, 13, 0);
      if (isMask ? (lo & 0x7ff) !== 0 : ((lo & 0xf00) !== 0 || !VALID_MEMTYPE(lo & 0xff))) raise(cpu, 13, 0);
    } else {
      for (let i = 0; i < 4; i++) if (!VALID_MEMTYPE((lo >>> (8 * i)) & 0xff) || !VALID_MEMTYPE((hi >>> (8 * i)) & 0xff)) raise(cpu, 13, 0);
    }
    store(cpu, index, lo, hi);
    return;
  }
  if (!cpu.platform.msr.write(cpu.vp, index, lo, hi)) raise(cpu, 13, 0);
}
