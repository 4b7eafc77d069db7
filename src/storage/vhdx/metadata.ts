/** The VHDX metadata region: table, known items (file parameters, sizes, disk id, parent locator). */
import {
  bytesToGuid, FILE_PARAMETERS_GUID, guidToBytes, INCOMPLETE_FILE_GUID, isPowerOfTwo, KiB, LOGICAL_SECTOR_GUID,
  MAX_BLOCK_SIZE, MAX_VIRTUAL_SIZE, METADATA_SIGNATURE, METADATA_TABLE_SIZE, MiB, MIN_BLOCK_SIZE, PAGE83_GUID,
  PARENT_LOCATOR_GUID, PARENT_LOCATOR_TYPE_GUID, PHYSICAL_SECTOR_GUID, readU64, view, VhdxFormatError,
  VIRTUAL_DISK_SIZE_GUID, writeU64,
} from './format.js';

export interface VhdxParams {
  blockSize: number;
  /** Fixed disk: all blocks allocated at creation. */
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  virtualSize: number;
  /** Page 83 data / virtual disk id (GUID text). */
  diskId: string;
  logicalSectorSize: 512 | 4096;
  physicalSectorSize: 512 | 4096;
  /** Parent locator key/value pairs (differencing only). */
  parentLocator?: Map<string, string>;
}

interface Item { guid: string; offset: number; length: number; flags: number }

const KNOWN = new Set([FILE_PARAMETERS_GUID, VIRTUAL_DISK_SIZE_GUID, PAGE83_GUID, LOGICAL_SECTOR_GUID, PHYSICAL_SECTOR_GUID, PARENT_LOCATOR_GUID]);

/** Parses the metadata region (`buf` is the whole region). */
export function parseMetadata(path: string, buf: Uint8Array): VhdxParams {
  const dv = view(buf);
  if (buf.length < METADATA_TABLE_SIZE || Buffer.from(buf.subarray(0, 8)).toString('latin1') !== METADATA_SIGNATURE) {
    throw new VhdxFormatError(path, 'metadata table has a bad signature');
  }
  const count = dv.getUint16(10, true);
  if (count > 2047) throw new VhdxFormatError(path, `metadata table has too many entries (${count})`);
  const items = new Map<string, Item>();
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    const it: Item = { guid: bytesToGuid(buf, at), offset: dv.getUint32(at + 16, true), length: dv.getUint32(at + 20, true), flags: dv.getUint32(at + 24, true) };
    if (it.guid === INCOMPLETE_FILE_GUID) throw new VhdxFormatError(path, 'file creation did not finish (incomplete-file marker present)');
    if (items.has(it.guid)) throw new VhdxFormatError(path, `metadata item ${it.guid} appears twice`);
    if (it.length > 0 && (it.offset < METADATA_TABLE_SIZE || it.length > MiB || it.offset + it.length > buf.length)) {
      throw new VhdxFormatError(path, `metadata item ${it.guid} at ${it.offset} length ${it.length} lies outside the metadata region`);
    }
    if ((it.flags & 4) && !KNOWN.has(it.guid)) throw new VhdxFormatError(path, `unsupported required metadata item ${it.guid}`);
    items.set(it.guid, it);
  }
  const need = (g: string, name: string, len: number): DataView => {
    const it = items.get(g);
    if (!it) throw new VhdxFormatError(path, `metadata item "${name}" is missing`);
    if (it.length < len) throw new VhdxFormatError(path, `metadata item "${name}" is too short (${it.length} bytes)`);
    return new DataView(buf.buffer, buf.byteOffset + it.offset, it.length);
  };
  const fp = need(FILE_PARAMETERS_GUID, 'file parameters', 8);
  const blockSize = fp.getUint32(0, true);
  const flags = fp.getUint32(4, true);
  if (!isPowerOfTwo(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
    throw new VhdxFormatError(path, `block size ${blockSize} is not a power of two between 1 MiB and 256 MiB`);
  }
  const virtualSize = readU64(need(VIRTUAL_DISK_SIZE_GUID, 'virtual disk size', 8), 0);
  const logical = need(LOGICAL_SECTOR_GUID, 'logical sector size', 4).getUint32(0, true);
  const physical = need(PHYSICAL_SECTOR_GUID, 'physical sector size', 4).getUint32(0, true);
  if (logical !== 512 && logical !== 4096) throw new VhdxFormatError(path, `logical sector size ${logical} is not 512 or 4096`);
  if (physical !== 512 && physical !== 4096) throw new VhdxFormatError(path, `physical sector size ${physical} is not 512 or 4096`);
  if (virtualSize === 0 || virtualSize > MAX_VIRTUAL_SIZE || virtualSize % logical !== 0) {
    throw new VhdxFormatError(path, `virtual size ${virtualSize} is not a multiple of ${logical} between 1 sector and 64 TB`);
  }
  const p83 = items.get(PAGE83_GUID);
  if (!p83 || p83.length < 16) throw new VhdxFormatError(path, 'metadata item "page 83 data" is missing');
  const params: VhdxParams = {
    blockSize, leaveBlocksAllocated: (flags & 1) !== 0, hasParent: (flags & 2) !== 0, virtualSize,
    diskId: bytesToGuid(buf, p83.offset), logicalSectorSize: logical, physicalSectorSize: physical,
  };
  if (params.hasParent) {
    const pl = items.get(PARENT_LOCATOR_GUID);
    if (!pl) throw new VhdxFormatError(path, 'differencing disk has no parent locator');
    params.parentLocator = parseParentLocator(path, buf.subarray(pl.offset, pl.offset + pl.length));
  }
  return params;
}

