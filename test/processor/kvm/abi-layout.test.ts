/**
 * Checks every KVM ABI constant in src/processor/kvm/abi.ts against the host's C headers: gcc compiles
 * a program that prints sizeof/offsetof/ioctl numbers from <linux/kvm.h>, and each must match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as abi from '../../../src/processor/kvm/abi.js';

/** [C expression, value in abi.ts]. */
function expectations(): Array<[string, number]> {
  const e: Array<[string, number]> = [];
  const off = (type: string, table: Record<string, number>, prefix = ''): void => {
    for (const [k, v] of Object.entries(table)) e.push([`offsetof(${type}, ${prefix}${k})`, v]);
  };
  e.push(['sizeof(struct kvm_regs)', abi.KVM_REGS_SIZE]);
  off('struct kvm_regs', abi.REGS);
  e.push(['sizeof(struct kvm_segment)', abi.KVM_SEGMENT_SIZE]);
  off('struct kvm_segment', abi.SEG);
  e.push(['sizeof(struct kvm_dtable)', 16]);
  off('struct kvm_dtable', abi.DTABLE);
  e.push(['sizeof(struct kvm_sregs)', abi.KVM_SREGS_SIZE]);
  off('struct kvm_sregs', abi.SREGS);
  const run: Record<string, string> = {
    request_interrupt_window: 'request_interrupt_window', immediate_exit: 'immediate_exit', exit_reason: 'exit_reason',
    ready_for_interrupt_injection: 'ready_for_interrupt_injection', if_flag: 'if_flag', flags: 'flags', cr8: 'cr8',
    apic_base: 'apic_base', hw_exit_reason: 'hw.hardware_exit_reason',
    fail_entry_reason: 'fail_entry.hardware_entry_failure_reason', fail_entry_cpu: 'fail_entry.cpu',
    ex_exception: 'ex.exception', ex_error_code: 'ex.error_code',
    io_direction: 'io.direction', io_size: 'io.size', io_port: 'io.port', io_count: 'io.count',
    io_data_offset: 'io.data_offset', mmio_phys_addr: 'mmio.phys_addr', mmio_data: 'mmio.data', mmio_len: 'mmio.len',
    mmio_is_write: 'mmio.is_write', internal_suberror: 'internal.suberror', internal_ndata: 'internal.ndata',
    internal_data: 'internal.data', system_event_type: 'system_event.type', system_event_ndata: 'system_event.ndata',
    system_event_data: 'system_event.data', msr_error: 'msr.error', msr_reason: 'msr.reason', msr_index: 'msr.index',
    msr_data: 'msr.data', kvm_valid_regs: 'kvm_valid_regs', kvm_dirty_regs: 'kvm_dirty_regs', s: 's',
  };
  for (const [k, field] of Object.entries(run)) e.push([`offsetof(struct kvm_run, ${field})`, (abi.RUN as Record<string, number>)[k]]);
  e.push(['sizeof(struct kvm_userspace_memory_region)', abi.KVM_USERSPACE_MEMORY_REGION_SIZE]);
  off('struct kvm_userspace_memory_region', abi.MEMREGION);
  e.push(['sizeof(struct kvm_cpuid2)', abi.KVM_CPUID2_HEADER_SIZE]);
  e.push(['sizeof(struct kvm_cpuid_entry2)', abi.KVM_CPUID_ENTRY2_SIZE]);
  off('struct kvm_cpuid_entry2', abi.CPUID_ENTRY);
  e.push(['KVM_CPUID_FLAG_SIGNIFCANT_INDEX', abi.KVM_CPUID_FLAG_SIGNIFCANT_INDEX]);
  e.push(['sizeof(struct kvm_msrs)', abi.KVM_MSRS_HEADER_SIZE]);
  e.push(['sizeof(struct kvm_msr_entry)', abi.KVM_MSR_ENTRY_SIZE]);
  off('struct kvm_msr_entry', abi.MSR_ENTRY);
  e.push(['sizeof(struct kvm_enable_cap)', abi.KVM_ENABLE_CAP_SIZE]);
  off('struct kvm_enable_cap', abi.ENABLE_CAP);
  e.push(['sizeof(struct kvm_irq_level)', abi.KVM_IRQ_LEVEL_SIZE]);
  off('struct kvm_irq_level', abi.IRQ_LEVEL);
  e.push(['sizeof(struct kvm_msi)', abi.KVM_MSI_SIZE]);
  off('struct kvm_msi', abi.MSI);
  e.push(['sizeof(struct kvm_interrupt)', abi.KVM_INTERRUPT_SIZE]);
  e.push(['sizeof(struct kvm_msr_filter)', abi.KVM_MSR_FILTER_SIZE]);
  e.push(['sizeof(struct kvm_msr_filter_range)', abi.KVM_MSR_FILTER_RANGE_SIZE]);
  e.push(['KVM_MSR_FILTER_MAX_RANGES', abi.KVM_MSR_FILTER_MAX_RANGES]);
  off('struct kvm_msr_filter', abi.MSR_FILTER);
  off('struct kvm_msr_filter_range', abi.MSR_FILTER_RANGE);
  e.push(['KVM_MSR_FILTER_READ', abi.KVM_MSR_FILTER_READ], ['KVM_MSR_FILTER_WRITE', abi.KVM_MSR_FILTER_WRITE]);
  e.push(['KVM_MSR_FILTER_DEFAULT_ALLOW', abi.KVM_MSR_FILTER_DEFAULT_ALLOW]);
  e.push(['KVM_MSR_EXIT_REASON_INVAL', abi.KVM_MSR_EXIT_REASON_INVAL], ['KVM_MSR_EXIT_REASON_UNKNOWN', abi.KVM_MSR_EXIT_REASON_UNKNOWN], ['KVM_MSR_EXIT_REASON_FILTER', abi.KVM_MSR_EXIT_REASON_FILTER]);
  e.push(['sizeof(struct kvm_irqchip)', abi.KVM_IRQCHIP_SIZE]);
  off('struct kvm_irqchip', abi.IRQCHIP);
  e.push(['KVM_IRQCHIP_PIC_MASTER', abi.KVM_IRQCHIP_PIC_MASTER], ['KVM_IRQCHIP_PIC_SLAVE', abi.KVM_IRQCHIP_PIC_SLAVE], ['KVM_IRQCHIP_IOAPIC', abi.KVM_IRQCHIP_IOAPIC]);
  e.push(['sizeof(struct kvm_lapic_state)', abi.KVM_LAPIC_STATE_SIZE]);
  e.push(['sizeof(struct kvm_pit_config)', abi.KVM_PIT_CONFIG_SIZE]);
  e.push(['sizeof(struct kvm_vcpu_events)', abi.KVM_VCPU_EVENTS_SIZE]);
  e.push(['sizeof(struct kvm_mp_state)', abi.KVM_MP_STATE_SIZE]);
  e.push(['sizeof(struct kvm_fpu)', abi.KVM_FPU_SIZE]);
  off('struct kvm_fpu', abi.FPU);
  e.push(['sizeof(struct kvm_xsave)', abi.KVM_XSAVE_SIZE]);
  e.push(['sizeof(struct kvm_xcrs)', abi.KVM_XCRS_SIZE]);
  e.push(['sizeof(struct kvm_signal_mask)', abi.KVM_SIGNAL_MASK_HEADER_SIZE]);
  e.push(['sizeof(struct kvm_irqfd)', abi.KVM_IRQFD_SIZE]);
  off('struct kvm_irqfd', abi.IRQFD);
  e.push(['sizeof(struct kvm_ioeventfd)', abi.KVM_IOEVENTFD_SIZE]);
  off('struct kvm_ioeventfd', abi.IOEVENTFD);
  e.push(['KVM_IOEVENTFD_FLAG_DATAMATCH', abi.KVM_IOEVENTFD_FLAG_DATAMATCH], ['KVM_IOEVENTFD_FLAG_PIO', abi.KVM_IOEVENTFD_FLAG_PIO]);
  e.push(['KVM_API_VERSION', abi.KVM_API_VERSION]);
  const names = [
    'KVM_GET_API_VERSION', 'KVM_CREATE_VM', 'KVM_GET_MSR_INDEX_LIST', 'KVM_CHECK_EXTENSION', 'KVM_GET_VCPU_MMAP_SIZE',
    'KVM_GET_SUPPORTED_CPUID', 'KVM_CREATE_VCPU', 'KVM_SET_USER_MEMORY_REGION', 'KVM_SET_TSS_ADDR',
    'KVM_SET_IDENTITY_MAP_ADDR', 'KVM_CREATE_IRQCHIP', 'KVM_IRQ_LINE', 'KVM_GET_IRQCHIP', 'KVM_SET_IRQCHIP',
    'KVM_IRQ_LINE_STATUS', 'KVM_IRQFD', 'KVM_CREATE_PIT2', 'KVM_IOEVENTFD', 'KVM_ENABLE_CAP', 'KVM_SIGNAL_MSI',
    'KVM_X86_SET_MSR_FILTER', 'KVM_RUN', 'KVM_GET_REGS', 'KVM_SET_REGS', 'KVM_GET_SREGS', 'KVM_SET_SREGS',
    'KVM_INTERRUPT', 'KVM_NMI', 'KVM_GET_MSRS', 'KVM_SET_MSRS', 'KVM_SET_SIGNAL_MASK', 'KVM_GET_FPU', 'KVM_SET_FPU',
    'KVM_GET_LAPIC', 'KVM_SET_LAPIC', 'KVM_SET_CPUID2', 'KVM_GET_MP_STATE', 'KVM_SET_MP_STATE',
    'KVM_GET_VCPU_EVENTS', 'KVM_SET_VCPU_EVENTS', 'KVM_SET_TSC_KHZ', 'KVM_GET_TSC_KHZ', 'KVM_GET_XSAVE',
    'KVM_SET_XSAVE', 'KVM_GET_XCRS', 'KVM_SET_XCRS',
    'KVM_EXIT_UNKNOWN', 'KVM_EXIT_EXCEPTION', 'KVM_EXIT_IO', 'KVM_EXIT_HYPERCALL', 'KVM_EXIT_DEBUG', 'KVM_EXIT_HLT',
    'KVM_EXIT_MMIO', 'KVM_EXIT_IRQ_WINDOW_OPEN', 'KVM_EXIT_SHUTDOWN', 'KVM_EXIT_FAIL_ENTRY', 'KVM_EXIT_INTR',
    'KVM_EXIT_INTERNAL_ERROR', 'KVM_EXIT_SYSTEM_EVENT', 'KVM_EXIT_X86_RDMSR', 'KVM_EXIT_X86_WRMSR',
    'KVM_EXIT_IO_IN', 'KVM_EXIT_IO_OUT', 'KVM_SYSTEM_EVENT_SHUTDOWN', 'KVM_SYSTEM_EVENT_RESET', 'KVM_SYSTEM_EVENT_CRASH',
  ];
  const rec = abi as unknown as Record<string, number>;
  for (const n of names) e.push([n, rec[n]]);
  for (const [n, v] of Object.entries(abi.KVM_CAP)) e.push([n, v]);
  for (const n of ['O_RDWR', 'O_CLOEXEC', 'PROT_READ', 'PROT_WRITE', 'MAP_SHARED', 'MAP_PRIVATE', 'MAP_ANONYMOUS',
    'MAP_NORESERVE', 'MADV_DONTNEED', 'EFD_CLOEXEC', 'EINTR', 'EAGAIN', 'SIGUSR2', 'SIG_BLOCK', 'SIG_UNBLOCK']) e.push([n, rec[n]]);
  e.push(['sizeof(sigset_t)', abi.GLIBC_SIGSET_SIZE]);
  // The kick timer (timer_create aimed at one thread) and the internal-error suberrors.
  e.push(['sizeof(struct sigevent)', abi.SIGEVENT_SIZE], ['offsetof(struct sigevent, sigev_signo)', abi.SIGEVENT.signo],
    ['offsetof(struct sigevent, sigev_notify)', abi.SIGEVENT.notify], ['offsetof(struct sigevent, _sigev_un._tid)', abi.SIGEVENT.tid],
    ['SIGEV_THREAD_ID', abi.SIGEV_THREAD_ID], ['CLOCK_MONOTONIC', abi.CLOCK_MONOTONIC], ['sizeof(struct itimerspec)', abi.ITIMERSPEC_SIZE],
    ['offsetof(struct itimerspec, it_value)', 16]);
  for (const n of ['KVM_INTERNAL_ERROR_EMULATION', 'KVM_INTERNAL_ERROR_SIMUL_EX', 'KVM_INTERNAL_ERROR_DELIVERY_EV',
    'KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON', 'KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES', 'KVM_EXIT_INTR'] as const) e.push([n, abi[n]]);
  e.push(['offsetof(struct kvm_run, emulation_failure.flags)', abi.RUN.internal_data],
    ['offsetof(struct kvm_run, emulation_failure.insn_size)', abi.RUN.internal_data + 8],
    ['offsetof(struct kvm_run, emulation_failure.insn_bytes)', abi.RUN.internal_data + 9]);
  return e;
}

