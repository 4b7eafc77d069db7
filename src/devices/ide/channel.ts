/**
 * One IDE channel (ATA8-ACS command set over the parallel ATA register interface): the command block
 * (data, error/features, sector count, LBA low/mid/high, device, status/command), the control block
 * (alternate status / device control) and up to two drives, each an ATA disk or an ATAPI DVD drive.
 *
 * Each drive latches every register write (writes reach both drives); the command register goes to the
 * selected one. Disk I/O is asynchronous: the drive is BSY while a Disk call is in flight and raises INTRQ
 * when it is done. Bus-master DMA moves data straight between the disk and the PRD buffers in guest RAM.
 * Everything the guest writes is checked: commands out of order end in ABRT, a bad PRD table in a DMA error.
 */
import { DiskError, type Disk } from '../../storage/disk.js';
import type { GuestMemory } from '../../platform/memory.js';
import type { IrqRouter } from '../irq.js';
import { SenseKey } from '../../scsi/protocol.js';
import type { ScsiTarget } from '../../scsi/target.js';
import { ataIdentify, atapiIdentify, defaultGeometry, LBA28_MAX_SECTORS, MAX_MULTIPLE_SECTORS, type DiskGeometry, type DriveIdentity } from './identify.js';
import {
  BM_CMD_START, BM_CMD_TO_MEMORY, BM_STATUS_ACTIVE, BM_STATUS_ERROR, BM_STATUS_INTERRUPT, BusMasterRegs,
  gather, scatter, walkPrdTable, type DmaSegment,
} from './bus-master.js';
import { AtapiDevice, ATAPI_PACKET_SIZE, atapiTransferLength } from './atapi.js';

export const ST_ERR = 0x01, ST_DRQ = 0x08, ST_DSC = 0x10, ST_DF = 0x20, ST_DRDY = 0x40, ST_BSY = 0x80;
export const ER_ABRT = 0x04, ER_IDNF = 0x10, ER_UNC = 0x40;
const DEV_CTL_NIEN = 0x02, DEV_CTL_SRST = 0x04, DEV_CTL_HOB = 0x80;
const DEVICE_LBA = 0x40, DEVICE_DEV1 = 0x10;
/** ATAPI interrupt reason (sector count register): command/data, direction. */
const IR_COD = 0x01, IR_IO = 0x02;
const SECTOR = 512;
/** Sectors staged per disk call for PIO (a multiple of every allowed multiple-mode block size). */
const PIO_CHUNK_SECTORS = 256;
/** Bytes per disk call for DMA. */
const DMA_CHUNK = 1 << 20;
/** HYPERTS_IDE_TRACE=1 logs every ATAPI packet and failure (driver bring-up). */
const TRACE = process.env.HYPERTS_IDE_TRACE === '1';

export type IdeMedia = { kind: 'disk'; disk: Disk } | { kind: 'dvd'; target: ScsiTarget };

type PioKind = 'ata-in' | 'ata-out' | 'identify' | 'packet' | 'atapi-in';
interface Pio { kind: PioKind; buf: Uint8Array; pos: number; end: number; lba: number; left: number; block: number }
interface DmaRequest { write: boolean; lba: number; count: number; cdb: number[] | null }

interface Regs { feature: number; nsect: number; lbal: number; lbam: number; lbah: number; device: number; hob: number[] }

class Drive {
  readonly regs: Regs = { feature: 0, nsect: 1, lbal: 1, lbam: 0, lbah: 0, device: 0, hob: [0, 0, 0, 0, 0] };
  status = 0;
  error = 1;
  multiple = 0;
  geometry: DiskGeometry;
  xferMode = 0x0c; // PIO 4
  writeCache = true;
  pio: Pio | null = null;
  dma: DmaRequest | null = null;
  /** True while a Disk/SCSI call for this drive is in flight. */
  busy = false;
  readonly atapi: AtapiDevice | null;
  readonly totalSectors: number;

  constructor(readonly media: IdeMedia | null, readonly identity: DriveIdentity) {
    this.atapi = media?.kind === 'dvd' ? new AtapiDevice(media.target) : null;
    this.totalSectors = media?.kind === 'disk' ? Math.floor(media.disk.sizeBytes / SECTOR) : 0;
    this.geometry = defaultGeometry(this.totalSectors);
    this.signature();
  }

