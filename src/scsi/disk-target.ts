/**
 * A SCSI block device over the Disk interface, independent of transport: a direct-access disk (SBC) or, for
 * read-only ISO media, a CD/DVD drive (MMC) that ATAPI under IDE can reuse. Commands are checked field by
 * field (the CDB is guest input); every failure is CHECK CONDITION with fixed-format sense data.
 */
import { DiskError, type Disk } from '../storage/disk.js';
import {
  Asc, DeviceType, FIXED_SENSE_LENGTH, MAX_UNMAP_BLOCKS, MAX_UNMAP_DESCRIPTORS, ModePage, Op, SAI_READ_CAPACITY_16,
  ScsiStatus, SenseKey, SPC_VERSION, STANDARD_INQUIRY_LENGTH, Vpd, fixedSense,
} from './protocol.js';
import { NO_DATA, reportLunsData, type ScsiDataBuffer, type ScsiResult, type ScsiTarget } from './target.js';

export interface ScsiDiskOptions {
  /** 'disk' (SBC direct access) or 'dvd' (MMC, read-only media of 2048-byte blocks). */
  kind?: 'disk' | 'dvd';
  vendor?: string;
  product?: string;
  revision?: string;
  /** VPD 0x80 serial number; default derived from the disk identifier. */
  serial?: string;
  /** LUNs REPORT LUNS lists when the transport does not answer it itself (ATAPI: just 0). */
  luns?: () => readonly number[];
  /** Largest data transfer per command in bytes (VPD 0xB0); the transport's limit. */
  maxTransferBytes?: number;
}

/** Host memory staged per disk call; larger transfers are split. */
const CHUNK = 1 << 20;
const CD_BLOCK = 2048;

class CheckCondition extends Error {
  constructor(readonly key: SenseKey, readonly asc: Asc) { super(`sense ${key}/${asc.toString(16)}`); }
}
const illegal = (asc: Asc = Asc.INVALID_FIELD_IN_CDB): CheckCondition => new CheckCondition(SenseKey.ILLEGAL_REQUEST, asc);

