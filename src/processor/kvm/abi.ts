/**
 * The KVM user-space ABI for x86-64, as declared in Linux's uapi <linux/kvm.h> and <asm/kvm.h>:
 * ioctl numbers, capability numbers, exit reasons and the byte layout of every structure hyperts
 * passes to the kernel. Definitions only, no logic (OpenVMM style): the backend reads and writes
 * these structures with DataView at the offsets below.
 *
 * Every size, offset and number here is checked against the host's C header by
 * test/processor/kvm/abi-layout.test.ts (gcc prints sizeof/offsetof/ioctl values).
 */

const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const KVMIO = 0xae;

/** Linux _IOC(dir, type, nr, size) for x86 (dir:2 | size:14 | type:8 | nr:8). */
function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) >>> 0) + ((size << 16) | (KVMIO << 8) | nr);
}
const io = (nr: number): number => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number): number => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, nr, size);

export const KVM_API_VERSION = 12;

// ---- structure sizes and field offsets -------------------------------------------------------

/** struct kvm_regs: 18 u64 in this order. */
export const KVM_REGS_SIZE = 144;
export const REGS = {
  rax: 0, rbx: 8, rcx: 16, rdx: 24, rsi: 32, rdi: 40, rsp: 48, rbp: 56,
  r8: 64, r9: 72, r10: 80, r11: 88, r12: 96, r13: 104, r14: 112, r15: 120,
  rip: 128, rflags: 136,
} as const;
/** Offset in kvm_regs of the GPR with x86 encoding number i (RAX=0, RCX=1, RDX=2, RBX=3, RSP=4, RBP=5, RSI=6, RDI=7, R8..R15). */
export const GPR_OFFSET: readonly number[] = [
  REGS.rax, REGS.rcx, REGS.rdx, REGS.rbx, REGS.rsp, REGS.rbp, REGS.rsi, REGS.rdi,
  REGS.r8, REGS.r9, REGS.r10, REGS.r11, REGS.r12, REGS.r13, REGS.r14, REGS.r15,
];

/** struct kvm_segment (24 bytes). */
export const KVM_SEGMENT_SIZE = 24;
export const SEG = {
  base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19, g: 20, avl: 21,
  unusable: 22,
} as const;
/** struct kvm_dtable (16 bytes): base u64, limit u16. */
export const DTABLE = { base: 0, limit: 8 } as const;

/** struct kvm_sregs (312 bytes). */
export const KVM_SREGS_SIZE = 312;
export const SREGS = {
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168,
  gdt: 192, idt: 208,
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apic_base: 272,
  interrupt_bitmap: 280,
} as const;

/** struct kvm_run: the fixed header and the exit-reason union at offset 32. */
export const RUN = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  // KVM_EXIT_UNKNOWN
  hw_exit_reason: 32,
  // KVM_EXIT_FAIL_ENTRY
  fail_entry_reason: 32,
  fail_entry_cpu: 40,
  // KVM_EXIT_EXCEPTION
  ex_exception: 32,
  ex_error_code: 36,
  // KVM_EXIT_IO
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  // KVM_EXIT_MMIO
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  // KVM_EXIT_INTERNAL_ERROR
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  // KVM_EXIT_SYSTEM_EVENT
  system_event_type: 32,
  system_event_ndata: 36,
  system_event_data: 40,
  // KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR
  msr_error: 32,
  msr_reason: 40,
  msr_index: 44,
  msr_data: 48,
  // after the 256-byte union
  kvm_valid_regs: 288,
  kvm_dirty_regs: 296,
  s: 304,
} as const;

/** struct kvm_userspace_memory_region (32 bytes). */
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;
export const MEMREGION = { slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24 } as const;

/** struct kvm_cpuid2 header (nent, padding) followed by struct kvm_cpuid_entry2[nent] (40 bytes each). */
export const KVM_CPUID2_HEADER_SIZE = 8;
export const KVM_CPUID_ENTRY2_SIZE = 40;
export const CPUID_ENTRY = { function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24 } as const;
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/** struct kvm_msrs header (nmsrs, pad) followed by struct kvm_msr_entry[nmsrs] (16 bytes each). */
export const KVM_MSRS_HEADER_SIZE = 8;
export const KVM_MSR_ENTRY_SIZE = 16;
export const MSR_ENTRY = { index: 0, data: 8 } as const;

/** struct kvm_enable_cap (104 bytes). */
export const KVM_ENABLE_CAP_SIZE = 104;
export const ENABLE_CAP = { cap: 0, flags: 4, args: 8 } as const;

/** struct kvm_irq_level (8 bytes). */
export const KVM_IRQ_LEVEL_SIZE = 8;
export const IRQ_LEVEL = { irq: 0, level: 4 } as const;

/** struct kvm_msi (32 bytes). */
export const KVM_MSI_SIZE = 32;
export const MSI = { address_lo: 0, address_hi: 4, data: 8, flags: 12, devid: 16 } as const;

