/**
 * The WebAssembly emitter: modules it builds validate and compute what they should (LEB128 corners, control
 * flow, memory import shared with JS, function imports), and random i64 arithmetic sequences agree with a
 * BigInt reference computed here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ModuleBuilder, T, Op, sleb32, sleb64, uleb } from '../../../../src/processor/emulated/wasm/emitter.js';

function instantiate(bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): WebAssembly.Exports {
  assert.ok(WebAssembly.validate(bytes), 'module validates');
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}

test('LEB128 encodings match the specification examples', () => {
  const u: number[] = []; uleb(u, 624485); assert.deepEqual(u, [0xe5, 0x8e, 0x26]);
  const s: number[] = []; sleb32(s, -123456); assert.deepEqual(s, [0xc0, 0xbb, 0x78]);
  const z: number[] = []; sleb32(z, 64); assert.deepEqual(z, [0xc0, 0x00]);
  const m: number[] = []; sleb64(m, 0, 0x80000000); assert.equal(m.length, 10);
  const n: number[] = []; sleb64(n, -1, -1); assert.deepEqual(n, [0x7f]);
});

test('constants survive the round trip through i32/i64/f64 const', () => {
  const mb = new ModuleBuilder();
  const cases: Array<[number, number]> = [[0, 0], [-1, -1], [0x7fffffff, 0], [0x80000000 | 0, -1], [0, 0x80000000 | 0], [0x12345678, 0x9abcdef0 | 0], [63, 0], [64, 0], [-64, -1], [-65, -1]];
  cases.forEach(([lo, hi], k) => {
    const { code } = mb.func([], [T.I32], `lo${k}`);
    code.i64(lo, hi).op(Op.I32WrapI64);
    const f = mb.func([], [T.I32], `hi${k}`);
    f.code.i64(lo, hi).i64s(32).op(Op.I64ShrS, Op.I32WrapI64);
  });
  const fk = mb.func([], [T.F64], 'f');
  fk.code.f64(-2130706432.5);
  const e = instantiate(mb.build()) as Record<string, () => number>;
  cases.forEach(([lo, hi], k) => {
    assert.equal(e[`lo${k}`](), lo | 0);
    assert.equal(e[`hi${k}`](), hi | 0);
  });
  assert.equal(e.f(), -2130706432.5);
});

test('loops, br_if, br_table, if/else, calls and imports work together with a shared memory', () => {
  const mb = new ModuleBuilder();
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  mb.importMemory('env', 'mem', 1, 1);
  const seen: number[] = [];
  const log = mb.importFunc('env', 'log', [T.I32], []);
  // sum(n): 1 + 2 + ... + n with a loop, calling log for each multiple of 10
  const sum = mb.func([T.I32], [T.I32], 'sum');
  {
    const c = sum.code, acc = c.local(T.I32);
    c.block().loop();
    c.get(0).op(Op.I32Eqz).brIf(1);
    c.get(acc).get(0).op(Op.I32Add).set(acc);
    c.get(0).i32(10).op(Op.I32RemU, Op.I32Eqz).if().get(0).call(log).end();
    c.get(0).i32(1).op(Op.I32Sub).set(0);
    c.br(0).end().end();
    c.get(acc);
  }
  // pick(k): br_table over 3 cases + default
  const pick = mb.func([T.I32], [T.I32], 'pick');
  {
    const c = pick.code;
    c.block().block().block().block();
    c.get(0).brTable([0, 1, 2], 3);
    c.end().i32(100).ret();
    c.end().i32(200).ret();
    c.end().i32(300).ret();
    c.end().i32(-1);
  }
  // twice(x) calls sum (a defined function) and writes the result into memory at 16 as i64
  const twice = mb.func([T.I32], [], 'store');
  twice.code.i32(16).get(0).call(sum.index).op(Op.I64ExtendI32S).i64s(2).op(Op.I64Mul).i64Store(0);
  // sel(c): select between two i32
  const sel = mb.func([T.I32], [T.I32], 'sel');
  sel.code.i32(7).i32(9).get(0).select();
  const e = instantiate(mb.build(), { env: { mem: memory, log: (x: number) => seen.push(x) } }) as Record<string, (x: number) => number>;
  assert.equal(e.sum(25), 325);
  assert.deepEqual(seen, [20, 10]);
  assert.deepEqual([0, 1, 2, 3, 99].map(e.pick), [100, 200, 300, -1, -1]);
  e.store(4);
  assert.equal(new Int32Array(memory.buffer)[4], 20);
  assert.equal(e.sel(1), 7);
  assert.equal(e.sel(0), 9);
});

test('a JS exception thrown by an import unwinds through wasm frames', () => {
  const mb = new ModuleBuilder();
  const boom = mb.importFunc('env', 'boom', [], []);
  const f = mb.func([], [T.I32], 'f');
  f.code.call(boom).i32(1);
  const marker = new Error('fault');
  const e = instantiate(mb.build(), { env: { boom: () => { throw marker; } } }) as Record<string, () => number>;
  assert.throws(() => e.f(), (x) => x === marker);
});

// ---- property: random i64 arithmetic sequences against BigInt (computed in the test only)
const M64 = (1n << 64n) - 1n;
const toS = (v: bigint): bigint => BigInt.asIntN(64, v);
const ops = ['add', 'sub', 'mul', 'and', 'or', 'xor', 'shl', 'shrs', 'shru', 'rotl', 'rotr'] as const;
type Step = { op: typeof ops[number]; lo: number; hi: number };
const OPCODE: Record<Step['op'], number> = {
  add: Op.I64Add, sub: Op.I64Sub, mul: Op.I64Mul, and: Op.I64And, or: Op.I64Or, xor: Op.I64Xor,
  shl: Op.I64Shl, shrs: Op.I64ShrS, shru: Op.I64ShrU, rotl: Op.I64Rotl, rotr: Op.I64Rotr,
};

function reference(start: bigint, steps: Step[]): bigint {
  let v = start & M64;
  for (const s of steps) {
    const b = ((BigInt(s.hi >>> 0) << 32n) | BigInt(s.lo >>> 0)) & M64;
    const sh = b & 63n;
    switch (s.op) {
      case 'add': v = (v + b) & M64; break;
      case 'sub': v = (v - b) & M64; break;
      case 'mul': v = (v * b) & M64; break;
      case 'and': v &= b; break;
      case 'or': v |= b; break;
      case 'xor': v ^= b; break;
      case 'shl': v = (v << sh) & M64; break;
      case 'shrs': v = BigInt.asUintN(64, toS(v) >> sh); break;
      case 'shru': v >>= sh; break;
      case 'rotl': v = ((v << sh) | (v >> ((64n - sh) & 63n))) & M64; break;
      case 'rotr': v = ((v >> sh) | (v << ((64n - sh) & 63n))) & M64; break;
    }
  }
  return v;
}

test('property: i64 arithmetic sequences built by the emitter agree with BigInt', () => {
  const step = fc.record({ op: fc.constantFrom(...ops), lo: fc.integer({ min: -0x80000000, max: 0x7fffffff }), hi: fc.integer({ min: -0x80000000, max: 0x7fffffff }) });
  fc.assert(fc.property(fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.array(step, { maxLength: 24 }), (lo, hi, steps) => {
    const mb = new ModuleBuilder();
    const memory = new WebAssembly.Memory({ initial: 1 });
    mb.importMemory('env', 'mem', 1);
    const f = mb.func([], [], 'run');
    const c = f.code, v = c.local(T.I64);
    c.i64(lo, hi).set(v);
    for (const s of steps) c.get(v).i64(s.lo, s.hi).op(OPCODE[s.op]).set(v);
    c.i32(0).get(v).i64Store(0);
    const e = instantiate(mb.build(), { env: { mem: memory } }) as Record<string, () => void>;
    e.run();
    const w = new Uint32Array(memory.buffer, 0, 2);
    const got = (BigInt(w[1]) << 32n) | BigInt(w[0]);
    const start = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    assert.equal(got, reference(start, steps));
  }), { numRuns: 300 });
});
