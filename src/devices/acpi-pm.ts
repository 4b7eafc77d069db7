/**
 * ACPI fixed hardware (what the FADT points at):
 *  - PM1a event block at ACPI_PM1A_EVT_PORT: PM1_STS (write 1 to clear) and PM1_EN, 16 bits each;
 *  - PM1a control at ACPI_PM1A_CNT_PORT: SCI_EN always 1 (no SMM, ACPI mode is permanent);
 *    SLP_EN with SLP_TYP = ACPI_S5_SLP_TYP powers the machine off;
 *  - PM timer at ACPI_PM_TMR_PORT: 24-bit counter at 3.579545 MHz derived from the VirtualClock;
 *  - GPE0 block at ACPI_GPE0_PORT: 32 status bits then 32 enable bits;
 *  - reset register at ACPI_RESET_PORT (0xcf9): writing a value with bit 2 set (ACPI_RESET_VALUE = 6) resets.
 * The SCI (IRQ9, level) is asserted while any enabled status bit is set.
 */
import type { AccessSize, PioDevice } from '../platform/bus.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import {
  ACPI_GPE0_PORT, ACPI_PM1A_CNT_PORT, ACPI_PM1A_EVT_PORT, ACPI_PM_TMR_PORT, ACPI_S5_SLP_TYP, ACPI_SCI_IRQ,
} from '../platform/layout.js';
import type { IrqRouter } from './irq.js';

export const PM_TIMER_HZ = 3_579_545;
const PM_TIMER_TICKS_PER_NS = PM_TIMER_HZ / 1e9;

export const PM1_TMR_STS = 1 << 0;
export const PM1_GBL_STS = 1 << 5;
export const PM1_PWRBTN_STS = 1 << 8;
export const PM1_RTC_STS = 1 << 10;
export const PM1_WAK_STS = 1 << 15;
const PM1_STS_BITS = 0x8d31; // TMR, BM, GBL, PWRBTN, SLPBTN, RTC, WAK
const PM1_EN_BITS = 0x0521; // TMR_EN, GBL_EN, PWRBTN_EN, RTC_EN
const PM1_CNT_SCI_EN = 1 << 0;
const PM1_CNT_SLP_EN = 1 << 13;

/** Offsets inside the block registered at ACPI_PM1A_EVT_PORT (it spans EVT, CNT and TMR). */
const EVT_OFF = 0;
const CNT_OFF = ACPI_PM1A_CNT_PORT - ACPI_PM1A_EVT_PORT;
const TMR_OFF = ACPI_PM_TMR_PORT - ACPI_PM1A_EVT_PORT;
/** Length of the PM1 block to register at ACPI_PM1A_EVT_PORT. */
export const ACPI_PM1_BLOCK_LEN = TMR_OFF + 4;
export const ACPI_GPE0_BLOCK_LEN = 8;

export interface AcpiPmState { pm1Sts: number; pm1En: number; pm1Cnt: number; gpeSts: number; gpeEn: number; resetReg: number }

export class AcpiPm {
  pm1Sts = 0;
  pm1En = 0;
  pm1Cnt = PM1_CNT_SCI_EN;
  gpeSts = 0;
  gpeEn = 0;
  resetReg = 0;
  private sci = false;
  private tmrTimer: TimerHandle | null = null;

  /** Register at ACPI_PM1A_EVT_PORT, ACPI_PM1_BLOCK_LEN ports. */
  readonly pm1Block: PioDevice;
  /** Register at ACPI_GPE0_PORT, ACPI_GPE0_BLOCK_LEN ports. */
  readonly gpe0Block: PioDevice;
  /** Register at ACPI_RESET_PORT, 1 port. */
  readonly resetPort: PioDevice;

  constructor(private readonly clock: VirtualClock, private readonly irq: IrqRouter | null,
    private readonly onShutdown: (code: number, reason: string) => void,
    private readonly onReset: (reason: string) => void) {
    this.pm1Block = bytewise((o) => this.readPm1Byte(o), (o, v) => this.writePm1Byte(o, v), (o, size) => this.readPm1(o, size));
    this.gpe0Block = bytewise((o) => this.readGpeByte(o), (o, v) => this.writeGpeByte(o, v));
    this.lastTimerMsb = Math.floor(clock.now() * PM_TIMER_TICKS_PER_NS / 0x800000);
    this.resetPort = {
      pioRead: () => this.resetReg,
      pioWrite: (_o: number, _s: AccessSize, v: number) => {
        this.resetReg = v & 0xff & ~0x04;
        if (v & 0x04) this.onReset('reset control register 0xcf9');
      },
    };
  }

  /** The 24-bit PM timer value now. */
  timerValue(now = this.clock.now()): number {
    return Math.floor(now * PM_TIMER_TICKS_PER_NS) % 0x1000000;
  }

  /** The host presses the power button (the guest's ACPI button driver shuts down cleanly). */
  pressPowerButton(): void { this.pm1Sts |= PM1_PWRBTN_STS; this.updateSci(); }

  /** Raise general-purpose event `bit` (0-31), e.g. for hot-plug notifications. */
  raiseGpe(bit: number): void {
    if (!(bit >= 0 && bit < 32)) return;
    this.gpeSts = (this.gpeSts | (1 << bit)) >>> 0;
    this.updateSci();
  }

