/**
 * A compact WebAssembly binary emitter: just what the block translator needs (one imported memory, imported
 * functions, defined functions with locals, exports) and a code builder with the i32/i64/f64 opcodes used.
 * Bytes are appended to plain number arrays and turned into one Uint8Array at the end.
 */

export const enum T { I32 = 0x7f, I64 = 0x7e, F64 = 0x7c }
/** Block type of a structured instruction that yields nothing. */
export const VOID = 0x40;

export interface FuncType { params: T[]; results: T[] }

/** Unsigned LEB128. */
export function uleb(out: number[], v: number): void {
  if (v < 0 || !Number.isInteger(v)) throw new RangeError(`uleb: ${v}`);
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb32(out: number[], v: number): void {
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) { out.push(b); return; }
    out.push(b | 0x80);
  }
}

/** Signed LEB128 of a 64-bit integer given as 32-bit halves (no BigInt). */
export function sleb64(out: number[], lo: number, hi: number): void {
  lo >>>= 0; hi |= 0;
  for (;;) {
    const b = lo & 0x7f;
    // Arithmetic shift of the 64-bit value right by 7.
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>= 7;
    const done = (hi === 0 && lo === 0 && (b & 0x40) === 0) || (hi === -1 && lo === 0xffffffff && (b & 0x40) !== 0);
    if (done) { out.push(b); return; }
    out.push(b | 0x80);
  }
}

function name(out: number[], s: string): void {
  const b = Buffer.from(s, 'utf8');
  uleb(out, b.length);
  for (const x of b) out.push(x);
}

const scratch = new DataView(new ArrayBuffer(8));

/** Builder of one function body: opcodes appended in order, structured control flow by the caller. */
export class Code {
  readonly b: number[] = [];
  private readonly locals: T[] = [];
  constructor(readonly nParams: number) {}

  /** A new local of type `t`; returns its index. */
  local(t: T): number { this.locals.push(t); return this.nParams + this.locals.length - 1; }

  op(...bytes: number[]): this { for (const x of bytes) this.b.push(x); return this; }
  i32(v: number): this { this.b.push(0x41); sleb32(this.b, v); return this; }
  i64(lo: number, hi: number): this { this.b.push(0x42); sleb64(this.b, lo, hi); return this; }
  /** i64.const of a small signed integer. */
  i64s(v: number): this { return this.i64(v | 0, v < 0 ? -1 : 0); }
  f64(v: number): this {
    this.b.push(0x44);
    scratch.setFloat64(0, v, true);
    for (let k = 0; k < 8; k++) this.b.push(scratch.getUint8(k));
    return this;
  }
  get(l: number): this { this.b.push(0x20); uleb(this.b, l); return this; }
  set(l: number): this { this.b.push(0x21); uleb(this.b, l); return this; }
  tee(l: number): this { this.b.push(0x22); uleb(this.b, l); return this; }
  call(f: number): this { this.b.push(0x10); uleb(this.b, f); return this; }
  /** Tail call through table `table` with function type `type` (the callee's result is this function's). */
  returnCallIndirect(type: number, table = 0): this { this.b.push(0x13); uleb(this.b, type); uleb(this.b, table); return this; }
  block(t: number = VOID): this { return this.op(0x02, t); }
  loop(t: number = VOID): this { return this.op(0x03, t); }
  if(t: number = VOID): this { return this.op(0x04, t); }
  else(): this { return this.op(0x05); }
  end(): this { return this.op(0x0b); }
  br(d: number): this { this.b.push(0x0c); uleb(this.b, d); return this; }
  brIf(d: number): this { this.b.push(0x0d); uleb(this.b, d); return this; }
  brTable(targets: number[], dflt: number): this {
    this.b.push(0x0e); uleb(this.b, targets.length);
    for (const t of targets) uleb(this.b, t);
    uleb(this.b, dflt);
    return this;
  }
  ret(): this { return this.op(0x0f); }
  drop(): this { return this.op(0x1a); }
  select(): this { return this.op(0x1b); }
  /** Memory access: opcode, log2 alignment, offset. */
  mem(opcode: number, align: number, offset: number): this { this.b.push(opcode); uleb(this.b, align); uleb(this.b, offset); return this; }
  i32Load(off = 0): this { return this.mem(0x28, 2, off); }
  i64Load(off = 0): this { return this.mem(0x29, 3, off); }
  f64Load(off = 0): this { return this.mem(0x2b, 3, off); }
  i32Store(off = 0): this { return this.mem(0x36, 2, off); }
  i64Store(off = 0): this { return this.mem(0x37, 3, off); }
  f64Store(off = 0): this { return this.mem(0x39, 3, off); }

