/**
 * Creates the PC platform devices of a partition, wires their interrupts and attaches them to the buses
 * at the fixed layout (src/platform/layout.ts).
 *
 * Interrupt wiring: device lines -> IrqRouter -> 8259 pair and IOAPIC; IOAPIC -> APIC bus -> LAPICs;
 * 8259 INT -> LINT0 of LAPIC 0 (ExtINT); LAPIC EOI of level vectors -> IOAPIC remote IRR.
 * The partition sets `lapicWindow.current` to the running VP index before running it, forwards each
 * LAPIC's `onInterruptPending` to its vCPU, and passes `lapics` as `PlatformServices.interrupts`.
 */
import type { IoBus, MmioBus } from '../platform/bus.js';
import type { VirtualClock } from '../platform/clock.js';
import {
  ACPI_GPE0_PORT, ACPI_PM1A_EVT_PORT, ACPI_RESET_PORT, COM1_IRQ, COM1_PORT, DEBUG_EXIT_PORT, FAST_A20_PORT,
  I8042_CMD_PORT, I8042_DATA_PORT, IOAPIC_BASE, IOAPIC_SIZE, PIC_ELCR_PORT,
  PIC_MASTER_PORT, PIC_SLAVE_PORT, PIT_PORT, PORT61, POST_PORT, RTC_PORT,
} from '../platform/layout.js';
import { ACPI_GPE0_BLOCK_LEN, ACPI_PM1_BLOCK_LEN, AcpiPm } from './acpi-pm.js';
import { DebugExit } from './debug-exit.js';
import { I8042 } from './i8042.js';
import { IoApic } from './ioapic.js';
import { IrqRouter } from './irq.js';
import { ApicBus, LapicWindow, LocalApic } from './lapic.js';
import { Pic } from './pic.js';
import { Pit } from './pit.js';
import { Port92 } from './port92.js';
import { PostPort } from './post.js';
import { Rtc } from './rtc.js';
import { Uart16550 } from './uart16550.js';

export interface PlatformDeviceOptions {
  io: IoBus;
  mmio: MmioBus;
  clock: VirtualClock;
  vcpuCount: number;
  onShutdown: (code: number, reason: string) => void;
  onReset: (reason: string) => void;
  /** Host wall-clock time (ms since the epoch) the RTC starts from; default Date.now(). */
  rtcEpochMs?: number;
}

export interface PlatformDevices {
  irq: IrqRouter;
  apicBus: ApicBus;
  /** One per vCPU, index = VP index = APIC ID. */
  lapics: LocalApic[];
  /** The shared LAPIC MMIO window; set `current` to the running VP. */
  lapicWindow: LapicWindow;
  ioapic: IoApic;
  pic: Pic;
  pit: Pit;
  rtc: Rtc;
  pm: AcpiPm;
  uart: Uart16550;
  i8042: I8042;
  port92: Port92;
  debugExit: DebugExit;
  post: PostPort;
  /** Machine reset of the guest-programmable device state (host input waiting for the UART is kept). */
  reset(): void;
  saveState(): PlatformDevicesState;
  restoreState(s: PlatformDevicesState): void;
}

export type PlatformDevicesState = Record<string, unknown>;

