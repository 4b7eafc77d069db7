/**
 * Progress output for long image-build steps: an animated line with elapsed time (and a percentage when known)
 * on a TTY, plain "step ... done" lines otherwise (logs, CI).
 */
export interface Progress {
  /** Run `fn` as one named step; `update(fraction)` reports progress in [0, 1] when it is measurable. */
  step<T>(label: string, fn: (update: (fraction: number) => void) => Promise<T>): Promise<T>;
  info(line: string): void;
}

export function createProgress(out: NodeJS.WriteStream = process.stdout, quiet = false): Progress {
  const tty = !!out.isTTY && !quiet;
  return {
    info(line) { if (!quiet) out.write(line + '\n'); },
    async step(label, fn) {
      const t0 = Date.now();
      let frac = -1;
      let frame = 0;
      const draw = (): void => {
        const s = ((Date.now() - t0) / 1000).toFixed(1);
        const pct = frac >= 0 ? ` ${Math.floor(frac * 100)}%` : '';
        out.write(`\r\x1b[K${'|/-\\'[frame++ & 3]} ${label}${pct} (${s}s)`);
      };
      let timer: NodeJS.Timeout | undefined;
      if (tty) { draw(); timer = setInterval(draw, 150); }
      else if (!quiet) out.write(`${label} ...\n`);
      try {
        const r = await fn((f) => { frac = Math.max(0, Math.min(1, f)); });
        const s = ((Date.now() - t0) / 1000).toFixed(1);
        if (tty) out.write(`\r\x1b[K✓ ${label} (${s}s)\n`);
        else if (!quiet) out.write(`${label}: done (${s}s)\n`);
        return r;
      } catch (e) {
        if (tty) out.write(`\r\x1b[K✗ ${label}\n`);
        throw e;
      } finally {
        if (timer) clearInterval(timer);
      }
    },
  };
}
