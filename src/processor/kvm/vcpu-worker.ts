/**
 * Worker thread of one KVM vCPU: maps kvm_run, loops on KVM_RUN, copies each exit into the mailbox,
 * waits for the main thread's reply and writes the result back into kvm_run. Nothing else runs here;
 * register access, interrupt injection and state save happen on the main thread while the worker is
 * parked in the mailbox (the vCPU mutex is free then).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as abi from './abi.js';
import { libc, errnoName } from './libc.js';
import {
  EXIT_ERRNO, EXIT_INTR, MB, MB_PAYLOAD, MB_PAYLOAD_SIZE, REPLY_IMMEDIATE_EXIT, REPLY_IRQ_WINDOW, REPLY_MSR_ERROR,
  REPLY_STOP, SPIN_ITERATIONS, STATE_EXIT, STATE_RUNNING, STATE_STOPPED,
} from './mailbox.js';

export interface VcpuWorkerData {
  vcpuFd: number;
  mmapSize: number;
  mailbox: SharedArrayBuffer;
  kickSignal: number;
}

function main(): void {
  const d = workerData as VcpuWorkerData;
  const c = libc();
  const mb = new Int32Array(d.mailbox, 0, MB_PAYLOAD / 4);
  const payload = new Uint8Array(d.mailbox, MB_PAYLOAD, MB_PAYLOAD_SIZE);
  const fail = (why: string): void => {
    Atomics.store(mb, MB.exit, EXIT_ERRNO);
    Atomics.store(mb, MB.a0, c.errno());
    Atomics.store(mb, MB.state, STATE_STOPPED);
    Atomics.notify(mb, MB.state);
    parentPort?.postMessage({ error: why });
  };

  const runPtr = c.mmap(d.mmapSize, abi.PROT_READ | abi.PROT_WRITE, abi.MAP_SHARED, d.vcpuFd, 0);
  if (runPtr === null) { fail(`mmap kvm_run: ${errnoName(c.errno())}`); return; }
  const runBuf = new Uint8Array(c.view(runPtr, d.mmapSize));
  const run = new DataView(runBuf.buffer, runBuf.byteOffset, d.mmapSize);

  // The kick signal stays blocked in this thread except inside KVM_RUN (KVM_SET_SIGNAL_MASK), so a
  // kick sent between the mailbox check and the ioctl stays pending and ends the next KVM_RUN at once;
  // the EINTR path then takes it off the pending set (a signal never delivered stays pending).
  const set = new Uint8Array(abi.GLIBC_SIGSET_SIZE);
  set[(d.kickSignal - 1) >> 3] |= 1 << ((d.kickSignal - 1) & 7);
  if (c.pthreadSigmask(abi.SIG_BLOCK, set, null) !== 0) { fail('pthread_sigmask failed'); return; }
  const kmask = new Uint8Array(abi.KVM_SIGNAL_MASK_HEADER_SIZE + abi.KERNEL_SIGSET_SIZE);
  new DataView(kmask.buffer).setUint32(0, abi.KERNEL_SIGSET_SIZE, true); // empty mask: nothing blocked in the guest
  if (c.ioctlPtr(d.vcpuFd, abi.KVM_SET_SIGNAL_MASK, kmask) < 0) { fail(`KVM_SET_SIGNAL_MASK: ${errnoName(c.errno())}`); return; }

  const self = c.pthreadSelf();
  const selfN = typeof self === 'bigint' ? self : BigInt(self);
  mb[MB.threadLo] = Number(selfN & 0xffffffffn) | 0;
  mb[MB.threadHi] = Number(selfN >> 32n) | 0;
  Atomics.store(mb, MB.ready, 1);
  parentPort?.postMessage({ ready: true });
  // Wait for the first go: the main thread sets RUNNING when it first calls run().
  while (Atomics.load(mb, MB.state) !== STATE_RUNNING) Atomics.wait(mb, MB.state, Atomics.load(mb, MB.state));

  const fd = d.vcpuFd;
  const noWait = new Uint8Array(16); // struct timespec { 0, 0 }
  for (;;) {
    const flagsIn = mb[MB.replyFlags];
    if (flagsIn & REPLY_STOP) break;
    run.setUint8(abi.RUN.request_interrupt_window, flagsIn & REPLY_IRQ_WINDOW ? 1 : 0);
    run.setUint8(abi.RUN.immediate_exit, flagsIn & REPLY_IMMEDIATE_EXIT ? 1 : 0);
    let exit: number;
    if (Atomics.load(mb, MB.kick) !== 0 && (flagsIn & REPLY_IMMEDIATE_EXIT) === 0) {
      exit = EXIT_INTR;
    } else {
      const r = c.ioctlInt(fd, abi.KVM_RUN, 0);
      if (r < 0) {
        const e = c.errno();
        if (e === abi.EINTR || e === abi.EAGAIN) {
          exit = EXIT_INTR;
          // The kick stays pending after KVM_RUN returns (it is blocked again out here); left there it would
          // end every later KVM_RUN at once and the vCPU would never run again. Take it now.
          c.sigtimedwait(set, noWait);
        }
        else { exit = EXIT_ERRNO; mb[MB.a0] = e; }
      } else {
        exit = run.getUint32(abi.RUN.exit_reason, true);
        copyExit(exit, run, runBuf, mb, payload);
      }
    }
    mb[MB.exit] = exit;
    mb[MB.irqReady] = run.getUint8(abi.RUN.ready_for_interrupt_injection) | (run.getUint8(abi.RUN.if_flag) << 8);
    Atomics.store(mb, MB.state, STATE_EXIT);
    Atomics.notify(mb, MB.state);
    // Spin, then sleep, until the main thread hands the vCPU back.
    let spins = SPIN_ITERATIONS;
    while (Atomics.load(mb, MB.state) === STATE_EXIT) {
      if (--spins < 0) Atomics.wait(mb, MB.state, STATE_EXIT);
    }
    const flags = mb[MB.replyFlags];
    if (exit >= 0 && (flags & REPLY_STOP) === 0) completeExit(exit, flags, run, runBuf, mb, payload);
  }
  c.munmap(runPtr, d.mmapSize);
  Atomics.store(mb, MB.state, STATE_STOPPED);
  Atomics.notify(mb, MB.state);
}

/** Copies what the main thread needs from kvm_run into the mailbox. */
function copyExit(exit: number, run: DataView, runBuf: Uint8Array, mb: Int32Array, payload: Uint8Array): void {
  switch (exit) {
    case abi.KVM_EXIT_IO: {
      const dir = run.getUint8(abi.RUN.io_direction);
      const size = run.getUint8(abi.RUN.io_size);
      const port = run.getUint16(abi.RUN.io_port, true);
      const count = run.getUint32(abi.RUN.io_count, true);
      mb[MB.a0] = port | (size << 16) | (dir << 24);
      mb[MB.a1] = count;
      if (dir === abi.KVM_EXIT_IO_OUT) {
        const off = run.getUint32(abi.RUN.io_data_offset, true);
        const n = size * count;
        // The kernel keeps the data inside the mapping; a bad length is refused by the main thread.
        if (n <= payload.length && off + n <= runBuf.length) payload.set(runBuf.subarray(off, off + n));
      }
      break;
    }
    case abi.KVM_EXIT_MMIO: {
      const addr = run.getUint32(abi.RUN.mmio_phys_addr, true);
      const addrHi = run.getUint32(abi.RUN.mmio_phys_addr + 4, true);
      const len = run.getUint32(abi.RUN.mmio_len, true);
      const w = run.getUint8(abi.RUN.mmio_is_write);
      mb[MB.a0] = len | (w << 8);
      mb[MB.a1] = addr | 0;
      mb[MB.a2] = addrHi | 0;
      if (w) payload.set(runBuf.subarray(abi.RUN.mmio_data, abi.RUN.mmio_data + 8));
      break;
    }
    case abi.KVM_EXIT_X86_RDMSR:
    case abi.KVM_EXIT_X86_WRMSR:
      mb[MB.a0] = run.getUint32(abi.RUN.msr_index, true) | 0;
      mb[MB.a1] = run.getUint32(abi.RUN.msr_reason, true) | 0;
      payload.set(runBuf.subarray(abi.RUN.msr_data, abi.RUN.msr_data + 8));
      break;
    case abi.KVM_EXIT_SYSTEM_EVENT:
      mb[MB.a0] = run.getUint32(abi.RUN.system_event_type, true) | 0;
      break;
    case abi.KVM_EXIT_INTERNAL_ERROR:
      mb[MB.a0] = run.getUint32(abi.RUN.internal_suberror, true) | 0;
      mb[MB.a1] = run.getUint32(abi.RUN.internal_ndata, true) | 0;
      payload.set(runBuf.subarray(abi.RUN.internal_data, abi.RUN.internal_data + 64));
      break;
    case abi.KVM_EXIT_FAIL_ENTRY:
      mb[MB.a0] = run.getUint32(abi.RUN.fail_entry_reason, true) | 0;
      mb[MB.a1] = run.getUint32(abi.RUN.fail_entry_reason + 4, true) | 0;
      break;
    case abi.KVM_EXIT_EXCEPTION:
      mb[MB.a0] = run.getUint32(abi.RUN.ex_exception, true) | 0;
      mb[MB.a1] = run.getUint32(abi.RUN.ex_error_code, true) | 0;
      break;
    case abi.KVM_EXIT_UNKNOWN:
      mb[MB.a0] = run.getUint32(abi.RUN.hw_exit_reason, true) | 0;
      break;
    default:
      break;
  }
}

/** Writes the main thread's answer into kvm_run (IN data, MMIO read data, MSR result). */
function completeExit(exit: number, flags: number, run: DataView, runBuf: Uint8Array, mb: Int32Array, payload: Uint8Array): void {
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
  void mb;
}

main();
