/**
 * System control port A at FAST_A20_PORT (0x92): bit 1 gates A20, bit 0 set from clear resets the CPU
 * ("fast reset"); the other bits read back as written.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';

export class Port92 implements PioDevice {
  value = 0x02; // A20 enabled, as firmware leaves it
  onA20Change: ((enabled: boolean) => void) | null = null;

  constructor(private readonly onReset: (reason: string) => void) {}

  get a20(): boolean { return (this.value & 0x02) !== 0; }

  pioRead(_offset: number, _size: AccessSize): number { return this.value; }

  pioWrite(_offset: number, _size: AccessSize, value: number): void {
    const v = value & 0xff;
    const old = this.value;
    this.value = v & ~0x01;
    if ((v ^ old) & 0x02) this.onA20Change?.((v & 0x02) !== 0);
    if (v & 0x01) this.onReset('port 0x92 fast reset');
  }

  saveState(): { value: number } { return { value: this.value }; }
  restoreState(s: { value: number }): void { this.value = s.value & 0xfe; }
}
