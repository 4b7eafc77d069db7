/**
 * The execution core's fast paths against its plain interpreter: translated blocks (jit.ts) on random
 * integer programs, faults and self-modifying stores inside translated blocks, and the bulk rep movs/stos
 * paths against an element-by-element reference.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine, type EmulatedTestMachine } from '../../../src/processor/emulated/testing.js';
import { setJitThreshold, jitThreshold, setJitEngine, jitEngine, type JitEngine } from '../../../src/processor/emulated/jit.js';
import { assemble, assembleMany } from './asm.js';

const CODE = 0x400000;
const DATA = 0x600000;
const defaultThreshold = jitThreshold;
const defaultEngine = jitEngine;
after(() => { setJitThreshold(defaultThreshold); setJitEngine(defaultEngine); });
/** Both translators are checked against the interpreter (the default one and the other). */
const ENGINES: JitEngine[] = ['wasm', 'js'];

/** Small deterministic PRNG (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
}

function machineWith(code: Uint8Array, regs: bigint[], data: Uint8Array): EmulatedTestMachine {
  const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
  m.map(CODE, 0x10000, { writable: true, exec: true });
  m.map(DATA, 0x10000, { writable: true });
  m.writeVirt(CODE, code);
  m.writeVirt(DATA, data);
  regs.forEach((v, r) => m.setReg(r, v));
  m.rip = BigInt(CODE);
  return m;
}

interface Outcome { kind: string; vector?: number; rip: bigint; regs: bigint[]; rflags: bigint; data: string; insns: number }

function runWith(threshold: number, code: Uint8Array, regs: bigint[], data: Uint8Array): Outcome {
  setJitThreshold(threshold);
  const m = machineWith(code, regs, data);
  const r = m.run({ maxInsns: 200_000 });
  const out: Outcome = {
    kind: r.kind, rip: m.rip, rflags: m.rflags & 0x8d5n, insns: r.insns,
    regs: Array.from({ length: 16 }, (_, k) => m.getReg(k)), data: Buffer.from(m.readVirt(DATA, 0x4000)).toString('hex'),
  };
  if (r.kind === 'exception') out.vector = r.vector;
  return out;
}

// rsp, rsi and rdi hold pointers and r15 counts the outer loop: generated code leaves them alone.
const R64 = ['rax', 'rbx', 'rcx', 'rdx', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'];
const R32 = ['eax', 'ebx', 'ecx', 'edx', 'ebp', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d'];
const R8 = ['al', 'bl', 'cl', 'dl', 'ah', 'bh', 'ch', 'dh'];
const R16 = ['ax', 'bx', 'cx', 'dx', 'r8w', 'r9w'];
const ALU = ['add', 'sub', 'and', 'or', 'xor', 'cmp'];
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

/** One random instruction (or short sequence) from the translated forms, with some interpreted ones mixed in. */
function randomInsn(next: () => number, label: () => string): string {
  const pick = <T>(xs: T[]): T => xs[next() % xs.length];
  const d = () => (next() % 0x600) - 0x300;
  const m = () => `[${pick(['rsi', 'rdi'])} ${d() < 0 ? '-' : '+'} ${Math.abs(d())}]`;
  const mi = () => `[rdi + rsi*1 + ${d() - DATA}]`; // DATA + 0x2000 + d
  const imm = () => pick([0, 1, -1, 0x7f, -0x80, 0x7fffffff, -0x80000000, next() | 0, (next() % 200) - 100]);
  switch (next() % 25) {
    case 0: return `mov ${pick(R64)}, ${pick(R64)}`;
    case 1: return `mov ${pick(R32)}, ${pick(R32)}`;
    case 2: return `mov ${pick(R64)}, qword ptr ${m()}`;
    case 3: return `mov ${pick(R32)}, dword ptr ${pick([m(), mi()])}`;
    case 4: return `mov qword ptr ${m()}, ${pick(R64)}`;
    case 5: return `mov dword ptr ${m()}, ${pick(R32)}`;
    case 6: return `mov byte ptr ${m()}, ${pick(R8)}`;
    case 7: return pick([`mov ${pick(R64)}, ${imm()}`, `mov ${pick(R32)}, ${imm()}`, `movabs ${pick(R64)}, ${next() * 4294967296 + next()}`, `mov qword ptr ${m()}, ${imm()}`, `mov dword ptr ${m()}, ${imm()}`]);
    case 8: return pick([`lea ${pick(R64)}, [${pick(R64)} + ${pick(R64)}*${pick([1, 2, 4, 8])} ${d() < 0 ? '-' : '+'} ${Math.abs(d())}]`, `lea ${pick(R32)}, [${pick(R64)} + ${d()}]`, `lea ${pick(R64)}, [rip + ${d()}]`, `lea ${pick(R64)}, [${pick(R64)} - 0x7fffffff]`]);
    case 9: return `${pick(ALU)} ${pick(R64)}, ${pick(R64)}`;
    case 10: return `${pick(ALU)} ${pick(R32)}, ${pick(R32)}`;
    case 11: return pick([`${pick(ALU)} ${pick(R64)}, ${imm()}`, `${pick(ALU)} ${pick(R32)}, ${imm()}`, `${pick(ALU)} rax, ${imm()}`, `${pick(ALU)} eax, ${imm()}`]);
    case 12: return pick([`${pick(ALU)} ${pick(R64)}, qword ptr ${m()}`, `${pick(ALU)} ${pick(R32)}, dword ptr ${m()}`]);
    case 13: return pick([`${pick(ALU)} qword ptr ${m()}, ${pick(R64)}`, `${pick(ALU)} dword ptr ${m()}, ${pick(R32)}`, `${pick(ALU)} qword ptr ${m()}, ${imm()}`, `${pick(ALU)} dword ptr ${m()}, ${imm()}`]);
    case 14: return pick([`test ${pick(R64)}, ${pick(R64)}`, `test ${pick(R32)}, ${pick(R32)}`, `test ${pick(R32)}, ${imm()}`, `test rax, ${imm()}`, `test qword ptr ${m()}, ${pick(R64)}`, `test dword ptr ${m()}, ${imm()}`]);
    case 15: return `${pick(['inc', 'dec'])} ${pick([pick(R64), pick(R32)])}`;
    case 16: return pick([`movzx ${pick(R32)}, byte ptr ${m()}`, `movzx ${pick(R64)}, word ptr ${m()}`, `movzx ${pick(['eax', 'ebx', 'ecx', 'edx', 'ebp'])}, ${pick(R8)}`, `movzx ${pick(R64)}, ${pick(R16)}`,
      `movsx ${pick(R64)}, byte ptr ${m()}`, `movsx ${pick(R32)}, ${pick(R16)}`, `movsxd ${pick(R64)}, ${pick(R32)}`, `movsxd ${pick(R64)}, dword ptr ${m()}`]);
    case 17: { const a = pick(R64), b = pick(R64); return `push ${a}\n add ${b}, 3\n pop ${a}`; }
    case 18: case 19: {
      const l = label();
      return `${pick([`cmp ${pick(R64)}, ${pick(R64)}`, `cmp ${pick(R32)}, ${imm()}`, `sub ${pick(R32)}, ${pick(R32)}`, `test ${pick(R64)}, ${pick(R64)}`, `and ${pick(R32)}, ${imm()}`, `xor ${pick(R64)}, ${pick(R64)}`, 'inc ebx', 'add rax, rdx'])}\n j${pick(CC)} ${l}\n add ${pick(R64)}, 1\n${l}:`;
    }
    case 20: { const l = label(); return `call ${l}f\n jmp ${l}e\n${l}f:\n add rbx, rcx\n ret\n${l}e:`; }
    case 21: return pick([`set${pick(CC)} ${pick(R8)}`, `cmov${pick(CC)} ${pick(R64)}, ${pick(R64)}`, `adc ${pick(R64)}, ${pick(R64)}`, `sbb ${pick(R32)}, ${imm()}`, `shl ${pick(R64)}, ${next() % 64}`, `imul ${pick(R64)}, ${pick(R64)}`]);
    case 22: return pick([`mov ${pick(R8)}, byte ptr ${m()}`, `add ${pick(R8)}, ${pick(R8)}`, `cmp byte ptr ${m()}, ${next() & 0xff}`, `nop`, `neg ${pick(R64)}`]);
    case 23: return pick([`${pick(['shl', 'shr', 'sar', 'sal'])} ${pick(R64)}, ${pick([1, 31, 32, 33, 63, next() % 64])}`,
      `${pick(['shl', 'shr', 'sar'])} ${pick(R32)}, ${pick([1, 31, next() % 32])}`, `imul ${pick(R32)}, ${pick(R32)}`,
      `imul ${pick(R32)}, dword ptr ${m()}`, `imul ${pick(R32)}, ${pick(R32)}, ${imm()}`, `imul ${pick(R32)}, dword ptr ${m()}, ${imm()}`]);
    default: return pick([`${pick(['shl', 'shr', 'sar'])} ${pick([pick(R64), pick(R32)])}, cl`, `imul ${pick(R64)}, ${pick(R64)}, ${imm()}`,
      `imul ${pick(R64)}, qword ptr ${m()}`, `${pick(['not', 'neg'])} ${pick([pick(R64), pick(R32)])}`, `${pick(ALU)} byte ptr ${m()}, ${pick(R8)}`,
      `${pick(ALU)} ${pick(R8)}, byte ptr ${m()}`, `${pick(ALU)} ${pick(R8)}, ${next() & 0xff}`, `${pick(ALU)} byte ptr ${m()}, ${next() & 0xff}`,
      `test ${pick(R8)}, ${pick(R8)}`, `test byte ptr ${m()}, ${next() & 0xff}`, `test al, ${next() & 0xff}`, `set${pick(CC)} byte ptr ${m()}`,
      `cmov${pick(CC)} ${pick(R32)}, dword ptr ${m()}`, `cmov${pick(CC)} ${pick(R32)}, ${pick(R32)}`,
      `mov ${pick(R64)}, ${next() * 4294967296 + next()}\n imul ${pick(R64)}, ${pick(R64)}`,
      `${pick(['rol', 'ror'])} ${pick([pick(R64), pick(R32)])}, ${pick([0, 1, 31, 32, 33, 63, next() % 64])}`,
      `${pick(['rol', 'ror'])} ${pick(R32)}, ${next() % 32}\n mov ${pick(R32)}, ${pick(R32)}\n ${pick(ALU)} ${pick(R32)}, ${pick(R32)}`]);
  }
}