  get present(): boolean { return this.media !== null; }
  get disk(): Disk | null { return this.media?.kind === 'disk' ? this.media.disk : null; }

  /** Register contents after a reset or diagnostic: the device signature (ATA 01/01/00/00, ATAPI 01/01/14/EB). */
  signature(): void {
    const r = this.regs;
    r.nsect = 1; r.lbal = 1;
    r.lbam = this.atapi ? 0x14 : 0; r.lbah = this.atapi ? 0xeb : 0;
    r.device = 0;
    this.error = this.present ? 1 : 0;
    this.status = this.present && !this.atapi ? ST_DRDY | ST_DSC : 0;
  }
}

export interface IdeChannelOptions {
  memory: GuestMemory;
  irq: IrqRouter | null;
  irqLine: number;
  /** PCI command register bus-master enable. */
  busMaster: () => boolean;
  log?: (msg: string) => void;
}

export interface IdeDriveState {
  regs: Regs; status: number; error: number; multiple: number; geometry: DiskGeometry; xferMode: number; writeCache: boolean;
  pio: { kind: PioKind; buf: string; pos: number; end: number; lba: number; left: number; block: number } | null;
  dma: DmaRequest | null; sense: string | null;
}
export interface IdeChannelState { control: number; intrq: boolean; selected: number; bm: { command: number; status: number; prdTable: number }; drives: IdeDriveState[] }

export class IdeChannel {
  readonly drives: [Drive, Drive];
  readonly bm = new BusMasterRegs();
  private control = 0;
  private intrq = false;
  private selected = 0;
  /** Bumped by resets: completions of I/O started before are dropped (the data still reaches the disk). */
  private epoch = 0;
  private readonly inflight = new Set<Promise<void>>();
  private readonly log: (msg: string) => void;

  constructor(private readonly o: IdeChannelOptions, media: [IdeMedia | null, IdeMedia | null], identities: [DriveIdentity, DriveIdentity]) {
    this.drives = [new Drive(media[0], identities[0]), new Drive(media[1], identities[1])];
    for (const d of this.drives) if (d.disk && d.disk.logicalSectorSize !== SECTOR) throw new Error(`${d.disk.path}: IDE disks need 512-byte logical sectors (this one has ${d.disk.logicalSectorSize}); attach it to a SCSI controller`);
    this.bm.status = (this.drives[0].present ? 0x20 : 0) | (this.drives[1].present ? 0x40 : 0); // DMA capable, as the BIOS sets
    this.bm.onStartChange = (start) => { if (start) this.startDmaIfReady(); };
    this.log = o.log ?? (() => {});
  }

  get hasDrives(): boolean { return this.drives[0].present || this.drives[1].present; }
  private get cur(): Drive { return this.drives[this.selected]; }

  // ---- register interface ----------------------------------------------------------------------------

  /** Command block register `reg` (0-7). */
  read(reg: number, size: 1 | 2 | 4): number {
    if (!this.hasDrives) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1; // nothing drives the bus
    if (reg === 0) return this.readData(size);
    const d = this.cur, r = d.regs, hob = (this.control & DEV_CTL_HOB) !== 0;
    switch (reg) {
      case 1: return d.present ? d.error : 0;
      case 2: return hob ? r.hob[1] : r.nsect;
      case 3: return hob ? r.hob[2] : r.lbal;
      case 4: return hob ? r.hob[3] : r.lbam;
      case 5: return hob ? r.hob[4] : r.lbah;
      case 6: return r.device | 0xa0;
      default:
        if (!d.present) return 0;
        this.setIntrq(false);
        return d.status;
    }
  }

  write(reg: number, size: 1 | 2 | 4, value: number): void {
    if (reg === 0) { this.writeData(size, value); return; }
    const v = value & 0xff;
    if (reg === 7) { this.command(v); return; }
    this.control &= ~DEV_CTL_HOB;
    for (const d of this.drives) {
      const r = d.regs;
      switch (reg) {
        case 1: r.hob[0] = r.feature; r.feature = v; break;
        case 2: r.hob[1] = r.nsect; r.nsect = v; break;
        case 3: r.hob[2] = r.lbal; r.lbal = v; break;
        case 4: r.hob[3] = r.lbam; r.lbam = v; break;
        case 5: r.hob[4] = r.lbah; r.lbah = v; break;
        case 6: r.device = v & 0x5f; break;
      }
    }
    if (reg === 6) this.selected = (v & DEVICE_DEV1) ? 1 : 0;
  }

