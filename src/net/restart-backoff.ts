/**
 * Restarts of a switch uplink (passt, a TAP device) after it fails: exponential backoff from a base delay up
 * to 30 s, reset once a start has stayed up for 10 s.
 */
const MAX_DELAY_MS = 30_000;
const SETTLED_MS = 10_000;

export class RestartBackoff {
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly baseMs: number) {}

  /** Counts a failure and runs `restart` after the backoff delay (returned, for the message saying so). */
  schedule(restart: () => void): number {
    const delay = Math.min(MAX_DELAY_MS, this.baseMs * 2 ** this.failures);
    this.failures++;
    this.timer = setTimeout(() => { this.timer = null; restart(); }, delay);
    this.timer.unref();
    return delay;
  }

  /** A start went well: if `stillUp` holds 10 s later, the next failure starts from the base delay again. */
  started(stillUp: () => boolean): void {
    setTimeout(() => { if (stillUp()) this.failures = 0; }, SETTLED_MS).unref();
  }

  cancel(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
  }
}