  private updateSci(): void {
    this.syncTimerStatus();
    const level = (this.pm1Sts & this.pm1En & PM1_EN_BITS) !== 0 || (this.gpeSts & this.gpeEn) !== 0;
    if (level !== this.sci) {
      this.sci = level;
      this.irq?.setLevel(ACPI_SCI_IRQ, level);
    }
  }

  /** TMR_STS is set each time bit 23 of the counter flips; computed lazily, armed when TMR_EN is set. */
  private lastTimerMsb = -1;
  private syncTimerStatus(): void {
    const msbEpoch = Math.floor(this.clock.now() * PM_TIMER_TICKS_PER_NS / 0x800000);
    if (this.lastTimerMsb >= 0 && msbEpoch > this.lastTimerMsb) this.pm1Sts |= PM1_TMR_STS;
    this.lastTimerMsb = msbEpoch;
    this.clock.cancel(this.tmrTimer);
    this.tmrTimer = null;
    if (this.pm1En & PM1_TMR_STS) {
      const next = Math.ceil(((msbEpoch + 1) * 0x800000) / PM_TIMER_TICKS_PER_NS);
      this.tmrTimer = this.clock.at(next, () => { this.tmrTimer = null; this.updateSci(); });
    }
  }

  private readPm1(offset: number, size: AccessSize): number | null {
    // The PM timer must be sampled once per access so a 32-bit read is coherent.
    if (offset === TMR_OFF && size === 4) return this.timerValue();
    return null;
  }

  private readPm1Byte(o: number): number {
    if (o === EVT_OFF || o === EVT_OFF + 1) { this.syncTimerStatus(); return (this.pm1Sts >> ((o - EVT_OFF) * 8)) & 0xff; }
    if (o === EVT_OFF + 2 || o === EVT_OFF + 3) return (this.pm1En >> ((o - EVT_OFF - 2) * 8)) & 0xff;
    if (o === CNT_OFF || o === CNT_OFF + 1) return (this.pm1Cnt >> ((o - CNT_OFF) * 8)) & 0xff;
    if (o >= TMR_OFF && o < TMR_OFF + 4) return o === TMR_OFF + 3 ? 0 : (this.timerValue() >> ((o - TMR_OFF) * 8)) & 0xff;
    return 0xff;
  }

  private writePm1Byte(o: number, v: number): void {
    if (o === EVT_OFF || o === EVT_OFF + 1) {
      this.syncTimerStatus();
      this.pm1Sts &= ~((v << ((o - EVT_OFF) * 8)) & PM1_STS_BITS);
      this.updateSci();
    } else if (o === EVT_OFF + 2 || o === EVT_OFF + 3) {
      const shift = (o - EVT_OFF - 2) * 8;
      this.pm1En = ((this.pm1En & ~(0xff << shift)) | (v << shift)) & PM1_EN_BITS;
      this.updateSci();
    } else if (o === CNT_OFF) {
      this.pm1Cnt = (this.pm1Cnt & 0xff00) | (v & 0x06) | PM1_CNT_SCI_EN;
    } else if (o === CNT_OFF + 1) {
      const hi = v << 8;
      this.pm1Cnt = (this.pm1Cnt & 0x00ff) | (hi & 0x1c00); // SLP_TYP kept, SLP_EN reads as 0
      if (hi & PM1_CNT_SLP_EN) {
        const slpTyp = (hi >> 10) & 7;
        if (slpTyp === ACPI_S5_SLP_TYP) this.onShutdown(0, 'ACPI S5 power-off');
        // Other sleep states are not offered in the DSDT; the request is ignored.
      }
    }
  }

  private readGpeByte(o: number): number {
    if (o < 4) return (this.gpeSts >>> (o * 8)) & 0xff;
    if (o < 8) return (this.gpeEn >>> ((o - 4) * 8)) & 0xff;
    return 0xff;
  }

  private writeGpeByte(o: number, v: number): void {
    if (o < 4) this.gpeSts = (this.gpeSts & ~(v << (o * 8))) >>> 0;
    else if (o < 8) {
      const shift = (o - 4) * 8;
      this.gpeEn = ((this.gpeEn & ~(0xff << shift)) | (v << shift)) >>> 0;
    }
    this.updateSci();
  }

  saveState(): AcpiPmState {
    const { pm1Sts, pm1En, pm1Cnt, gpeSts, gpeEn, resetReg } = this;
    return { pm1Sts, pm1En, pm1Cnt, gpeSts, gpeEn, resetReg };
  }

  restoreState(s: AcpiPmState): void {
    Object.assign(this, s);
    this.sci = false;
    this.updateSci();
  }
}

/**
 * A port block whose registers are byte-addressable: wider accesses are split into bytes (low first),
 * and writes of 16 bits to a 16-bit register are applied low byte then high byte.
 */
function bytewise(readByte: (o: number) => number, writeByte: (o: number, v: number) => void,
  whole?: (o: number, size: AccessSize) => number | null): PioDevice {
  return {
    pioRead(offset: number, size: AccessSize): number {
      const w = whole?.(offset, size);
      if (w !== undefined && w !== null) return w >>> 0;
      let v = 0;
      for (let i = 0; i < size; i++) v |= readByte(offset + i) << (8 * i);
      return v >>> 0;
    },
    pioWrite(offset: number, size: AccessSize, value: number): void {
      for (let i = 0; i < size; i++) writeByte(offset + i, (value >>> (8 * i)) & 0xff);
    },
  };
}

export const ACPI_PM_PORTS = { pm1: ACPI_PM1A_EVT_PORT, gpe0: ACPI_GPE0_PORT } as const;