  /** Alternate status (reading it does not acknowledge the interrupt). */
  readAltStatus(): number {
    if (!this.hasDrives) return 0xff;
    return this.cur.present ? this.cur.status : 0;
  }

  writeDeviceControl(v: number): void {
    const was = this.control;
    this.control = v & (DEV_CTL_NIEN | DEV_CTL_SRST | DEV_CTL_HOB);
    if ((v & DEV_CTL_SRST) && !(was & DEV_CTL_SRST)) {
      for (const d of this.drives) if (d.present) d.status = ST_BSY;
    } else if (!(v & DEV_CTL_SRST) && (was & DEV_CTL_SRST)) {
      this.softReset();
    }
    this.updateIrq();
  }

  private readData(size: 1 | 2 | 4): number {
    const d = this.cur, p = d.pio;
    if (!p || (d.status & ST_DRQ) === 0 || p.kind === 'ata-out' || p.kind === 'packet') return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    let v = 0;
    const n = Math.min(size, p.end - p.pos);
    for (let i = 0; i < n; i++) v |= p.buf[p.pos + i] << (8 * i);
    p.pos += n;
    if (p.pos >= p.end) this.pioDrained(d);
    return v >>> 0;
  }

  private writeData(size: 1 | 2 | 4, value: number): void {
    const d = this.cur, p = d.pio;
    if (!p || (d.status & ST_DRQ) === 0 || (p.kind !== 'ata-out' && p.kind !== 'packet')) return;
    const n = Math.min(size, p.end - p.pos);
    for (let i = 0; i < n; i++) p.buf[p.pos + i] = (value >>> (8 * i)) & 0xff;
    p.pos += n;
    if (p.pos >= p.end) this.pioDrained(d);
  }

  // ---- interrupts ------------------------------------------------------------------------------------

  private setIntrq(level: boolean): void {
    this.intrq = level;
    this.updateIrq();
  }

  private raise(): void {
    // The PIIX4 latches every INTRQ rising edge in the bus-master interrupt bit.
    this.bm.status |= BM_STATUS_INTERRUPT;
    this.setIntrq(true);
  }

  private updateIrq(): void {
    this.o.irq?.setLevel(this.o.irqLine, this.intrq && (this.control & DEV_CTL_NIEN) === 0);
  }

  // ---- commands ----------------------------------------------------------------------------------------

  private done(d: Drive, irq = true): void {
    d.status = ST_DRDY | ST_DSC;
    d.pio = null;
    d.dma = null;
    if (irq) this.raise();
  }

  private abort(d: Drive, error = ER_ABRT): void {
    d.status = ST_DRDY | ST_ERR | (d.atapi ? 0 : ST_DSC);
    d.error = error;
    d.pio = null;
    d.dma = null;
    this.raise();
  }

