/**
 * Intel 8042 keyboard controller at 0x60 (data) / 0x64 (status, command), with no keyboard and no mouse
 * attached. Enough for Linux's i8042 driver to probe it without hanging: controller self-test (0xAA ->
 * 0x55), configuration byte (CTR) read/write, port tests, AUX loopback (0xD3) and output-port access.
 * Bytes sent to a device answer 0xFE with the timeout status bit, so PS/2 probes fail quickly.
 * Commands 0xF0-0xFF pulse output-port lines: bit 0 clear (e.g. 0xFE) pulses the CPU reset line.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import { I8042_AUX_IRQ, I8042_KBD_IRQ } from '../platform/layout.js';
import type { IrqRouter } from './irq.js';

const STR_OBF = 0x01, STR_SYS = 0x04, STR_CMD = 0x08, STR_UNLOCKED = 0x10, STR_AUXDATA = 0x20, STR_TIMEOUT = 0x40;
const CTR_KBDINT = 0x01, CTR_AUXINT = 0x02, CTR_SYS = 0x04, CTR_KBDDIS = 0x10, CTR_AUXDIS = 0x20;
const OUTPUT_RESET = 0x01, OUTPUT_A20 = 0x02;

export interface I8042State { ctr: number; outputPort: number; status: number; out: number; pendingCmd: number; queue: number[] }

export class I8042 implements PioDevice {
  /** Controller configuration byte ("command byte"): interrupts on, translation on, SYS set. */
  ctr = 0x40 | CTR_SYS | CTR_AUXINT | CTR_KBDINT;
  outputPort = OUTPUT_RESET | OUTPUT_A20;
  private statusFlags = STR_UNLOCKED;
  /** Output buffer byte and its source flags (STR_AUXDATA, STR_TIMEOUT). */
  private out = 0;
  private outFlags = 0;
  private obf = false;
  /** Command waiting for its data byte on port 0x60 (0 = none: data goes to the keyboard). */
  private pendingCmd = 0;
  /** Further bytes waiting for the output buffer. */
  private readonly queue: { b: number; flags: number }[] = [];

  onA20Change: ((enabled: boolean) => void) | null = null;

  constructor(private readonly irq: IrqRouter | null, private readonly onReset: (reason: string) => void) {}

  private push(b: number, flags = 0): void {
    if (this.queue.length >= 16) return; // bounded: a guest spamming commands without reading loses bytes
    this.queue.push({ b: b & 0xff, flags });
    this.fill();
  }

  private fill(): void {
    if (!this.obf && this.queue.length > 0) {
      const e = this.queue.shift()!;
      this.out = e.b;
      this.outFlags = e.flags;
      this.obf = true;
    }
    this.updateIrq();
  }

  private updateIrq(): void {
    const aux = (this.outFlags & STR_AUXDATA) !== 0;
    this.irq?.setLevel(I8042_KBD_IRQ, this.obf && !aux && (this.ctr & CTR_KBDINT) !== 0);
    this.irq?.setLevel(I8042_AUX_IRQ, this.obf && aux && (this.ctr & CTR_AUXINT) !== 0);
  }

  private status(): number {
    let s = this.statusFlags | (this.ctr & CTR_SYS ? STR_SYS : 0);
    if (this.obf) s |= STR_OBF | (this.outFlags & (STR_AUXDATA | STR_TIMEOUT));
    return s;
  }

  private setOutputPort(v: number): void {
    const a20Changed = ((v ^ this.outputPort) & OUTPUT_A20) !== 0;
    this.outputPort = v & 0xff;
    if (a20Changed) this.onA20Change?.((v & OUTPUT_A20) !== 0);
    if ((v & OUTPUT_RESET) === 0) {
      this.outputPort |= OUTPUT_RESET;
      this.onReset('i8042 reset line');
    }
  }

  private command(c: number): void {
    this.statusFlags |= STR_CMD;
    if (c >= 0x20 && c < 0x40) { this.push(c === 0x20 ? this.ctr : 0); return; } // read controller RAM
    if (c >= 0x60 && c < 0x80) { this.pendingCmd = c; return; } // write controller RAM (0x60 = CTR)
    switch (c) {
      case 0xa7: this.ctr |= CTR_AUXDIS; break;
      case 0xa8: this.ctr &= ~CTR_AUXDIS; break;
      case 0xa9: this.push(0x00); break; // AUX interface test: OK
      case 0xaa: // controller self-test
        this.ctr |= CTR_SYS;
        this.push(0x55);
        break;
      case 0xab: this.push(0x00); break; // keyboard interface test: OK
      case 0xad: this.ctr |= CTR_KBDDIS; break;
      case 0xae: this.ctr &= ~CTR_KBDDIS; break;
      case 0xc0: this.push(0x00); break; // input port
      case 0xd0: this.push(this.outputPort); break;
      case 0xd1: case 0xd2: case 0xd3: case 0xd4: this.pendingCmd = c; break;
      case 0xdd: this.setOutputPort(this.outputPort & ~OUTPUT_A20); break;
      case 0xdf: this.setOutputPort(this.outputPort | OUTPUT_A20); break;
      default:
        if (c >= 0xf0 && (c & OUTPUT_RESET) === 0) this.onReset('i8042 reset command');
        break;
    }
  }

  private data(v: number): void {
    this.statusFlags &= ~STR_CMD;
    const cmd = this.pendingCmd;
    this.pendingCmd = 0;
    if (cmd === 0x60) { this.ctr = v; this.updateIrq(); return; }
    if (cmd > 0x60 && cmd < 0x80) return; // other controller RAM bytes are not kept
    switch (cmd) {
      case 0xd1: this.setOutputPort(v); return;
      case 0xd2: this.push(v); return; // as if the keyboard sent it
      case 0xd3: this.push(v, STR_AUXDATA); return; // as if the mouse sent it
      case 0xd4: this.push(0xfe, STR_AUXDATA | STR_TIMEOUT); return; // no mouse: timeout
      default: this.push(0xfe, STR_TIMEOUT); return; // no keyboard: timeout
    }
  }

  pioRead(offset: number, _size: AccessSize): number {
    if (offset === 4) return this.status();
    if (offset !== 0) return 0xff;
    const v = this.out;
    this.obf = false;
    this.outFlags &= ~(STR_AUXDATA | STR_TIMEOUT);
    this.fill();
    return v;
  }

  pioWrite(offset: number, _size: AccessSize, value: number): void {
    if (offset === 4) this.command(value & 0xff);
    else if (offset === 0) this.data(value & 0xff);
  }

  saveState(): I8042State {
    return { ctr: this.ctr, outputPort: this.outputPort, status: this.statusFlags, out: this.obf ? this.out | (this.outFlags << 8) : -1,
      pendingCmd: this.pendingCmd, queue: this.queue.map((e) => e.b | (e.flags << 8)) };
  }

  restoreState(s: I8042State): void {
    this.ctr = s.ctr; this.outputPort = s.outputPort; this.statusFlags = s.status; this.pendingCmd = s.pendingCmd;
    this.obf = s.out >= 0; this.out = s.out & 0xff; this.outFlags = s.out >= 0 ? s.out >> 8 : 0;
    this.queue.length = 0;
    for (const e of s.queue.slice(0, 16)) this.queue.push({ b: e & 0xff, flags: e >> 8 });
    this.updateIrq();
  }
}
