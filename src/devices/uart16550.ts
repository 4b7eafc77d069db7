/**
 * National Semiconductor 16550A UART (COM1 at 0x3f8, IRQ4 by default), register-compatible with what
 * Linux's 8250 driver probes: scratch register, IER bits 0-3 only, loopback through MCR bit 4 (CTS=RTS,
 * DSR=DTR, RI=OUT1, DCD=OUT2), FIFO detection through IIR bits 7:6, a 16-byte RX FIFO with trigger levels
 * and the character-timeout interrupt.
 *
 * Transmission is instant (THR is empty again right after a write, so THRE/TEMT stay set); bytes are
 * collected and handed to the host in batches (`onTransmit`), flushed from a microtask, when 4 KiB
 * accumulate, or on `flush()`. Host input goes through `receive()` into a bounded host buffer that feeds
 * the RX FIFO as the guest drains it (backpressure: `receive` returns how many bytes it took).
 * On a PC the interrupt line is gated by MCR OUT2 and disconnected in loopback mode.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import type { IrqRouter } from './irq.js';

export const UART_FIFO_SIZE = 16;
/** Input clock / 16: divisor 1 = 115200 baud. */
const UART_BASE_BAUD = 115200;
const TX_BATCH = 4096;

const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04, IER_MSI = 0x08;
const IIR_NO_INT = 0x01, IIR_MSI = 0x00, IIR_THRI = 0x02, IIR_RDI = 0x04, IIR_RLSI = 0x06, IIR_TIMEOUT = 0x0c;
const IIR_FIFO_ENABLED = 0xc0;
const FCR_ENABLE = 0x01, FCR_CLEAR_RX = 0x02;
const LCR_DLAB = 0x80;
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
const LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const LSR_ERRORS = 0x1e;
const MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
/** Modem lines the host side presents outside loopback: a connected terminal (CTS, DSR, DCD). */
const HOST_MODEM_LINES = MSR_CTS | MSR_DSR | MSR_DCD;
const RX_TRIGGER = [1, 4, 8, 14];

export interface UartState {
  ier: number; lcr: number; mcr: number; lsrErrors: number; msr: number; scr: number; dll: number; dlm: number;
  fifoEnabled: boolean; rxTrigger: number; rx: number[]; host: number[]; thrIpending: boolean; timeoutIpending: boolean;
}

export class Uart16550 implements PioDevice {
  ier = 0;
  lcr = 0;
  mcr = 0;
  /** Latched OE/PE/FE/BI bits of LSR (cleared by reading LSR). */
  lsrErrors = 0;
  /** Modem status: lines in bits 7:4, deltas in bits 3:0. */
  msr = HOST_MODEM_LINES;
  scr = 0;
  dll = 0x0c; // 9600 baud, as after reset of a PC BIOS
  dlm = 0;
  fifoEnabled = false;
  rxTrigger = 1;
  thrIpending = false;
  timeoutIpending = false;

  private readonly rxFifo = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  /** Host bytes not yet in the RX FIFO (ring buffer). */
  private readonly host: Uint8Array;
  private hostHead = 0;
  private hostCount = 0;
  private hostWasFull = false;

  private readonly tx = new Uint8Array(TX_BATCH);
  private txLen = 0;
  private flushQueued = false;
  private readonly txListeners: ((bytes: Uint8Array) => void)[] = [];
  private timeoutTimer: TimerHandle | null = null;
  private irqLevel = false;

  /** Called when the host buffer has room again after `receive` turned bytes away. */
  onReceiveSpace: (() => void) | null = null;

  constructor(private readonly clock: VirtualClock, private readonly irq: IrqRouter | null, readonly irqLine: number,
    hostBufferSize = 64 * 1024) {
    this.host = new Uint8Array(hostBufferSize);
  }

  /** Subscribe to guest output; returns an unsubscribe function. */
  onTransmit(cb: (bytes: Uint8Array) => void): () => void {
    this.txListeners.push(cb);
    return () => { const i = this.txListeners.indexOf(cb); if (i >= 0) this.txListeners.splice(i, 1); };
  }

  /** Hand buffered guest output to the listeners now. */
  flush(): void {
    this.flushQueued = false;
    if (this.txLen === 0) return;
    const out = this.tx.slice(0, this.txLen);
    this.txLen = 0;
    for (const cb of this.txListeners) cb(out);
  }

