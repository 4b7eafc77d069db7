/**
 * The partition's virtual clock. Every time source the guest sees (TSC, LAPIC timer, PIT, RTC,
 * ACPI PM timer, Hyper-V reference counter) derives from `now()` in nanoseconds, so they agree.
 *
 * Modes:
 *  - 'realtime': virtual time follows the host's monotonic clock (minus time spent paused); an idle
 *    vCPU waits for the next deadline in real time.
 *  - 'warp': like realtime while the guest runs, but when every vCPU is halted virtual time jumps to the
 *    next timer deadline instead of waiting (QEMU icount-style warp). Used to cut idle time from boots.
 *  - 'icount': virtual time is the retired-instruction count (1 ns each, like QEMU's -icount shift=0) plus
 *    idle warps. Independent of host load and speed, so boots are reproducible: tests and benchmarks use it.
 *    Needs an instruction source (`useInstructionCount`); the emulated processor provides one.
 */
export type ClockMode = 'realtime' | 'warp' | 'icount';

export interface TimerHandle { readonly id: number }

interface Timer { id: number; deadline: number; cb: (now: number) => void }

const hostNs = (): number => performance.now() * 1e6;

export class VirtualClock {
  private offset: number;
  private pausedAt = -1;
  private timers: Timer[] = [];
  private nextId = 1;
  /** Earliest deadline of all timers (Infinity when none): lets the hot path poll cheaply. */
  nextDeadline = Infinity;

  constructor(readonly mode: ClockMode = 'realtime', private readonly host: () => number = hostNs) {
    // icount: time starts at 0 and stands still until instructions drive it, so how long the host took to
    // assemble the partition cannot leak into the guest's clock (two boots must see the same times).
    this.offset = mode === 'icount' ? 0 : -host();
  }

  private insnSource: (() => number) | null = null;
  private nsPerInsn = 1;

  /** Virtual nanoseconds since the partition was created. */
  now(): number {
    if (this.insnSource !== null) return this.insnSource() * this.nsPerInsn + this.offset;
    if (this.mode === 'icount') return this.offset;
    return (this.pausedAt >= 0 ? this.pausedAt : this.host()) + this.offset;
  }

  /** 'icount' mode: derive time from retired instructions (`source` returns a monotonic count). */
  useInstructionCount(source: () => number, nsPerInsn = 1): void {
    if (this.mode !== 'icount') throw new Error("useInstructionCount needs clock mode 'icount'");
    const t = this.now();
    this.insnSource = source;
    this.nsPerInsn = nsPerInsn;
    this.offset = t - source() * nsPerInsn;
  }

  get paused(): boolean { return this.pausedAt >= 0; }

  pause(): void { if (this.pausedAt < 0) this.pausedAt = this.host(); }

  resume(): void {
    if (this.pausedAt < 0) return;
    if (this.insnSource !== null || this.mode === 'icount') { this.pausedAt = -1; return; } // instructions do not retire while paused
    this.offset -= this.host() - this.pausedAt;
    this.pausedAt = -1;
  }

  /** Saved state: the virtual time reached (timers belong to their devices, which re-arm them on restore). */
  saveState(): { mode: ClockMode; nowNs: number; nsPerInsn: number } {
    return { mode: this.mode, nowNs: this.now(), nsPerInsn: this.nsPerInsn };
  }

  /**
   * Continue from a saved virtual time, whatever this clock's mode (an icount clock needs its instruction
   * source already restored, since now() derives from it).
   */
  restoreState(s: { nowNs: number; nsPerInsn: number }): void {
    if (!Number.isFinite(s.nowNs) || s.nowNs < 0) throw new RangeError(`saved virtual time ${s.nowNs} is not valid`);
    if (this.insnSource !== null) {
      if (Number.isFinite(s.nsPerInsn) && s.nsPerInsn > 0) this.nsPerInsn = s.nsPerInsn;
      this.offset = s.nowNs - this.insnSource() * this.nsPerInsn;
    } else if (this.mode === 'icount') {
      this.offset = s.nowNs;
    } else {
      this.offset = s.nowNs - (this.pausedAt >= 0 ? this.pausedAt : this.host());
    }
  }

  /** Advance virtual time by `ns` without host time passing (idle warp). */
  advance(ns: number): void { if (ns > 0) this.offset += ns; }

  /** Run `cb` once virtual time reaches `deadline` (ns). */
  at(deadline: number, cb: (now: number) => void): TimerHandle {
    const t: Timer = { id: this.nextId++, deadline, cb };
    this.timers.push(t);
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
    return t;
  }

  cancel(h: TimerHandle | null | undefined): void {
    if (!h) return;
    const i = this.timers.findIndex((t) => t.id === h.id);
    if (i >= 0) {
      this.timers.splice(i, 1);
      this.recompute();
    }
  }

  /** Fire every expired timer. Returns the number fired. */
  poll(): number {
    if (this.timers.length === 0) return 0;
    const now = this.now();
    if (now < this.nextDeadline) return 0;
    let fired = 0;
    // Timers may re-arm themselves from their callback; loop until nothing is due.
    for (;;) {
      let idx = -1;
      for (let i = 0; i < this.timers.length; i++) {
        if (this.timers[i].deadline <= now && (idx < 0 || this.timers[i].deadline < this.timers[idx].deadline)) idx = i;
      }
      if (idx < 0) break;
      const t = this.timers[idx];
      this.timers.splice(idx, 1);
      this.recompute();
      t.cb(now);
      fired++;
    }
    return fired;
  }

  private holds = 0;

  /**
   * Host work the guest waits for is running (disk I/O): until the returned release is called, idle periods
   * do not warp, or a halted guest would see its own timeouts (SCSI's 180 s) expire before the I/O ends.
   */
  holdWarp(): () => void {
    this.holds++;
    let released = false;
    return () => { if (!released) { released = true; this.holds--; } };
  }

  /** When every vCPU is halted: in warp mode jump to the next deadline; returns ns the caller should still wait. */
  idle(): number {
    const d = this.nextDeadline;
    if (d === Infinity) return Infinity;
    const wait = d - this.now();
    if (wait <= 0) return 0;
    if (this.mode !== 'realtime' && this.holds === 0) { this.advance(wait); return 0; }
    return wait;
  }

  private recompute(): void {
    let m = Infinity;
    for (const t of this.timers) if (t.deadline < m) m = t.deadline;
    this.nextDeadline = m;
  }
}
