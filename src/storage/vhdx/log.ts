/**
 * The VHDX metadata log: a circular buffer of 4 KiB-sector entries. Every metadata change (BAT pages,
 * sector-bitmap pages, metadata region) is written here first, flushed, then applied in place and flushed.
 *
 * This writer puts each commit in one entry whose Tail is the entry itself (everything earlier was applied and
 * flushed before the entry was written), so any valid entry is a complete sequence. The reader accepts the general
 * form (multi-entry sequences that wrap around the buffer) as written by Hyper-V and QEMU.
 */
import {
  bytesToGuid, crcWithZeroField, guidToBytes, LOG_DATA_SIGNATURE, LOG_DESC_SIGNATURE, LOG_ENTRY_SIGNATURE,
  LOG_SECTOR, LOG_ZERO_SIGNATURE, MiB, readU64, view, VhdxFormatError, writeU64,
} from './format.js';
import type { BlockFile } from '../file-io.js';
import { readFull } from '../file-io.js';

/** One sector-aligned change: 4 KiB of data, or `zeroLength` zero bytes. */
export interface LogWrite { offset: number; data?: Uint8Array; zeroLength?: number }

interface ParsedEntry { at: number; length: number; tail: number; seq: bigint; writes: LogWrite[]; flushedFileOffset: number; lastFileOffset: number }

const DESCS_IN_FIRST = (LOG_SECTOR - 64) / 32; // 126
const DESCS_PER_SECTOR = LOG_SECTOR / 32; // 128

function descriptorSectors(n: number): number {
  return n <= DESCS_IN_FIRST ? 1 : 1 + Math.ceil((n - DESCS_IN_FIRST) / DESCS_PER_SECTOR);
}

/** Most 4 KiB pages one entry can carry in a log of `logLength` bytes. */
export function maxPagesPerEntry(logLength: number): number {
  let n = logLength / LOG_SECTOR - 1;
  while (n > 0 && descriptorSectors(n) + n > logLength / LOG_SECTOR) n--;
  return n;
}

/** Builds one log entry carrying full 4 KiB pages. */
export function buildEntry(logGuid: string, seq: bigint, tail: number, pages: LogWrite[], flushedFileOffset: number, lastFileOffset: number): Uint8Array {
  const ds = descriptorSectors(pages.length);
  const dataCount = pages.filter((p) => p.data).length;
  const buf = new Uint8Array((ds + dataCount) * LOG_SECTOR);
  const dv = view(buf);
  dv.setUint32(0, LOG_ENTRY_SIGNATURE, true);
  dv.setUint32(8, buf.length, true);
  dv.setUint32(12, tail, true);
  dv.setBigUint64(16, seq, true);
  dv.setUint32(24, pages.length, true);
  guidToBytes(logGuid, buf, 32);
  writeU64(dv, 48, flushedFileOffset);
  writeU64(dv, 56, lastFileOffset);
  const seqHi = Number(seq >> 32n) >>> 0;
  const seqLo = Number(seq & 0xffffffffn) >>> 0;
  let dataSector = ds;
  pages.forEach((p, i) => {
    const d = 64 + i * 32;
    if (!p.data) {
      dv.setUint32(d, LOG_ZERO_SIGNATURE, true);
      writeU64(dv, d + 8, p.zeroLength ?? 0);
      writeU64(dv, d + 16, p.offset);
      dv.setBigUint64(d + 24, seq, true);
      return;
    }
    const pv = view(p.data);
    dv.setUint32(d, LOG_DESC_SIGNATURE, true);
    dv.setUint32(d + 4, pv.getUint32(LOG_SECTOR - 4, true), true); // trailing bytes
    dv.setUint32(d + 8, pv.getUint32(0, true), true); // leading bytes
    dv.setUint32(d + 12, pv.getUint32(4, true), true);
    writeU64(dv, d + 16, p.offset);
    dv.setBigUint64(d + 24, seq, true);
    const s = dataSector++ * LOG_SECTOR;
    buf.set(p.data.subarray(8, LOG_SECTOR - 4), s + 8);
    dv.setUint32(s, LOG_DATA_SIGNATURE, true);
    dv.setUint32(s + 4, seqHi, true);
    dv.setUint32(s + LOG_SECTOR - 4, seqLo, true);
  });
  dv.setUint32(4, crcWithZeroField(buf, 4), true);
  return buf;
}

