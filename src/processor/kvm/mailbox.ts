/**
 * The exit mailbox between a vCPU's worker thread (which runs KVM_RUN) and the main thread (where the
 * device models live): one SharedArrayBuffer per vCPU, handed back and forth with Atomics.
 *
 * Why this design: a PIO/MMIO exit must reach device models on the main thread and its result must be in
 * kvm_run before the next KVM_RUN. postMessage costs a structured clone plus an event-loop turn on both
 * sides for every exit; the mailbox costs two stores and a futex wake, and both sides spin briefly before
 * sleeping, so a busy exit stream is a cache-line handoff rather than a thread wake-up. The main thread
 * waits synchronously inside VirtualProcessor.run(budget), as the emulated backend computes
 * synchronously inside the same call.
 */

/** Int32 slots. */
export const MB = {
  /** Who owns the mailbox: see STATE_*. */
  state: 0,
  /** KVM exit reason, or one of the EXIT_* pseudo reasons below. */
  exit: 1,
  /** IO: port | size << 16 | direction << 24. MMIO: len | is_write << 8. MSR: index. Error: errno. */
  a0: 2,
  /** IO: count. MMIO: address low 32 bits. MSR: reason. Internal error: suberror. */
  a1: 3,
  /** MMIO: address high bits. */
  a2: 4,
  /** ready_for_interrupt_injection | if_flag << 8 at the time of the exit. */
  irqReady: 5,
  /** Reply flags (REPLY_*), vector for KVM_INTERRUPT, MSR/MMIO read result. */
  replyFlags: 6,
  /** A kick was requested (requestExit/stop): the worker reports an EXIT_INTR instead of re-entering. */
  kick: 7,
  /** Worker's pthread_t as two halves, for pthread_kill. */
  threadLo: 8,
  threadHi: 9,
  /** 1 after the worker has set up its signal mask and kvm_run mapping. */
  ready: 10,
} as const;
export const MB_INTS = 16;
/** Byte offset of the payload area: PIO data (count * size bytes), MMIO data (8), MSR data (8). */
export const MB_PAYLOAD = MB_INTS * 4;
/** KVM keeps string-I/O data within the kvm_run page, so a page bounds it. */
export const MB_PAYLOAD_SIZE = 4096;
export const MB_BYTES = MB_PAYLOAD + MB_PAYLOAD_SIZE;

export const STATE_RUNNING = 1; // the worker owns the vCPU (in or around KVM_RUN)
export const STATE_EXIT = 2; // an exit is posted; the main thread owns the vCPU until it replies
export const STATE_STOPPED = 3; // the worker has left its loop

/** KVM_RUN returned -1 with EINTR/EAGAIN (kick or stray signal). */
export const EXIT_INTR = -1;
/** KVM_RUN failed with another errno (in a0). */
export const EXIT_ERRNO = -2;

export const REPLY_MSR_ERROR = 1; // set kvm_run.msr.error (the guest gets #GP)
export const REPLY_IRQ_WINDOW = 2; // set kvm_run.request_interrupt_window
export const REPLY_STOP = 4; // leave the loop instead of re-entering
export const REPLY_IMMEDIATE_EXIT = 8; // re-enter with immediate_exit so a pending MSR/IO completes without running

/** Iterations each side polls before sleeping in Atomics.wait. */
export const SPIN_ITERATIONS = 4000;
