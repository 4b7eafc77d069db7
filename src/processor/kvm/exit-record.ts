/**
 * One KVM exit as the vCPU's handlers see it: the fields of kvm_run they need, copied into a small
 * record (Int32 slots + a payload page), and the answer written back into kvm_run before the next
 * KVM_RUN. Copying keeps the handlers independent of kvm_run's union layout and bounds every length
 * the kernel reported before a handler touches the data.
 */
import * as abi from './abi.js';

/** Int32 slots. */
export const REC = {
  /** KVM exit reason. */
  exit: 0,
  /** IO: port | size << 16 | direction << 24. MMIO: len | is_write << 8. MSR: index. Error: errno. */
  a0: 1,
  /** IO: count. MMIO: address low 32 bits. MSR: reason. Internal error: ndata. */
  a1: 2,
  /** MMIO: address high bits. */
  a2: 3,
  /** Reply flags (REPLY_*) the handler leaves for completeExit. */
  replyFlags: 4,
} as const;
export const REC_INTS = 8;
/** KVM keeps string-I/O data within the kvm_run page, so a page bounds it. */
export const PAYLOAD_SIZE = 4096;

export const REPLY_MSR_ERROR = 1; // set kvm_run.msr.error (the guest gets #GP)

/** Copies what the handlers need from kvm_run into the record. */
export function copyExit(exit: number, run: DataView, runBuf: Uint8Array, rec: Int32Array, payload: Uint8Array): void {
  rec[REC.exit] = exit;
  rec[REC.replyFlags] = 0;
  switch (exit) {
    case abi.KVM_EXIT_IO: {
      const dir = run.getUint8(abi.RUN.io_direction);
      const size = run.getUint8(abi.RUN.io_size);
      const port = run.getUint16(abi.RUN.io_port, true);
      const count = run.getUint32(abi.RUN.io_count, true);
      rec[REC.a0] = port | (size << 16) | (dir << 24);
      rec[REC.a1] = count;
      if (dir === abi.KVM_EXIT_IO_OUT) {
        const off = run.getUint32(abi.RUN.io_data_offset, true);
        const n = size * count;
        // The kernel keeps the data inside the mapping; a bad length is refused by the handler.
        if (n === 1 && off < runBuf.length) payload[0] = runBuf[off];
        else if (n <= payload.length && off + n <= runBuf.length) payload.set(runBuf.subarray(off, off + n));
      }
      break;
    }
    case abi.KVM_EXIT_MMIO: {
      const w = run.getUint8(abi.RUN.mmio_is_write);
      rec[REC.a0] = run.getUint32(abi.RUN.mmio_len, true) | (w << 8);
      rec[REC.a1] = run.getUint32(abi.RUN.mmio_phys_addr, true) | 0;
      rec[REC.a2] = run.getUint32(abi.RUN.mmio_phys_addr + 4, true) | 0;
      if (w) payload.set(runBuf.subarray(abi.RUN.mmio_data, abi.RUN.mmio_data + 8));
      break;
    }
    case abi.KVM_EXIT_X86_RDMSR:
    case abi.KVM_EXIT_X86_WRMSR:
      rec[REC.a0] = run.getUint32(abi.RUN.msr_index, true) | 0;
      rec[REC.a1] = run.getUint32(abi.RUN.msr_reason, true) | 0;
      payload.set(runBuf.subarray(abi.RUN.msr_data, abi.RUN.msr_data + 8));
      break;
    case abi.KVM_EXIT_SYSTEM_EVENT:
      rec[REC.a0] = run.getUint32(abi.RUN.system_event_type, true) | 0;
      break;
    case abi.KVM_EXIT_INTERNAL_ERROR:
      rec[REC.a0] = run.getUint32(abi.RUN.internal_suberror, true) | 0;
      rec[REC.a1] = run.getUint32(abi.RUN.internal_ndata, true) | 0;
      payload.set(runBuf.subarray(abi.RUN.internal_data, abi.RUN.internal_data + 64));
      break;
    case abi.KVM_EXIT_FAIL_ENTRY:
      rec[REC.a0] = run.getUint32(abi.RUN.fail_entry_reason, true) | 0;
      rec[REC.a1] = run.getUint32(abi.RUN.fail_entry_reason + 4, true) | 0;
      break;
    case abi.KVM_EXIT_EXCEPTION:
      rec[REC.a0] = run.getUint32(abi.RUN.ex_exception, true) | 0;
      rec[REC.a1] = run.getUint32(abi.RUN.ex_error_code, true) | 0;
      break;
    case abi.KVM_EXIT_UNKNOWN:
      rec[REC.a0] = run.getUint32(abi.RUN.hw_exit_reason, true) | 0;
      break;
    default:
      break;
  }
}

/** Writes the handler's answer into kvm_run (IN data, MMIO read data, MSR result). */
export function completeExit(exit: number, flags: number, run: DataView, runBuf: Uint8Array, payload: Uint8Array): void {
  switch (exit) {
    case abi.KVM_EXIT_IO:
      if (run.getUint8(abi.RUN.io_direction) === abi.KVM_EXIT_IO_IN) {
        const off = run.getUint32(abi.RUN.io_data_offset, true);
        const n = run.getUint8(abi.RUN.io_size) * run.getUint32(abi.RUN.io_count, true);
        if (n <= payload.length && off + n <= runBuf.length) runBuf.set(payload.subarray(0, n), off);
      }
      break;
    case abi.KVM_EXIT_MMIO:
      if (run.getUint8(abi.RUN.mmio_is_write) === 0) runBuf.set(payload.subarray(0, 8), abi.RUN.mmio_data);
      break;
    case abi.KVM_EXIT_X86_RDMSR:
    case abi.KVM_EXIT_X86_WRMSR:
      run.setUint8(abi.RUN.msr_error, flags & REPLY_MSR_ERROR ? 1 : 0);
      if (exit === abi.KVM_EXIT_X86_RDMSR) runBuf.set(payload.subarray(0, 8), abi.RUN.msr_data);
      break;
    default:
      break;
  }
}

/** Exits whose instruction KVM finishes on the next KVM_RUN (after completeExit wrote the answer). */
export function needsCompletion(exit: number): boolean {
  return exit === abi.KVM_EXIT_IO || exit === abi.KVM_EXIT_MMIO || exit === abi.KVM_EXIT_X86_RDMSR || exit === abi.KVM_EXIT_X86_WRMSR;
}