/** Reads `len` bytes of the circular log starting at `at`. */
function circular(log: Uint8Array, at: number, len: number): Uint8Array {
  if (at + len <= log.length) return log.subarray(at, at + len);
  const out = new Uint8Array(len);
  const first = log.length - at;
  out.set(log.subarray(at), 0);
  out.set(log.subarray(0, len - first), first);
  return out;
}

function parseEntry(log: Uint8Array, at: number, logGuid: string, limit: number): ParsedEntry | null {
  const head = circular(log, at, 64);
  const hv = view(head);
  if (hv.getUint32(0, true) !== LOG_ENTRY_SIGNATURE) return null;
  const length = hv.getUint32(8, true);
  const tail = hv.getUint32(12, true);
  const count = hv.getUint32(24, true);
  if (length < LOG_SECTOR || length % LOG_SECTOR !== 0 || length > log.length) return null;
  if (tail % LOG_SECTOR !== 0 || tail >= log.length) return null;
  if (bytesToGuid(head, 32) !== logGuid) return null;
  if (descriptorSectors(count) * LOG_SECTOR > length) return null;
  const e = circular(log, at, length);
  const dv = view(e);
  if (dv.getUint32(4, true) !== crcWithZeroField(e, 4)) return null;
  const seq = dv.getBigUint64(16, true);
  const flushedFileOffset = readU64(dv, 48);
  const lastFileOffset = readU64(dv, 56);
  if (lastFileOffset > limit || flushedFileOffset > limit) return null;
  const writes: LogWrite[] = [];
  let dataSector = descriptorSectors(count);
  for (let i = 0; i < count; i++) {
    const d = 64 + i * 32;
    const sig = dv.getUint32(d, true);
    const fileOffset = readU64(dv, d + 16);
    if (dv.getBigUint64(d + 24, true) !== seq || fileOffset % LOG_SECTOR !== 0) return null;
    if (sig === LOG_ZERO_SIGNATURE) {
      const zeroLength = readU64(dv, d + 8);
      if (zeroLength % LOG_SECTOR !== 0 || fileOffset + zeroLength > limit) return null;
      writes.push({ offset: fileOffset, zeroLength });
    } else if (sig === LOG_DESC_SIGNATURE) {
      const s = dataSector++ * LOG_SECTOR;
      if (s + LOG_SECTOR > length || fileOffset + LOG_SECTOR > limit) return null;
      if (dv.getUint32(s, true) !== LOG_DATA_SIGNATURE) return null;
      const sv = (BigInt(dv.getUint32(s + 4, true)) << 32n) | BigInt(dv.getUint32(s + LOG_SECTOR - 4, true));
      if (sv !== seq) return null;
      const data = new Uint8Array(LOG_SECTOR);
      data.set(e.subarray(d + 8, d + 16), 0);
      data.set(e.subarray(s + 8, s + LOG_SECTOR - 4), 8);
      data.set(e.subarray(d + 4, d + 8), LOG_SECTOR - 4);
      writes.push({ offset: fileOffset, data });
    } else {
      return null;
    }
  }
  return { at, length, tail, seq, writes, flushedFileOffset, lastFileOffset };
}

export interface ReplayPlan { writes: LogWrite[]; lastFileOffset: number; flushedFileOffset: number; entries: number; headSeq: bigint }

/** Upper bound on file offsets a log may name (128 TB: above any legal VHDX). */
const OFFSET_LIMIT = 128 * 1024 * 1024 * MiB;

/**
 * Finds the active sequence of a log with `logGuid` and returns its writes in order.
 * Throws if no complete sequence exists or the file is shorter than the sequence's FlushedFileOffset.
 */
