/**
 * What a SCSI target and its transport share: the transport (storvsp over VMBus, ATAPI under IDE) hands a
 * CDB and a window onto the initiator's buffer; the target moves data only through that window and answers
 * with a SAM status and sense data. Nothing here knows about guest memory or rings.
 */
import { ScsiStatus } from './protocol.js';

/** The initiator's data buffer as the transport exposes it (a GuestBuffer, a PRD table...). */
export interface ScsiDataBuffer {
  /** Bytes the initiator provided; the target never moves more. */
  readonly length: number;
  /** Data-out: copy initiator bytes [offset, offset + dst.length) into dst. May throw (bad guest memory). */
  read(offset: number, dst: Uint8Array): void;
  /** Data-in: copy src to initiator bytes at offset. May throw (bad guest memory). */
  write(offset: number, src: Uint8Array): void;
}

export interface ScsiResult {
  status: ScsiStatus;
  /** Fixed-format sense data with CHECK CONDITION, else null. */
  sense: Uint8Array | null;
  /** Bytes actually moved (data-in or data-out). */
  transferred: number;
}

export interface ScsiTarget {
  /**
   * Runs one command. Many may run at once. Errors the command causes are answered as CHECK CONDITION;
   * the promise rejects only when the transport's buffer throws (the transport then reports its own error).
   */
  execute(cdb: Uint8Array, data: ScsiDataBuffer): Promise<ScsiResult>;
  /** Report `asc` (a unit attention condition) on the next command, e.g. REPORTED LUNS DATA HAS CHANGED. */
  raiseUnitAttention(asc: number): void;
  /** Completes once every command started so far has finished (saved state, removal). */
  idle(): Promise<void>;
}

/** A buffer over a host byte array: tests, and transports that stage data themselves. */
export class ArrayDataBuffer implements ScsiDataBuffer {
  constructor(readonly bytes: Uint8Array) {}
  get length(): number { return this.bytes.length; }
  read(offset: number, dst: Uint8Array): void {
    if (offset < 0 || offset + dst.length > this.bytes.length) throw new RangeError('read outside the data buffer');
    dst.set(this.bytes.subarray(offset, offset + dst.length));
  }
  write(offset: number, src: Uint8Array): void {
    if (offset < 0 || offset + src.length > this.bytes.length) throw new RangeError('write outside the data buffer');
    this.bytes.set(src, offset);
  }
}

export const NO_DATA: ScsiDataBuffer = new ArrayDataBuffer(new Uint8Array(0));

/** REPORT LUNS parameter data (SPC-4 6.33): 8-byte header, then 8-byte single-level LUN entries. */
export function reportLunsData(luns: readonly number[]): Uint8Array {
  const out = new Uint8Array(8 + luns.length * 8);
  const v = new DataView(out.buffer);
  v.setUint32(0, luns.length * 8);
  luns.forEach((lun, i) => {
    // Peripheral device addressing for LUNs < 256 (what Linux's scsilun_to_int reads back).
    out[8 + i * 8] = lun < 256 ? 0 : 0x40 | ((lun >> 8) & 0x3f);
    out[9 + i * 8] = lun & 0xff;
  });
  return out;
}