test('translated blocks match the interpreter on random integer programs', () => {
  const next = rng(0x5eed1234);
  const N = 90;
  let labels = 0;
  const srcs: string[] = [];
  for (let p = 0; p < N; p++) {
    const body: string[] = [];
    // Run the body a few times so the loop's blocks are translated mid-way too.
    body.push('mov r15d, 3', 'top:');
    for (let k = 0; k < 40; k++) {
      body.push(randomInsn(next, () => `L${p}_${labels++}`));
      // Record the flags now and then (they are otherwise seen only through the next flag reader).
      if (next() % 2 === 0) body.push('pushfq', `pop qword ptr [rdi + ${0x500 + 8 * k}]`);
    }
    body.push('dec r15d', 'jnz top', 'hlt');
    srcs.push(body.join('\n').replace(/\btop\b/g, `top${p}`));
  }
  const progs = assembleMany(srcs);
  for (let p = 0; p < N; p++) {
    const regs = Array.from({ length: 16 }, () => BigInt(next()) << 32n | BigInt(next()));
    regs[4] = BigInt(DATA + 0x3ff0); regs[6] = BigInt(DATA + 0x800); regs[7] = BigInt(DATA + 0x1800);
    for (const r of [3, 2, 1]) if (next() % 2 === 0) regs[r] = BigInt(next() % 64);
    const data = Uint8Array.from({ length: 0x4000 }, () => next() & 0xff);
    const interp = runWith(Infinity, progs[p], regs, data);
    assert.equal(interp.kind, 'halt', `program ${p} did not finish: ${interp.kind}`);
    for (const e of ENGINES) {
      setJitEngine(e);
      assert.deepEqual(runWith(0, progs[p], regs, data), interp, `${e} translator, program ${p}:\n${srcs[p]}`);
    }
    setJitEngine(defaultEngine);
  }
});