  /** Queue host input for the guest. Returns the number of bytes accepted (the rest must be retried). */
  receive(bytes: Uint8Array): number {
    let n = 0;
    for (;;) {
      const take = Math.min(this.host.length - this.hostCount, bytes.length - n);
      if (take <= 0) break;
      for (let i = 0; i < take; i++) this.host[(this.hostHead + this.hostCount + i) % this.host.length] = bytes[n + i];
      this.hostCount += take;
      n += take;
      this.refill();
    }
    if (n < bytes.length) this.hostWasFull = true;
    this.update();
    return n;
  }

  /** Bytes waiting in the host buffer (not yet in the FIFO). */
  get hostPending(): number { return this.hostCount; }

  private get rxCapacity(): number { return this.fifoEnabled ? UART_FIFO_SIZE : 1; }

  private get loopback(): boolean { return (this.mcr & MCR_LOOP) !== 0; }

  /** Move host bytes into the RX FIFO while it has room (the line is disconnected in loopback). */
  private refill(): void {
    if (this.loopback) return;
    let moved = false;
    while (this.hostCount > 0 && this.rxCount < this.rxCapacity) {
      this.pushRx(this.host[this.hostHead]);
      this.hostHead = (this.hostHead + 1) % this.host.length;
      this.hostCount--;
      moved = true;
    }
    if (moved) {
      this.armTimeout();
      if (this.hostWasFull && this.hostCount <= this.host.length / 2) {
        this.hostWasFull = false;
        this.onReceiveSpace?.();
      }
    }
  }

  private pushRx(b: number): void {
    if (this.rxCount >= this.rxCapacity) { this.lsrErrors |= LSR_OE; return; }
    this.rxFifo[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = b;
    this.rxCount++;
  }

  private popRx(): number {
    if (this.rxCount === 0) return 0;
    const b = this.rxFifo[this.rxHead];
    this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
    this.rxCount--;
    return b;
  }

  private clearRx(): void {
    this.rxHead = 0;
    this.rxCount = 0;
    this.timeoutIpending = false;
    this.clock.cancel(this.timeoutTimer);
    this.timeoutTimer = null;
  }

  /** Four character times at the current line settings. */
  private timeoutNs(): number {
    const divisor = (this.dlm << 8) | this.dll || 0x10000;
    const bits = 1 + 5 + (this.lcr & 3) + ((this.lcr & 0x08) ? 1 : 0) + ((this.lcr & 0x04) ? 2 : 1);
    return Math.ceil((4 * bits * 1e9 * divisor) / UART_BASE_BAUD);
  }

  /** (Re)start the character-timeout timer while the FIFO holds data below its trigger level. */
  private armTimeout(): void {
    this.clock.cancel(this.timeoutTimer);
    this.timeoutTimer = null;
    if (!this.fifoEnabled || this.rxCount === 0) return;
    this.timeoutTimer = this.clock.at(this.clock.now() + this.timeoutNs(), () => {
      this.timeoutTimer = null;
      if (this.rxCount > 0) { this.timeoutIpending = true; this.update(); }
    });
  }

  private lsr(): number {
    return (this.rxCount > 0 ? LSR_DR : 0) | this.lsrErrors | LSR_THRE | LSR_TEMT;
  }

  /** The interrupt identification, by the 16550's priority order. */
  private iirCause(): number {
    if ((this.ier & IER_RLSI) && (this.lsrErrors & LSR_ERRORS)) return IIR_RLSI;
    if (this.ier & IER_RDI) {
      if (this.fifoEnabled ? this.rxCount >= this.rxTrigger : this.rxCount > 0) return IIR_RDI;
      if (this.timeoutIpending && this.rxCount > 0) return IIR_TIMEOUT;
    }
    if ((this.ier & IER_THRI) && this.thrIpending) return IIR_THRI;
    if ((this.ier & IER_MSI) && (this.msr & 0x0f)) return IIR_MSI;
    return IIR_NO_INT;
  }

  private update(): void {
    const pending = this.iirCause() !== IIR_NO_INT;
    const level = pending && (this.mcr & MCR_OUT2) !== 0 && !this.loopback;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq?.setLevel(this.irqLine, level);
    }
  }

  /** Modem input lines as seen by the chip (looped back from MCR in loopback mode). */
  private modemLines(): number {
    if (!this.loopback) return HOST_MODEM_LINES;
    const m = this.mcr;
    return ((m & MCR_RTS) ? MSR_CTS : 0) | ((m & MCR_DTR) ? MSR_DSR : 0) | ((m & MCR_OUT1) ? MSR_RI : 0)
      | ((m & MCR_OUT2) ? MSR_DCD : 0);
  }

