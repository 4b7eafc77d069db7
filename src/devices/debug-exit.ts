/**
 * QEMU's isa-debug-exit device at DEBUG_EXIT_PORT (0xf4): a write of value v powers the machine off with
 * exit code (v << 1) | 1, so test guests can report a result (an exit code of 0 is impossible by design).
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';

export class DebugExit implements PioDevice {
  constructor(private readonly onShutdown: (code: number, reason: string) => void) {}

  pioRead(_offset: number, size: AccessSize): number { return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff; }

  pioWrite(_offset: number, size: AccessSize, value: number): void {
    const v = size === 4 ? value >>> 0 : value & (size === 2 ? 0xffff : 0xff);
    // Computed in floating point: a 32-bit v must not wrap negative.
    this.onShutdown(v * 2 + 1, `isa-debug-exit wrote 0x${v.toString(16)}`);
  }
}
