/**
 * CPUID of the emulated processor. OWNER: core-system.
 *
 * Vendor: "AuthenticAMD", family 15 model 107 (the same identity as QEMU's qemu64 model, which Linux boots
 * daily). Why AMD: the development hosts are AMD EPYC, so differential tests compare against the same
 * vendor's semantics (SYSCALL/SYSRET, SYSENTER #UD in long mode, NULL-selector rules); and Linux treats AMD
 * as immune to Meltdown, so it does not enable page-table isolation — no CR3 switch on every system call,
 * which matters a lot for a software TLB.
 *
 * Only implemented features are advertised: x86-64 baseline with SSE2, NX, 1 GiB pages, invariant TSC;
 * RDTSCP (with IA32_TSC_AUX) and IA32_TSC_ADJUST; SMEP, SMAP, protection keys (PKU, PKS); no SSE3+, no XSAVE, no x2APIC, no TSC-deadline, no MCE/MCA,
 * no RDPID.
 * Merge with the platform provider: leaves 0x40000000-0x4FFFFFFF come from `platform.cpuid`; leaf 1 ECX
 * bit 31 (hypervisor present) is taken from the provider's leaf 1, everything else is ours, because the
 * feature bits must describe what this processor actually executes.
 */
import type { CpuState } from './cpu-state.js';
import type { CpuidResult } from '../backend.js';
import { PHYS_ADDR_BITS } from './mmu.js';

const VENDOR = 'AuthenticAMD';
const BRAND = 'hyperts emulated x86-64 processor';
const MAX_BASIC = 7;
const MAX_EXT = 0x80000008;
/** Family 15, model 107 (ext model 6, model 0xb), stepping 1. */
export const CPU_SIGNATURE = 0x00060fb1;

/** CX16 (cmpxchg16b: implemented in exec-alu and differential-tested). */
const ECX1 = 1 << 13;
const EDX1 = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 12) |
  (1 << 13) | (1 << 15) | (1 << 16) | (1 << 19) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26);
// FPU DE PSE TSC MSR PAE CX8 APIC SYSCALL MTRR PGE CMOV PAT MMX FXSR NX PDPE1GB RDTSCP LM (AMD mirrors leaf 1 bits here).
const EDX_EXT1 = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 11) | (1 << 12) |
  (1 << 13) | (1 << 15) | (1 << 16) | (1 << 23) | (1 << 24) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29);

/** Leaf 7 subleaf 0 EBX: TSC_ADJUST (IA32_TSC_ADJUST, msr.ts), SMEP, SMAP (mmu.ts, STAC/CLAC). Max subleaf 0. */
const EBX7_0 = (1 << 1) | (1 << 7) | (1 << 20);
/** Leaf 7 subleaf 0 ECX: PKU (PKRU, RDPKRU/WRPKRU), PKS (IA32_PKRS); OSPKE (bit 4) mirrors CR4.PKE. */
const ECX7_0 = (1 << 3) | (1 << 31);

function str4(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24)) >>> 0;
}