  private command(cmd: number): void {
    const d = this.cur;
    if (cmd === 0x90) { this.diagnostic(); return; } // EXECUTE DEVICE DIAGNOSTIC: both devices
    if (!d.present) return;
    if (d.busy) return; // BSY: the device does not take commands (the guest ignored the protocol)
    if (d.atapi && cmd === 0x08) { this.deviceReset(d); return; }
    d.pio = null;
    d.dma = null;
    d.error = 0;
    this.setIntrq(false);
    if (d.atapi) { this.atapiCommand(d, cmd); return; }
    switch (cmd) {
      case 0xec: this.pioIn(d, 'identify', this.identify(d)); return;
      case 0xa1: case 0xa0: this.abort(d); return; // ATA disk: no packet feature set
      case 0x20: case 0x21: this.ataPio(d, false, false, 1); return; // READ SECTORS
      case 0x24: this.ataPio(d, false, true, 1); return; // READ SECTORS EXT
      case 0xc4: this.ataPio(d, false, false, d.multiple); return; // READ MULTIPLE
      case 0x29: this.ataPio(d, false, true, d.multiple); return; // READ MULTIPLE EXT
      case 0x30: case 0x31: this.ataPio(d, true, false, 1); return; // WRITE SECTORS
      case 0x34: this.ataPio(d, true, true, 1); return; // WRITE SECTORS EXT
      case 0xc5: this.ataPio(d, true, false, d.multiple); return; // WRITE MULTIPLE
      case 0x39: this.ataPio(d, true, true, d.multiple); return; // WRITE MULTIPLE EXT
      case 0xc8: case 0xc9: this.ataDma(d, false, false); return; // READ DMA
      case 0x25: this.ataDma(d, false, true); return; // READ DMA EXT
      case 0xca: case 0xcb: this.ataDma(d, true, false); return; // WRITE DMA
      case 0x35: this.ataDma(d, true, true); return; // WRITE DMA EXT
      case 0x40: case 0x41: case 0x42: { // READ VERIFY SECTORS (EXT): nothing can fail on a virtual disk
        const a = this.address(d, cmd === 0x42);
        if (a) this.done(d);
        return;
      }
      case 0xe7: case 0xea: this.flush(d); return; // FLUSH CACHE (EXT)
      case 0xc6: { // SET MULTIPLE MODE
        const n = d.regs.nsect;
        if (n > MAX_MULTIPLE_SECTORS || (n & (n - 1)) !== 0) { this.abort(d); return; }
        d.multiple = n;
        this.done(d);
        return;
      }
      case 0x91: { // INITIALIZE DEVICE PARAMETERS (CHS translation)
        const heads = (d.regs.device & 0x0f) + 1, sectors = d.regs.nsect;
        if (sectors === 0) { this.abort(d); return; }
        d.geometry = { heads, sectors, cylinders: Math.max(1, Math.min(16383, Math.floor(d.totalSectors / (heads * sectors)))) };
        this.done(d);
        return;
      }
      case 0xef: this.setFeatures(d); return;
      case 0xe5: case 0x98: d.regs.nsect = 0xff; this.done(d); return; // CHECK POWER MODE: active
      case 0xe0: case 0xe1: case 0xe2: case 0xe3: case 0x94: case 0x95: case 0x96: case 0x97: // STANDBY/IDLE (IMMEDIATE)
      case 0x70: // SEEK
        this.done(d);
        return;
      default:
        if (cmd >= 0x10 && cmd <= 0x1f) { this.done(d); return; } // RECALIBRATE
        this.abort(d);
    }
  }

  private identify(d: Drive): Uint8Array {
    return ataIdentify({ id: d.identity, totalSectors: d.totalSectors, physicalSectorSize: d.disk!.physicalSectorSize,
      multiple: d.multiple, geometry: d.geometry, xferMode: d.xferMode, writeCache: d.writeCache });
  }

  private setFeatures(d: Drive): void {
    switch (d.regs.feature) {
      case 0x03: { // set transfer mode
        const m = d.regs.nsect, cls = m >> 3, n = m & 7;
        const ok = m === 0 || m === 1 || (cls === 1 && n <= 4) || (cls === 4 && n <= 2) || (cls === 8 && n <= 2);
        if (!ok) { this.abort(d); return; }
        d.xferMode = m <= 1 ? 0x0c : m;
        break;
      }
      case 0x02: d.writeCache = true; break;
      case 0x82: d.writeCache = false; break;
      case 0xaa: case 0x55: case 0x66: case 0xcc: break; // look-ahead, power-on defaults: nothing to change
      default: this.abort(d); return;
    }
    this.done(d);
  }

  private diagnostic(): void {
    this.epoch++;
    for (const d of this.drives) { d.pio = null; d.dma = null; d.signature(); }
    if (this.drives[0].present) this.raise();
  }

  private softReset(): void {
    this.epoch++;
    for (const d of this.drives) { d.pio = null; d.dma = null; d.busy = false; d.signature(); }
    this.selected = 0;
    this.intrq = false;
  }

  private deviceReset(d: Drive): void {
    d.pio = null; d.dma = null;
    d.signature();
    this.epoch++;
  }

