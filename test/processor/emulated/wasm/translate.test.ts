/**
 * The WebAssembly translator against the interpreter on the cases it must get exactly right: code that
 * patches itself (the running block, another block of the same page reached by chaining, another page),
 * page faults inside chained blocks and in the middle of a read-modify-write, interrupts raised while a
 * chained loop spins, single-step and int3 breakpoints over translated code, and instruction counts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine, type EmulatedTestMachine } from '../../../../src/processor/emulated/testing.js';
import { setJitThreshold, jitThreshold, setJitEngine, jitEngine, jitStats } from '../../../../src/processor/emulated/jit.js';
import { wasmStats, setHandlerCap } from '../../../../src/processor/emulated/wasm/runtime.js';
import { assemble } from '../../core-exec/asm.js';

const CODE = 0x400000;
const DATA = 0x600000;
const HANDLER = 0x500000;
const savedThreshold = jitThreshold, savedEngine = jitEngine;
after(() => { setJitThreshold(savedThreshold); setJitEngine(savedEngine); });

interface Engine { name: string; engine: 'off' | 'wasm' | 'js'; threshold: number }
const INTERP: Engine = { name: 'interpreter', engine: 'off', threshold: Infinity };
/** Translated at once, and translated part-way (the interpreter runs the first passes). */
const WASM: Engine[] = [{ name: 'wasm@0', engine: 'wasm', threshold: 0 }, { name: 'wasm@3', engine: 'wasm', threshold: 3 }];

interface Setup { code: Uint8Array; regs?: Array<[number, bigint]>; handlers?: Record<number, Uint8Array>; rflags?: bigint; irqAfterPolls?: number; extraCode?: [number, Uint8Array] }
interface Outcome { kind: string; vector?: number; rip: bigint; regs: bigint[]; rflags: bigint; data: string; insns: number; cr2?: bigint }

function machine(s: Setup): EmulatedTestMachine {
  const m = createTestMachine({ memoryBytes: 16 * 1024 * 1024 });
  m.map(CODE, 0x4000, { writable: true, exec: true });
  m.map(DATA, 0x4000, { writable: true });
  m.map(HANDLER, 0x1000, { exec: true });
  m.writeVirt(CODE, s.code);
  if (s.extraCode) m.writeVirt(s.extraCode[0], s.extraCode[1]);
  const idt: Record<number, bigint> = {};
  let at = HANDLER;
  for (const [v, bytes] of Object.entries(s.handlers ?? {})) { m.writeVirt(at, bytes); idt[Number(v)] = BigInt(at); at += 0x100; }
  if (Object.keys(idt).length > 0) m.installIdt!(idt);
  m.setReg(4, BigInt(DATA + 0x3ff0));
  for (const [r, v] of s.regs ?? []) m.setReg(r, v);
  m.rip = BigInt(CODE);
  if (s.rflags !== undefined) m.rflags = s.rflags;
  if (s.irqAfterPolls !== undefined) {
    // An interrupt controller whose vector 0x40 becomes pending at the n-th look (the run loop looks after
    // every clock poll, i.e. every 4096 instructions, and after system instructions).
    let looks = 0;
    const ic = m.platform.interrupts[0];
    ic.pendingVector = () => (++looks > s.irqAfterPolls! ? 0x40 : -1);
    ic.acknowledge = () => { looks = -Infinity; return 0x40; };
  }
  return m;
}

function run(e: Engine, s: Setup, maxInsns = 200_000): Outcome {
  setJitEngine(e.engine);
  setJitThreshold(e.threshold);
  const m = machine(s);
  const r = m.run({ maxInsns });
  const out: Outcome = {
    kind: r.kind, rip: m.rip, regs: Array.from({ length: 16 }, (_, k) => m.getReg(k)), rflags: m.rflags,
    data: Buffer.from(m.readVirt(DATA, 0x400)).toString('hex') + Buffer.from(m.readVirt(CODE, 0x2000)).toString('hex'), insns: r.insns,
  };
  if (r.kind === 'exception') { out.vector = r.vector; out.cr2 = r.cr2; }
  return out;
}

/** Every wasm configuration ends exactly where the interpreter does; returns the interpreter's outcome. */
function same(s: Setup, maxInsns?: number): Outcome {
  const want = run(INTERP, s, maxInsns);
  for (const e of WASM) {
    const before = jitStats.insns;
    assert.deepEqual(run(e, s, maxInsns), want, e.name);
    if (e.threshold === 0) assert.ok(jitStats.insns > before, `${e.name}: nothing ran translated`);
  }
  return want;
}

/** The sign-extended imm8 of `add ebx, imm8` after its byte was incremented to `v`. */
const imm8 = (v: number): number => ((v & 0xff) << 24) >> 24;

test('a store into the running block, into another block of the same page and into another page', () => {
  // Same block: the add's immediate changes before it executes, every pass.
  const a = same({ code: assemble(`
      xor ebx, ebx
      mov ecx, 50
    again:
      add ebx, 1
      mov byte ptr [rip + patch + 2], 50
    patch:
      add ebx, 10
      dec ecx
      jnz again
      hlt`) });
  assert.equal(a.kind, 'halt');
  assert.equal(a.regs[3], 50n * 51n);
  // Another block of the same page, reached through a chained jump: its immediate grows each pass.
  const b = same({ code: assemble(`
      xor ebx, ebx
      mov ecx, 200
    top:
      inc byte ptr [rip + target + 2]
      jmp target
      .skip 64, 0x90
    target:
      add ebx, 1
      dec ecx
      jnz top
      hlt`) });
  assert.equal(b.kind, 'halt');
  assert.equal(b.regs[3], BigInt(Array.from({ length: 200 }, (_, k) => imm8(2 + k)).reduce((x, y) => x + y, 0) >>> 0));
  // Another page: the patched routine lives at CODE + 0x2000 and is called every pass.
  const routine = assemble('add ebx, 1\nret');
  const c = same({ extraCode: [CODE + 0x2000, routine], regs: [[13, BigInt(CODE + 0x2000)]], code: assemble(`
      xor ebx, ebx
      mov ecx, 300
    top:
      call r13
      inc byte ptr [r13 + 2]
      dec ecx
      jnz top
      hlt`) });
  assert.equal(c.kind, 'halt');
  assert.equal(c.regs[3], BigInt(Array.from({ length: 300 }, (_, k) => imm8(1 + k)).reduce((x, y) => x + y, 0) >>> 0));
});

