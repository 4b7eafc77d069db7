/**
 * The saved-state file (Hyper-V's .vmrs, written by Save-VM): everything a partition needs to carry on
 * exactly where it stopped, in one file.
 *
 * Layout (little-endian):
 *   0  16 bytes  magic "HYPERTS SAVED VM"
 *  16  u32       format version (SAVED_STATE_VERSION)
 *  20  u32       length M of the description (JSON: VM name, memory size, processors, save time...)
 *  24  32 bytes  SHA-256 of everything from offset 56 to the end of the file
 *  56  M bytes   description
 *      u32 S + S bytes  device and processor state: zlib-deflated JSON (typed arrays, bigints and
 *                       non-finite numbers tagged, see pack/unpack)
 *      u32 B + B bytes  bitmap of the guest's non-zero 4 KiB pages (bit i = RAM page i)
 *      rest             zlib-deflated contents of those pages, in order
 *
 * Reading checks the magic, version, checksum and every length before anything is decoded, and the
 * decoded state against the shape a fresh partition of this build produces, so a corrupt, truncated or
 * foreign file ends in a SavedStateError that says what is wrong, never in a half-restored VM.
 */
import { createHash } from 'node:crypto';
import { deflateSync, inflateSync, constants as zc } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './state-files.js';

export const SAVED_STATE_VERSION = 1;
const MAGIC = 'HYPERTS SAVED VM';
const HEADER = 56;
const PAGE = 4096;
/** A saved state larger than this is not ours (guards the decoder's allocations). */
const MAX_STATE_JSON = 256 * 1024 * 1024;

export class SavedStateError extends Error {}

/** What the file says about the VM it holds (checked against the VM it is restored into). */
export interface SavedStateInfo {
  name: string;
  processor: string;
  memoryBytes: number;
  cpus: number;
  enlightened: boolean;
  /** ISO time of the save (host clock). */
  savedAt: string;
  /** Virtual nanoseconds the partition had run (its uptime base). */
  virtualTimeNs: number;
  clockMode: string;
}

export interface DecodedSavedState {
  info: SavedStateInfo;
  state: unknown;
  /** Copies the saved RAM image into `ram` (which must have the saved size). */
  loadMemory(ram: Uint8Array): void;
}

// ---- value tagging: JSON with typed arrays, Uint8Arrays, bigints and NaN/Infinity --------------------

const TYPED: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array,
};

export function pack(v: unknown): unknown {
  if (typeof v === 'bigint') return { $big: v.toString() };
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $num: String(v) };
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v)) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return { $ta: v.constructor.name, b64: b.toString('base64') };
  }
  if (Array.isArray(v)) return v.map(pack);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined && typeof x !== 'function') out[k] = pack(x);
  return out;
}

