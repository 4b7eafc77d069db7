/**
 * Hyper-V Top-Level Functional Specification numbers the guest relies on: CPUID leaves and bits,
 * synthetic MSR indexes, hypercall codes and status values (see hyperv-guest-contract.md §1-§4).
 */

// CPUID leaves.
export const HV_CPUID_VENDOR = 0x40000000;
export const HV_CPUID_INTERFACE = 0x40000001;
export const HV_CPUID_VERSION = 0x40000002;
export const HV_CPUID_FEATURES = 0x40000003;
export const HV_CPUID_ENLIGHTENMENT_INFO = 0x40000004;
export const HV_CPUID_IMPLEMENT_LIMITS = 0x40000005;
export const HV_CPUID_NESTED_FEATURES = 0x4000000a;
export const HV_CPUID_MAX_LEAF = HV_CPUID_NESTED_FEATURES;

/** "Microsoft Hv" as EBX/ECX/EDX. */
export const HV_SIGNATURE = [0x7263694d, 0x666f736f, 0x76482074] as const;
/** "Hv#1". */
export const HV_INTERFACE_SIGNATURE = 0x31237648;

// 0x40000003.EAX privileges (group A).
export const HV_MSR_TIME_REF_COUNT_AVAILABLE = 1 << 1;
export const HV_MSR_SYNIC_AVAILABLE = 1 << 2;
export const HV_MSR_APIC_ACCESS_AVAILABLE = 1 << 4;
export const HV_MSR_HYPERCALL_AVAILABLE = 1 << 5;
export const HV_MSR_VP_INDEX_AVAILABLE = 1 << 6;
export const HV_MSR_REFERENCE_TSC_AVAILABLE = 1 << 9;
export const HV_ACCESS_FREQUENCY_MSRS = 1 << 11;
export const HV_ACCESS_TSC_INVARIANT = 1 << 15;
// 0x40000003.EBX (group B).
export const HV_POST_MESSAGES = 1 << 4;
export const HV_SIGNAL_EVENTS = 1 << 5;
// 0x40000003.EDX (group D).
export const HV_FEATURE_FREQUENCY_MSRS_AVAILABLE = 1 << 8;
export const HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE = 1 << 10;
// 0x40000004.EAX hints.
export const HV_DEPRECATING_AEOI_RECOMMENDED = 1 << 9;
export const HV_REMOTE_TLB_FLUSH_RECOMMENDED = 1 << 2;
export const HV_CLUSTER_IPI_RECOMMENDED = 1 << 10;

// Synthetic MSRs.
export const HV_X64_MSR_GUEST_OS_ID = 0x40000000;
export const HV_X64_MSR_HYPERCALL = 0x40000001;
export const HV_X64_MSR_VP_INDEX = 0x40000002;
export const HV_X64_MSR_RESET = 0x40000003;
export const HV_X64_MSR_VP_RUNTIME = 0x40000010;
export const HV_X64_MSR_TIME_REF_COUNT = 0x40000020;
export const HV_X64_MSR_REFERENCE_TSC = 0x40000021;
export const HV_X64_MSR_TSC_FREQUENCY = 0x40000022;
export const HV_X64_MSR_APIC_FREQUENCY = 0x40000023;
export const HV_X64_MSR_VP_ASSIST_PAGE = 0x40000073;
export const HV_X64_MSR_SCONTROL = 0x40000080;
export const HV_X64_MSR_SVERSION = 0x40000081;
export const HV_X64_MSR_SIEFP = 0x40000082;
export const HV_X64_MSR_SIMP = 0x40000083;
export const HV_X64_MSR_EOM = 0x40000084;
export const HV_X64_MSR_SINT0 = 0x40000090;
export const HV_X64_MSR_SINT15 = 0x4000009f;
export const HV_X64_MSR_CRASH_P0 = 0x40000100;
export const HV_X64_MSR_CRASH_P4 = 0x40000104;
export const HV_X64_MSR_CRASH_CTL = 0x40000105;
export const HV_X64_MSR_TSC_INVARIANT_CONTROL = 0x40000118;

export const HV_SYNIC_SINT_COUNT = 16;
export const HV_SINT_MASKED = 1 << 16;
export const HV_SINT_AUTO_EOI = 1 << 17;
export const HV_SINT_POLLING = 1 << 18;

// Hypercall codes.
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE = 0x0002;
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST = 0x0003;
export const HVCALL_SEND_IPI = 0x000b;
/** HvFlushVirtualAddress* flags. */
export const HV_FLUSH_ALL_PROCESSORS = 1 << 0;
export const HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES = 1 << 1;
export const HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY = 1 << 2;
export const HVCALL_POST_MESSAGE = 0x005c;
export const HVCALL_SIGNAL_EVENT = 0x005d;

// Hypercall status values.
export const HV_STATUS_SUCCESS = 0;
export const HV_STATUS_INVALID_HYPERCALL_CODE = 2;
export const HV_STATUS_INVALID_HYPERCALL_INPUT = 3;
export const HV_STATUS_INVALID_ALIGNMENT = 4;
export const HV_STATUS_INVALID_PARAMETER = 5;
export const HV_STATUS_ACCESS_DENIED = 6;
export const HV_STATUS_OPERATION_DENIED = 8;
export const HV_STATUS_INSUFFICIENT_MEMORY = 11;
export const HV_STATUS_INVALID_PORT_ID = 17;
export const HV_STATUS_INVALID_CONNECTION_ID = 18;
export const HV_STATUS_INSUFFICIENT_BUFFERS = 19;

// SynIC message layout.
export const HV_MESSAGE_SIZE = 256;
export const HV_MESSAGE_PAYLOAD_MAX = 240;
export const HV_MESSAGE_FLAG_PENDING = 1;

/** x64 general-purpose register numbers as used by HypercallRegs. */
export const REG_RAX = 0;
export const REG_RCX = 1;
export const REG_RDX = 2;
export const REG_R8 = 8;
export const REG_R11 = 11;