/** struct kvm_interrupt (4 bytes). */
export const KVM_INTERRUPT_SIZE = 4;

/** struct kvm_msr_filter: flags, then 16 struct kvm_msr_filter_range (24 bytes each) at offset 8. */
export const KVM_MSR_FILTER_SIZE = 392;
export const KVM_MSR_FILTER_RANGE_SIZE = 24;
export const KVM_MSR_FILTER_MAX_RANGES = 16;
export const MSR_FILTER = { flags: 0, ranges: 8 } as const;
export const MSR_FILTER_RANGE = { flags: 0, nmsrs: 4, base: 8, bitmap: 16 } as const;
export const KVM_MSR_FILTER_READ = 1;
export const KVM_MSR_FILTER_WRITE = 2;
export const KVM_MSR_FILTER_DEFAULT_ALLOW = 0;

/** KVM_CAP_X86_USER_SPACE_MSR exit reasons (args[0] of KVM_ENABLE_CAP, and kvm_run.msr.reason). */
export const KVM_MSR_EXIT_REASON_INVAL = 1;
export const KVM_MSR_EXIT_REASON_UNKNOWN = 2;
export const KVM_MSR_EXIT_REASON_FILTER = 4;

/** struct kvm_irqchip (520 bytes): chip_id, pad, 512-byte chip union. */
export const KVM_IRQCHIP_SIZE = 520;
export const IRQCHIP = { chip_id: 0, chip: 8 } as const;
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

/** struct kvm_lapic_state: 1 KiB register page. */
export const KVM_LAPIC_STATE_SIZE = 1024;
/** struct kvm_pit_config (64 bytes). */
export const KVM_PIT_CONFIG_SIZE = 64;
/** struct kvm_vcpu_events (64 bytes): pending exception/interrupt/NMI/SMI state, opaque to hyperts. */
export const KVM_VCPU_EVENTS_SIZE = 64;
/** struct kvm_mp_state (4 bytes). */
export const KVM_MP_STATE_SIZE = 4;
/** struct kvm_fpu (416 bytes), struct kvm_xsave (4096 bytes), struct kvm_xcrs (392 bytes). */
export const KVM_FPU_SIZE = 416;
export const FPU = { fcw: 128, fsw: 130, last_ip: 136, last_dp: 144, xmm: 152, mxcsr: 408 } as const;
export const KVM_XSAVE_SIZE = 4096;
export const KVM_XCRS_SIZE = 392;
/** struct kvm_signal_mask header: len u32, then the kernel sigset (8 bytes on x86-64). */
export const KVM_SIGNAL_MASK_HEADER_SIZE = 4;
export const KERNEL_SIGSET_SIZE = 8;
/** struct kvm_irqfd (32 bytes), struct kvm_ioeventfd (64 bytes). */
export const KVM_IRQFD_SIZE = 32;
export const IRQFD = { fd: 0, gsi: 4, flags: 8, resamplefd: 12 } as const;
export const KVM_IOEVENTFD_SIZE = 64;
export const IOEVENTFD = { datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24 } as const;
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
export const KVM_IOEVENTFD_FLAG_PIO = 2;

/** Sizes the ioctl numbers encode for structures with a flexible tail. */
const KVM_MSR_LIST_SIZE = 4;
const U64_SIZE = 8;

// ---- ioctl numbers -------------------------------------------------------------------------------

/** System ioctls (on the /dev/kvm fd). */
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_GET_MSR_INDEX_LIST = iowr(0x02, KVM_MSR_LIST_SIZE);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, KVM_CPUID2_HEADER_SIZE);

/** VM ioctls. */
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, KVM_USERSPACE_MEMORY_REGION_SIZE);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, U64_SIZE);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, KVM_IRQ_LEVEL_SIZE);
export const KVM_GET_IRQCHIP = iowr(0x62, KVM_IRQCHIP_SIZE);
export const KVM_SET_IRQCHIP = ior(0x63, KVM_IRQCHIP_SIZE);
export const KVM_IRQ_LINE_STATUS = iowr(0x67, KVM_IRQ_LEVEL_SIZE);
export const KVM_IRQFD = iow(0x76, KVM_IRQFD_SIZE);
export const KVM_CREATE_PIT2 = iow(0x77, KVM_PIT_CONFIG_SIZE);
export const KVM_IOEVENTFD = iow(0x79, KVM_IOEVENTFD_SIZE);
export const KVM_ENABLE_CAP = iow(0xa3, KVM_ENABLE_CAP_SIZE);
export const KVM_SIGNAL_MSI = iow(0xa5, KVM_MSI_SIZE);
export const KVM_X86_SET_MSR_FILTER = iow(0xc6, KVM_MSR_FILTER_SIZE);