  /** The body: local declarations (runs of one type), code, end. */
  bytes(): number[] {
    const out: number[] = [];
    const runs: Array<[number, T]> = [];
    for (const t of this.locals) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === t) last[0]++; else runs.push([1, t]);
    }
    uleb(out, runs.length);
    for (const [n, t] of runs) { uleb(out, n); out.push(t); }
    for (const x of this.b) out.push(x);
    out.push(0x0b);
    return out;
  }
}

/** Opcodes (numeric and conversion) by name. */
export const enum Op {
  I32Eqz = 0x45, I32Eq = 0x46, I32Ne = 0x47, I32LtS = 0x48, I32LtU = 0x49, I32GtS = 0x4a, I32GtU = 0x4b,
  I32LeS = 0x4c, I32LeU = 0x4d, I32GeS = 0x4e, I32GeU = 0x4f,
  I64Eqz = 0x50, I64Eq = 0x51, I64Ne = 0x52, I64LtS = 0x53, I64LtU = 0x54, I64GtS = 0x55, I64GtU = 0x56,
  I64LeS = 0x57, I64LeU = 0x58, I64GeS = 0x59, I64GeU = 0x5a,
  F64Eq = 0x61, F64Ne = 0x62, F64Lt = 0x63, F64Gt = 0x64,
  I32Clz = 0x67, I32Ctz = 0x68, I32Popcnt = 0x69, I32Add = 0x6a, I32Sub = 0x6b, I32Mul = 0x6c, I32DivS = 0x6d,
  I32DivU = 0x6e, I32RemS = 0x6f, I32RemU = 0x70, I32And = 0x71, I32Or = 0x72, I32Xor = 0x73, I32Shl = 0x74,
  I32ShrS = 0x75, I32ShrU = 0x76, I32Rotl = 0x77, I32Rotr = 0x78,
  I64Clz = 0x79, I64Ctz = 0x7a, I64Popcnt = 0x7b, I64Add = 0x7c, I64Sub = 0x7d, I64Mul = 0x7e, I64DivS = 0x7f,
  I64DivU = 0x80, I64RemS = 0x81, I64RemU = 0x82, I64And = 0x83, I64Or = 0x84, I64Xor = 0x85, I64Shl = 0x86,
  I64ShrS = 0x87, I64ShrU = 0x88, I64Rotl = 0x89, I64Rotr = 0x8a,
  F64Add = 0xa0, F64Sub = 0xa1, F64Mul = 0xa2,
  I32WrapI64 = 0xa7, I32TruncF64S = 0xaa, I64ExtendI32S = 0xac, I64ExtendI32U = 0xad, I64TruncF64S = 0xb0,
  F64ConvertI32S = 0xb7, F64ConvertI32U = 0xb8, F64ConvertI64S = 0xb9, F64ConvertI64U = 0xba,
  I32Extend8S = 0xc0, I32Extend16S = 0xc1, I64Extend8S = 0xc2, I64Extend16S = 0xc3, I64Extend32S = 0xc4,
}

interface FuncDef { type: number; code: Code; exportName?: string }

/**
 * One module: imports (an optional memory first, then functions), defined functions, their exports.
 * Function indices: imports first (in the order added), then definitions.
 */