/** Our leaf values (before the platform merge). Writes into `out`. */
export function baseCpuid(vp: number, leaf: number, subleaf: number, out: CpuidResult, cpus = 1): void {
  out.eax = 0; out.ebx = 0; out.ecx = 0; out.edx = 0;
  switch (leaf >>> 0) {
    case 0:
      out.eax = MAX_BASIC; out.ebx = str4(VENDOR, 0); out.edx = str4(VENDOR, 4); out.ecx = str4(VENDOR, 8);
      return;
    case 1:
      out.eax = CPU_SIGNATURE;
      // Initial APIC ID, logical processors per package, CLFLUSH 64 bytes; HTT says the count is valid.
      out.ebx = ((vp & 0xff) << 24 | (Math.min(cpus, 255) & 0xff) << 16 | 8 << 8) >>> 0;
      out.ecx = ECX1;
      out.edx = (EDX1 | (cpus > 1 ? 1 << 28 : 0)) >>> 0;
      return;
    case 7:
      if (subleaf === 0) { out.ebx = EBX7_0 >>> 0; out.ecx = ECX7_0 >>> 0; }
      return;
    case 0x80000000:
      out.eax = MAX_EXT; out.ebx = str4(VENDOR, 0); out.edx = str4(VENDOR, 4); out.ecx = str4(VENDOR, 8);
      return;
    case 0x80000001:
      out.eax = CPU_SIGNATURE;
      out.edx = EDX_EXT1 >>> 0;
      if (cpus > 1) out.ecx = 1 << 1; // CmpLegacy: the logical processors are cores, not threads
      return;
    case 0x80000002: case 0x80000003: case 0x80000004: {
      const s = BRAND.padEnd(48, '\0');
      const o = (leaf - 0x80000002) * 16;
      out.eax = str4(s, o); out.ebx = str4(s, o + 4); out.ecx = str4(s, o + 8); out.edx = str4(s, o + 12);
      return;
    }
    case 0x80000005: // L1: 64 KiB 2-way data and instruction caches, 64-byte lines
      out.ecx = (64 << 24 | 2 << 16 | 1 << 8 | 64) >>> 0;
      out.edx = (64 << 24 | 2 << 16 | 1 << 8 | 64) >>> 0;
      return;
    case 0x80000006: // L2: 512 KiB, 16-way (encoding 8), 64-byte lines
      out.ecx = (512 << 16 | 8 << 12 | 64) >>> 0;
      return;
    case 0x80000007:
      out.edx = 1 << 8; // invariant TSC: it derives from the partition's virtual clock
      return;
    case 0x80000008:
      out.eax = PHYS_ADDR_BITS | (48 << 8);
      // AMD core topology: NC = cores - 1, ApicIdCoreIdSize = bits of the APIC ID that number the core.
      if (cpus > 1) out.ecx = ((cpus - 1) & 0xff) | ((32 - Math.clz32(cpus - 1)) << 12);
      return;
    default:
      return;
  }
}

const APIC_BASE_EN = 1 << 11;

const scratch: CpuidResult = { eax: 0, ebx: 0, ecx: 0, edx: 0 };

/** The value CPUID returns on this processor for (leaf, subleaf), platform merge included. */
export function cpuidValue(cpu: CpuState, leaf: number, subleaf: number, out: CpuidResult): void {
  leaf >>>= 0;
  if (leaf >= 0x40000000 && leaf <= 0x4fffffff) {
    const r = cpu.platform.cpuid.cpuid(leaf, subleaf);
    out.eax = r.eax >>> 0; out.ebx = r.ebx >>> 0; out.ecx = r.ecx >>> 0; out.edx = r.edx >>> 0;
    return;
  }
  baseCpuid(cpu.vp, leaf, subleaf, out, cpu.platform.vcpuCount ?? 1);
  if (leaf === 7 && subleaf === 0 && (cpu.cr4 & (1 << 22)) !== 0) out.ecx = (out.ecx | (1 << 4)) >>> 0; // OSPKE
  if (leaf === 1) {
    const r = cpu.platform.cpuid.cpuid(1, 0);
    out.ecx = (out.ecx | (r.ecx & 0x80000000)) >>> 0;
  }
  // The APIC feature bit (leaf 1 and AMD's mirror) follows IA32_APIC_BASE.EN: a globally disabled APIC is absent.
  if ((leaf === 1 || leaf === 0x80000001) && (cpu.apicBase & APIC_BASE_EN) === 0) out.edx = (out.edx & ~(1 << 9)) >>> 0;
}

/** CPUID instruction: EAX/ECX in, EAX/EBX/ECX/EDX out (upper halves cleared). */
export function execCpuid(cpu: CpuState): void {
  const g = cpu.gpr;
  cpuidValue(cpu, g[0], g[2], scratch);
  g[0] = scratch.eax; g[1] = 0;
  g[6] = scratch.ebx; g[7] = 0;
  g[2] = scratch.ecx; g[3] = 0;
  g[4] = scratch.edx; g[5] = 0;
}
