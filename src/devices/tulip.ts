/**
 * Hyper-V's legacy network adapter: an emulated DEC 21140 (PCI 1011:0009) that Linux's `tulip` driver
 * binds. Sixteen CSRs at 8-byte strides in an I/O BAR and a memory BAR; the SROM and an MII PHY through
 * CSR9 (tulip-serial.ts); receive and transmit descriptor lists in guest memory (ring or chained, two
 * buffers each), setup frames with perfect or hash filtering, CSR5 status with CSR7 mask on INTA#, and
 * the general-purpose timer the driver uses to re-enable interrupts after a busy one.
 *
 * The guest is untrusted: every descriptor and buffer address is checked against RAM before DMA; one
 * outside RAM ends in a fatal bus error (CSR5 FBE, both engines stopped) that the guest sees, never a
 * host exception. Descriptor walks are bounded per poll and per frame, so a descriptor cycle cannot hang
 * the host; frames over 1514 bytes (1518 with an 802.1Q tag) are dropped and counted.
 */
import type { AccessSize, MmioDevice, PioDevice } from '../platform/bus.js';
import type { GuestMemory } from '../platform/memory.js';
import type { TimerHandle, VirtualClock } from '../platform/clock.js';
import type { NetworkEndpoint } from '../net/switch.js';
import { PciFunction } from './pci/function.js';
import {
  buildSrom, crc32, etherCrcLe, MiiPhy, SerialEeprom, SROM_WORDS,
  CSR9_SROM_SELECT, CSR9_SROM_DO, CSR9_MDIO_IN,
} from './tulip-serial.js';

export const DEC_VENDOR_ID = 0x1011;
export const DEC_21140_DEVICE_ID = 0x0009;
/** Where Hyper-V Gen 1 puts the first legacy network adapter (00:0a.0); further ones take the next devices. */
export const LEGACY_NIC_PCI_DEVICE = 10;
export const CSR_SPACE = 128;

/** CSR5 status bits. */
export const S = {
  TI: 1 << 0, TPS: 1 << 1, TU: 1 << 2, TJT: 1 << 3, UNF: 1 << 5, RI: 1 << 6, RU: 1 << 7, RPS: 1 << 8,
  RWT: 1 << 9, ETI: 1 << 10, GTE: 1 << 11, FBE: 1 << 13, ERI: 1 << 14, AIS: 1 << 15, NIS: 1 << 16,
} as const;
const NORMAL = S.TI | S.TU | S.RI | S.ERI;
const ABNORMAL = S.TPS | S.TJT | S.UNF | S.RU | S.RPS | S.RWT | S.ETI | S.GTE | S.FBE;
const STATUS_W1C = NORMAL | ABNORMAL;
/** CSR5 RS (receive state, bits 19:17) and TS (transmit state, bits 22:20); EB (bus error kind) 25:23. */
const RS_STOPPED = 0, RS_WAITING = 3, RS_SUSPENDED = 4;
const TS_STOPPED = 0, TS_SUSPENDED = 6;
const EB_MASTER_ABORT = 1;

/** CSR6 operating mode bits used here. */
export const M = { SR: 1 << 1, HO: 1 << 2, IF: 1 << 4, PR: 1 << 6, PM: 1 << 7, ST: 1 << 13 } as const;

/** Descriptor bits: word 0 (status, OWN) and word 1 (control and buffer sizes). */
export const OWN = 0x8000_0000;
export const RDES0 = { FS: 1 << 9, LS: 1 << 8, MF: 1 << 10, FT: 1 << 5, ES: 1 << 15, DE: 1 << 14, TL: 1 << 7 } as const;
export const RDES1 = { RER: 1 << 25, RCH: 1 << 24 } as const;
export const TDES0 = { ES: 1 << 15, TO: 1 << 14, LO: 1 << 11, NC: 1 << 10 } as const;
export const TDES1 = { IC: 1 << 31, LS: 1 << 30, FS: 1 << 29, FT1: 1 << 28, SET: 1 << 27, TER: 1 << 25, TCH: 1 << 24, FT0: 1 << 22 } as const;