test('a fault inside a translated block reports the faulting instruction and keeps earlier effects', () => {
  const code = assemble(`
    mov ecx, 5
  1: add rax, 1
    mov qword ptr [rdi], rax
    mov rdx, qword ptr [rbx]
    add rbx, 0x1000
    dec ecx
    jnz 1b
    hlt
  `);
  const regs = Array<bigint>(16).fill(0n);
  regs[3] = BigInt(DATA + 0xe000); regs[7] = BigInt(DATA); regs[4] = BigInt(DATA + 0x3ff0);
  const data = new Uint8Array(16);
  const a = runWith(Infinity, code, regs, data);
  const b = runWith(0, code, regs, data);
  // [rbx] leaves the mapped 64 KiB on the third pass.
  assert.equal(a.kind, 'exception');
  assert.equal(a.vector, 14);
  assert.equal(a.regs[0], 3n);
  assert.deepEqual(b, a);
});

test('a translated self-loop stops exactly at the instruction budget and resumes where it stopped', () => {
  const code = assemble(`
    mov ecx, 100000
  1: add rax, rcx
    imul rbx, rax, 7
    mov qword ptr [rdi + 8], rbx
    sub ecx, 1
    jnz 1b
    hlt
  `);
  const regs = Array<bigint>(16).fill(0n);
  regs[7] = BigInt(DATA); regs[4] = BigInt(DATA + 0x3ff0);
  // 200k instructions end mid-loop (and mid-pass): both must stop on the same instruction.
  const a = runWith(Infinity, code, regs, new Uint8Array(16));
  const b = runWith(0, code, regs, new Uint8Array(16));
  assert.equal(a.kind, b.kind);
  assert.equal(a.insns, 200_000);
  assert.deepEqual(b, a);
});

