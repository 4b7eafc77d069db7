/**
 * Several virtual processors taking turns on one thread (QEMU's "thread=single" step): each vCPU's run
 * state (runnable, halted, waiting for a startup IPI), INIT/SIPI from the APIC bus, and round-robin choice
 * of the next vCPU to run.
 *
 * Turns are bounded in instructions, not host time, so with an icount clock the interleaving (and so the
 * whole run) is the same on every host. A vCPU leaves its turn early when it halts, spins on PAUSE, or an
 * interrupt arrives for another vCPU (the partition kicks it), so IPIs and spin locks do not wait a quantum.
 * The target of an IPI then runs next, for a short turn: the sender usually waits for its answer (a function
 * call, a TLB shootdown, a test's counter), and on real hardware both would run at once.
 */
import type { VirtualProcessor } from '../processor/backend.js';

/** What the scheduler needs from a vCPU's local APIC. */
export interface WakeSource {
  pendingVector(): number;
  nmiPending(): boolean;
}

export type VcpuRunState = 'runnable' | 'halted' | 'wait-for-sipi';

export interface VcpuSchedulerState { waitingForSipi: boolean[] }

/** Instructions per turn while several vCPUs are runnable (a few ms of guest time). */
export const QUANTUM_INSNS = 200_000;
/** PAUSEs in one turn after which a spinning vCPU gives the thread to the others. */
export const PAUSE_EXIT_AFTER = 128;
/** Instructions in the turn an IPI's target gets out of order (enough to take the interrupt and answer). */
export const BOOST_INSNS = 5_000;

export class VcpuScheduler {
  /** Application processors start (and return after INIT) waiting for a startup IPI. */
  readonly waitingForSipi: boolean[];
  /** The vCPU running now, or -1 between turns. */
  running = -1;
  /** The turn picked last was a boosted one (short: BOOST_INSNS). */
  boostedTurn = false;
  private last = -1;
  private readonly boosted: boolean[];

  constructor(private readonly vcpus: readonly VirtualProcessor[], private readonly wake: readonly WakeSource[]) {
    this.waitingForSipi = vcpus.map((_, i) => i !== 0);
    this.boosted = vcpus.map(() => false);
    if (vcpus.length > 1) for (const v of vcpus) v.setPauseExit?.(PAUSE_EXIT_AFTER);
  }

  /** Machine reset: the boot processor runs the firmware's entry, the others wait for INIT-SIPI. */
  reset(): void {
    for (let i = 1; i < this.vcpus.length; i++) { this.vcpus[i].init?.(); this.waitingForSipi[i] = true; }
    this.last = -1;
    this.boosted.fill(false);
  }

  /**
   * An IPI made vCPU i runnable or gave it something to do during another vCPU's turn: i runs next, briefly.
   * A boosted turn grants no boost itself, so two vCPUs interrupting each other cannot keep a third waiting.
   */
  boost(i: number): void {
    if (this.running < 0 || this.running === i || this.boostedTurn || i >= this.vcpus.length) return;
    this.boosted[i] = true;
  }

  /** INIT from the APIC bus. The boot processor ignores it (nothing here restarts firmware). */
  init(i: number): void {
    if (i === 0 || i >= this.vcpus.length) return;
    this.vcpus[i].init?.();
    this.waitingForSipi[i] = true;
  }

  /** STARTUP IPI: starts a processor that waits for one; ignored once it runs (Linux sends two). */
  startup(i: number, vector: number): void {
    if (i >= this.vcpus.length || !this.waitingForSipi[i]) return;
    this.vcpus[i].startup?.(vector);
    this.waitingForSipi[i] = false;
  }

  state(i: number): VcpuRunState {
    if (this.waitingForSipi[i]) return 'wait-for-sipi';
    return this.canRun(i) ? 'runnable' : 'halted';
  }

  /** Not waiting for SIPI and either not halted or with something that ends the HLT. */
  canRun(i: number): boolean {
    if (this.waitingForSipi[i]) return false;
    const v = this.vcpus[i];
    if (!v.halted) return true;
    const w = this.wake[i];
    return w.nmiPending() || (v.interruptsEnabled !== false && w.pendingVector() >= 0);
  }

  /** The next vCPU to run: a boosted one, else the next after the last (round robin); -1 when all are halted or waiting. */
  pick(): number {
    const n = this.vcpus.length;
    this.boostedTurn = false;
    for (let k = 1; k <= n; k++) {
      const i = (this.last + k) % n;
      if (!this.boosted[i]) continue;
      this.boosted[i] = false;
      if (this.canRun(i)) { this.last = i; this.boostedTurn = true; return i; }
    }
    for (let k = 1; k <= n; k++) {
      const i = (this.last + k) % n;
      if (this.canRun(i)) { this.last = i; return i; }
    }
    return -1;
  }

  runnableCount(): number {
    let c = 0;
    for (let i = 0; i < this.vcpus.length; i++) if (this.canRun(i)) c++;
    return c;
  }

  saveState(): VcpuSchedulerState { return { waitingForSipi: [...this.waitingForSipi] }; }
  restoreState(s: VcpuSchedulerState): void {
    if (s.waitingForSipi.length !== this.vcpus.length) throw new Error(`run states for ${s.waitingForSipi.length} processors, the VM has ${this.vcpus.length}`);
    s.waitingForSipi.forEach((w, i) => { this.waitingForSipi[i] = i !== 0 && w === true; });
  }
}
