/**
 * The two serial buses of the DEC 21140 that software bit-bangs through CSR9: the 93C46 serial EEPROM
 * (SROM: 64 16-bit words holding the MAC address and the media table Linux's tulip driver parses) and
 * the MII management interface (MDC/MDIO) to one PHY, whose status register carries the link state the
 * driver's media timer polls. Both are state machines clocked by the guest's writes, so any sequence of
 * writes is harmless.
 */

/** CSR9 bits (21140 manual, "Boot ROM, serial ROM and MII management register"). */
export const CSR9_SROM_CS = 0x1, CSR9_SROM_CLK = 0x2, CSR9_SROM_DI = 0x4, CSR9_SROM_DO = 0x8;
export const CSR9_SROM_SELECT = 0x800;
export const CSR9_MDC = 0x10000, CSR9_MDIO_OUT = 0x20000, CSR9_MII_READ = 0x40000, CSR9_MDIO_IN = 0x80000;

export const SROM_WORDS = 64;
/** MII address of the one PHY (tulip scans 1..31 then 0). */
export const PHY_ADDRESS = 1;

/**
 * SROM contents in Digital's "SROM format" (version 3): subsystem ids, format version, one controller
 * whose info leaf (at byte 27's offset) names autosense and one 21140 MII PHY block (type 1) for PHY
 * index 0 without GPR or reset sequences; the station address at bytes 20-25; CRC-32 (low 16 bits) of
 * bytes 0-125 in the last word. Linux reads the MAC from offset 20 because bytes 0-7 differ from 16-23.
 */
