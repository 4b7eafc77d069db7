/** VHDX headers (64/128 KiB) and region tables (192/256 KiB): parse, validate, serialize. */
import {
  bytesToGuid, crcWithZeroField, guidToBytes, HEADER_SIGNATURE, HEADER_SIZE, MiB, readU64, REGION_SIGNATURE,
  REGION_TABLE_SIZE, view, VhdxFormatError, writeU64, BAT_GUID, METADATA_GUID, ZERO_GUID,
} from './format.js';

export interface VhdxHeader {
  sequence: bigint;
  fileWriteGuid: string;
  dataWriteGuid: string;
  logGuid: string;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

/** The header at `buf`, or a reason it is not valid. */
export function parseHeader(buf: Uint8Array): VhdxHeader | string {
  const dv = view(buf);
  if (dv.getUint32(0, true) !== HEADER_SIGNATURE) return 'bad signature';
  if (dv.getUint32(4, true) !== crcWithZeroField(buf.subarray(0, HEADER_SIZE), 4)) return 'checksum mismatch';
  const h: VhdxHeader = {
    sequence: dv.getBigUint64(8, true),
    fileWriteGuid: bytesToGuid(buf, 16),
    dataWriteGuid: bytesToGuid(buf, 32),
    logGuid: bytesToGuid(buf, 48),
    logVersion: dv.getUint16(64, true),
    version: dv.getUint16(66, true),
    logLength: dv.getUint32(68, true),
    logOffset: readU64(dv, 72),
  };
  if (h.version !== 1) return `unsupported version ${h.version}`;
  if (h.logVersion !== 0) return `unsupported log version ${h.logVersion}`;
  if (h.logLength === 0 || h.logLength % MiB !== 0) return `log length ${h.logLength} is not a non-zero multiple of 1 MiB`;
  if (h.logOffset < MiB || h.logOffset % MiB !== 0) return `log offset ${h.logOffset} is not a multiple of 1 MiB past the first 1 MiB`;
  return h;
}

export function serializeHeader(h: VhdxHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_SIZE);
  const dv = view(buf);
  dv.setUint32(0, HEADER_SIGNATURE, true);
  dv.setBigUint64(8, h.sequence, true);
  guidToBytes(h.fileWriteGuid, buf, 16);
  guidToBytes(h.dataWriteGuid, buf, 32);
  guidToBytes(h.logGuid, buf, 48);
  dv.setUint16(64, h.logVersion, true);
  dv.setUint16(66, h.version, true);
  dv.setUint32(68, h.logLength, true);
  writeU64(dv, 72, h.logOffset);
  dv.setUint32(4, crcWithZeroField(buf, 4), true);
  return buf;
}

/** Picks the current header (valid, larger sequence). `slot` is 0 or 1. */
export function chooseHeader(path: string, a: Uint8Array, b: Uint8Array): { header: VhdxHeader; slot: 0 | 1; warnings: string[] } {
  const ha = parseHeader(a);
  const hb = parseHeader(b);
  const warnings: string[] = [];
  if (typeof ha === 'string') warnings.push(`header 1: ${ha}`);
  if (typeof hb === 'string') warnings.push(`header 2: ${hb}`);
  if (typeof ha === 'string' && typeof hb === 'string') {
    throw new VhdxFormatError(path, `no valid VHDX header (header 1: ${ha}; header 2: ${hb})`);
  }
  if (typeof ha === 'string') return { header: hb as VhdxHeader, slot: 1, warnings };
  if (typeof hb === 'string') return { header: ha, slot: 0, warnings };
  return hb.sequence > ha.sequence ? { header: hb, slot: 1, warnings } : { header: ha, slot: 0, warnings };
}

export function freshHeader(logOffset: number, logLength: number): VhdxHeader {
  return {
    sequence: 1n, fileWriteGuid: crypto.randomUUID(), dataWriteGuid: crypto.randomUUID(), logGuid: ZERO_GUID,
    logVersion: 0, version: 1, logLength, logOffset,
  };
}

export interface RegionEntry { guid: string; offset: number; length: number; required: boolean }

export function parseRegionTable(buf: Uint8Array): RegionEntry[] | string {
  const dv = view(buf);
  if (dv.getUint32(0, true) !== REGION_SIGNATURE) return 'bad signature';
  if (dv.getUint32(4, true) !== crcWithZeroField(buf.subarray(0, REGION_TABLE_SIZE), 4)) return 'checksum mismatch';
  const count = dv.getUint32(8, true);
  if (count > 2047) return `too many entries (${count})`;
  const out: RegionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = 16 + i * 32;
    out.push({ guid: bytesToGuid(buf, at), offset: readU64(dv, at + 16), length: dv.getUint32(at + 24, true), required: (dv.getUint32(at + 28, true) & 1) !== 0 });
  }
  return out;
}

export function serializeRegionTable(entries: RegionEntry[]): Uint8Array {
  const buf = new Uint8Array(REGION_TABLE_SIZE);
  const dv = view(buf);
  dv.setUint32(0, REGION_SIGNATURE, true);
  dv.setUint32(8, entries.length, true);
  entries.forEach((e, i) => {
    const at = 16 + i * 32;
    guidToBytes(e.guid, buf, at);
    writeU64(dv, at + 16, e.offset);
    dv.setUint32(at + 24, e.length, true);
    dv.setUint32(at + 28, e.required ? 1 : 0, true);
  });
  dv.setUint32(4, crcWithZeroField(buf, 4), true);
  return buf;
}

export interface Regions { bat: RegionEntry; metadata: RegionEntry }

/** Validates a region table: known regions, 1 MiB alignment, no overlap with each other, the header area or the log. */
export function checkRegions(path: string, entries: RegionEntry[], log: { offset: number; length: number }): Regions {
  let bat: RegionEntry | undefined;
  let metadata: RegionEntry | undefined;
  const spans: { name: string; start: number; end: number }[] = [{ name: 'header area', start: 0, end: MiB }, { name: 'log', start: log.offset, end: log.offset + log.length }];
  for (const e of entries) {
    const name = e.guid === BAT_GUID ? 'BAT' : e.guid === METADATA_GUID ? 'metadata region' : `region ${e.guid}`;
    if (e.guid === BAT_GUID) { if (bat) throw new VhdxFormatError(path, 'region table lists the BAT twice'); bat = e; }
    else if (e.guid === METADATA_GUID) { if (metadata) throw new VhdxFormatError(path, 'region table lists the metadata region twice'); metadata = e; }
    else if (e.required) throw new VhdxFormatError(path, `unsupported required region ${e.guid}`);
    if (e.offset % MiB !== 0 || e.offset < MiB || e.length === 0 || e.length % MiB !== 0 || e.offset >= Number.MAX_SAFE_INTEGER / 2) {
      throw new VhdxFormatError(path, `${name} at ${e.offset} length ${e.length} is not 1 MiB aligned`);
    }
    spans.push({ name, start: e.offset, end: e.offset + e.length });
  }
  if (!bat) throw new VhdxFormatError(path, 'region table has no BAT region');
  if (!metadata) throw new VhdxFormatError(path, 'region table has no metadata region');
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i]!, b = spans[j]!;
      if (a.start < b.end && b.start < a.end) throw new VhdxFormatError(path, `${a.name} overlaps ${b.name}`);
    }
  }
  return { bat, metadata };
}