test('a store into the running translated block takes effect on its next execution', () => {
  const code = assemble(`
    xor ebx, ebx
    mov ecx, 4
  again:
    add ebx, 1
    mov byte ptr [rip + patch + 2], 50
  patch:
    add ebx, 10
    dec ecx
    jnz again
    hlt
  `);
  const regs = Array<bigint>(16).fill(0n);
  regs[4] = BigInt(DATA + 0x3ff0);
  const a = runWith(Infinity, code, regs, new Uint8Array(16));
  const b = runWith(0, code, regs, new Uint8Array(16));
  assert.equal(a.kind, 'halt');
  // The patch lands before the add executes, every time: 4 * (1 + 50).
  assert.equal(a.regs[3], 204n);
  assert.deepEqual(b, a);
});

/** Element-by-element reference of a forward rep movs / stos over a byte array. */
function refMovs(mem: Uint8Array, src: number, dst: number, n: number, s: number): void {
  for (let k = 0; k < n; k++) {
    const e = mem.slice(src + k * s, src + k * s + s);
    mem.set(e, dst + k * s);
  }
}

test('bulk rep movs matches element-by-element copying, overlaps included', () => {
  setJitThreshold(Infinity);
  const cases: [number, number, number, number][] = [ // src, dst offsets, count, size
    [0, 0x2000, 5000, 1], [0x10, 0x11, 300, 1], [0x100, 0x103, 400, 8], [0x100, 0x108, 400, 8], [0x100, 0x104, 200, 4],
    [0x200, 0x100, 700, 8], [0xff8, 0x1ff3, 1000, 2], [0x30, 0x30, 100, 4], [0x10, 0x2ff0, 40, 8],
  ];
  for (const [so, dO, n, s] of cases) {
    const op = s === 1 ? 'movsb' : s === 2 ? 'movsw' : s === 4 ? 'movsd' : 'movsq';
    const code = assemble(`rep ${op}\nhlt`);
    const regs = Array<bigint>(16).fill(0n);
    regs[6] = BigInt(DATA + so); regs[7] = BigInt(DATA + dO); regs[1] = BigInt(n); regs[4] = BigInt(DATA + 0xfff0);
    const next = rng(n * 31 + s);
    const data = Uint8Array.from({ length: 0x4000 }, () => next() & 0xff);
    const m = machineWith(code, regs, data);
    assert.equal(m.run({ maxInsns: 1000 }).kind, 'halt');
    const want = data.slice();
    refMovs(want, so, dO, n, s);
    assert.deepEqual([...m.readVirt(DATA, 0x4000)], [...want], `movs ${so} -> ${dO} x${n} size ${s}`);
    assert.equal(m.getReg(1), 0n);
    assert.equal(m.getReg(6), BigInt(DATA + so + n * s));
    assert.equal(m.getReg(7), BigInt(DATA + dO + n * s));
  }
});