export class ModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly typeKeys = new Map<string, number>();
  private readonly imports: Array<{ mod: string; name: string; type: number }> = [];
  private memImport: { mod: string; name: string; minPages: number; maxPages?: number; shared: boolean } | null = null;
  private tableImport: { mod: string; name: string; min: number } | null = null;
  private readonly funcs: FuncDef[] = [];
  /** Active element segments: [table slot, function index] placed into table 0 at instantiation. */
  private readonly elems: Array<[number, number]> = [];

  type(params: T[], results: T[]): number {
    const key = `${params.join(',')}:${results.join(',')}`;
    let i = this.typeKeys.get(key);
    if (i === undefined) { i = this.types.length; this.types.push({ params, results }); this.typeKeys.set(key, i); }
    return i;
  }

  importMemory(mod: string, nm: string, minPages: number, maxPages?: number, shared = false): void {
    this.memImport = { mod, name: nm, minPages, maxPages, shared };
  }

  /** Import a funcref table (table 0). */
  importTable(mod: string, nm: string, min: number): void { this.tableImport = { mod, name: nm, min }; }

  /** Import a function; returns its index. All imports must come before the first `func`. */
  importFunc(mod: string, nm: string, params: T[], results: T[]): number {
    if (this.funcs.length > 0) throw new Error('imports must precede function definitions');
    this.imports.push({ mod, name: nm, type: this.type(params, results) });
    return this.imports.length - 1;
  }

  /** Define a function; fill the returned Code's body, then `build`. */
  func(params: T[], results: T[], exportName?: string): { index: number; code: Code } {
    const code = new Code(params.length);
    this.funcs.push({ type: this.type(params, results), code, exportName });
    return { index: this.imports.length + this.funcs.length - 1, code };
  }

  /** Put function `func` into slot `slot` of the imported table when the module is instantiated. */
  elem(slot: number, func: number): void { this.elems.push([slot, func]); }

  build(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, body: number[]): void => { out.push(id); uleb(out, body.length); for (const x of body) out.push(x); };
    // Type section
    const ts: number[] = [];
    uleb(ts, this.types.length);
    for (const t of this.types) {
      ts.push(0x60);
      uleb(ts, t.params.length); for (const p of t.params) ts.push(p);
      uleb(ts, t.results.length); for (const r of t.results) ts.push(r);
    }
    section(1, ts);
    // Import section
    const nImports = this.imports.length + (this.memImport ? 1 : 0) + (this.tableImport ? 1 : 0);
    if (nImports > 0) {
      const is: number[] = [];
      uleb(is, nImports);
      if (this.memImport) {
        const m = this.memImport;
        name(is, m.mod); name(is, m.name); is.push(0x02);
        is.push(m.maxPages === undefined ? 0x00 : m.shared ? 0x03 : 0x01);
        uleb(is, m.minPages);
        if (m.maxPages !== undefined) uleb(is, m.maxPages);
      }
      if (this.tableImport) {
        const t = this.tableImport;
        name(is, t.mod); name(is, t.name); is.push(0x01, 0x70, 0x00); uleb(is, t.min);
      }
      for (const f of this.imports) { name(is, f.mod); name(is, f.name); is.push(0x00); uleb(is, f.type); }
      section(2, is);
    }
    // Function section
    const fs: number[] = [];
    uleb(fs, this.funcs.length);
    for (const f of this.funcs) uleb(fs, f.type);
    section(3, fs);
    // Export section
    const exported = this.funcs.map((f, k) => [f, k] as const).filter(([f]) => f.exportName !== undefined);
    const es: number[] = [];
    uleb(es, exported.length);
    for (const [f, k] of exported) { name(es, f.exportName!); es.push(0x00); uleb(es, this.imports.length + k); }
    section(7, es);
    // Element section: one active segment per (slot, function), offsets as i32.const
    if (this.elems.length > 0) {
      const el: number[] = [];
      uleb(el, this.elems.length);
      for (const [slot, f] of this.elems) { el.push(0x00, 0x41); sleb32(el, slot); el.push(0x0b, 0x01); uleb(el, f); }
      section(9, el);
    }
    // Code section
    const cs: number[] = [];
    uleb(cs, this.funcs.length);
    for (const f of this.funcs) { const body = f.code.bytes(); uleb(cs, body.length); for (const x of body) cs.push(x); }
    section(10, cs);
    return new Uint8Array(out);
  }
}