  private updateModemLines(): void {
    const old = this.msr & 0xf0;
    const now = this.modemLines();
    const changed = old ^ now;
    let delta = 0;
    if (changed & MSR_CTS) delta |= 0x01;
    if (changed & MSR_DSR) delta |= 0x02;
    if ((old & MSR_RI) && !(now & MSR_RI)) delta |= 0x04; // trailing edge of RI
    if (changed & MSR_DCD) delta |= 0x08;
    this.msr = now | (this.msr & 0x0f) | delta;
  }

  private transmit(b: number): void {
    if (this.loopback) {
      this.pushRx(b);
      this.armTimeout();
    } else {
      this.tx[this.txLen++] = b;
      if (this.txLen === TX_BATCH) this.flush();
      else if (!this.flushQueued) { this.flushQueued = true; queueMicrotask(() => this.flush()); }
    }
    this.thrIpending = true; // THR empties at once
  }

  pioRead(offset: number, _size: AccessSize): number {
    let v: number;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) return this.dll;
        v = this.popRx();
        this.timeoutIpending = false;
        this.refill();
        this.armTimeout();
        break;
      case 1: return (this.lcr & LCR_DLAB) ? this.dlm : this.ier;
      case 2: {
        const cause = this.iirCause();
        if (cause === IIR_THRI) this.thrIpending = false; // reading IIR clears a THRE interrupt it reports
        v = cause | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
        break;
      }
      case 3: return this.lcr;
      case 4: return this.mcr;
      case 5:
        v = this.lsr();
        this.lsrErrors = 0;
        break;
      case 6:
        v = this.msr;
        this.msr &= 0xf0;
        break;
      case 7: return this.scr;
      default: return 0xff;
    }
    this.update();
    return v;
  }

  pioWrite(offset: number, _size: AccessSize, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) { this.dll = v; return; }
        this.transmit(v);
        break;
      case 1: {
        if (this.lcr & LCR_DLAB) { this.dlm = v; return; }
        const old = this.ier;
        this.ier = v & 0x0f;
        // Enabling the THRE interrupt while THR is empty raises it at once (Linux's THRE test relies on it).
        if ((this.ier & IER_THRI) && !(old & IER_THRI)) this.thrIpending = true;
        break;
      }
      case 2: {
        const enable = (v & FCR_ENABLE) !== 0;
        if (enable !== this.fifoEnabled) { this.clearRx(); this.fifoEnabled = enable; }
        if (enable) {
          if (v & FCR_CLEAR_RX) this.clearRx();
          this.rxTrigger = RX_TRIGGER[v >> 6];
        }
        this.refill();
        break;
      }
      case 3: this.lcr = v; return;
      case 4:
        this.mcr = v & 0x1f;
        this.updateModemLines();
        this.refill();
        break;
      case 5: case 6: return; // LSR and MSR are read-only (factory test writes ignored)
      case 7: this.scr = v; return;
      default: return;
    }
    this.update();
  }

  saveState(): UartState {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rxFifo[(this.rxHead + i) % UART_FIFO_SIZE]);
    const host: number[] = [];
    for (let i = 0; i < this.hostCount; i++) host.push(this.host[(this.hostHead + i) % this.host.length]);
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, lsrErrors: this.lsrErrors, msr: this.msr, scr: this.scr,
      dll: this.dll, dlm: this.dlm, fifoEnabled: this.fifoEnabled, rxTrigger: this.rxTrigger, rx, host,
      thrIpending: this.thrIpending, timeoutIpending: this.timeoutIpending,
    };
  }

  restoreState(s: UartState): void {
    this.ier = s.ier; this.lcr = s.lcr; this.mcr = s.mcr; this.lsrErrors = s.lsrErrors; this.msr = s.msr;
    this.scr = s.scr; this.dll = s.dll; this.dlm = s.dlm; this.fifoEnabled = s.fifoEnabled; this.rxTrigger = s.rxTrigger;
    this.clearRx();
    for (const b of s.rx.slice(0, UART_FIFO_SIZE)) this.pushRx(b);
    this.hostHead = 0;
    this.hostCount = Math.min(s.host.length, this.host.length);
    this.host.set(s.host.slice(0, this.hostCount));
    this.thrIpending = s.thrIpending; this.timeoutIpending = s.timeoutIpending;
    this.armTimeout();
    this.update();
  }
}
