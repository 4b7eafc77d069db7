/**
 * What one emulated vCPU does that another must see: stores into code another vCPU has cached (cross-modifying
 * code), and the hypercall register convention of the caller's mode (32-bit guests pass 64-bit values in pairs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmulatedBackend } from '../../../src/processor/emulated/processor.js';
import { createTestPlatform } from '../../../src/processor/emulated/testing.js';
import type { HypercallRegs } from '../../../src/processor/backend.js';
import * as sys from '../../../src/processor/emulated/system.js';
import { bareCpu } from './helpers.js';

const CODE = 0x5000;

test('a store by one vCPU into code another has cached drops that vCPU\'s block (also through a write mapping made before)', () => {
  const plat = createTestPlatform(1 << 20);
  const be = new EmulatedBackend();
  const [a, b] = [be.createVcpu(0, plat).cpu, be.createVcpu(1, plat).cpu];
  plat.memory.bytes.set([0x90, 0x90, 0xf4], CODE); // nop; nop; hlt (real mode, no paging)
  a.write8(CODE + 0x100, 1); // A holds a write mapping to the page before B caches code there
  const blk = b.blocks.lookup(CODE);
  assert.equal(blk.valid, true);
  assert.equal(b.blocks.lookup(CODE), blk, 'cached');
  a.write8(CODE + 1, 0xf4);
  assert.equal(blk.valid, false, 'B\'s block of the page was dropped by A\'s store');
  assert.notEqual(b.blocks.lookup(CODE), blk, 'B decodes the page again');
  // Clearing one vCPU's cache keeps the page marked while another vCPU still has blocks there.
  const again = b.blocks.lookup(CODE);
  a.blocks.lookup(CODE);
  a.blocks.clear();
  a.write8(CODE + 2, 0x90);
  assert.equal(again.valid, false);
});

test('a device write (DMA) into a page two vCPUs decoded code from drops both vCPUs\' blocks', () => {
  const plat = createTestPlatform(1 << 20);
  const be = new EmulatedBackend();
  const [a, b] = [be.createVcpu(0, plat).cpu, be.createVcpu(1, plat).cpu];
  plat.memory.bytes.set([0x90, 0xf4], CODE);
  const [ba, bb] = [a.blocks.lookup(CODE), b.blocks.lookup(CODE)];
  plat.memory.write(CODE + 0x800, new Uint8Array([1, 2, 3]));
  assert.deepEqual([ba.valid, bb.valid], [false, false]);
});

test('one vCPU alone keeps its own code-page flags', () => {
  const plat = createTestPlatform(1 << 20);
  const be = new EmulatedBackend();
  const a = be.createVcpu(0, plat).cpu;
  assert.equal(a.codePagesShared, false);
  plat.memory.bytes.set([0x90, 0xf4], CODE);
  const blk = a.blocks.lookup(CODE);
  a.write8(CODE, 0xf4);
  assert.equal(blk.valid, false);
});

function recordingHandler(seen: Array<Record<string, string>>, result: [number, number]) {
  const hex = (r: { lo: number; hi: number }): string => `${r.hi.toString(16)}:${r.lo.toString(16)}`;
  return {
    hypercall(_vp: number, regs: HypercallRegs): void {
      seen.push({ control: hex(regs.get(1)), input: hex(regs.get(2)), output: hex(regs.get(8)) });
      regs.set(0, result[0], result[1]);
    },
  };
}

test('VMCALL outside 64-bit mode uses the 32-bit convention: control EDX:EAX, input EBX:ECX, output EDI:ESI, result EDX:EAX', () => {
  const { cpu, plat } = bareCpu(1 << 20);
  const seen: Array<Record<string, string>> = [];
  plat.hypercall = recordingHandler(seen, [0x1234, 0x5]);
  cpu.cr0 = 0x11; cpu.mode = 2; cpu.cpl = 0; // protected mode, CS.D = 1
  const g = cpu.gpr;
  [g[0], g[4], g[6], g[2], g[14], g[12]] = [0x10002, 0x3, 0x7000, 0x1, 0x9000, 0x2]; // eax edx ebx ecx edi esi
  sys.vmcall(cpu);
  assert.deepEqual(seen, [{ control: '3:10002', input: '7000:1', output: '9000:2' }]);
  assert.deepEqual([g[0], g[4]], [0x1234, 0x5], 'status in EAX, reps completed in EDX');
  assert.deepEqual([g[2], g[6], g[12], g[14]], [0x1, 0x7000, 0x2, 0x9000], 'inputs untouched');
});

test('VMCALL in 64-bit mode reads RCX, RDX, R8 and writes RAX', () => {
  const { cpu, plat } = bareCpu(1 << 20);
  const seen: Array<Record<string, string>> = [];
  plat.hypercall = recordingHandler(seen, [0x2, 0x1]);
  cpu.cr0 = 0x80000011; cpu.efer = 0x500; cpu.mode = 3; cpu.cpl = 0;
  const g = cpu.gpr;
  [g[2], g[3], g[4], g[5], g[16], g[17]] = [0x8, 0x0, 0x1000, 0x0, 0x2000, 0x1]; // rcx rdx r8
  sys.vmcall(cpu);
  assert.deepEqual(seen, [{ control: '0:8', input: '0:1000', output: '1:2000' }]);
  assert.deepEqual([g[0], g[1]], [0x2, 0x1]);
});