function ascii(s: string, len: number): Uint8Array {
  const out = new Uint8Array(len).fill(0x20);
  for (let i = 0; i < Math.min(len, s.length); i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}

export class ScsiDisk implements ScsiTarget {
  readonly kind: 'disk' | 'dvd';
  private medium: Disk | null;
  private pendingUa: number | null = null;
  private readonly inflight = new Set<Promise<unknown>>();
  private preventRemoval = false;
  private readonly o: ScsiDiskOptions;

  constructor(disk: Disk | null, o: ScsiDiskOptions = {}) {
    this.kind = o.kind ?? 'disk';
    if (this.kind === 'disk' && !disk) throw new Error('a SCSI disk needs a Disk (only a DVD drive may be empty)');
    this.medium = disk;
    this.o = o;
  }

  get disk(): Disk | null { return this.medium; }
  get blockSize(): number { return this.kind === 'dvd' ? CD_BLOCK : this.medium!.logicalSectorSize; }
  get blocks(): number { return this.medium ? Math.floor(this.medium.sizeBytes / this.blockSize) : 0; }
  private get readOnly(): boolean { return this.kind === 'dvd' || (this.medium?.readOnly ?? true); }

  /** DVD: insert (or replace with null to eject) the medium; the guest sees MEDIUM MAY HAVE CHANGED. */
  changeMedium(disk: Disk | null): void {
    if (this.kind !== 'dvd') throw new Error('only a DVD drive takes media');
    this.medium = disk;
    this.pendingUa = Asc.MEDIUM_MAY_HAVE_CHANGED;
  }

  raiseUnitAttention(asc: number): void { this.pendingUa = asc; }

  async idle(): Promise<void> { while (this.inflight.size) await Promise.allSettled([...this.inflight]); }

  execute(cdb: Uint8Array, data: ScsiDataBuffer = NO_DATA): Promise<ScsiResult> {
    const p = this.run(cdb, data);
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p)).catch(() => {});
    return p;
  }

  private async run(cdb: Uint8Array, data: ScsiDataBuffer): Promise<ScsiResult> {
    try {
      if (cdb.length === 0) throw illegal(Asc.INVALID_COMMAND_OPCODE);
      const op = cdb[0];
      // A unit attention is reported once, on the first command that is not INQUIRY/REPORT LUNS/REQUEST SENSE.
      if (this.pendingUa !== null && op !== Op.INQUIRY && op !== Op.REPORT_LUNS && op !== Op.REQUEST_SENSE) {
        const asc = this.pendingUa;
        this.pendingUa = null;
        throw new CheckCondition(SenseKey.UNIT_ATTENTION, asc);
      }
      const transferred = await this.dispatch(op, cdb, data);
      return { status: ScsiStatus.GOOD, sense: null, transferred };
    } catch (e) {
      if (e instanceof CheckCondition) return checkCondition(e.key, e.asc);
      if (e instanceof DiskError) return diskFailure(e, cdb[0]);
      throw e;
    }
  }

  private need(cdb: Uint8Array, len: number): void { if (cdb.length < len) throw illegal(); }

  private requireMedium(): Disk {
    if (!this.medium) throw new CheckCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT);
    return this.medium;
  }

  private async dispatch(op: number, cdb: Uint8Array, data: ScsiDataBuffer): Promise<number> {
    const v = new DataView(cdb.buffer, cdb.byteOffset, cdb.byteLength);
    switch (op) {
      case Op.TEST_UNIT_READY: this.need(cdb, 6); this.requireMedium(); return 0;
      case Op.REQUEST_SENSE: {
        this.need(cdb, 6);
        const ua = this.pendingUa;
        this.pendingUa = null;
        const s = ua !== null ? fixedSense(SenseKey.UNIT_ATTENTION, ua)
          : !this.medium ? fixedSense(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT) : fixedSense(SenseKey.NO_SENSE, Asc.NO_ADDITIONAL);
        return respond(data, s, cdb[4]);
      }
      case Op.INQUIRY: this.need(cdb, 6); return this.inquiry(cdb, v, data);
      case Op.REPORT_LUNS: {
        this.need(cdb, 12);
        const alloc = v.getUint32(6);
        if (alloc < 16) throw illegal();
        return respond(data, reportLunsData(this.o.luns?.() ?? [0]), alloc);
      }
      case Op.READ_CAPACITY_10: {
        this.need(cdb, 10);
        const d = this.requireMedium();
        const out = new Uint8Array(8), o = new DataView(out.buffer);
        o.setUint32(0, Math.min(this.blocks - 1, 0xffffffff));
        o.setUint32(4, this.kind === 'dvd' ? CD_BLOCK : d.logicalSectorSize);
        return respond(data, out, 8);
      }
      case Op.SERVICE_ACTION_IN_16: {
        this.need(cdb, 16);
        if ((cdb[1] & 0x1f) !== SAI_READ_CAPACITY_16) throw illegal();
        return respond(data, this.readCapacity16(), v.getUint32(10));
      }
      case Op.READ_6: case Op.WRITE_6: {
        this.need(cdb, 6);
        const lba = ((cdb[1] & 0x1f) << 16) | (cdb[2] << 8) | cdb[3];
        return this.readWrite(op === Op.WRITE_6, lba, cdb[4] === 0 ? 256 : cdb[4], false, data);
      }
      case Op.READ_10: case Op.WRITE_10:
        this.need(cdb, 10);
        return this.readWrite(op === Op.WRITE_10, v.getUint32(2), v.getUint16(7), (cdb[1] & 0x08) !== 0, data);
      case Op.READ_12: case Op.WRITE_12:
        this.need(cdb, 12);
        return this.readWrite(op === Op.WRITE_12, v.getUint32(2), v.getUint32(6), (cdb[1] & 0x08) !== 0, data);
      case Op.READ_16: case Op.WRITE_16:
        this.need(cdb, 16);
        return this.readWrite(op === Op.WRITE_16, u64(v, 2), v.getUint32(10), (cdb[1] & 0x08) !== 0, data);
      case Op.VERIFY_10: this.need(cdb, 10); this.checkLba(v.getUint32(2), v.getUint16(7)); return 0;
      case Op.VERIFY_16: this.need(cdb, 16); this.checkLba(u64(v, 2), v.getUint32(10)); return 0;
      case Op.SYNCHRONIZE_CACHE_10: case Op.SYNCHRONIZE_CACHE_16: {
        this.need(cdb, op === Op.SYNCHRONIZE_CACHE_10 ? 10 : 16);
        const d = this.requireMedium();
        if (this.kind === 'disk' && !d.readOnly) await d.flush();
        return 0;
      }
      case Op.MODE_SENSE_6: this.need(cdb, 6); return this.modeSense(cdb, data, false);
      case Op.MODE_SENSE_10: this.need(cdb, 10); return this.modeSense(cdb, data, true);
      case Op.MODE_SELECT_6: case Op.MODE_SELECT_10:
        // Nothing is changeable (MODE SENSE reports an all-zero mask); an empty parameter list is harmless.
        if ((op === Op.MODE_SELECT_6 ? cdb[4] : (this.need(cdb, 10), v.getUint16(7))) !== 0) throw illegal(Asc.INVALID_FIELD_IN_PARAMETER_LIST);
        return 0;
      case Op.START_STOP_UNIT: {
        this.need(cdb, 6);
        const start = (cdb[4] & 1) !== 0, loej = (cdb[4] & 2) !== 0;
        if (this.kind === 'dvd' && loej && !start) {
          if (this.preventRemoval) throw illegal(0x5302 as Asc); // MEDIUM REMOVAL PREVENTED
          this.medium = null;
        }
        return 0;
      }
      case Op.PREVENT_ALLOW_MEDIUM_REMOVAL:
        this.need(cdb, 6);
        this.preventRemoval = this.kind === 'dvd' && (cdb[4] & 1) !== 0;
        return 0;
      case Op.UNMAP: this.need(cdb, 10); return this.unmap(v.getUint16(7), data);
      case Op.WRITE_SAME_16: this.need(cdb, 16); return this.writeSame(cdb, u64(v, 2), v.getUint32(10), data);
      case 0x41: this.need(cdb, 10); return this.writeSame(cdb, v.getUint32(2), v.getUint16(7), data); // WRITE SAME(10)
    }
    if (this.kind === 'dvd') return this.mmc(op, cdb, v, data);
    throw illegal(Asc.INVALID_COMMAND_OPCODE);
  }

  private inquiry(cdb: Uint8Array, v: DataView, data: ScsiDataBuffer): number {
    const alloc = v.getUint16(3);
    const evpd = (cdb[1] & 1) !== 0, page = cdb[2];
    if (!evpd) {
      if (page !== 0) throw illegal();
      const d = new Uint8Array(STANDARD_INQUIRY_LENGTH);
      d[0] = this.kind === 'dvd' ? DeviceType.CDROM : DeviceType.DISK;
      d[1] = this.kind === 'dvd' ? 0x80 : 0; // RMB
      d[2] = SPC_VERSION;
      d[3] = 0x12; // HISUP, response data format 2
      d[4] = STANDARD_INQUIRY_LENGTH - 5;
      d[7] = 0x02; // CMDQUE
      d.set(ascii(this.o.vendor ?? 'Msft', 8), 8);
      d.set(ascii(this.o.product ?? (this.kind === 'dvd' ? 'Virtual DVD-ROM' : 'Virtual Disk'), 16), 16);
      d.set(ascii(this.o.revision ?? '1.0', 4), 32);
      return respond(data, d, alloc);
    }
    const pages = this.kind === 'dvd' ? [Vpd.SUPPORTED_PAGES, Vpd.UNIT_SERIAL, Vpd.DEVICE_IDENTIFICATION]
      : [Vpd.SUPPORTED_PAGES, Vpd.UNIT_SERIAL, Vpd.DEVICE_IDENTIFICATION, Vpd.BLOCK_LIMITS, Vpd.BLOCK_DEVICE_CHARACTERISTICS, Vpd.LOGICAL_BLOCK_PROVISIONING];
    if (!pages.includes(page)) throw illegal();
    let body: Uint8Array;
    switch (page) {
      case Vpd.SUPPORTED_PAGES: body = Uint8Array.from(pages); break;
      case Vpd.UNIT_SERIAL: body = ascii(this.serial, this.serial.length); break;
      case Vpd.DEVICE_IDENTIFICATION: {
        // One NAA-independent designator: binary, LUN association, type 3 would need an NAA; use type 1
        // (T10 vendor id + disk identifier), which Linux turns into /dev/disk/by-id names.
        const id = this.medium?.diskId ?? new Uint8Array(16);
        const desig = new Uint8Array(8 + 32);
        desig.set(ascii(this.o.vendor ?? 'Msft', 8), 0);
        desig.set(ascii(hex(id), 32), 8);
        body = new Uint8Array(4 + desig.length);
        body[0] = 0x02; // code set ASCII
        body[1] = 0x01; // association LUN, designator type T10 vendor id
        body[3] = desig.length;
        body.set(desig, 4);
        break;
      }
      case Vpd.BLOCK_LIMITS: {
        body = new Uint8Array(0x3c);
        const b = new DataView(body.buffer);
        const maxBlocks = Math.floor((this.o.maxTransferBytes ?? 0x80000) / this.blockSize);
        b.setUint32(4, maxBlocks); // maximum transfer length (offset 8 of the page)
        b.setUint32(8, maxBlocks); // optimal transfer length
        if (this.canUnmap) {
          b.setUint32(16, MAX_UNMAP_BLOCKS); // maximum unmap LBA count
          b.setUint32(20, MAX_UNMAP_DESCRIPTORS); // maximum unmap block descriptor count
          b.setUint32(24, 1); // optimal unmap granularity
          b.setBigUint64(32, BigInt(MAX_UNMAP_BLOCKS)); // maximum write same length
        }
        break;
      }
      case Vpd.BLOCK_DEVICE_CHARACTERISTICS:
        body = new Uint8Array(0x3c);
        body[1] = 1; // medium rotation rate 1: non-rotating (virtual disks are not seeky)
        break;
      default: // LOGICAL_BLOCK_PROVISIONING
        body = new Uint8Array(4);
        // LBPU | LBPWS | LBPWS10 | LBPRZ: unmap through UNMAP and WRITE SAME, unmapped blocks read zero.
        body[1] = this.canUnmap ? 0xe4 : 0;
        body[2] = this.canUnmap ? 0x02 : 0; // provisioning type: thin
        break;
    }
    const out = new Uint8Array(4 + body.length);
    out[0] = this.kind === 'dvd' ? DeviceType.CDROM : DeviceType.DISK;
    out[1] = page;
    new DataView(out.buffer).setUint16(2, body.length);
    out.set(body, 4);
    return respond(data, out, alloc);
  }

  private get canUnmap(): boolean { return this.kind === 'disk' && !this.readOnly; }

  private get serial(): string {
    if (this.o.serial) return this.o.serial;
    return hex(this.medium?.diskId ?? new Uint8Array(16)).slice(0, 20);
  }

  private readCapacity16(): Uint8Array {
    const d = this.requireMedium();
    const out = new Uint8Array(32), o = new DataView(out.buffer);
    o.setBigUint64(0, BigInt(this.blocks - 1));
    o.setUint32(8, this.blockSize);
    if (this.kind === 'disk') {
      out[13] = Math.log2(Math.max(1, d.physicalSectorSize / d.logicalSectorSize)) & 0x0f;
      if (this.canUnmap) out[14] = 0xc0; // LBPME | LBPRZ
    }
    return out;
  }

  private checkLba(lba: number, count: number): void {
    this.requireMedium();
    if (!Number.isSafeInteger(lba) || lba + count > this.blocks) throw illegal(Asc.LBA_OUT_OF_RANGE);
  }

  private async readWrite(write: boolean, lba: number, count: number, fua: boolean, data: ScsiDataBuffer): Promise<number> {
    const d = this.requireMedium();
    if (write && this.readOnly) throw new CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    this.checkLba(lba, count);
    const bs = this.blockSize, total = count * bs;
    if (total > data.length) throw illegal();
    let done = 0;
    while (done < total) {
      const n = Math.min(CHUNK - (CHUNK % bs), total - done);
      const buf = new Uint8Array(n);
      if (write) {
        data.read(done, buf);
        await d.write(lba * bs + done, buf, fua);
      } else {
        await d.read(lba * bs + done, buf);
        data.write(done, buf);
      }
      done += n;
    }
    return total;
  }

  private async unmap(paramLen: number, data: ScsiDataBuffer): Promise<number> {
    const d = this.requireMedium();
    if (this.readOnly) throw new CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    if (paramLen === 0) return 0;
    if (paramLen < 8 || paramLen > data.length) throw illegal(Asc.PARAMETER_LIST_LENGTH_ERROR);
    const p = new Uint8Array(paramLen);
    data.read(0, p);
    const pv = new DataView(p.buffer);
    const descLen = pv.getUint16(2);
    if (descLen % 16 !== 0 || 8 + descLen > paramLen || descLen / 16 > MAX_UNMAP_DESCRIPTORS) throw illegal(Asc.INVALID_FIELD_IN_PARAMETER_LIST);
    const ranges: Array<[number, number]> = [];
    for (let at = 8; at < 8 + descLen; at += 16) {
      const lba = u64(pv, at), count = pv.getUint32(at + 8);
      if (!Number.isSafeInteger(lba) || lba + count > this.blocks) throw illegal(Asc.LBA_OUT_OF_RANGE);
      if (count > MAX_UNMAP_BLOCKS) throw illegal(Asc.INVALID_FIELD_IN_PARAMETER_LIST);
      if (count) ranges.push([lba, count]);
    }
    for (const [lba, count] of ranges) await d.unmap(lba * this.blockSize, count * this.blockSize);
    return paramLen;
  }

  private async writeSame(cdb: Uint8Array, lba: number, count: number, data: ScsiDataBuffer): Promise<number> {
    const d = this.requireMedium();
    if (this.readOnly) throw new CheckCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    const unmap = (cdb[1] & 0x08) !== 0, ndob = cdb[0] === Op.WRITE_SAME_16 && (cdb[1] & 0x01) !== 0;
    if (count === 0 || count > MAX_UNMAP_BLOCKS) throw illegal(); // count 0 means "to the end": not offered
    this.checkLba(lba, count);
    const bs = this.blockSize;
    const block = new Uint8Array(bs);
    if (!ndob) {
      if (data.length < bs) throw illegal();
      data.read(0, block);
    }
    const zero = block.every((b) => b === 0);
    if (unmap && zero) { await d.unmap(lba * bs, count * bs); return ndob ? 0 : bs; }
    if (unmap && !zero) throw illegal(); // unmapped blocks read zero; a pattern cannot be unmapped
    const per = Math.max(1, Math.floor(CHUNK / bs));
    for (let done = 0; done < count;) {
      const n = Math.min(per, count - done);
      const buf = new Uint8Array(n * bs);
      for (let i = 0; i < n; i++) buf.set(block, i * bs);
      await d.write((lba + done) * bs, buf);
      done += n;
    }
    return ndob ? 0 : bs;
  }

  private modeSense(cdb: Uint8Array, data: ScsiDataBuffer, ten: boolean): number {
    const dbd = (cdb[1] & 0x08) !== 0, pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];
    if (pc === 3) throw illegal(Asc.SAVING_PARAMETERS_NOT_SUPPORTED);
    if (subpage !== 0 && !(page === ModePage.ALL && subpage === 0xff)) throw illegal();
    const changeable = pc === 1;
    const pages: Uint8Array[] = [];
    if (page === ModePage.CACHING || page === ModePage.ALL) {
      const p = new Uint8Array(20);
      p[0] = ModePage.CACHING; p[1] = 18;
      if (!changeable && this.kind === 'disk') p[2] = 0x04; // WCE: the guest must flush for durability
      pages.push(p);
    }
    if (page === ModePage.CONTROL || page === ModePage.ALL) {
      const p = new Uint8Array(12);
      p[0] = ModePage.CONTROL; p[1] = 10;
      if (!changeable) p[3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
      pages.push(p);
    }
    if (pages.length === 0) throw illegal();
    const blockDesc = dbd || this.kind === 'dvd' ? new Uint8Array(0) : new Uint8Array(8);
    if (blockDesc.length) {
      const b = new DataView(blockDesc.buffer);
      b.setUint32(0, Math.min(this.blocks, 0xffffff));
      b.setUint32(4, this.blockSize & 0xffffff);
    }
    const headLen = ten ? 8 : 4;
    const body = pages.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(headLen + blockDesc.length + body);
    const o = new DataView(out.buffer);
    const devSpecific = (this.readOnly ? 0x80 : 0) | (this.kind === 'disk' ? 0x10 : 0); // WP, DPOFUA
    if (ten) { o.setUint16(0, out.length - 2); out[3] = devSpecific; o.setUint16(6, blockDesc.length); } else { out[0] = out.length - 1; out[2] = devSpecific; out[3] = blockDesc.length; }
    out.set(blockDesc, headLen);
    let at = headLen + blockDesc.length;
    for (const p of pages) { out.set(p, at); at += p.length; }
    return respond(data, out, ten ? new DataView(cdb.buffer, cdb.byteOffset).getUint16(7) : cdb[4]);
  }

  /** The few MMC commands Linux's sr and ATAPI drivers need to use a read-only disc. */
  private mmc(op: number, cdb: Uint8Array, v: DataView, data: ScsiDataBuffer): number {
    switch (op) {
      case Op.READ_TOC: {
        this.need(cdb, 10);
        this.requireMedium();
        const format = cdb[2] & 0x0f, msf = (cdb[1] & 2) !== 0;
        if (format !== 0 || msf) throw illegal();
        // One data track (1) and the lead-out (0xAA).
        const out = new Uint8Array(20), o = new DataView(out.buffer);
        o.setUint16(0, 18); out[2] = 1; out[3] = 1;
        out[5] = 0x14; out[6] = 1; o.setUint32(8, 0);
        out[13] = 0x14; out[14] = 0xaa; o.setUint32(16, this.blocks);
        return respond(data, out, v.getUint16(7));
      }
      case Op.GET_CONFIGURATION: {
        this.need(cdb, 10);
        // Feature header only: current profile DVD-ROM (0x0010) with a medium, none without.
        const out = new Uint8Array(8), o = new DataView(out.buffer);
        o.setUint32(0, 4);
        o.setUint16(6, this.medium ? 0x0010 : 0);
        return respond(data, out, v.getUint16(7));
      }
      case Op.GET_EVENT_STATUS_NOTIFICATION: {
        this.need(cdb, 10);
        if ((cdb[1] & 1) === 0) throw illegal(); // asynchronous mode is not supported
        const out = new Uint8Array(8), o = new DataView(out.buffer);
        o.setUint16(0, 6); out[2] = 4; out[3] = 0x10; // media class
        out[5] = this.medium ? 0x02 : 0; // media present
        return respond(data, out, v.getUint16(7));
      }
      case Op.READ_DISC_INFORMATION: {
        this.need(cdb, 10);
        this.requireMedium();
        const out = new Uint8Array(34), o = new DataView(out.buffer);
        o.setUint16(0, 32); out[2] = 0x0e; // complete disc, last session complete
        out[3] = 1; out[4] = 1; out[5] = 1; out[6] = 1;
        return respond(data, out, v.getUint16(7));
      }
    }
    throw illegal(Asc.INVALID_COMMAND_OPCODE);
  }
}

/** Data-in of a parameter block, cut to the allocation length and the initiator's buffer. */
function respond(data: ScsiDataBuffer, bytes: Uint8Array, alloc: number): number {
  const n = Math.min(bytes.length, alloc, data.length);
  if (n > 0) data.write(0, bytes.subarray(0, n));
  return n;
}

function checkCondition(key: SenseKey, asc: Asc): ScsiResult {
  return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(key, asc), transferred: 0 };
}

function diskFailure(e: DiskError, op: number): ScsiResult {
  switch (e.code) {
    case 'range': return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.LBA_OUT_OF_RANGE);
    case 'read-only': return checkCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED);
    case 'closed': return checkCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT);
    default: {
      const reading = op === Op.READ_6 || op === Op.READ_10 || op === Op.READ_12 || op === Op.READ_16;
      return checkCondition(SenseKey.MEDIUM_ERROR, reading ? Asc.UNRECOVERED_READ_ERROR : Asc.WRITE_ERROR);
    }
  }
}

function u64(v: DataView, at: number): number {
  const x = v.getBigUint64(at);
  return x > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(x);
}

function hex(b: Uint8Array): string { return [...b].map((x) => x.toString(16).padStart(2, '0')).join(''); }

export { FIXED_SENSE_LENGTH };