/** Largest frame without FCS: 1514 bytes, 1518 with an 802.1Q tag. */
export const MAX_FRAME = 1514;
export const MAX_VLAN_FRAME = 1518;
const MIN_FRAME = 14;
const SETUP_FRAME = 192;
/** Descriptors one transmit poll may process; far above a real ring (Linux: 32), small enough to bound a cycle. */
export const MAX_TX_DESCRIPTORS_PER_POLL = 1024;
/** Descriptors one received frame may span (Linux uses one 1540-byte buffer per frame). */
export const MAX_RX_DESCRIPTORS_PER_FRAME = 64;
/**
 * Frames held while the guest has no free receive descriptor (the chip's FIFO, bounded: at most ~1.5 MiB).
 * Deep because the host side (passt) sends at host speed into a guest that may run on the emulated
 * processor: with a shallow FIFO most of a TCP window is lost and resent over and over.
 */
const RX_QUEUE = 1024;
/**
 * With a switch that honours flow control, the adapter reports itself full at this depth and the switch
 * keeps the rest (pausing passt): the deep RX_QUEUE is only for senders that ignore `canReceive`.
 */
const RX_FIFO = 64;
/** General-purpose timer tick at 100 Mbit/s. */
const GPT_TICK_NS = 81_920;

export interface TulipStats {
  txFrames: number; rxFrames: number;
  /** Received frames dropped: no descriptor and queue full, link down, receiver stopped. */
  rxDropped: number;
  /** Of those: dropped because the guest had no free receive descriptor and the FIFO was full (CSR8). */
  rxNoBuffer: number;
  /** Frames over 1514 (1518 tagged) bytes in either direction, dropped. */
  oversize: number;
  /** Frames sent with the link down (no carrier) or too short to be Ethernet. */
  txDropped: number;
  /** Fatal bus errors (a descriptor or buffer outside guest RAM). */
  busErrors: number;
  setupFrames: number;
}

export interface TulipOptions {
  mac: Uint8Array;
  memory: GuestMemory;
  clock: VirtualClock;
  name?: string;
  log?: (message: string) => void;
}

export interface TulipState {
  csr: number[]; rxCurrent: number; txCurrent: number; filter: number[]; hash: number[]; filterMode: number;
  phy: { bmcr: number; advertise: number }; missed: number; tx: number[];
}

class BusError extends Error {}

export class Tulip extends PciFunction implements NetworkEndpoint {
  readonly mac: Uint8Array;
  readonly stats: TulipStats = { txFrames: 0, rxFrames: 0, rxDropped: 0, rxNoBuffer: 0, oversize: 0, txDropped: 0, busErrors: 0, setupFrames: 0 };
  readonly phy = new MiiPhy();
  private readonly srom: SerialEeprom;
  private readonly memory: GuestMemory;
  private readonly clock: VirtualClock;
  private readonly log: (m: string) => void;

  private readonly csr = new Uint32Array(16);
  private rxState = RS_STOPPED;
  private txState = TS_STOPPED;
  private rxCurrent = 0;
  private txCurrent = 0;
  private missed = 0;
  /** Perfect filter: 16 addresses (96 bytes). Hash filter: 512 bits. */
  private readonly filter = new Uint8Array(16 * 6);
  private readonly hash = new Uint8Array(64);
  /** 0 perfect, 1 hash + one perfect, 2 inverse perfect, 3 hash only. */
  private filterMode = 0;
  private filterValid = false;
  private readonly rxQueue: Uint8Array[] = [];
  /** Bytes of a frame spread over several transmit descriptors (FS..LS). */
  private txFrame: Uint8Array = new Uint8Array(MAX_VLAN_FRAME);
  private txLength = 0;
  private txOversize = false;
  private gpTimer: TimerHandle | null = null;
  private uplink: ((frame: Uint8Array) => void) | null = null;
  /** The switch port's "room again" signal, and whether a frame found the FIFO full since it was given. */
  private room: (() => void) | null = null;
  private wasFull = false;
  private linkUpState = false;

