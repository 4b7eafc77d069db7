/**
 * Builds the KVM_SET_CPUID2 table from the partition's CpuidProvider: every basic, Hyper-V
 * (0x400000xx) and extended leaf up to the maximum each range declares, with the sub-leaves the
 * indexed leaves define. KVM's own paravirtual leaves are never added, so the guest sees Hyper-V
 * (and only Hyper-V) at 0x40000000.
 */
import type { CpuidProvider, CpuidResult } from '../backend.js';
import { CPUID_ENTRY, KVM_CPUID2_HEADER_SIZE, KVM_CPUID_ENTRY2_SIZE, KVM_CPUID_FLAG_SIGNIFCANT_INDEX } from './abi.js';

export interface CpuidTableEntry extends CpuidResult { leaf: number; subleaf: number; indexed: boolean }

/** KVM accepts at most 256 entries (KVM_MAX_CPUID_ENTRIES). */
export const MAX_CPUID_ENTRIES = 256;
const MAX_SUBLEAVES = 64;

export function buildCpuidTable(p: CpuidProvider): CpuidTableEntry[] {
  const out: CpuidTableEntry[] = [];
  const add = (leaf: number, subleaf: number, indexed: boolean): CpuidResult => {
    const r = p.cpuid(leaf >>> 0, subleaf >>> 0);
    if (out.length < MAX_CPUID_ENTRIES) {
      out.push({ leaf: leaf >>> 0, subleaf, indexed, eax: r.eax >>> 0, ebx: r.ebx >>> 0, ecx: r.ecx >>> 0, edx: r.edx >>> 0 });
    }
    return r;
  };
  for (const base of [0, 0x4000_0000, 0x8000_0000]) {
    const max = p.cpuid(base, 0).eax >>> 0;
    // A range is present only when its max leaf lies inside it; cap the count against nonsense.
    if (max < base || max - base > 0xff) continue;
    for (let leaf = base; leaf <= max; leaf++) addLeaf(leaf, add);
  }
  return out;
}

function addLeaf(leaf: number, add: (leaf: number, sub: number, indexed: boolean) => CpuidResult): void {
  switch (leaf) {
    case 0x4: // deterministic cache parameters: until cache type 0
    case 0x8000_001d:
      for (let s = 0; s < MAX_SUBLEAVES; s++) { if ((add(leaf, s, true).eax & 0x1f) === 0) break; }
      return;
    case 0x7: // structured features: sub-leaf 0 EAX = max sub-leaf
    case 0x14:
    case 0x24: {
      const n = Math.min(add(leaf, 0, true).eax >>> 0, MAX_SUBLEAVES - 1);
      for (let s = 1; s <= n; s++) add(leaf, s, true);
      return;
    }
    case 0xb: // topology: until level type 0
    case 0x1f:
      for (let s = 0; s < MAX_SUBLEAVES; s++) { if (((add(leaf, s, true).ecx >>> 8) & 0xff) === 0) break; }
      return;
    case 0xd: // XSAVE: sub-leaves 0, 1 and one per supported component
    case 0xf:
    case 0x10:
    case 0x12: {
      const r0 = add(leaf, 0, true);
      add(leaf, 1, true);
      const mask = leaf === 0xd ? r0.eax >>> 0 : 0xfffffffc;
      for (let s = 2; s < 32; s++) if (mask & (1 << s)) add(leaf, s, true);
      return;
    }
    default:
      add(leaf, 0, false);
  }
}

/** struct kvm_cpuid2 bytes for the table. */
export function encodeCpuid2(entries: CpuidTableEntry[]): Uint8Array {
  const n = Math.min(entries.length, MAX_CPUID_ENTRIES);
  const b = new Uint8Array(KVM_CPUID2_HEADER_SIZE + n * KVM_CPUID_ENTRY2_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, n, true);
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    const o = KVM_CPUID2_HEADER_SIZE + i * KVM_CPUID_ENTRY2_SIZE;
    v.setUint32(o + CPUID_ENTRY.function, e.leaf >>> 0, true);
    v.setUint32(o + CPUID_ENTRY.index, e.subleaf >>> 0, true);
    v.setUint32(o + CPUID_ENTRY.flags, e.indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0, true);
    v.setUint32(o + CPUID_ENTRY.eax, e.eax >>> 0, true);
    v.setUint32(o + CPUID_ENTRY.ebx, e.ebx >>> 0, true);
    v.setUint32(o + CPUID_ENTRY.ecx, e.ecx >>> 0, true);
    v.setUint32(o + CPUID_ENTRY.edx, e.edx >>> 0, true);
  }
  return b;
}
