/**
 * DMA is coherent with instruction fetch: after a device writes new code into a page the emulated processor
 * has already decoded (and translated) code from, the next execution runs the new code. This is what a guest
 * relies on when it reads a program from disk into a page cache page that held other code.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { setJitThreshold, jitThreshold } from '../../../src/processor/emulated/jit.js';
import { GuestBuffer } from '../../../src/vmbus/gpa-direct.js';
import { Gpadl } from '../../../src/vmbus/gpadl.js';
import { scatter } from '../../../src/devices/ide/bus-master.js';
import type { GuestMemory } from '../../../src/platform/memory.js';

const CODE = 0x400000;
const defaultThreshold = jitThreshold;
after(() => setJitThreshold(defaultThreshold));

/** mov eax, imm32 (5 bytes); the run stops right after it. */
const movEax = (v: number): Uint8Array => new Uint8Array([0xb8, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]);

type DeviceWrite = (memory: GuestMemory, phys: number, bytes: Uint8Array) => void;

const writers: Record<string, DeviceWrite> = {
  'storvsp / GPA-direct buffer': (memory, phys, bytes) => new GuestBuffer([phys], [bytes.length], bytes.length).writeFrom(memory, 0, bytes),
  'IDE bus-master scatter': (memory, phys, bytes) => scatter(memory, [{ addr: phys, len: bytes.length }], 0, bytes),
  'GPADL (netvsp receive buffer)': (memory, phys, bytes) => {
    const page = Math.floor(phys / 4096);
    const g = new Gpadl(1, 1, 4096, 0, 1, [page]);
    assert.equal(g.finish(memory), null);
    assert.ok(g.write(memory, phys % 4096, bytes));
  },
  'loader (GuestMemory.write)': (memory, phys, bytes) => memory.write(phys, bytes),
};

for (const [name, write] of Object.entries(writers)) {
  for (const threshold of [1, 1_000_000]) {
    test(`a ${name} write replaces cached code (${threshold === 1 ? 'translated' : 'interpreted'})`, () => {
      setJitThreshold(threshold);
      const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
      m.map(CODE, 0x1000, { writable: true, exec: true });
      m.writeVirt(CODE, movEax(1));
      const runOnce = (): bigint => {
        m.rip = BigInt(CODE);
        const r = m.run({ stopAt: BigInt(CODE + 5), maxInsns: 10 });
        assert.equal(r.kind, 'stopped');
        return m.getReg(0);
      };
      for (let i = 0; i < 4; i++) assert.equal(runOnce(), 1n);
      const phys = m.virtToPhys(CODE);
      assert.ok(m.cpu.codePages[Math.floor(phys / 4096)] !== 0, 'the page holds cached code before the device write');
      write(m.platform.memory, phys, movEax(2));
      assert.equal(runOnce(), 2n, 'the processor ran the code the device wrote');
    });
  }
}

test('a device write to pages without cached code leaves the code cache alone', () => {
  const m = createTestMachine({ memoryBytes: 8 * 1024 * 1024 });
  m.map(CODE, 0x2000, { writable: true, exec: true });
  m.writeVirt(CODE, movEax(7));
  m.rip = BigInt(CODE);
  assert.equal(m.run({ stopAt: BigInt(CODE + 5), maxInsns: 10 }).kind, 'stopped');
  const size = m.cpu.blocks.size;
  const other = m.virtToPhys(CODE + 0x1000);
  new GuestBuffer([other], [16], 16).writeFrom(m.platform.memory, 0, new Uint8Array(16).fill(0x90));
  assert.equal(m.cpu.blocks.size, size);
});
