import { VirtualClock } from '../../src/platform/clock.js';

/** A VirtualClock driven by hand: `advance(ns)` moves host time and fires due timers. */
export function manualClock(): { clock: VirtualClock; advance(ns: number): void } {
  let t = 1_000_000;
  const clock = new VirtualClock('realtime', () => t);
  return { clock, advance(ns: number) { t += ns; clock.poll(); } };
}

/** Records IrqRouter-style line activity. */
export class LineRecorder {
  levels = new Map<number, boolean>();
  rising = new Map<number, number>();
  setLevel(line: number, level: boolean): void {
    if (level && !this.levels.get(line)) this.rising.set(line, (this.rising.get(line) ?? 0) + 1);
    this.levels.set(line, level);
  }
  pulse(line: number): void { this.setLevel(line, true); this.setLevel(line, false); }
  count(line: number): number { return this.rising.get(line) ?? 0; }
}
