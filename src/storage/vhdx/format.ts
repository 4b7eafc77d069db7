/**
 * VHDX on-disk constants, GUIDs and CRC-32C (MS-VHDX). Little-endian throughout.
 * Layout facts: file identifier at 0, headers at 64/128 KiB, region tables at 192/256 KiB; everything else is
 * found through the region table.
 */

export const KiB = 1024;
export const MiB = 1024 * 1024;

export const FILE_SIGNATURE = 'vhdxfile';
export const HEADER_SIGNATURE = 0x64616568; // 'head'
export const REGION_SIGNATURE = 0x69676572; // 'regi'
export const METADATA_SIGNATURE = 'metadata';
export const LOG_ENTRY_SIGNATURE = 0x65676f6c; // 'loge'
export const LOG_DESC_SIGNATURE = 0x63736564; // 'desc'
export const LOG_ZERO_SIGNATURE = 0x6f72657a; // 'zero'
export const LOG_DATA_SIGNATURE = 0x61746164; // 'data'

export const HEADER_OFFSETS = [64 * KiB, 128 * KiB] as const;
export const REGION_OFFSETS = [192 * KiB, 256 * KiB] as const;
export const HEADER_SIZE = 4 * KiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const LOG_SECTOR = 4 * KiB;

export const BAT_GUID = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const METADATA_GUID = '8b7ca206-4790-4b9a-b8fe-575f050f886e';
export const FILE_PARAMETERS_GUID = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const VIRTUAL_DISK_SIZE_GUID = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const PAGE83_GUID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const LOGICAL_SECTOR_GUID = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const PHYSICAL_SECTOR_GUID = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const PARENT_LOCATOR_GUID = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';
export const PARENT_LOCATOR_TYPE_GUID = 'b04aefb7-d19e-4a81-b789-25b8e9445913';
export const INCOMPLETE_FILE_GUID = '71cc85f0-1b69-4e28-9558-c3bf83ae75d3';

/** BAT payload block states (bits 0-2). */
export const PAYLOAD_NOT_PRESENT = 0;
export const PAYLOAD_UNDEFINED = 1;
export const PAYLOAD_ZERO = 2;
export const PAYLOAD_UNMAPPED = 3;
export const PAYLOAD_FULLY_PRESENT = 6;
export const PAYLOAD_PARTIALLY_PRESENT = 7;
export const SB_NOT_PRESENT = 0;
export const SB_PRESENT = 6;

/** Hyper-V's limits. */
export const MAX_VIRTUAL_SIZE = 64 * 1024 * 1024 * MiB; // 64 TB
export const MIN_BLOCK_SIZE = MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;

/** A structural problem in a VHDX file; the message names the file. */
export class VhdxFormatError extends Error {
  constructor(readonly path: string, readonly problem: string) {
    super(`${path}: ${problem}`);
    this.name = 'VhdxFormatError';
  }
}

// ---- CRC-32C (Castagnoli), slice-by-8 ----
const CRC_TABLES: Uint32Array[] = (() => {
  const t: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t0[i] = c >>> 0;
  }
  t.push(t0);
  for (let s = 1; s < 8; s++) {
    const prev = t[s - 1]!;
    const ts = new Uint32Array(256);
    for (let i = 0; i < 256; i++) ts[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!;
    t.push(ts);
  }
  return t;
})();

export function crc32c(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    c = t7[a & 0xff]! ^ t6[(a >>> 8) & 0xff]! ^ t5[(a >>> 16) & 0xff]! ^ t4[a >>> 24]! ^
      t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < n; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of `buf` with its 4-byte checksum field at `at` taken as zero. */
export function crcWithZeroField(buf: Uint8Array, at: number): number {
  let c = crc32c(buf.subarray(0, at));
  c = crc32c(new Uint8Array(4), c);
  return crc32c(buf.subarray(at + 4), c);
}

// ---- GUIDs: textual form <-> 16 bytes in Microsoft mixed-endian layout ----
export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export function guidToBytes(g: string, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
  const h = g.replace(/[{}-]/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`not a GUID: ${g}`);
  const b = Buffer.from(h, 'hex');
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) out[at + i] = b[order[i]!]!;
  return out;
}

export function bytesToGuid(buf: Uint8Array, at = 0): string {
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  const b = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) b[order[i]!] = buf[at + i]!;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function randomGuid(): string {
  return crypto.randomUUID();
}

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** u64 little-endian as a safe integer; throws past 2^53 (no valid VHDX field gets there). */
export function readU64(dv: DataView, at: number): number {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER; // callers range-check; huge means invalid
  return hi * 0x100000000 + lo;
}

export function writeU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 0x100000000, true);
  dv.setUint32(at + 4, Math.floor(v / 0x100000000), true);
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n)) && 2 ** Math.log2(n) === n;
}

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