const gcc = spawnSync('gcc', ['--version']);
const haveHeader = spawnSync('sh', ['-c', 'test -f /usr/include/linux/kvm.h']).status === 0;
const skip = gcc.status !== 0 ? 'gcc is not installed (apt-get install gcc)' :
  !haveHeader ? '/usr/include/linux/kvm.h is missing (apt-get install linux-libc-dev)' : false;

test('KVM ABI constants match <linux/kvm.h>', { skip }, () => {
  const exp = expectations();
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-kvm-abi-'));
  try {
    const src = [
      '#define _GNU_SOURCE', '#include <stdio.h>', '#include <stddef.h>', '#include <fcntl.h>', '#include <errno.h>',
      '#include <signal.h>', '#include <time.h>', '#include <sys/mman.h>', '#include <sys/eventfd.h>', '#include <linux/kvm.h>',
      'int main(void) {',
      ...exp.map(([c]) => `  printf("%llu\\n", (unsigned long long)(${c}));`),
      '  return 0;', '}',
    ].join('\n');
    writeFileSync(join(dir, 'abi.c'), src);
    const cc = spawnSync('gcc', ['-O0', '-o', join(dir, 'abi'), join(dir, 'abi.c')], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    const out = spawnSync(join(dir, 'abi'), { encoding: 'utf8' });
    const lines = out.stdout.trim().split('\n');
    assert.equal(lines.length, exp.length);
    const wrong: string[] = [];
    exp.forEach(([c, v], i) => { if (Number(lines[i]) !== v) wrong.push(`${c}: header ${lines[i]}, abi.ts ${v}`); });
    assert.deepEqual(wrong, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