test('a page fault inside chained blocks and in the middle of a read-modify-write leaves the interpreter state', () => {
  // Three blocks chained in one page; the third does add [rbx], rax with rbx walking off the mapping.
  const code = assemble(`
      mov ecx, 1000
    l1:
      add rax, 3
      cmp rax, 5
      jmp l2
    l2:
      lea rdx, [rax + rcx*2]
      sub rdx, rax
      jmp l3
    l3:
      add qword ptr [rbx], rax
      add rbx, 0x800
      dec ecx
      jnz l1
      hlt`);
  const r = same({ code, regs: [[3, BigInt(DATA)]] });
  assert.equal(r.kind, 'exception');
  assert.equal(r.vector, 14);
  assert.equal(r.cr2, BigInt(DATA + 0x4000));
  // The faulting add's flags are not recorded: cmp's are still there (ZF clear, CF clear on this pass).
  assert.equal(r.regs[3], BigInt(DATA + 0x4000));
});

test('an interrupt raised while a chained loop spins is delivered at the same instruction as by the interpreter', () => {
  // Two blocks chained forever; the handler stops the machine. IF = 1.
  const code = assemble(`
    top:
      add rax, 1
      jmp next
      .skip 32, 0x90
    next:
      xor rdx, rax
      jmp top`);
  const handler = assemble('mov r12, rax\nhlt');
  const r = same({ code, rflags: 0x202n, handlers: { 0x40: handler }, irqAfterPolls: 3 });
  assert.equal(r.kind, 'halt');
  // Pending from the 4th look on (3 polls of 4096 instructions): delivered within one block of it.
  assert.ok(r.insns > 3 * 4096 && r.insns <= 4 * 4096 + 64, `delivered after ${r.insns} instructions`);
  assert.equal(r.regs[12], r.regs[0]);
});

test('single-step and int3 breakpoints over translated code', () => {
  const loop = `
      mov ecx, 300
    top:
      add rax, rcx
      imul rbx, rax, 3
      dec ecx
      jnz top
    `;
  // #DB after every instruction: the handler counts them (TF set by popfq inside the program, after the loop ran translated).
  const db = assemble('inc r12\niretq');
  const s1 = same({ code: assemble(`${loop}
      pushfq
      or qword ptr [rsp], 0x100
      popfq
      mov ecx, 20
    again:
      add rax, rcx
      dec ecx
      jnz again
      pushfq
      and qword ptr [rsp], ~0x100
      popfq
      hlt`), handlers: { 1: db } });
  assert.equal(s1.kind, 'halt');
  assert.ok(s1.regs[12] >= 60n, `single-steps counted: ${s1.regs[12]}`);
  // int3 patched into a hot, translated loop: the #BP handler counts hits and restores nothing (it just returns).
  const bp = assemble('inc r12\niretq');
  const s2 = same({ code: assemble(`${loop}
      mov byte ptr [rip + hot], 0xcc
      mov ecx, 10
    hot:
      nop
      dec ecx
      jnz hot
      hlt`), handlers: { 3: bp } });
  assert.equal(s2.kind, 'halt');
  assert.equal(s2.regs[12], 10n);
});

test('instruction counts: two translated runs retire exactly the same number of instructions as the interpreter', () => {
  const code = assemble(`
      mov ecx, 5000
    top:
      mov rdx, qword ptr [rdi]
      add rdx, rcx
      mov qword ptr [rdi + 8], rdx
      call f
      dec ecx
      jnz top
      hlt
    f:
      xor rax, rdx
      ret`);
  const s: Setup = { code, regs: [[7, BigInt(DATA)]] };
  // Stop part-way: a limit that lands inside chained blocks must still be exact.
  for (const limit of [12_345, 30_001]) {
    const want = run(INTERP, s, limit);
    assert.equal(want.insns, limit);
    for (const e of WASM) for (let k = 0; k < 2; k++) assert.deepEqual(run(e, s, limit), want, `${e.name} run ${k}`);
  }
  assert.ok(wasmStats.blocks > 0);
});

test('past the handler-list bound every block is dropped and translated again, with the same results', () => {
  // pushfq and cpuid-free handler forms (pushf, 16-bit shifts by CL) in several blocks of a loop.
  const code = assemble(`
      mov ecx, 400
    top:
      pushfq
      pop rax
      shl dx, cl
      jmp b2
    b2:
      add rbx, rax
      pushfq
      pop rsi
      rcl r8, 1
      dec ecx
      jnz top
      hlt`);
  const s: Setup = { code, regs: [[2, 0x1234n]] };
  const want = run(INTERP, s);
  const old = setHandlerCap(3), resets = wasmStats.resets;
  try {
    for (const e of WASM) assert.deepEqual(run(e, s), want, e.name);
  } finally { setHandlerCap(old); }
  assert.ok(wasmStats.resets > resets, 'the bound was reached');
  assert.equal(want.kind, 'halt');
});