  constructor(o: TulipOptions) {
    if (o.mac.length !== 6) throw new RangeError('a MAC address has 6 bytes');
    const ref: { dev: Tulip | null } = { dev: null };
    const io: PioDevice = {
      pioRead: (off, size) => ref.dev!.readCsr(off, size),
      pioWrite: (off, size, v) => ref.dev!.writeCsr(off, size, v),
    };
    const mmio: MmioDevice = {
      mmioRead: (off, size) => ref.dev!.readCsr(off, size),
      mmioWrite: (off, size, v) => ref.dev!.writeCsr(off, size, v),
    };
    super(o.name ?? 'tulip', {
      vendorId: DEC_VENDOR_ID, deviceId: DEC_21140_DEVICE_ID, revision: 0x20, classCode: 0x02, subclass: 0x00, progIf: 0x00,
      subsystemVendorId: 0x1414, subsystemId: 0x0009, interruptPin: 1,
    }, [{ kind: 'io', size: CSR_SPACE, io, name: 'tulip-csr-io' }, { kind: 'mem32', size: CSR_SPACE, mmio, name: 'tulip-csr-mem' }]);
    ref.dev = this;
    // CFDD (driver area, sleep/snooze) and the latency/cache line registers: stored.
    this.writable(0x40, 4);
    this.writable(0x0c, 1);
    this.mac = o.mac.slice();
    this.memory = o.memory;
    this.clock = o.clock;
    this.log = o.log ?? (() => {});
    const bytes = buildSrom(this.mac);
    const words = new Uint16Array(SROM_WORDS);
    for (let i = 0; i < SROM_WORDS; i++) words[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
    this.srom = new SerialEeprom(words);
    this.resetChip();
  }

  // ---- the network side (a switch port) --------------------------------------------------------------

  /**
   * Connect to a switch port's transmit function (and its `resume`, for when the guest hands receive
   * descriptors back), or disconnect (null: the PHY reports no link).
   */
  plug(transmit: ((frame: Uint8Array) => void) | null, room?: () => void): void {
    this.uplink = transmit;
    this.room = transmit ? room ?? null : null;
    this.linkChanged(this.linkUpState);
  }

  linkChanged(up: boolean): void {
    this.linkUpState = up;
    this.phy.link = up && this.uplink !== null;
  }

  get linkUp(): boolean { return this.phy.link; }

  /** The guest's driver has started the receive process (the interface is up). */
  get receiving(): boolean { return this.rxState !== RS_STOPPED; }

  /**
   * Flow control (NetworkEndpoint): false while the FIFO is full because the guest owns no free receive
   * descriptor. A receiver that is stopped or without link takes (and drops) frames, holding no source.
   */
  canReceive(): boolean {
    // Without a "room again" signal to give, claiming to be full would hold the switch's queue for ever.
    if (!this.room || !this.phy.link || this.rxState === RS_STOPPED || this.rxQueue.length < RX_FIFO) return true;
    this.wasFull = true;
    return false;
  }

  /** A frame from the switch for this adapter. */
  deliver(frame: Uint8Array): void {
    if (!this.phy.link || this.rxState === RS_STOPPED) { this.stats.rxDropped++; return; }
    if (frame.length < MIN_FRAME) { this.stats.rxDropped++; return; }
    if (frame.length > maxFrameFor(frame)) { this.stats.oversize++; return; }
    if (!this.accepts(frame)) return;
    if (this.rxQueue.length >= RX_QUEUE) { this.stats.rxDropped++; this.stats.rxNoBuffer++; this.countMissed(); this.updateInterrupt(); return; }
    this.rxQueue.push(frame.slice());
    this.drainRx();
  }

  // ---- registers --------------------------------------------------------------------------------------

  readCsr(off: number, size: AccessSize): number {
    const n = off >> 3, within = off & 7;
    if (n > 15 || within + size > 4) return 0;
    let v: number;
    switch (n) {
      case 5: v = this.status(); break;
      case 8: v = this.missed; this.missed = 0; break;
      case 9: v = this.readCsr9(); break;
      case 1: case 2: v = 0xffffffff; break;
      default: v = this.csr[n];
    }
    return size === 4 ? v >>> 0 : (v >>> (within * 8)) & (size === 2 ? 0xffff : 0xff);
  }

  writeCsr(off: number, size: AccessSize, value: number): void {
    const n = off >> 3, within = off & 7;
    if (n > 15 || within + size > 4) return;
    let v = value >>> 0;
    if (size !== 4) {
      const mask = (size === 2 ? 0xffff : 0xff) << (within * 8);
      v = ((v << (within * 8)) & mask) >>> 0;
      // Narrow writes keep the other bytes; CSR5's other bytes are "write zero" (no effect on RW1C bits).
      if (n !== 5) v = ((this.csr[n] & ~mask) | v) >>> 0;
    }
    switch (n) {
      case 0:
        if (v & 1) { this.resetChip(); this.csr[0] = 0xfe000000; return; }
        this.csr[0] = v;
        return;
      case 1: this.pollTransmit(); break;
      case 2: this.drainRx(); break;
      case 3:
        this.csr[3] = v & ~3;
        if (this.rxState === RS_STOPPED || this.rxState === RS_SUSPENDED) this.rxCurrent = this.csr[3];
        break;
      case 4:
        this.csr[4] = v & ~3;
        if (this.txState === TS_STOPPED || this.txState === TS_SUSPENDED) this.txCurrent = this.csr[4];
        break;
      case 5: this.csr[5] &= ~(v & STATUS_W1C); break;
      case 6: this.writeMode(v); break;
      case 7: this.csr[7] = v & (STATUS_W1C | S.AIS | S.NIS); break;
      case 8: break;
      case 9: this.writeCsr9(v); break;
      case 11: this.csr[11] = v & 0x1ffff; this.armTimer(); break;
      case 12:
        // Bit 8 set: the low byte programs the pins' directions; otherwise it is the output data.
        if (v & 0x100) this.csr[12] = (this.csr[12] & 0xff) | ((v & 0xff) << 8) | 0x100;
        else this.csr[12] = (this.csr[12] & 0xff00) | (v & 0xff);
        break;
      default: this.csr[n] = v;
    }
    // Frames wait in the FIFO while the guest has no receive buffer. Linux refills its ring without a poll
    // demand (the chip re-reads the descriptor when the next frame arrives), so retry on its register
    // accesses too (interrupt acknowledge, mask), not only on the next arrival; CSR9 bit-banging excepted.
    if (this.rxQueue.length > 0 && n !== 9) this.drainRx();
    this.updateInterrupt();
  }

  private readCsr9(): number {
    const w = this.csr[9];
    let v = w & ~(CSR9_SROM_DO | CSR9_MDIO_IN);
    if (w & CSR9_SROM_SELECT) { if (this.srom.dataOut) v |= CSR9_SROM_DO; }
    if (this.phy.dataIn) v |= CSR9_MDIO_IN;
    return v >>> 0;
  }

  private writeCsr9(v: number): void {
    this.csr[9] = v;
    if (v & CSR9_SROM_SELECT) this.srom.write(v); else this.srom.reset();
    this.phy.write(v);
  }

  private writeMode(v: number): void {
    const was = this.csr[6];
    this.csr[6] = v;
    // Starting continues at the current descriptor (only a CSR3/CSR4 write moves it back to the base):
    // the driver stops and restarts both processes when it changes duplex and expects its ring position kept.
    if ((v & M.SR) && !(was & M.SR)) { this.rxState = RS_WAITING; this.drainRx(); }
    if (!(v & M.SR)) { this.rxState = RS_STOPPED; this.rxQueue.length = 0; this.signalRoom(); }
    if ((v & M.ST) && !(was & M.ST)) { this.txState = TS_SUSPENDED; this.txLength = 0; this.pollTransmit(); }
    if (!(v & M.ST)) this.txState = TS_STOPPED;
  }

  private status(): number {
    let s = this.csr[5] & STATUS_W1C;
    if (s & NORMAL) s |= S.NIS;
    if (s & ABNORMAL) s |= S.AIS;
    return (0xfc000000 | s | (this.rxState << 17) | (this.txState << 20) | (this.csr[5] & (7 << 23))) >>> 0;
  }

  private raise(bits: number): void { this.csr[5] |= bits; }

  private updateInterrupt(): void {
    const s = this.csr[5], m = this.csr[7];
    const normal = (m & S.NIS) !== 0 && (s & m & NORMAL) !== 0;
    const abnormal = (m & S.AIS) !== 0 && (s & m & ABNORMAL) !== 0;
    this.setInterrupt(normal || abnormal);
  }

  private armTimer(): void {
    this.clock.cancel(this.gpTimer);
    this.gpTimer = null;
    const ticks = this.csr[11] & 0xffff;
    if (ticks === 0) return;
    this.gpTimer = this.clock.at(this.clock.now() + ticks * GPT_TICK_NS, () => {
      this.gpTimer = null;
      this.raise(S.GTE);
      this.updateInterrupt();
      if (this.csr[11] & 0x10000) this.armTimer(); // continuous mode
    });
  }

  /** CSR8: 16-bit missed-frame counter with a sticky overflow bit. */
  private countMissed(): void {
    const c = this.missed & 0xffff;
    this.missed = c === 0xffff ? this.missed | 0x10000 : (this.missed & 0x10000) | (c + 1);
  }

  // ---- DMA helpers --------------------------------------------------------------------------------------

  private ram(addr: number, len: number): number {
    if (!this.busMaster || !this.memory.isRam(addr, len)) throw new BusError(`0x${addr.toString(16)}+${len} is not guest RAM`);
    return this.memory.offsetOf(addr);
  }

  private rd32(addr: number): number { return this.memory.view.getUint32(this.ram(addr, 4), true); }
  private wr32(addr: number, v: number): void { this.memory.view.setUint32(this.ram(addr, 4), v >>> 0, true); }

  /** Fatal bus error: both processes stop, the guest sees FBE with a master abort and must reset the chip. */
  private busError(what: string, e: unknown): void {
    if (!(e instanceof BusError)) throw e;
    this.stats.busErrors++;
    this.log(`${this.name}: ${what}: ${e.message}; fatal bus error, transmit and receive stopped`);
    this.csr[5] = (this.csr[5] & ~(7 << 23)) | (EB_MASTER_ABORT << 23);
    this.raise(S.FBE);
    this.rxState = RS_STOPPED;
    this.txState = TS_STOPPED;
    this.rxQueue.length = 0;
    this.updateInterrupt();
    this.signalRoom();
  }

  /** Next descriptor after `addr`: chained (buffer 2 address), wrap to the list base, or the next in the ring. */
  private nextDescriptor(addr: number, control: number, base: number, chainBit: number, endBit: number): number {
    if (control & chainBit) return this.rd32(addr + 12) & ~3;
    if (control & endBit) return base;
    const skip = ((this.csr[0] >> 2) & 0x1f) * 4;
    return (addr + 16 + skip) >>> 0;
  }

  // ---- receive --------------------------------------------------------------------------------------------

  private drainRx(): void {
    if (this.rxState !== RS_STOPPED) {
      while (this.rxQueue.length > 0) {
        if (!this.receive(this.rxQueue[0])) break;
        this.rxQueue.shift();
      }
      this.updateInterrupt();
    }
    this.signalRoom();
  }

  /** Tell the switch port the FIFO has room again (or the receiver stopped), once per time it was full. */
  private signalRoom(): void {
    if (!this.wasFull || !this.room || !this.canReceive()) return;
    this.wasFull = false;
    this.room();
  }

  /** DMA one frame into the receive list; false when the guest owns no descriptor (kept for later). */
  private receive(frame: Uint8Array): boolean {
    // On the wire a frame is at least 60 bytes, and the chip stores the FCS after it.
    const body = Math.max(frame.length, 60);
    const total = body + 4;
    const wire = new Uint8Array(total);
    wire.set(frame);
    const fcs = crc32(wire, 0, body);
    wire[body] = fcs & 0xff; wire[body + 1] = (fcs >>> 8) & 0xff; wire[body + 2] = (fcs >>> 16) & 0xff; wire[body + 3] = fcs >>> 24;
    try {
      // Walk first (reads only): the frame is written once the guest's descriptors can hold all of it.
      const descs: Array<{ addr: number; control: number }> = [];
      let addr = this.rxCurrent, room = 0;
      while (room < total && descs.length < MAX_RX_DESCRIPTORS_PER_FRAME) {
        if ((this.rd32(addr) & OWN) === 0) {
          // No (or not enough) descriptors: suspended until the guest gives more; the frame waits. RU only
          // on entering that state, so acknowledging it while still short of buffers does not re-raise it.
          if (this.rxState !== RS_SUSPENDED) { this.rxState = RS_SUSPENDED; this.raise(S.RU); }
          return false;
        }
        const control = this.rd32(addr + 4);
        descs.push({ addr, control });
        room += (control & 0x7ff) + ((control & RDES1.RCH) ? 0 : (control >>> 11) & 0x7ff);
        addr = this.nextDescriptor(addr, control, this.csr[3], RDES1.RCH, RDES1.RER);
      }
      let done = 0;
      descs.forEach((d, i) => {
        const sizes = [d.control & 0x7ff, (d.control & RDES1.RCH) ? 0 : (d.control >>> 11) & 0x7ff];
        for (let b = 0; b < 2 && done < total; b++) {
          const len = Math.min(sizes[b], total - done);
          if (len === 0) continue;
          const at = this.rd32(d.addr + 8 + 4 * b);
          this.memory.bytes.set(wire.subarray(done, done + len), this.ram(at, len));
          this.memory.deviceWrote(at, len);
          done += len;
        }
        let status = i === 0 ? RDES0.FS : 0;
        if (i === descs.length - 1) {
          status |= RDES0.LS | ((total & 0x3fff) << 16);
          if (frame[0] & 1) status |= RDES0.MF;
          if (((frame[12] << 8) | frame[13]) > 1500) status |= RDES0.FT;
          // Too many tiny (or empty) buffers for one frame: a descriptor error, the frame is lost.
          if (done < total) status |= RDES0.ES | RDES0.DE;
        }
        this.wr32(d.addr, status);
      });
      this.rxCurrent = addr;
      this.rxState = RS_WAITING;
      if (done >= total) this.stats.rxFrames++; else this.stats.rxDropped++;
      this.raise(S.RI);
      return true;
    } catch (e) {
      this.busError('receive descriptor', e);
      return true;
    }
  }

  private accepts(frame: Uint8Array): boolean {
    const mode = this.csr[6];
    if (mode & M.PR) return true;
    const multicast = (frame[0] & 1) !== 0;
    if (multicast && (mode & M.PM)) return true;
    if (!this.filterValid) return false;
    const perfect = (): boolean => {
      for (let i = 0; i < 16; i++) {
        const f = this.filter;
        if (f[6 * i] === frame[0] && f[6 * i + 1] === frame[1] && f[6 * i + 2] === frame[2] &&
            f[6 * i + 3] === frame[3] && f[6 * i + 4] === frame[4] && f[6 * i + 5] === frame[5]) return true;
      }
      return false;
    };
    const hashed = (): boolean => {
      const bit = etherCrcLe(frame, 0, 6) & 0x1ff;
      return (this.hash[bit >> 3] & (1 << (bit & 7))) !== 0;
    };
    switch (this.filterMode) {
      case 0: return perfect();
      case 2: return !perfect();
      case 1: return multicast ? hashed() : perfect();
      default: return hashed();
    }
  }

  /** The 192-byte setup frame: 16 perfect addresses (the low 16 bits of each of 3 longwords) or a hash table. */
  private loadSetupFrame(buf: Uint8Array, control: number): void {
    const ft = ((control & TDES1.FT1) ? 2 : 0) | ((control & TDES1.FT0) ? 1 : 0);
    this.filterMode = ft;
    const word = (lw: number): [number, number] => [buf[4 * lw], buf[4 * lw + 1]];
    if (ft === 0 || ft === 2) {
      for (let i = 0; i < 16; i++) for (let k = 0; k < 3; k++) {
        const [a, b] = word(3 * i + k);
        this.filter[6 * i + 2 * k] = a; this.filter[6 * i + 2 * k + 1] = b;
      }
    } else {
      for (let lw = 0; lw < 32; lw++) { const [a, b] = word(lw); this.hash[2 * lw] = a; this.hash[2 * lw + 1] = b; }
      // Hash mode keeps one perfect address, in longwords 39-41.
      this.filter.fill(0);
      for (let k = 0; k < 3; k++) { const [a, b] = word(39 + k); this.filter[2 * k] = a; this.filter[2 * k + 1] = b; }
      for (let i = 1; i < 16; i++) this.filter.copyWithin(6 * i, 0, 6);
    }
    this.filterValid = true;
    this.stats.setupFrames++;
  }

  // ---- transmit -------------------------------------------------------------------------------------------

  private pollTransmit(): void {
    if (this.txState === TS_STOPPED) return;
    try {
      let addr = this.txCurrent;
      for (let n = 0; n < MAX_TX_DESCRIPTORS_PER_POLL; n++) {
        const status = this.rd32(addr);
        if ((status & OWN) === 0) { this.raise(S.TU); break; }
        const control = this.rd32(addr + 4);
        const next = this.nextDescriptor(addr, control, this.csr[4], TDES1.TCH, TDES1.TER);
        let result = 0;
        if (control & TDES1.SET) {
          const len = control & 0x7ff;
          if (len >= SETUP_FRAME) {
            const o = this.ram(this.rd32(addr + 8), SETUP_FRAME);
            this.loadSetupFrame(this.memory.bytes.subarray(o, o + SETUP_FRAME), control);
          }
          result = 0x7fffffff;
        } else {
          if (control & TDES1.FS) { this.txLength = 0; this.txOversize = false; }
          const sizes = [control & 0x7ff, (control & TDES1.TCH) ? 0 : (control >>> 11) & 0x7ff];
          for (let b = 0; b < 2; b++) {
            const len = sizes[b];
            if (len === 0) continue;
            const o = this.ram(this.rd32(addr + 8 + 4 * b), len);
            if (this.txLength + len > MAX_VLAN_FRAME) { this.txOversize = true; continue; }
            this.txFrame.set(this.memory.bytes.subarray(o, o + len), this.txLength);
            this.txLength += len;
          }
          if (control & TDES1.LS) result = this.sendFrame();
        }
        this.wr32(addr, result & ~OWN);
        if (control & TDES1.IC) this.raise(S.TI);
        addr = next;
        this.txCurrent = addr;
      }
      this.txState = TS_SUSPENDED;
    } catch (e) {
      this.busError('transmit descriptor', e);
    }
  }

  /** The frame assembled from FS..LS goes to the switch port; returns the last descriptor's status. */
  private sendFrame(): number {
    const len = this.txLength;
    this.txLength = 0;
    if (this.txOversize || len > maxFrameFor(this.txFrame.subarray(0, len))) {
      this.stats.oversize++;
      return TDES0.ES | TDES0.TO;
    }
    if (len < MIN_FRAME) { this.stats.txDropped++; return TDES0.ES; }
    if (!this.phy.link || !this.uplink) { this.stats.txDropped++; return TDES0.ES | TDES0.LO | TDES0.NC; }
    this.stats.txFrames++;
    this.uplink(this.txFrame.slice(0, len));
    return 0;
  }

  // ---- reset and saved state -------------------------------------------------------------------------------

  private resetChip(): void {
    this.csr.fill(0);
    this.csr[0] = 0xfe000000;
    this.rxState = RS_STOPPED; this.txState = TS_STOPPED;
    this.rxCurrent = 0; this.txCurrent = 0; this.missed = 0;
    this.filter.fill(0); this.hash.fill(0); this.filterMode = 0; this.filterValid = false;
    this.rxQueue.length = 0; this.txLength = 0; this.txOversize = false;
    this.clock.cancel(this.gpTimer); this.gpTimer = null;
    this.srom.reset();
    this.phy.resetBus();
    this.setInterrupt(false);
    this.signalRoom();
  }

  /** Machine reset: configuration space and the chip (the PHY back to its defaults). */
  override resetConfigSpace(): void {
    super.resetConfigSpace();
    this.resetChip();
    this.phy.reset();
  }

  saveState(): TulipState {
    const csr = [...this.csr];
    csr[5] = this.status();
    return {
      csr, rxCurrent: this.rxCurrent, txCurrent: this.txCurrent, filter: [...this.filter], hash: [...this.hash],
      filterMode: this.filterMode | (this.filterValid ? 4 : 0), phy: this.phy.saveState(), missed: this.missed,
      tx: [...this.txFrame.subarray(0, this.txLength)],
    };
  }

  restoreState(s: TulipState): void {
    const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v >>> 0 : 0);
    this.resetChip();
    for (let i = 0; i < 16; i++) this.csr[i] = num(s.csr?.[i]);
    this.rxState = (this.csr[5] >> 17) & 7; this.txState = (this.csr[5] >> 20) & 7;
    if (![RS_STOPPED, RS_WAITING, RS_SUSPENDED].includes(this.rxState)) this.rxState = RS_WAITING;
    if (this.txState !== TS_STOPPED) this.txState = TS_SUSPENDED;
    this.csr[5] &= STATUS_W1C | (7 << 23);
    this.rxCurrent = num(s.rxCurrent); this.txCurrent = num(s.txCurrent);
    for (let i = 0; i < this.filter.length; i++) this.filter[i] = num(s.filter?.[i]) & 0xff;
    for (let i = 0; i < this.hash.length; i++) this.hash[i] = num(s.hash?.[i]) & 0xff;
    this.filterMode = num(s.filterMode) & 3; this.filterValid = (num(s.filterMode) & 4) !== 0;
    if (s.phy) this.phy.restoreState(s.phy);
    this.missed = num(s.missed) & 0x1ffff;
    const tx = Array.isArray(s.tx) ? s.tx.slice(0, MAX_VLAN_FRAME) : [];
    this.txFrame.set(tx.map((b) => num(b) & 0xff)); this.txLength = tx.length;
    this.armTimer();
    this.updateInterrupt();
  }
}

/** 1514 bytes, or 1518 when the frame carries an 802.1Q tag. */
function maxFrameFor(frame: Uint8Array): number {
  return frame.length >= 14 && frame[12] === 0x81 && frame[13] === 0x00 ? MAX_VLAN_FRAME : MAX_FRAME;
}
