/**
 * Hyper-V CPUID leaves 0x40000000-0x4000000A with the values recommended by the guest contract (§1.2, §12.1),
 * and a combinator that layers them over the processor's base leaves.
 */
import type { CpuidProvider, CpuidResult } from '../processor/backend.js';
import * as T from './tlfs.js';

export interface HyperVCpuidOptions {
  vpCount: number;
  /** Offer the TSC-invariant privilege (guest then prefers the raw TSC). Only if the guest TSC is stable. */
  tscInvariant?: boolean;
  /** Offer the guest crash MSRs (0x40000100-0x40000105). */
  crashMsrs?: boolean;
}

const ZERO: CpuidResult = Object.freeze({ eax: 0, ebx: 0, ecx: 0, edx: 0 });

export class HyperVCpuid implements CpuidProvider {
  private readonly leaves = new Map<number, CpuidResult>();

  constructor(readonly options: HyperVCpuidOptions) {
    let features = T.HV_MSR_TIME_REF_COUNT_AVAILABLE | T.HV_MSR_SYNIC_AVAILABLE | T.HV_MSR_HYPERCALL_AVAILABLE |
      T.HV_MSR_VP_INDEX_AVAILABLE | T.HV_MSR_REFERENCE_TSC_AVAILABLE | T.HV_ACCESS_FREQUENCY_MSRS;
    if (options.tscInvariant) features |= T.HV_ACCESS_TSC_INVARIANT;
    let misc = T.HV_FEATURE_FREQUENCY_MSRS_AVAILABLE;
    if (options.crashMsrs) misc |= T.HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE;
    const [b, c, d] = T.HV_SIGNATURE;
    this.leaves.set(T.HV_CPUID_VENDOR, { eax: T.HV_CPUID_MAX_LEAF, ebx: b, ecx: c, edx: d });
    this.leaves.set(T.HV_CPUID_INTERFACE, { eax: T.HV_INTERFACE_SIGNATURE, ebx: 0, ecx: 0, edx: 0 });
    // Build 14393 of 10.0 (printed only by the guest).
    this.leaves.set(T.HV_CPUID_VERSION, { eax: 0x3839, ebx: 0x000a0000, ecx: 0, edx: 0 });
    // EBX: PostMessages + SignalEvents only; never AccessPartitionId/CpuManagement/Isolation (contract §0.3).
    this.leaves.set(T.HV_CPUID_FEATURES, { eax: features >>> 0, ebx: T.HV_POST_MESSAGES | T.HV_SIGNAL_EVENTS, ecx: 0, edx: misc });
    // Hint bit 9 so the guest EOIs the VMBus vector itself (contract §0.2).
    // With several VPs: remote TLB flush and IPIs by hypercall (one exit instead of an IPI per target).
    const smp = options.vpCount > 1 ? T.HV_REMOTE_TLB_FLUSH_RECOMMENDED | T.HV_CLUSTER_IPI_RECOMMENDED : 0;
    this.leaves.set(T.HV_CPUID_ENLIGHTENMENT_INFO, { eax: T.HV_DEPRECATING_AEOI_RECOMMENDED | smp, ebx: 0xffffffff, ecx: 0, edx: 0 });
    this.leaves.set(T.HV_CPUID_IMPLEMENT_LIMITS, { eax: options.vpCount, ebx: 64, ecx: 0, edx: 0 });
  }

  /** Leaves in 0x40000000-0x4000000A; zeros elsewhere in the hypervisor range. */
  cpuid(leaf: number, _subleaf: number): CpuidResult {
    const r = this.leaves.get(leaf >>> 0);
    return r ? { ...r } : { ...ZERO };
  }
}

/** True for the leaf range reserved to hypervisors (0x40000000-0x4FFFFFFF). */
export function isHypervisorLeaf(leaf: number): boolean {
  return (leaf >>> 0) >= 0x40000000 && (leaf >>> 0) <= 0x4fffffff;
}

/**
 * The partition's CPUID: base leaves from `base`, with CPUID.1:ECX[31] (hypervisor present) set and the
 * 0x4000xxxx range answered by `hv`. With `hv` null (an unenlightened partition) the hypervisor bit is
 * cleared and the whole 0x4000xxxx range reads as zeros, so no hypervisor signature (least of all KVM's,
 * contract §0.1) can leak from the base provider.
 */
export function combineCpuid(base: CpuidProvider, hv: HyperVCpuid | null): CpuidProvider {
  return {
    cpuid(leaf: number, subleaf: number): CpuidResult {
      if (isHypervisorLeaf(leaf)) return hv ? hv.cpuid(leaf, subleaf) : { ...ZERO };
      const r = base.cpuid(leaf, subleaf);
      if ((leaf >>> 0) === 1) {
        const ecx = hv ? (r.ecx | 0x80000000) >>> 0 : (r.ecx & 0x7fffffff) >>> 0;
        return { eax: r.eax, ebx: r.ebx, ecx, edx: r.edx };
      }
      return r;
    },
  };
}
