/**
 * The decoded-block cache is bounded (sweeps drop blocks not run since the previous sweep) and shares decoded
 * instructions between blocks holding the same bytes; code keeps running right through both.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { setJitThreshold, jitThreshold } from '../../../src/processor/emulated/jit.js';
import { SWEEP_AT, MIN_NEW } from '../../../src/processor/emulated/block-cache.js';

const CODE = 0x400000;
const defaultThreshold = jitThreshold;
after(() => setJitThreshold(defaultThreshold));

/** `n` blocks of `inc eax; jmp $+2` (4 bytes each), then the stop address. */
function chain(n: number): Uint8Array {
  const code = new Uint8Array(n * 4);
  for (let k = 0; k < n; k++) code.set([0xff, 0xc0, 0xeb, 0x00], k * 4);
  return code;
}

test('more distinct blocks than the bound: the cache sweeps and the code counts right on every pass', () => {
  setJitThreshold(1_000_000);
  const n = SWEEP_AT + 2 * MIN_NEW;
  const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
  const bytes = n * 4;
  m.map(CODE, Math.ceil(bytes / 4096) * 4096 + 0x1000, { writable: true, exec: true });
  m.writeVirt(CODE, chain(n));
  const pass = (): bigint => {
    m.setReg(0, 0n);
    m.rip = BigInt(CODE);
    const r = m.run({ stopAt: BigInt(CODE + bytes), maxInsns: 2 * n + 10 });
    assert.equal(r.kind, 'stopped');
    return m.getReg(0);
  };
  assert.equal(pass(), BigInt(n));
  const c = m.cpu.blocks;
  assert.ok(c.sweeps >= 1 && c.evicted > 0, `swept (${c.sweeps} sweeps, ${c.evicted} evicted)`);
  assert.ok(c.size <= SWEEP_AT + MIN_NEW, `the cache holds ${c.size} blocks`);
  // Evicted blocks are decoded again.
  for (let k = 0; k < 3; k++) assert.equal(pass(), BigInt(n));
  assert.ok(c.size <= SWEEP_AT + MIN_NEW, `the cache holds ${c.size} blocks after more passes`);
});

test('a block run between sweeps survives them; blocks not run are dropped and marked invalid', () => {
  setJitThreshold(1_000_000);
  const n = SWEEP_AT + 2 * MIN_NEW;
  const HOT = 0x300000;
  const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
  m.map(HOT, 0x1000, { writable: true, exec: true });
  m.writeVirt(HOT, new Uint8Array([0xff, 0xc3, 0xeb, 0x00])); // inc ebx; jmp $+2
  m.map(CODE, Math.ceil((n * 4) / 4096) * 4096 + 0x1000, { writable: true, exec: true });
  m.writeVirt(CODE, chain(n));
  const run = (at: number, stop: number): void => {
    m.rip = BigInt(at);
    assert.equal(m.run({ stopAt: BigInt(stop), maxInsns: 4 * n }).kind, 'stopped');
  };
  run(HOT, HOT + 4);
  const hot = m.cpu.blocks.lookup(HOT);
  const first = m.cpu.blocks.lookup(CODE);
  // Walk the chain in slices, running the hot block between them: it is used before every sweep.
  const slice = 1024;
  for (let k = 0; k < n; k += slice) {
    run(CODE + k * 4, CODE + Math.min(n, k + slice) * 4);
    run(HOT, HOT + 4);
  }
  assert.ok(m.cpu.blocks.sweeps >= 2);
  assert.equal(m.cpu.blocks.lookup(HOT), hot, 'the hot block is still the cached one');
  assert.ok(hot.valid);
  assert.equal(first.valid, false, 'the first chain block, not run since, was dropped');
  assert.notEqual(m.cpu.blocks.lookup(CODE), first);
});

test('blocks holding the same instruction bytes share decoded instructions; rewritten code decodes anew', () => {
  setJitThreshold(1_000_000);
  const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
  m.map(CODE, 0x2000, { writable: true, exec: true });
  const mov = (v: number): number[] => [0xb8, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  // The same `mov eax, 7; jmp $+2` on two pages, and a block starting inside the first one's run.
  m.writeVirt(CODE, new Uint8Array([...mov(7), 0xeb, 0x00]));
  m.writeVirt(CODE + 0x1000, new Uint8Array([...mov(7), 0xeb, 0x00]));
  const a = m.cpu.blocks.lookup(CODE), b = m.cpu.blocks.lookup(CODE + 0x1000), c = m.cpu.blocks.lookup(CODE + 5);
  assert.notEqual(a, b);
  assert.equal(a.insns[0], b.insns[0]);
  assert.equal(a.insns[1], c.insns[0], 'the jmp inside the first block is the jmp of the block starting at it');
  // A store rewrites the first copy: it runs the new immediate, the other copy the old one.
  m.rip = BigInt(CODE);
  assert.equal(m.run({ stopAt: BigInt(CODE + 7), maxInsns: 5 }).kind, 'stopped');
  assert.equal(m.getReg(0), 7n);
  m.writeVirt(CODE, new Uint8Array(mov(9)));
  m.rip = BigInt(CODE);
  assert.equal(m.run({ stopAt: BigInt(CODE + 7), maxInsns: 5 }).kind, 'stopped');
  assert.equal(m.getReg(0), 9n);
  m.rip = BigInt(CODE + 0x1000);
  assert.equal(m.run({ stopAt: BigInt(CODE + 0x1007), maxInsns: 5 }).kind, 'stopped');
  assert.equal(m.getReg(0), 7n);
});