export function unpack(v: unknown, path = 'state'): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x, i) => unpack(x, `${path}[${i}]`));
  const o = v as Record<string, unknown>;
  if ('$big' in o) {
    if (typeof o.$big !== 'string' || !/^-?\d{1,40}$/.test(o.$big)) throw new SavedStateError(`${path}: bad integer`);
    return BigInt(o.$big);
  }
  if ('$num' in o) {
    if (o.$num === 'NaN') return NaN;
    if (o.$num === 'Infinity') return Infinity;
    if (o.$num === '-Infinity') return -Infinity;
    throw new SavedStateError(`${path}: bad number`);
  }
  if ('$ta' in o) {
    const ctor = TYPED[o.$ta as string];
    if (!ctor || typeof o.b64 !== 'string') throw new SavedStateError(`${path}: bad array`);
    const raw = Buffer.from(o.b64, 'base64');
    const size = (ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    if (raw.length % size !== 0) throw new SavedStateError(`${path}: array of ${raw.length} bytes`);
    const ab = new ArrayBuffer(raw.length);
    new Uint8Array(ab).set(raw);
    return new ctor(ab);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = unpack(x, `${path}.${k}`);
  return out;
}

/**
 * Checks `value` has the shape of `template` (the state a fresh partition of this build produces): same
 * keys, same primitive types, typed arrays of the same kind and length; array elements against the
 * template's first element; `null` in the template accepts anything (filled in by the owner's checks).
 */
export function checkShape(template: unknown, value: unknown, path = 'state'): void {
  const kind = (x: unknown): string => x === null ? 'null' : Array.isArray(x) ? 'array' : ArrayBuffer.isView(x) ? `${x.constructor.name}` : typeof x;
  if (template === null || template === undefined) return;
  const tk = kind(template), vk = kind(value);
  if (tk !== vk) throw new SavedStateError(`${path} should be ${tk}, found ${vk}`);
  if (ArrayBuffer.isView(template)) {
    if ((template as unknown as { length: number }).length !== (value as unknown as { length: number }).length) throw new SavedStateError(`${path} has the wrong length`);
    return;
  }
  if (Array.isArray(template)) {
    if (template.length > 0) (value as unknown[]).forEach((x, i) => checkShape(template[0], x, `${path}[${i}]`));
    return;
  }
  if (tk !== 'object') return;
  const t = template as Record<string, unknown>, v = value as Record<string, unknown>;
  for (const k of Object.keys(v)) if (!(k in t)) throw new SavedStateError(`${path}.${k} is unknown to this version of hyperts`);
  for (const k of Object.keys(t)) {
    if (!(k in v)) {
      if (t[k] === null) continue;
      throw new SavedStateError(`${path}.${k} is missing`);
    }
    checkShape(t[k], v[k], `${path}.${k}`);
  }
}

// ---- file encoding ------------------------------------------------------------------------------------

const ZERO_PAGE = Buffer.alloc(PAGE);

/** Encodes a saved state. Synchronous on purpose: the snapshot is taken in one turn of the event loop. */
export function encodeSavedState(info: SavedStateInfo, state: unknown, ram: Uint8Array): Buffer {
  const meta = Buffer.from(JSON.stringify(info));
  const stateZ = deflateSync(Buffer.from(JSON.stringify(pack(state))));
  const pages = Math.ceil(ram.length / PAGE);
  const bitmap = Buffer.alloc(Math.ceil(pages / 8));
  const mem = Buffer.from(ram.buffer, ram.byteOffset, ram.length);
  // Runs of non-zero pages are copied once into one buffer, then deflated (zero pages cost one bit).
  const runs: Buffer[] = [];
  let runStart = -1;
  for (let p = 0; p < pages; p++) {
    const end = Math.min((p + 1) * PAGE, ram.length);
    const nonZero = !mem.subarray(p * PAGE, end).equals(end - p * PAGE === PAGE ? ZERO_PAGE : ZERO_PAGE.subarray(0, end - p * PAGE));
    if (nonZero) { bitmap[p >> 3] |= 1 << (p & 7); if (runStart < 0) runStart = p; }
    if ((!nonZero || p === pages - 1) && runStart >= 0) {
      runs.push(mem.subarray(runStart * PAGE, nonZero ? end : p * PAGE));
      runStart = -1;
    }
  }
  const memZ = deflateSync(Buffer.concat(runs), { level: zc.Z_BEST_SPEED });
  const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  const body = Buffer.concat([meta, u32(stateZ.length), stateZ, u32(bitmap.length), bitmap, memZ]);
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(SAVED_STATE_VERSION, 16);
  head.writeUInt32LE(meta.length, 20);
  createHash('sha256').update(body).digest().copy(head, 24);
  return Buffer.concat([head, body]);
}

export function decodeSavedState(file: Uint8Array, source = 'the saved state'): DecodedSavedState {
  const b = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const bad = (why: string): SavedStateError => new SavedStateError(`${source} is not usable: ${why}`);
  if (b.length < HEADER || b.toString('latin1', 0, 16) !== MAGIC) throw bad('it is not a hyperts saved-state file');
  const version = b.readUInt32LE(16);
  if (version !== SAVED_STATE_VERSION) throw bad(`format version ${version}, this hyperts reads version ${SAVED_STATE_VERSION}`);
  const digest = createHash('sha256').update(b.subarray(HEADER)).digest();
  if (!digest.equals(b.subarray(24, HEADER))) throw bad('the checksum does not match (the file is truncated or corrupt)');
  let off = HEADER;
  const take = (n: number, what: string): Buffer => {
    if (n < 0 || off + n > b.length) throw bad(`${what} runs past the end of the file`);
    const s = b.subarray(off, off + n);
    off += n;
    return s;
  };
  const u32 = (what: string): number => take(4, what).readUInt32LE(0);
  let info: SavedStateInfo;
  try {
    info = JSON.parse(take(b.readUInt32LE(20), 'the description').toString('utf8')) as SavedStateInfo;
  } catch (e) {
    if (e instanceof SavedStateError) throw e;
    throw bad('the description is not valid JSON');
  }
  if (typeof info !== 'object' || info === null || !Number.isSafeInteger(info.memoryBytes) || info.memoryBytes <= 0 ||
    info.memoryBytes % PAGE !== 0 || !Number.isInteger(info.cpus) || typeof info.enlightened !== 'boolean') {
    throw bad('the description is incomplete');
  }
  const stateZ = take(u32('the state'), 'the state');
  let state: unknown;
  try {
    state = unpack(JSON.parse(inflateSync(stateZ, { maxOutputLength: MAX_STATE_JSON }).toString('utf8')));
  } catch (e) {
    if (e instanceof SavedStateError) throw bad(e.message);
    throw bad(`the device state cannot be decoded (${(e as Error).message})`);
  }
  const pages = info.memoryBytes / PAGE;
  const bitmap = take(u32('the page map'), 'the page map');
  if (bitmap.length !== Math.ceil(pages / 8)) throw bad(`the page map covers ${bitmap.length * 8} pages, memory has ${pages}`);
  let nonZero = 0;
  for (let p = 0; p < pages; p++) if (bitmap[p >> 3] & (1 << (p & 7))) nonZero++;
  const memZ = b.subarray(off);
  return {
    info, state,
    loadMemory(ram: Uint8Array): void {
      if (ram.length !== info.memoryBytes) throw new SavedStateError(`${source} holds ${info.memoryBytes} bytes of memory, the VM has ${ram.length}`);
      let data: Buffer;
      try {
        data = inflateSync(memZ, { maxOutputLength: nonZero * PAGE + 1 });
      } catch (e) {
        throw bad(`the memory image cannot be decoded (${(e as Error).message})`);
      }
      if (data.length !== nonZero * PAGE) throw bad(`the memory image holds ${data.length} bytes, the page map says ${nonZero * PAGE}`);
      const mem = Buffer.from(ram.buffer, ram.byteOffset, ram.length);
      let src = 0;
      for (let p = 0; p < pages; p++) {
        if (bitmap[p >> 3] & (1 << (p & 7))) { ram.set(data.subarray(src, src + PAGE), p * PAGE); src += PAGE; continue; }
        // Only pages that hold something are cleared: writing every page would make all of RAM resident.
        const page = mem.subarray(p * PAGE, (p + 1) * PAGE);
        if (!page.equals(ZERO_PAGE)) page.fill(0);
      }
    },
  };
}

/** Writes the file atomically (a crash mid-write leaves the previous file, or none, never half of one). */
export function writeSavedStateFile(path: string, data: Uint8Array): void {
  writeFileAtomic(path, data);
}

export function readSavedStateFile(path: string): DecodedSavedState {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SavedStateError(code === 'ENOENT' ? `saved-state file '${path}' does not exist` : `cannot read saved-state file '${path}': ${(e as Error).message}`);
  }
  return decodeSavedState(bytes, `saved-state file '${path}'`);
}