export async function planReplay(path: string, file: BlockFile, logOffset: number, logLength: number, logGuid: string, fileSize: number): Promise<ReplayPlan> {
  const log = new Uint8Array(logLength);
  await readFull(file, log, logOffset);
  const entries = new Map<number, ParsedEntry>();
  for (let at = 0; at < logLength; at += LOG_SECTOR) {
    const e = parseEntry(log, at, logGuid, OFFSET_LIMIT);
    if (e) entries.set(at, e);
  }
  let best: ParsedEntry[] | null = null;
  for (const head of entries.values()) {
    if (best && best[best.length - 1]!.seq >= head.seq) continue;
    // Walk from the head's tail forward; it must reach the head through consecutive sequence numbers.
    const seqList: ParsedEntry[] = [];
    let cur = entries.get(head.tail);
    let steps = 0;
    while (cur && steps++ <= logLength / LOG_SECTOR) {
      if (seqList.length > 0 && cur.seq !== seqList[seqList.length - 1]!.seq + 1n) { cur = undefined; break; }
      seqList.push(cur);
      if (cur === head) break;
      cur = entries.get((cur.at + cur.length) % logLength);
    }
    if (cur === head) best = seqList;
  }
  if (!best) {
    // QEMU sets the LogGuid before it writes the entry: killed in between, it leaves a dirty header and no entry of
    // that log at all. Nothing was applied in place then, so there is nothing to replay (QEMU opens such files too).
    // An entry of this log that is present but incomplete is a torn or corrupt log: refuse.
    let mentioned = false;
    for (let at = 0; at < logLength && !mentioned; at += LOG_SECTOR) {
      const hv = view(log.subarray(at, at + 64));
      mentioned = hv.getUint32(0, true) === LOG_ENTRY_SIGNATURE && bytesToGuid(log, at + 32) === logGuid;
    }
    if (!mentioned) return { writes: [], lastFileOffset: 0, flushedFileOffset: 0, entries: 0, headSeq: 0n };
    throw new VhdxFormatError(path, 'the log is dirty but holds no complete entry sequence (torn or corrupt log); the file cannot be recovered by replay');
  }
  const last = best[best.length - 1]!;
  if (fileSize < last.flushedFileOffset) {
    throw new VhdxFormatError(path, `file is shorter (${fileSize} bytes) than the log says was flushed (${last.flushedFileOffset}); it was truncated`);
  }
  return { writes: best.flatMap((e) => e.writes), lastFileOffset: last.lastFileOffset, flushedFileOffset: last.flushedFileOffset, entries: best.length, headSeq: last.seq };
}

/** Applies a replay plan to the file (writable open), then flushes. */
export async function applyReplay(file: BlockFile, plan: ReplayPlan): Promise<void> {
  for (const w of plan.writes) {
    if (w.data) await file.write(w.data, w.offset);
    else if (w.zeroLength) await file.zeroRange(w.offset, w.zeroLength);
  }
  if ((await file.size()) < plan.lastFileOffset) await file.truncate(plan.lastFileOffset);
  await file.flush();
}

/** Writes entries into the log region, one commit per entry, each entry its own tail. */
export class LogWriter {
  private head = 0;
  private seq = 1n;
  readonly maxPages: number;
  constructor(private readonly file: BlockFile, private readonly logOffset: number, private readonly logLength: number, readonly guid: string) {
    this.maxPages = maxPagesPerEntry(logLength);
  }
  /** Writes one entry (not flushed). */
  async write(pages: { offset: number; data: Uint8Array }[], fileSize: number): Promise<void> {
    const len = (descriptorSectors(pages.length) + pages.length) * LOG_SECTOR;
    if (len > this.logLength) throw new Error('log entry larger than the log');
    if (this.head + len > this.logLength) this.head = 0; // never wrap an entry we write; simpler for every reader
    const entry = buildEntry(this.guid, this.seq++, this.head, pages, fileSize, fileSize);
    await this.file.write(entry, this.logOffset + this.head);
    this.head = (this.head + len) % this.logLength;
  }
}