export function buildSrom(mac: Uint8Array, subsystemVendor = 0x1414, subsystem = 0x0009): Uint8Array {
  const s = new Uint8Array(SROM_WORDS * 2);
  s[0] = subsystemVendor & 0xff; s[1] = subsystemVendor >> 8;
  s[2] = subsystem & 0xff; s[3] = subsystem >> 8;
  s[18] = 3; // SROM format version
  s[19] = 1; // controller count
  s.set(mac.subarray(0, 6), 20);
  s[26] = 0; // controller 0: device number
  const leaf = 30;
  s[27] = leaf; s[28] = 0; // info leaf offset
  let p = leaf;
  s[p++] = 0x00; s[p++] = 0x08; // connection type: autosense (0x0800)
  s[p++] = 0x00; // GPR control: no general-purpose pins driven
  s[p++] = 1; // one media block
  // Extended block, type 1 (21140 MII PHY): length byte counts the bytes after itself.
  const block = [0x01, 0 /* PHY index */, 0 /* GPR sequence length */, 0 /* reset sequence length */,
    0x00, 0x78 /* media capabilities: 10/100 half/full (BMSR bits 14:11) */, 0xe1, 0x01 /* NWay advertisement */,
    0x00, 0x50 /* full-duplex bit map */, 0x00, 0x50 /* TTM bit map */];
  s[p++] = 0x80 | block.length;
  for (const b of block) s[p++] = b;
  const crc = crc32(s.subarray(0, 126));
  s[126] = crc & 0xff; s[127] = (crc >>> 8) & 0xff;
  return s;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** IEEE 802.3 CRC-32 (the Ethernet FCS). */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The CRC Linux's ether_crc_le computes for the 21140 hash filter (no final inversion). */
export function etherCrcLe(data: Uint8Array, start: number, len: number): number {
  return (~crc32(data, start, start + len)) >>> 0;
}

/**
 * A 93C46 in 16-bit mode: chip select, clock, data in/out. Only READ is implemented (the driver never
 * writes the SROM; EWEN/WRITE/ERASE are accepted and ignored). Reads auto-increment the address.
 */
export class SerialEeprom {
  private state: 'idle' | 'command' | 'read' = 'idle';
  private bits = 0;
  private count = 0;
  private address = 0;
  private shift = 0;
  private out = 1;
  private clk = false;

  constructor(private readonly words: Uint16Array) {}

  /** A CSR9 write with the SROM selected. */
  write(v: number): void {
    if ((v & CSR9_SROM_CS) === 0) { this.reset(); return; }
    const clk = (v & CSR9_SROM_CLK) !== 0;
    const rising = clk && !this.clk;
    this.clk = clk;
    if (!rising) return;
    const di = (v & CSR9_SROM_DI) !== 0 ? 1 : 0;
    switch (this.state) {
      case 'idle':
        // Leading zeros are ignored; the first one is the start bit.
        if (di) { this.state = 'command'; this.bits = 0; this.count = 0; }
        break;
      case 'command':
        this.bits = (this.bits << 1) | di;
        if (++this.count === 8) { // 2 opcode bits + 6 address bits
          if ((this.bits >> 6) === 0b10) {
            this.address = this.bits & 0x3f;
            this.state = 'read';
            this.shift = 16;
            this.out = 0; // the dummy zero that precedes the data
          } else this.state = 'idle';
        }
        break;
      case 'read':
        if (this.shift === 0) { this.address = (this.address + 1) & 0x3f; this.shift = 16; }
        this.shift--;
        this.out = (this.words[this.address] >> this.shift) & 1;
        break;
    }
  }

  /** Data out as the guest sees it (pulled up while the EEPROM does not drive it). */
  get dataOut(): number { return this.state === 'idle' || this.state === 'command' ? 1 : this.out; }

  reset(): void { this.state = 'idle'; this.clk = false; this.out = 1; this.bits = 0; this.count = 0; }
}

/** MII register numbers. */
const BMCR = 0, BMSR = 1, PHYSID1 = 2, PHYSID2 = 3, ADVERTISE = 4, LPA = 5, EXPANSION = 6;
const BMCR_RESET = 0x8000, BMCR_ANENABLE = 0x1000, BMCR_ANRESTART = 0x0200;
const BMCR_RESET_VALUE = BMCR_ANENABLE | 0x2000 | 0x0100; // autonegotiation, 100 Mbit/s, full duplex
/** 100BASE-TX FD/HD, 10BASE-T FD/HD, AN capable, extended capabilities. */
const BMSR_BASE = 0x7809;
const BMSR_LINK = 0x0004, BMSR_AN_COMPLETE = 0x0020;
const ADVERTISE_RESET = 0x01e1;
/** The link partner (the virtual switch port): 10/100 full/half, acknowledged. */
const LPA_LINKED = 0x45e1;

/**
 * One MII PHY on the MDC/MDIO lines (IEEE 802.3 clause 22 frames: preamble of ones, 01, opcode, PHY
 * address, register, turnaround, 16 data bits). Link state comes from the switch port.
 */
export class MiiPhy {
  private bmcr = BMCR_RESET_VALUE;
  private advertise = ADVERTISE_RESET;
  link = false;

  private ones = 0;
  private state: 'idle' | 'start' | 'header' | 'write' | 'read' = 'idle';
  private bits = 0;
  private count = 0;
  private readValue = 0xffff;
  private readEdge = 0;
  private mdc = false;

  /** A CSR9 write with the MII lines (the SROM is not selected). */
  write(v: number): void {
    const mdc = (v & CSR9_MDC) !== 0;
    const rising = mdc && !this.mdc;
    this.mdc = mdc;
    if (!rising) return;
    if (this.state === 'read') {
      // The PHY drives MDIO; each rising edge moves to the next bit. After 19 edges the frame is over.
      if (++this.readEdge >= 19) this.state = 'idle';
      return;
    }
    if ((v & CSR9_MII_READ) !== 0) return; // the host is not driving MDIO
    const bit = (v & CSR9_MDIO_OUT) !== 0 ? 1 : 0;
    switch (this.state) {
      case 'idle':
        if (bit) { this.ones++; break; }
        if (this.ones >= 32) this.state = 'start';
        this.ones = 0;
        break;
      case 'start':
        if (bit) { this.state = 'header'; this.bits = 0; this.count = 0; } else this.state = 'idle';
        break;
      case 'header':
        this.bits = (this.bits << 1) | bit;
        if (++this.count < 12) break;
        {
          const op = this.bits >> 10, phy = (this.bits >> 5) & 0x1f, reg = this.bits & 0x1f;
          if (op === 0b10) {
            this.readValue = phy === PHY_ADDRESS ? this.readRegister(reg) : 0xffff;
            this.state = 'read';
            this.readEdge = 0;
          } else if (op === 0b01) {
            this.state = 'write'; this.count = 0; this.bits = (phy << 5) | reg;
          } else this.state = 'idle';
        }
        break;
      case 'write':
        // Turnaround (2 bits) then 16 data bits; the header stays in the top bits.
        this.bits = this.bits * 2 + bit;
        if (++this.count === 18) {
          const value = this.bits & 0xffff, header = Math.floor(this.bits / 0x40000);
          if (((header >> 5) & 0x1f) === PHY_ADDRESS) this.writeRegister(header & 0x1f, value);
          this.state = 'idle';
        }
        break;
    }
    if (this.state !== 'idle') this.ones = 0;
  }

  /** MDIO as the guest reads it: turnaround (high, then low), 16 data bits MSB first, then idle high. */
  get dataIn(): number {
    if (this.state !== 'read') return 1;
    const e = this.readEdge;
    if (e === 0) return 1;
    if (e === 1) return 0;
    if (e <= 17) return (this.readValue >> (17 - e)) & 1;
    return 1;
  }

  readRegister(reg: number): number {
    switch (reg) {
      case BMCR: return this.bmcr;
      case BMSR: return BMSR_BASE | (this.link ? BMSR_LINK | BMSR_AN_COMPLETE : 0);
      case PHYSID1: return 0x0000;
      case PHYSID2: return 0x0000;
      case ADVERTISE: return this.advertise;
      case LPA: return this.link ? LPA_LINKED : 0;
      case EXPANSION: return 0x0001;
      default: return 0;
    }
  }

  writeRegister(reg: number, v: number): void {
    if (reg === BMCR) {
      // Reset and autonegotiation restart complete at once (the "wire" is a switch port).
      if (v & BMCR_RESET) { this.bmcr = BMCR_RESET_VALUE; this.advertise = ADVERTISE_RESET; return; }
      this.bmcr = v & ~(BMCR_RESET | BMCR_ANRESTART) & 0xffff;
    } else if (reg === ADVERTISE) this.advertise = v & 0xffff;
  }

  reset(): void {
    this.bmcr = BMCR_RESET_VALUE; this.advertise = ADVERTISE_RESET;
    this.resetBus();
  }

  resetBus(): void { this.state = 'idle'; this.ones = 0; this.mdc = false; this.count = 0; this.bits = 0; }

  saveState(): { bmcr: number; advertise: number } { return { bmcr: this.bmcr, advertise: this.advertise }; }
  restoreState(s: { bmcr: number; advertise: number }): void { this.bmcr = s.bmcr & 0xffff; this.advertise = s.advertise & 0xffff; }
}
