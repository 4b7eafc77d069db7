/**
 * POST code port 0x80. Linux writes it as an I/O delay (outb_p) on every slow port access, so the sink
 * only remembers the last value. Reads return all ones, as on boards without a POST card.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';

export class PostPort implements PioDevice {
  last = 0;
  /** Tests: called on every write, on the instruction that wrote (lets a test stop a guest at an exact point). */
  onWrite: ((value: number) => void) | null = null;
  pioRead(_offset: number, size: AccessSize): number { return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff; }
  pioWrite(_offset: number, _size: AccessSize, value: number): void { this.last = value & 0xff; this.onWrite?.(this.last); }
}
