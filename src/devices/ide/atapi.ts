/**
 * ATAPI glue between the IDE channel and the transport-independent SCSI target (src/scsi): how many bytes a
 * packet command may move (the channel stages data in host memory, so it needs a bound before running the
 * command), and the sense data of the last failed packet, which libata fetches with REQUEST SENSE.
 */
import { ArrayDataBuffer, type ScsiTarget } from '../../scsi/target.js';
import { fixedSense, ScsiStatus, SenseKey, Asc } from '../../scsi/protocol.js';

/** The most one packet command stages (a READ(10) of 16384 blocks); larger requests fail with ILLEGAL REQUEST. */
export const ATAPI_MAX_TRANSFER = 32 * 1024 * 1024;
export const ATAPI_PACKET_SIZE = 12;
const CD_BLOCK = 2048;
/** READ CD returns up to 2352 bytes of raw sector plus subchannel data per block. */
const READ_CD_MAX_BLOCK = 2448;

/** Upper bound of the data a CDB transfers, from its opcode's transfer or allocation length field. */
export function atapiTransferLength(cdb: Uint8Array): number {
  const v = new DataView(cdb.buffer, cdb.byteOffset, cdb.byteLength);
  const op = cdb[0];
  let n: number;
  switch (op) {
    case 0x28: n = v.getUint16(7) * CD_BLOCK; break; // READ(10)
    case 0xa8: n = v.getUint32(6) * CD_BLOCK; break; // READ(12)
    case 0xbe: n = ((cdb[6] << 16) | (cdb[7] << 8) | cdb[8]) * READ_CD_MAX_BLOCK; break; // READ CD
    case 0x12: n = v.getUint16(3); break; // INQUIRY
    case 0x25: n = 8; break; // READ CAPACITY(10): fixed 8 bytes, bytes 7-8 are not a length
    default:
      if (op < 0x20) n = cdb[4];
      else if (op < 0x60) n = v.getUint16(7);
      else if (op >= 0xa0 && op < 0xc0) n = v.getUint32(6);
      else n = 0xffff;
  }
  return Math.min(n, ATAPI_MAX_TRANSFER);
}

export interface AtapiOutcome {
  /** Data-in bytes to hand to the host (may be shorter than the staged buffer). */
  data: Uint8Array;
  /** Sense key for the ATA error register (bits 7:4) when the command failed, else null. */
  senseKey: number | null;
}

/** MMC's CD/DVD capabilities and mechanical status mode page, which sr reads to learn what the drive is. */
const CAPABILITIES_PAGE = 0x2a;

/** MODE SENSE(10) data with the capabilities page: a read-only DVD-ROM drive with a tray that locks and ejects. */
function capabilitiesPage(changeable: boolean): Uint8Array {
  const out = new Uint8Array(8 + 22);
  new DataView(out.buffer).setUint16(0, out.length - 2);
  const p = out.subarray(8);
  p[0] = CAPABILITIES_PAGE; p[1] = 20;
  if (!changeable) {
    p[2] = 0x08; // reads DVD-ROM (and CD-ROM, implied)
    p[6] = 0x29; // tray loading mechanism, eject, lock
    new DataView(p.buffer, p.byteOffset).setUint16(8, 4 * 1385); // maximum read speed, kB/s (DVD 4x)
  }
  return out;
}

/** Runs packet commands against a SCSI target and keeps the sense data of the last failure. */
export class AtapiDevice {
  sense: Uint8Array | null = null;

  constructor(readonly target: ScsiTarget) {}

  /** `out` holds data-out bytes (empty for data-in commands); `room` is the most data-in we can take. */
  async execute(cdb: Uint8Array, room: number, out: Uint8Array | null): Promise<AtapiOutcome> {
    if (cdb[0] === 0x5a && (cdb[2] & 0x3f) === CAPABILITIES_PAGE && (cdb[2] >> 6) !== 3) {
      const page = capabilitiesPage((cdb[2] >> 6) === 1);
      return { data: page.subarray(0, Math.min(page.length, (cdb[7] << 8) | cdb[8], room)), senseKey: null };
    }
    if (cdb[0] === 0x03 && this.sense) { // REQUEST SENSE after a failure: that failure's sense data
      const s = this.sense;
      this.sense = null;
      return { data: s.subarray(0, Math.min(cdb[4], s.length, room)), senseKey: null };
    }
    const buf = out ?? new Uint8Array(room);
    const r = await this.target.execute(cdb, new ArrayDataBuffer(buf));
    if (r.status === ScsiStatus.GOOD) {
      this.sense = null;
      return { data: out ? new Uint8Array(0) : buf.subarray(0, Math.min(r.transferred, buf.length)), senseKey: null };
    }
    this.sense = r.sense ?? fixedSense(SenseKey.ABORTED_COMMAND, Asc.NO_ADDITIONAL);
    return { data: new Uint8Array(0), senseKey: this.sense[2] & 0x0f };
  }

  /** A command the channel refuses before the target sees it (e.g. a transfer larger than we stage). */
  fail(key: SenseKey, asc: Asc): number {
    this.sense = fixedSense(key, asc);
    return key;
  }
}
