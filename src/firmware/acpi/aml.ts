/**
 * AML (ACPI Machine Language) encoder, ACPI 6.4 chapter 20. Objects are built as byte arrays and nested by
 * the helpers; only what our DSDT needs, but each construct is encoded completely.
 */
export type Aml = number[];
export type AmlData = Aml | number | string;

/** PkgLength followed by the body (ACPI 20.2.4): the length counts itself. */
export function pkg(body: Aml): Aml {
  const n = body.length;
  if (n + 1 <= 0x3f) return [n + 1, ...body];
  for (let bytes = 2; bytes <= 4; bytes++) {
    const total = n + bytes;
    if (total < 1 << (4 + 8 * (bytes - 1))) {
      const out = [((bytes - 1) << 6) | (total & 0xf)];
      for (let i = 1; i < bytes; i++) out.push((total >>> (4 + 8 * (i - 1))) & 0xff);
      return [...out, ...body];
    }
  }
  throw new RangeError('AML package too large');
}

/** NameString: "\\_SB.COM1", "^FOO", "_HID"; segments are padded with '_' to four characters. */
export function nameString(path: string): Aml {
  let i = 0;
  const out: Aml = [];
  if (path[0] === '\\') { out.push(0x5c); i = 1; } else while (path[i] === '^') { out.push(0x5e); i++; }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.');
  for (const s of segs) if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(s)) throw new Error(`bad AML name segment '${s}' in '${path}'`);
  const seg = (s: string): Aml => [...s.padEnd(4, '_')].map((c) => c.charCodeAt(0));
  if (segs.length === 0) out.push(0x00);
  else if (segs.length === 1) out.push(...seg(segs[0]));
  else if (segs.length === 2) out.push(0x2e, ...seg(segs[0]), ...seg(segs[1]));
  else out.push(0x2f, segs.length, ...segs.flatMap(seg));
  return out;
}

export function integer(v: number): Aml {
  if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) throw new RangeError(`AML integer out of range: ${v}`);
  if (v === 0) return [0x00];
  if (v === 1) return [0x01];
  if (v <= 0xff) return [0x0a, v];
  if (v <= 0xffff) return [0x0b, v & 0xff, v >>> 8];
  if (v <= 0xffffffff) return [0x0c, ...le(v, 4)];
  return [0x0e, ...le(v, 8)];
}

export function string(s: string): Aml {
  const out: Aml = [0x0d];
  for (const c of s) {
    const code = c.charCodeAt(0);
    if (code < 1 || code > 0x7f) throw new Error(`AML strings are ASCII without NUL: ${JSON.stringify(s)}`);
    out.push(code);
  }
  out.push(0);
  return out;
}

/** A data object: numbers become integers, strings become strings, byte arrays pass through (already AML). */
function data(d: AmlData): Aml { return typeof d === 'number' ? integer(d) : typeof d === 'string' ? string(d) : d; }

export function buffer(bytes: ArrayLike<number>): Aml {
  return [0x11, ...pkg([...integer(bytes.length), ...Array.from(bytes)])];
}

export function packageOf(elements: AmlData[]): Aml {
  if (elements.length > 255) throw new RangeError('use VarPackage for more than 255 elements');
  return [0x12, ...pkg([elements.length, ...elements.flatMap(data)])];
}

export function name(n: string, value: AmlData): Aml { return [0x08, ...nameString(n), ...data(value)]; }

export function scope(n: string, body: Aml[]): Aml { return [0x10, ...pkg([...nameString(n), ...body.flat()])]; }

export function device(n: string, body: Aml[]): Aml { return [0x5b, 0x82, ...pkg([...nameString(n), ...body.flat()])]; }

/** Method with `args` (0..7) arguments; serialized methods get flag bit 3. */
export function method(n: string, args: number, serialized: boolean, body: Aml[]): Aml {
  if (args < 0 || args > 7) throw new RangeError('AML methods take 0..7 arguments');
  return [0x14, ...pkg([...nameString(n), (args & 7) | (serialized ? 8 : 0), ...body.flat()])];
}

export function returnOf(v: AmlData): Aml { return [0xa4, ...data(v)]; }