  /** The command's starting LBA and sector count, or null after aborting with IDNF (outside the disk). */
  private address(d: Drive, ext: boolean): { lba: number; count: number } | null {
    const r = d.regs;
    let lba: number, count: number;
    if (ext) {
      lba = ((r.hob[4] * 256 + r.hob[3]) * 256 + r.hob[2]) * 0x1000000 + ((r.lbah << 16) | (r.lbam << 8) | r.lbal);
      count = (r.hob[1] << 8) | r.nsect;
      if (count === 0) count = 65536;
    } else {
      count = r.nsect === 0 ? 256 : r.nsect;
      if (r.device & DEVICE_LBA) lba = ((r.device & 0x0f) << 24) | (r.lbah << 16) | (r.lbam << 8) | r.lbal;
      else {
        const g = d.geometry, cyl = (r.lbah << 8) | r.lbam, head = r.device & 0x0f, sec = r.lbal;
        if (sec === 0 || sec > g.sectors || head >= g.heads) { this.abort(d, ER_IDNF | ER_ABRT); return null; }
        lba = (cyl * g.heads + head) * g.sectors + sec - 1;
      }
      if (lba + count > LBA28_MAX_SECTORS + 1 && (r.device & DEVICE_LBA)) { this.abort(d, ER_IDNF); return null; }
    }
    if (lba + count > d.totalSectors) { this.abort(d, ER_IDNF); return null; }
    return { lba, count };
  }

  // ---- PIO -----------------------------------------------------------------------------------------------

  private pioIn(d: Drive, kind: PioKind, data: Uint8Array, irq = true): void {
    d.pio = { kind, buf: data, pos: 0, end: data.length, lba: 0, left: 0, block: 0 };
    d.status = ST_DRDY | ST_DSC | ST_DRQ;
    if (irq) this.raise();
  }

  private ataPio(d: Drive, write: boolean, ext: boolean, block: number): void {
    if (block === 0) { this.abort(d); return; } // READ/WRITE MULTIPLE before SET MULTIPLE MODE
    if (write && d.disk!.readOnly) { this.abort(d); return; }
    const a = this.address(d, ext);
    if (!a) return;
    if (write) this.nextWriteChunk(d, a.lba, a.count, block, false);
    else this.fetchReadChunk(d, a.lba, a.count, block);
  }

  private fetchReadChunk(d: Drive, lba: number, left: number, block: number): void {
    const n = Math.min(left, PIO_CHUNK_SECTORS);
    const buf = new Uint8Array(n * SECTOR);
    this.io(d, () => d.disk!.read(lba * SECTOR, buf), () => {
      d.pio = { kind: 'ata-in', buf, pos: 0, end: Math.min(block * SECTOR, buf.length), lba: lba + n, left: left - n, block };
      d.status = ST_DRDY | ST_DSC | ST_DRQ;
      this.raise();
    }, ER_UNC);
  }

  private nextWriteChunk(d: Drive, lba: number, left: number, block: number, irq: boolean): void {
    const n = Math.min(left, PIO_CHUNK_SECTORS);
    d.pio = { kind: 'ata-out', buf: new Uint8Array(n * SECTOR), pos: 0, end: Math.min(block * SECTOR, n * SECTOR), lba, left: left - n, block };
    d.status = ST_DRDY | ST_DSC | ST_DRQ;
    if (irq) this.raise();
  }

  /** The current DRQ block has been moved completely. */
  private pioDrained(d: Drive): void {
    const p = d.pio!;
    switch (p.kind) {
      case 'identify': this.done(d, false); return;
      case 'packet': d.status = ST_BSY | ST_DRDY; this.packet(d, p.buf.slice(0, ATAPI_PACKET_SIZE)); return;
      case 'atapi-in':
        if (p.pos < p.buf.length) this.atapiChunk(d, p);
        else { d.regs.nsect = IR_IO | IR_COD; this.done(d); }
        return;
      case 'ata-in':
        if (p.pos < p.buf.length) { p.end = Math.min(p.pos + p.block * SECTOR, p.buf.length); this.raise(); return; }
        if (p.left > 0) { d.status = ST_BSY | ST_DRDY; d.pio = null; this.fetchReadChunk(d, p.lba, p.left, p.block); return; }
        this.done(d, false);
        return;
      case 'ata-out':
        if (p.pos < p.buf.length) { p.end = Math.min(p.pos + p.block * SECTOR, p.buf.length); this.raise(); return; }
        d.status = ST_BSY | ST_DRDY;
        d.pio = null;
        this.io(d, () => d.disk!.write(p.lba * SECTOR, p.buf), () => {
          if (p.left > 0) this.nextWriteChunk(d, p.lba + p.buf.length / SECTOR, p.left, p.block, true);
          else this.done(d);
        }, ER_ABRT);
        return;
    }
  }