export function createPlatformDevices(o: PlatformDeviceOptions): PlatformDevices {
  const { io, mmio, clock } = o;
  if (!Number.isInteger(o.vcpuCount) || o.vcpuCount < 1 || o.vcpuCount > 255) {
    throw new RangeError(`vcpuCount must be an integer from 1 to 255, got ${o.vcpuCount}`);
  }

  const apicBus = new ApicBus();
  const lapics: LocalApic[] = [];
  for (let i = 0; i < o.vcpuCount; i++) lapics.push(new LocalApic(i, clock, apicBus));
  const ioapic = new IoApic(apicBus);
  for (const l of lapics) l.onEoiBroadcast = (v) => ioapic.eoi(v);

  const pic = new Pic();
  const bsp = lapics[0];
  bsp.extInt = pic;
  pic.onIntrChange = () => bsp.extIntChanged();

  const irq = new IrqRouter(pic, ioapic);
  const pit = new Pit(clock, irq);
  const rtc = new Rtc(clock, irq, o.rtcEpochMs);
  const pm = new AcpiPm(clock, irq, o.onShutdown, o.onReset);
  const uart = new Uart16550(clock, irq, COM1_IRQ);
  const i8042 = new I8042(irq, o.onReset);
  const port92 = new Port92(o.onReset);
  const debugExit = new DebugExit(o.onShutdown);
  const post = new PostPort();
  const lapicWindow = new LapicWindow(lapics, mmio);

  io.register(PIC_MASTER_PORT, 2, pic.master, 'pic-master');
  io.register(PIC_SLAVE_PORT, 2, pic.slave, 'pic-slave');
  io.register(PIC_ELCR_PORT, 2, pic.elcrPorts, 'pic-elcr');
  io.register(PIT_PORT, 4, pit, 'pit');
  io.register(PORT61, 1, pit.port61, 'port61');
  io.register(I8042_DATA_PORT, 1, i8042, 'i8042-data');
  // The bus passes offsets within a range, so the command port is registered as offset 4 of the device.
  io.register(I8042_CMD_PORT, 1, { pioRead: (_o, s) => i8042.pioRead(4, s), pioWrite: (_o, s, v) => i8042.pioWrite(4, s, v) }, 'i8042-cmd');
  io.register(RTC_PORT, 2, rtc, 'rtc');
  io.register(POST_PORT, 1, post, 'post');
  io.register(FAST_A20_PORT, 1, port92, 'port92');
  io.register(DEBUG_EXIT_PORT, 1, debugExit, 'debug-exit');
  io.register(ACPI_PM1A_EVT_PORT, ACPI_PM1_BLOCK_LEN, pm.pm1Block, 'acpi-pm1');
  io.register(ACPI_GPE0_PORT, ACPI_GPE0_BLOCK_LEN, pm.gpe0Block, 'acpi-gpe0');
  io.register(ACPI_RESET_PORT, 1, pm.resetPort, 'reset-control');
  io.register(COM1_PORT, 8, uart, 'com1');
  mmio.register(IOAPIC_BASE, IOAPIC_SIZE, ioapic, 'ioapic');

  const saveState = (): PlatformDevicesState => ({
    lapics: lapics.map((l) => l.saveState()), ioapic: ioapic.saveState(), pic: pic.saveState(), pit: pit.saveState(),
    rtc: rtc.saveState(), pm: pm.saveState(), uart: uart.saveState(), i8042: i8042.saveState(), port92: port92.saveState(),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const restoreState = (s: any): void => {
    s.lapics.forEach((ls: never, i: number) => lapics[i]?.restoreState(ls));
    ioapic.restoreState(s.ioapic); pic.restoreState(s.pic); pit.restoreState(s.pit); rtc.restoreState(s.rtc);
    pm.restoreState(s.pm); uart.restoreState(s.uart); i8042.restoreState(s.i8042); port92.restoreState(s.port92);
  };
  const reset = (): void => {
    for (const l of lapics) l.reset();
    ioapic.reset();
    pit.reset();
    // Fresh models' state for the rest; the RTC keeps its time and CMOS across a reset, as on a PC.
    pic.restoreState(new Pic().saveState());
    i8042.restoreState(new I8042(null, o.onReset).saveState());
    port92.restoreState(new Port92(o.onReset).saveState());
    pm.restoreState(new AcpiPm(clock, null, o.onShutdown, o.onReset).saveState());
    const u = uart.saveState();
    uart.restoreState({ ...new Uart16550(clock, null, COM1_IRQ, 1).saveState(), host: u.host });
  };

  return { irq, apicBus, lapics, lapicWindow, ioapic, pic, pit, rtc, pm, uart, i8042, port92, debugExit, post, reset,
    saveState, restoreState };
}