test('bulk rep stos fills across pages, stops at a fault with consistent registers, and updates code it overwrites', () => {
  setJitThreshold(Infinity);
  {
    const code = assemble('rep stosq\nhlt');
    const regs = Array<bigint>(16).fill(0n);
    regs[0] = 0x1122334455667788n; regs[7] = BigInt(DATA + 0x7f8); regs[1] = 1500n; regs[4] = BigInt(DATA + 0xfff0);
    const m = machineWith(code, regs, new Uint8Array(16));
    assert.equal(m.run({ maxInsns: 1000 }).kind, 'halt');
    const got = m.readVirt(DATA + 0x7f0, 1500 * 8 + 16);
    const dv = new DataView(got.buffer, got.byteOffset);
    assert.equal(dv.getBigUint64(0, true), 0n);
    for (let k = 0; k < 1500; k++) assert.equal(dv.getBigUint64(8 + k * 8, true), 0x1122334455667788n);
    assert.equal(dv.getBigUint64(8 + 1500 * 8, true), 0n);
    assert.equal(m.getReg(7), BigInt(DATA + 0x7f8 + 12000));
  }
  {
    // Runs off the end of the mapping: #PF with RCX/RDI naming the first element not stored.
    const code = assemble('rep stosd\nhlt');
    const regs = Array<bigint>(16).fill(0n);
    regs[0] = 0xabcdef01n; regs[7] = BigInt(DATA + 0xf000); regs[1] = 2000n; regs[4] = BigInt(DATA + 0x8000);
    const m = machineWith(code, regs, new Uint8Array(16));
    const r = m.run({ maxInsns: 1000 });
    assert.equal(r.kind, 'exception');
    if (r.kind === 'exception') assert.equal(r.vector, 14);
    assert.equal(m.getReg(7), BigInt(DATA + 0x10000));
    assert.equal(m.getReg(1), 2000n - 1024n);
  }
  {
    // rep stosb over the code that follows it on the same page: the new bytes (nops, then hlt) are executed.
    const code = assemble(`
      lea rdi, [rip + target]
      mov ecx, 64
      mov al, 0x90
      rep stosb
    target:
      .fill 64, 1, 0xcc
      mov ebx, 7
      hlt
    `);
    const regs = Array<bigint>(16).fill(0n);
    regs[4] = BigInt(DATA + 0x8000);
    const m = machineWith(code, regs, new Uint8Array(16));
    assert.equal(m.run({ maxInsns: 1000 }).kind, 'halt');
    assert.equal(m.getReg(3), 7n);
  }
});