  private flush(d: Drive): void {
    this.io(d, () => d.disk!.flush(), () => this.done(d), ER_ABRT);
  }

  /**
   * Runs `work` with the drive BSY; on success `then`, on a disk failure ABRT/UNC. A reset in between
   * (epoch changed) drops the completion; the promise is tracked so idle() can wait for it.
   */
  private io<T>(d: Drive, work: () => Promise<T>, then: (r: T) => void, failError: number): void {
    const epoch = this.epoch;
    d.busy = true;
    d.status = ST_BSY | ST_DRDY;
    const p = (async () => {
      try {
        const r = await work();
        if (epoch !== this.epoch) return;
        d.busy = false;
        then(r);
      } catch (e) {
        if (epoch !== this.epoch) return;
        d.busy = false;
        this.log(`IDE: ${(e as Error).message}`);
        if (!(e instanceof DiskError)) this.log(`IDE: unexpected ${(e as Error).stack}`);
        if (d.atapi) this.atapiError(d, SenseKey.HARDWARE_ERROR);
        else this.abort(d, failError);
      }
    })();
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  // ---- DMA ---------------------------------------------------------------------------------------------

  private ataDma(d: Drive, write: boolean, ext: boolean): void {
    if (write && d.disk!.readOnly) { this.abort(d); return; }
    const a = this.address(d, ext);
    if (!a) return;
    d.dma = { write, lba: a.lba, count: a.count, cdb: null };
    d.status = ST_DRDY | ST_DSC | ST_DRQ;
    this.startDmaIfReady();
  }

  /** Runs the selected drive's pending DMA once the guest has also set START in the bus-master register. */
  private startDmaIfReady(): void {
    const d = this.cur;
    const req = d.dma;
    if (!req || d.busy || (this.bm.command & BM_CMD_START) === 0) return;
    d.dma = null;
    if (!this.o.busMaster()) { this.dmaFailed(d, 'bus mastering is disabled in the PCI command register'); return; }
    const mem = this.o.memory;
    const toMemory = (this.bm.command & BM_CMD_TO_MEMORY) !== 0;
    if (req.cdb) { this.atapiDma(d, req.cdb, toMemory); return; }
    const total = req.count * SECTOR;
    let prd: { segments: DmaSegment[]; longer: boolean };
    try { prd = walkPrdTable(mem, this.bm.prdTable, total); } catch (e) { this.dmaFailed(d, (e as Error).message); return; }
    const disk = d.disk!;
    this.io(d, async () => {
      const epoch = this.epoch;
      for (let done = 0; done < total; done += DMA_CHUNK) {
        const chunk = new Uint8Array(Math.min(DMA_CHUNK, total - done));
        if (req.write) {
          gather(mem, prd.segments, done, chunk);
          await disk.write(req.lba * SECTOR + done, chunk);
        } else {
          await disk.read(req.lba * SECTOR + done, chunk);
          if (epoch !== this.epoch) return; // reset meanwhile: the guest no longer owns these buffers for us
          scatter(mem, prd.segments, done, chunk);
        }
      }
    }, () => this.dmaDone(d, prd.longer), req.write ? ER_ABRT : ER_UNC);
  }

  private dmaDone(d: Drive, engineStillActive: boolean): void {
    if (!engineStillActive) this.bm.status &= ~BM_STATUS_ACTIVE;
    this.done(d);
  }

  private dmaFailed(d: Drive, why: string): void {
    this.log(`IDE: DMA aborted: ${why}`);
    this.bm.status = (this.bm.status | BM_STATUS_ERROR) & ~BM_STATUS_ACTIVE;
    if (d.atapi) { d.regs.nsect = IR_IO | IR_COD; this.abort(d, (SenseKey.ABORTED_COMMAND << 4) | ER_ABRT); return; }
    this.abort(d);
  }

  // ---- ATAPI ---------------------------------------------------------------------------------------------

  private atapiCommand(d: Drive, cmd: number): void {
    switch (cmd) {
      case 0xa0: { // PACKET
        const dma = (d.regs.feature & 1) !== 0;
        d.pio = { kind: 'packet', buf: new Uint8Array(ATAPI_PACKET_SIZE), pos: 0, end: ATAPI_PACKET_SIZE, lba: 0, left: 0, block: dma ? 1 : 0 };
        d.regs.nsect = IR_COD;
        d.status = ST_DRDY | ST_DRQ;
        return;
      }
      case 0xa1: this.pioIn(d, 'identify', atapiIdentify(d.identity, d.xferMode)); return;
      case 0xec: // IDENTIFY DEVICE: abort, leaving the packet signature for the driver to find
        d.regs.lbam = 0x14; d.regs.lbah = 0xeb;
        this.abort(d);
        return;
      case 0xef: this.setFeatures(d); return;
      case 0xe5: case 0x98: d.regs.nsect = 0xff; this.done(d); return;
      case 0xe0: case 0xe1: case 0xe2: case 0xe3: case 0x00: this.done(d); return;
      default: this.abort(d);
    }
  }

  private packet(d: Drive, cdb: Uint8Array): void {
    const dma = d.pio!.block === 1;
    if (TRACE) this.log(`IDE trace: packet ${Buffer.from(cdb).toString('hex')} ${dma ? 'dma' : 'pio'}`);
    d.pio = null;
    const room = atapiTransferLength(cdb);
    if (dma) {
      d.dma = { write: false, lba: 0, count: 0, cdb: [...cdb] };
      d.status = ST_DRDY | ST_DRQ;
      d.regs.nsect = IR_IO;
      this.startDmaIfReady();
      return;
    }
    const atapi = d.atapi!;
    // Data-out commands (MODE SELECT, WRITE) get no data over PIO: a DVD takes none.
    const out = cdb[0] === 0x2a || cdb[0] === 0x55 || cdb[0] === 0x15 || cdb[0] === 0xaa ? new Uint8Array(0) : null;
    this.io(d, () => atapi.execute(cdb, room, out), (r) => {
      if (r.senseKey !== null) { this.atapiError(d, r.senseKey); return; }
      if (r.data.length === 0) { d.regs.nsect = IR_IO | IR_COD; this.done(d); return; }
      this.atapiChunk(d, { kind: 'atapi-in', buf: r.data, pos: 0, end: 0, lba: 0, left: 0, block: this.byteCountLimit(d) });
    }, ER_ABRT);
  }

  /** The byte count limit the driver put in LBA mid/high: the most one DRQ block may carry (even, non-zero). */
  private byteCountLimit(d: Drive): number {
    let n = (d.regs.lbah << 8) | d.regs.lbam;
    if (n === 0 || n === 0xffff) n = 0xfffe;
    return n & ~1 || 2;
  }

  private atapiChunk(d: Drive, p: Pio): void {
    const n = Math.min(p.block, p.buf.length - p.pos);
    p.end = p.pos + n;
    d.pio = p;
    d.regs.lbam = n & 0xff; d.regs.lbah = n >> 8;
    d.regs.nsect = IR_IO;
    d.status = ST_DRDY | ST_DRQ;
    this.raise();
  }

  private atapiError(d: Drive, senseKey: number): void {
    if (TRACE) this.log(`IDE trace: packet failed, sense key ${senseKey} ${d.atapi?.sense ? Buffer.from(d.atapi.sense).toString('hex') : ''}`);
    d.regs.nsect = IR_IO | IR_COD;
    d.status = ST_DRDY | ST_ERR;
    d.error = (senseKey << 4) | (senseKey === SenseKey.ILLEGAL_REQUEST ? ER_ABRT : 0);
    d.pio = null;
    d.dma = null;
    this.raise();
  }

  private atapiDma(d: Drive, cdbBytes: number[], toMemory: boolean): void {
    const mem = this.o.memory;
    const cdb = Uint8Array.from(cdbBytes);
    const want = atapiTransferLength(cdb);
    let prd: { segments: DmaSegment[]; longer: boolean };
    try { prd = walkPrdTable(mem, this.bm.prdTable, want, true); } catch (e) { this.dmaFailed(d, (e as Error).message); return; }
    const room = prd.segments.reduce((s, x) => s + x.len, 0);
    const atapi = d.atapi!;
    let out: Uint8Array | null = null;
    if (!toMemory) { out = new Uint8Array(room); gather(mem, prd.segments, 0, out); }
    this.io(d, () => atapi.execute(cdb, room, out), (r) => {
      if (r.senseKey !== null) { this.bm.status &= ~BM_STATUS_ACTIVE; this.atapiError(d, r.senseKey); return; }
      scatter(mem, prd.segments, 0, r.data);
      if (r.data.length >= room && !prd.longer) this.bm.status &= ~BM_STATUS_ACTIVE;
      d.regs.nsect = IR_IO | IR_COD;
      this.done(d);
    }, ER_ABRT);
  }

  // ---- lifecycle -----------------------------------------------------------------------------------------

  /** Resolves once no disk or SCSI call of this channel is in flight (before saving state). */
  async idle(): Promise<void> { while (this.inflight.size) await Promise.allSettled([...this.inflight]); }

  get ioInFlight(): boolean { return this.inflight.size > 0; }

  /** Machine reset (power-on state; in-flight I/O still reaches the disk but completes unseen). */
  reset(): void {
    this.epoch++;
    this.control = 0;
    this.setIntrq(false);
    this.selected = 0;
    this.bm.reset();
    for (const d of this.drives) {
      d.pio = null; d.dma = null; d.busy = false; d.multiple = 0; d.xferMode = 0x0c; d.writeCache = true;
      d.geometry = defaultGeometry(d.totalSectors);
      d.signature();
      if (d.atapi) d.atapi.sense = null;
    }
  }

  saveState(): IdeChannelState {
    if (this.inflight.size) throw new Error('IDE I/O is in flight; wait for Partition.quiesce() before saving');
    const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
    return {
      control: this.control, intrq: this.intrq, selected: this.selected,
      bm: { command: this.bm.command, status: this.bm.status, prdTable: this.bm.prdTable },
      drives: this.drives.map((d) => ({
        regs: { ...d.regs, hob: [...d.regs.hob] }, status: d.status, error: d.error, multiple: d.multiple, geometry: { ...d.geometry },
        xferMode: d.xferMode, writeCache: d.writeCache,
        pio: d.pio ? { ...d.pio, buf: b64(d.pio.buf) } : null,
        dma: d.dma ? { ...d.dma, cdb: d.dma.cdb ? [...d.dma.cdb] : null } : null,
        sense: d.atapi?.sense ? b64(d.atapi.sense) : null,
      })),
    };
  }

  restoreState(s: IdeChannelState): void {
    this.epoch++;
    this.control = s.control & (DEV_CTL_NIEN | DEV_CTL_SRST | DEV_CTL_HOB);
    this.selected = s.selected ? 1 : 0;
    this.bm.command = s.bm.command & (BM_CMD_START | BM_CMD_TO_MEMORY);
    this.bm.status = s.bm.status & 0x67;
    this.bm.prdTable = (s.bm.prdTable & ~3) >>> 0;
    s.drives.forEach((x, i) => {
      const d = this.drives[i];
      Object.assign(d.regs, { feature: x.regs.feature & 0xff, nsect: x.regs.nsect & 0xff, lbal: x.regs.lbal & 0xff,
        lbam: x.regs.lbam & 0xff, lbah: x.regs.lbah & 0xff, device: x.regs.device & 0x5f, hob: x.regs.hob.slice(0, 5).map((v) => v & 0xff) });
      d.status = x.status & 0xff; d.error = x.error & 0xff;
      d.multiple = x.multiple; d.geometry = { ...x.geometry }; d.xferMode = x.xferMode; d.writeCache = x.writeCache;
      d.busy = false;
      d.dma = x.dma ? { ...x.dma } : null;
      if (x.pio) {
        const buf = new Uint8Array(Buffer.from(x.pio.buf, 'base64'));
        if (x.pio.pos < 0 || x.pio.end > buf.length || x.pio.pos > x.pio.end) throw new Error('IDE saved state: PIO position outside its buffer');
        d.pio = { ...x.pio, buf };
      } else d.pio = null;
      if (d.atapi) d.atapi.sense = x.sense ? new Uint8Array(Buffer.from(x.sense, 'base64')) : null;
    });
    this.setIntrq(s.intrq);
  }
}