function parseParentLocator(path: string, b: Uint8Array): Map<string, string> {
  if (b.length < 20) throw new VhdxFormatError(path, 'parent locator is too short');
  const dv = view(b);
  if (bytesToGuid(b, 0) !== PARENT_LOCATOR_TYPE_GUID) throw new VhdxFormatError(path, 'parent locator has an unknown type');
  const count = dv.getUint16(18, true);
  if (20 + count * 12 > b.length) throw new VhdxFormatError(path, 'parent locator entries run past the item');
  const out = new Map<string, string>();
  const str = (off: number, len: number, what: string): string => {
    if (off + len > b.length || len % 2 !== 0) throw new VhdxFormatError(path, `parent locator ${what} lies outside the item`);
    return Buffer.from(b.subarray(off, off + len)).toString('utf16le');
  };
  for (let i = 0; i < count; i++) {
    const at = 20 + i * 12;
    const k = str(dv.getUint32(at, true), dv.getUint16(at + 8, true), 'key');
    const v = str(dv.getUint32(at + 4, true), dv.getUint16(at + 10, true), 'value');
    out.set(k, v);
  }
  if (!out.has('parent_linkage')) throw new VhdxFormatError(path, 'parent locator has no parent_linkage');
  return out;
}

function serializeParentLocator(kv: Map<string, string>): Uint8Array {
  const entries = [...kv];
  const strings: Buffer[] = [];
  let off = 20 + entries.length * 12;
  const head = Buffer.alloc(off);
  guidToBytes(PARENT_LOCATOR_TYPE_GUID, head, 0);
  head.writeUInt16LE(entries.length, 18);
  entries.forEach(([k, v], i) => {
    const kb = Buffer.from(k, 'utf16le');
    const vb = Buffer.from(v, 'utf16le');
    const at = 20 + i * 12;
    head.writeUInt32LE(off, at); strings.push(kb); off += kb.length;
    head.writeUInt32LE(off, at + 4); strings.push(vb); off += vb.length;
    head.writeUInt16LE(kb.length, at + 8);
    head.writeUInt16LE(vb.length, at + 10);
  });
  return Buffer.concat([head, ...strings]);
}

/** The whole metadata region (`size` bytes): table at 0, items from 64 KiB. */
export function serializeMetadata(p: VhdxParams, size: number): Uint8Array {
  const buf = new Uint8Array(size);
  const dv = view(buf);
  buf.set(Buffer.from(METADATA_SIGNATURE, 'latin1'), 0);
  const items: { guid: string; data: Uint8Array; flags: number }[] = [];
  const fp = new Uint8Array(8); const fdv = view(fp);
  fdv.setUint32(0, p.blockSize, true);
  fdv.setUint32(4, (p.leaveBlocksAllocated ? 1 : 0) | (p.hasParent ? 2 : 0), true);
  items.push({ guid: FILE_PARAMETERS_GUID, data: fp, flags: 4 });
  const vs = new Uint8Array(8); writeU64(view(vs), 0, p.virtualSize);
  items.push({ guid: VIRTUAL_DISK_SIZE_GUID, data: vs, flags: 2 | 4 });
  items.push({ guid: PAGE83_GUID, data: guidToBytes(p.diskId), flags: 2 | 4 });
  const ls = new Uint8Array(4); view(ls).setUint32(0, p.logicalSectorSize, true);
  items.push({ guid: LOGICAL_SECTOR_GUID, data: ls, flags: 2 | 4 });
  const ps = new Uint8Array(4); view(ps).setUint32(0, p.physicalSectorSize, true);
  items.push({ guid: PHYSICAL_SECTOR_GUID, data: ps, flags: 2 | 4 });
  if (p.hasParent && p.parentLocator) items.push({ guid: PARENT_LOCATOR_GUID, data: serializeParentLocator(p.parentLocator), flags: 4 });
  dv.setUint16(10, items.length, true);
  let off = METADATA_TABLE_SIZE;
  items.forEach((it, i) => {
    const at = 32 + i * 32;
    guidToBytes(it.guid, buf, at);
    dv.setUint32(at + 16, off, true);
    dv.setUint32(at + 20, it.data.length, true);
    dv.setUint32(at + 24, it.flags, true);
    buf.set(it.data, off);
    off += Math.ceil(it.data.length / (4 * KiB)) * 4 * KiB;
  });
  return buf;
}

/** File offset within the metadata region of an item's data, or -1. */
export function findItemOffset(buf: Uint8Array, guid: string): number {
  const dv = view(buf);
  const count = Math.min(dv.getUint16(10, true), 2047);
  for (let i = 0; i < count; i++) {
    const at = 32 + i * 32;
    if (bytesToGuid(buf, at) === guid) return dv.getUint32(at + 16, true);
  }
  return -1;
}