/** vCPU ioctls. */
export const KVM_RUN = io(0x80);
export const KVM_GET_REGS = ior(0x81, KVM_REGS_SIZE);
export const KVM_SET_REGS = iow(0x82, KVM_REGS_SIZE);
export const KVM_GET_SREGS = ior(0x83, KVM_SREGS_SIZE);
export const KVM_SET_SREGS = iow(0x84, KVM_SREGS_SIZE);
export const KVM_INTERRUPT = iow(0x86, KVM_INTERRUPT_SIZE);
export const KVM_NMI = io(0x9a);
export const KVM_GET_MSRS = iowr(0x88, KVM_MSRS_HEADER_SIZE);
export const KVM_SET_MSRS = iow(0x89, KVM_MSRS_HEADER_SIZE);
export const KVM_SET_SIGNAL_MASK = iow(0x8b, KVM_SIGNAL_MASK_HEADER_SIZE);
export const KVM_GET_FPU = ior(0x8c, KVM_FPU_SIZE);
export const KVM_SET_FPU = iow(0x8d, KVM_FPU_SIZE);
export const KVM_GET_LAPIC = ior(0x8e, KVM_LAPIC_STATE_SIZE);
export const KVM_SET_LAPIC = iow(0x8f, KVM_LAPIC_STATE_SIZE);
export const KVM_SET_CPUID2 = iow(0x90, KVM_CPUID2_HEADER_SIZE);
export const KVM_GET_MP_STATE = ior(0x98, KVM_MP_STATE_SIZE);
export const KVM_SET_MP_STATE = iow(0x99, KVM_MP_STATE_SIZE);
export const KVM_GET_VCPU_EVENTS = ior(0x9f, KVM_VCPU_EVENTS_SIZE);
export const KVM_SET_VCPU_EVENTS = iow(0xa0, KVM_VCPU_EVENTS_SIZE);
export const KVM_SET_TSC_KHZ = io(0xa2);
export const KVM_GET_TSC_KHZ = io(0xa3);
export const KVM_GET_XSAVE = ior(0xa4, KVM_XSAVE_SIZE);
export const KVM_SET_XSAVE = iow(0xa5, KVM_XSAVE_SIZE);
export const KVM_GET_XCRS = ior(0xa6, KVM_XCRS_SIZE);
export const KVM_SET_XCRS = iow(0xa7, KVM_XCRS_SIZE);

// ---- exit reasons ---------------------------------------------------------------------------------

export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_X86_RDMSR = 29;
export const KVM_EXIT_X86_WRMSR = 30;
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** kvm_run.internal.suberror values. */
export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;
export const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1;

export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

// ---- capabilities ---------------------------------------------------------------------------------

/** KVM_CHECK_EXTENSION numbers, by the name the header gives them. */
export const KVM_CAP = {
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_HLT: 1,
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_EXT_CPUID: 7,
  KVM_CAP_NR_VCPUS: 9,
  KVM_CAP_MP_STATE: 14,
  KVM_CAP_IRQ_ROUTING: 25,
  KVM_CAP_IRQ_INJECT_STATUS: 26,
  KVM_CAP_IRQFD: 32,
  KVM_CAP_PIT2: 33,
  KVM_CAP_PIT_STATE2: 35,
  KVM_CAP_IOEVENTFD: 36,
  KVM_CAP_SET_IDENTITY_MAP_ADDR: 37,
  KVM_CAP_ADJUST_CLOCK: 39,
  KVM_CAP_VCPU_EVENTS: 41,
  KVM_CAP_HYPERV: 44,
  KVM_CAP_DEBUGREGS: 50,
  KVM_CAP_XSAVE: 55,
  KVM_CAP_XCRS: 56,
  KVM_CAP_TSC_CONTROL: 60,
  KVM_CAP_GET_TSC_KHZ: 61,
  KVM_CAP_MAX_VCPUS: 66,
  KVM_CAP_SYNC_REGS: 74,
  KVM_CAP_SIGNAL_MSI: 77,
  KVM_CAP_SPLIT_IRQCHIP: 121,
  KVM_CAP_X2APIC_API: 129,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_EXCEPTION_PAYLOAD: 164,
  KVM_CAP_X86_USER_SPACE_MSR: 188,
  KVM_CAP_X86_MSR_FILTER: 189,
} as const;
export type KvmCapName = keyof typeof KVM_CAP;

// ---- Linux constants used with the ioctls --------------------------------------------------------

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTNEED = 4;
export const EFD_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const EAGAIN = 11;
export const SIGUSR2 = 12;
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
/** timer_create for the kick timer: struct sigevent (64 bytes) aimed at one thread. */
export const SIGEVENT_SIZE = 64;
export const SIGEVENT = { signo: 8, notify: 12, tid: 16 } as const;
export const SIGEV_THREAD_ID = 4;
export const CLOCK_MONOTONIC = 1;
/** struct itimerspec: interval {sec, nsec}, value {sec, nsec}. */
export const ITIMERSPEC_SIZE = 32;
/** glibc's user-space sigset_t is 128 bytes; the kernel's is 8. */
export const GLIBC_SIGSET_SIZE = 128;