/** EISAID("PNP0501") as the compressed 32-bit EISA id integer. */
export function eisaId(id: string): Aml {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new Error(`bad EISA id '${id}'`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const hex = parseInt(id.slice(3), 16);
  const v = ((c(0) << 26) | (c(1) << 21) | (c(2) << 16) | hex) >>> 0;
  // The integer is stored so its bytes read big-endian: swap to little-endian DWord order.
  const swapped = (((v >>> 24) & 0xff) | ((v >>> 8) & 0xff00) | ((v << 8) & 0xff0000) | ((v << 24) >>> 0)) >>> 0;
  return integer(swapped);
}

// ---- Resource templates (ACPI 6.4 section 6.4) ----

export type Resource = number[];

/** ResourceTemplate(): the descriptors as a Buffer, closed by an End Tag with checksum 0 ("ignore"). */
export function resourceTemplate(descs: Resource[]): Aml {
  return buffer([...descs.flat(), 0x79, 0x00]);
}

/** IRQNoFlags() (2-byte form) or IRQ(Edge/Level, ActiveHigh/Low, Exclusive/Shared) (3-byte form). */
export function irq(irqs: number[], flags?: { level: boolean; activeLow: boolean; shared: boolean }): Resource {
  let mask = 0;
  for (const i of irqs) { if (i < 0 || i > 15) throw new RangeError(`ISA IRQ ${i}`); mask |= 1 << i; }
  if (!flags) return [0x22, mask & 0xff, mask >>> 8];
  const f = (flags.level ? 0 : 1) | (flags.activeLow ? 8 : 0) | (flags.shared ? 0x10 : 0);
  return [0x23, mask & 0xff, mask >>> 8, f];
}

/** IO(Decode16, min, max, alignment, length). */
export function io(min: number, max: number, alignment: number, length: number): Resource {
  return [0x47, 0x01, min & 0xff, (min >>> 8) & 0xff, max & 0xff, (max >>> 8) & 0xff, alignment & 0xff, length & 0xff];
}

/** Memory32Fixed(ReadWrite|ReadOnly, base, length). */
export function memory32Fixed(base: number, length: number, writable = true): Resource {
  return [0x86, 9, 0, writable ? 1 : 0, ...le(base, 4), ...le(length, 4)];
}

/** QWordMemory(ResourceProducer/Consumer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, gran, min, max, tra, len). */
export function qwordMemory(min: number, length: number, opts: { producer?: boolean; cacheable?: boolean; writable?: boolean } = {}): Resource {
  const max = min + length - 1;
  const general = (opts.producer ? 0 : 1) | 0x04 | 0x08; // consumer bit, MinFixed, MaxFixed
  const specific = (opts.writable === false ? 0 : 1) | ((opts.cacheable ? 1 : 0) << 1);
  const body = [0 /* memory range */, general, specific, ...le(0, 8), ...le(min, 8), ...le(max, 8), ...le(0, 8), ...le(length, 8)];
  return [0x8a, body.length & 0xff, body.length >>> 8, ...body];
}

/** Interrupt(ResourceConsumer, Level/Edge, ActiveHigh/Low, Exclusive/Shared) { gsi, ... } (Extended IRQ). */
export function interrupt(gsis: number[], flags: { level: boolean; activeLow: boolean; shared: boolean; producer?: boolean }): Resource {
  if (gsis.length < 1 || gsis.length > 255) throw new RangeError('Interrupt() takes 1..255 interrupts');
  const f = (flags.producer ? 0 : 1) | (flags.level ? 0 : 2) | (flags.activeLow ? 4 : 0) | (flags.shared ? 8 : 0);
  const body = [f, gsis.length, ...gsis.flatMap((g) => le(g, 4))];
  return [0x89, body.length & 0xff, body.length >>> 8, ...body];
}

export function le(v: number, bytes: number): number[] {
  const out: number[] = [];
  let x = v;
  for (let i = 0; i < bytes; i++) { out.push(x % 256); x = Math.floor(x / 256); }
  return out;
}

/** Address space descriptor flags: general (bit 0 consumer, bit 2 MinFixed, bit 3 MaxFixed). */
const ADDR_PRODUCER_FIXED = 0x0c;

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len): a root bridge's buses. */
export function wordBusNumber(min: number, max: number): Resource {
  return wordAddress(2, 0, min, max);
}

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len): an I/O window. */
export function wordIo(min: number, max: number): Resource {
  return wordAddress(1, 0x03, min, max);
}

function wordAddress(type: number, specific: number, min: number, max: number): Resource {
  if (min < 0 || max > 0xffff || max < min) throw new RangeError(`word address range ${min}-${max}`);
  const body = [type, ADDR_PRODUCER_FIXED, specific, ...le(0, 2), ...le(min, 2), ...le(max, 2), ...le(0, 2), ...le(max - min + 1, 2)];
  return [0x88, body.length & 0xff, body.length >>> 8, ...body];
}

/** DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, min, max, 0, len). */
export function dwordMemoryWindow(min: number, max: number): Resource {
  if (min < 0 || max > 0xffffffff || max < min) throw new RangeError(`dword memory range ${min}-${max}`);
  const body = [0, ADDR_PRODUCER_FIXED, 0x01, ...le(0, 4), ...le(min, 4), ...le(max, 4), ...le(0, 4), ...le(max - min + 1, 4)];
  return [0x87, body.length & 0xff, body.length >>> 8, ...body];
}
