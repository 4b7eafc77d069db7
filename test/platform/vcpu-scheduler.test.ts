import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VcpuScheduler, PAUSE_EXIT_AFTER, BOOST_INSNS, QUANTUM_INSNS } from '../../src/platform/vcpu-scheduler.js';
import type { RunOutcome, VirtualProcessor } from '../../src/processor/backend.js';
import { Partition } from '../../src/platform/partition.js';
import { smpKernel, haveBinutils } from './smp-kernel.js';
import { cpuidValue } from '../../src/processor/emulated/cpuid.js';

class FakeVcpu implements VirtualProcessor {
  halted = false;
  interruptsEnabled = true;
  inits = 0;
  sipis: number[] = [];
  pauseExit = 0;
  constructor(readonly index: number) {}
  setBootState(): void {}
  run(): RunOutcome { return { kind: 'yield' }; }
  requestExit(): void {}
  snapshot(): Record<string, number> { return {}; }
  init(): void { this.inits++; this.halted = false; }
  startup(v: number): void { this.sipis.push(v); }
  setPauseExit(n: number): void { this.pauseExit = n; }
}

function setup(n: number) {
  const vcpus = Array.from({ length: n }, (_, i) => new FakeVcpu(i));
  const wake = vcpus.map(() => ({ vector: -1, nmi: false, pendingVector() { return this.vector; }, nmiPending() { return this.nmi; } }));
  return { vcpus, wake, s: new VcpuScheduler(vcpus, wake) };
}

test('INIT/SIPI state machine: APs wait for SIPI, the first SIPI starts them, a second is ignored, INIT re-arms; the BSP ignores both', () => {
  const { vcpus, s } = setup(3);
  assert.deepEqual([0, 1, 2].map((i) => s.state(i)), ['runnable', 'wait-for-sipi', 'wait-for-sipi']);
  assert.equal(vcpus[1].pauseExit, PAUSE_EXIT_AFTER, 'PAUSE exits are on with several vCPUs');
  s.startup(1, 0x08);
  s.startup(1, 0x09);
  assert.deepEqual(vcpus[1].sipis, [0x08]);
  assert.equal(s.state(1), 'runnable');
  s.init(1);
  assert.equal(vcpus[1].inits, 1);
  assert.equal(s.state(1), 'wait-for-sipi');
  s.startup(1, 0x10);
  assert.deepEqual(vcpus[1].sipis, [0x08, 0x10]);
  s.init(0); s.startup(0, 0x20);
  assert.deepEqual([vcpus[0].inits, vcpus[0].sipis], [0, []]);
  s.startup(7, 1); s.init(7); // no such VP: nothing happens
  // Saved run states round-trip; a file for another processor count is refused.
  const saved = s.saveState();
  const t = setup(3).s;
  t.restoreState(saved);
  assert.deepEqual([0, 1, 2].map((i) => t.state(i)), ['runnable', 'runnable', 'wait-for-sipi']);
  assert.throws(() => setup(2).s.restoreState(saved), /3 processors, the VM has 2/);
  // Machine reset: every AP back to wait-for-SIPI.
  s.reset();
  assert.deepEqual([0, 1, 2].map((i) => s.state(i)), ['runnable', 'wait-for-sipi', 'wait-for-sipi']);
});

test('round robin among runnable vCPUs; halted ones run again only for a deliverable interrupt or an NMI', () => {
  const { vcpus, wake, s } = setup(3);
  s.startup(1, 8); s.startup(2, 8);
  const seq = Array.from({ length: 6 }, () => s.pick());
  assert.deepEqual(seq, [0, 1, 2, 0, 1, 2]);
  vcpus[1].halted = true;
  assert.deepEqual(Array.from({ length: 4 }, () => s.pick()), [0, 2, 0, 2]);
  assert.equal(s.runnableCount(), 2);
  wake[1].vector = 0x40;
  assert.equal(s.state(1), 'runnable');
  vcpus[1].interruptsEnabled = false;
  assert.equal(s.state(1), 'halted', 'IF=0: a fixed interrupt does not end HLT');
  wake[1].nmi = true;
  assert.equal(s.state(1), 'runnable');
  for (const v of vcpus) v.halted = true;
  wake[1].nmi = false;
  assert.equal(s.pick(), -1, 'all halted: nothing to run (the host sleeps)');
});

test('an IPI target runs next for a short turn; a boosted turn boosts no one; halted targets without a wake reason are skipped', () => {
  const { vcpus, s } = setup(3);
  s.startup(1, 8); s.startup(2, 8);
  assert.ok(BOOST_INSNS < QUANTUM_INSNS);
  const turn = (during?: () => void): [number, boolean] => {
    const i = s.pick();
    s.running = i;
    during?.();
    s.running = -1;
    return [i, s.boostedTurn];
  };
  assert.deepEqual(turn(() => s.boost(2)), [0, false]);
  assert.deepEqual(turn(() => s.boost(0)), [2, true], 'vCPU 0 sent an IPI to 2: 2 runs next, boosted');
  assert.deepEqual(turn(), [0, false], 'the boost 2 asked for during its boosted turn was not granted; round robin goes on after 2');
  assert.deepEqual(turn(), [1, false]);
  s.boost(1);
  assert.deepEqual(turn(), [2, false], 'a boost between turns (no sender running) changes nothing');
  vcpus[1].halted = true;
  assert.deepEqual(turn(() => s.boost(1)), [0, false]);
  assert.deepEqual(turn(), [2, false], 'vCPU 1 cannot run (halted, nothing pending): its boost is dropped');
  assert.deepEqual(turn(() => s.boost(0)), [0, false], 'nor does a vCPU boost itself');
});

test('an interrupt for a vCPU that is not running ends the running one\'s turn; one for itself does not', { skip: haveBinutils() ? false : 'needs binutils' }, async () => {
  const p = await Partition.create({ name: 'k', processor: 'emulated', memoryBytes: 16 << 20, cpus: 2, enlightened: true, kernel: smpKernel(), cmdline: '', clockMode: 'icount', quiet: true });
  const cpu0 = (p.vcpus[0] as unknown as { cpu: { exitRequested: boolean } }).cpu;
  const [l0, l1] = p.devices.lapics;
  l0.mmioWrite(0xf0, 4, 0x1ff); l1.mmioWrite(0xf0, 4, 0x1ff);
  p.scheduler.running = 0;
  cpu0.exitRequested = false;
  l0.deliver(0x41, false);
  assert.equal(cpu0.exitRequested, false);
  l1.deliver(0x42, false);
  assert.equal(cpu0.exitRequested, true);
  p.scheduler.running = -1;
  // SIPI: real mode at CS = vector << 8, IP 0. CPUID: initial APIC ID, 2 logical processors (HTT), AMD NC = 1.
  p.vcpus[1].startup!(0x08);
  const r = p.vcpus[1].snapshot();
  assert.deepEqual([r.cs, r.rip, Number(r.cr0) & 1], [0x800, 0n, 0]);
  const cpu1 = (p.vcpus[1] as unknown as { cpu: Parameters<typeof cpuidValue>[0] }).cpu;
  const out = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  cpuidValue(cpu1, 1, 0, out);
  assert.deepEqual([out.ebx >>> 24, (out.ebx >>> 16) & 0xff, (out.edx >>> 28) & 1], [1, 2, 1]);
  cpuidValue(cpu1, 0x80000008, 0, out);
  assert.equal(out.ecx & 0xff, 1);
  // An IPI from vCPU 0's ICR gives vCPU 1 the next (short) turn, ahead of round robin.
  p.scheduler.startup(1, 0x08);
  p.scheduler.running = 0;
  l0.mmioWrite(0x310, 4, 1 << 24);
  l0.mmioWrite(0x300, 4, 0x43);
  p.scheduler.running = -1;
  assert.deepEqual([p.scheduler.pick(), p.scheduler.boostedTurn], [1, true]);
  p.turnOff('test');
  await p.start();
});

test('a vCPU spinning on PAUSE gives up its turn after PAUSE_EXIT_AFTER pauses (only with several vCPUs)', { skip: haveBinutils() ? false : 'needs binutils' }, async () => {
  const p = await Partition.create({ name: 'k', processor: 'emulated', memoryBytes: 16 << 20, cpus: 2, enlightened: true, kernel: smpKernel(), cmdline: '', clockMode: 'icount', quiet: true });
  p.memory.bytes.set([0xf3, 0x90, 0xeb, 0xfc], 0x7000); // 1: pause; jmp 1b
  const v = p.vcpus[0];
  v.setBootState({ mode: 'protected32', rip: 0x7000, gpr: {} });
  let n0 = v.instructions!;
  assert.equal(v.runQuantum!(Infinity, 1_000_000).kind, 'yield');
  const spun = v.instructions! - n0;
  assert.ok(spun >= PAUSE_EXIT_AFTER && spun <= 2 * PAUSE_EXIT_AFTER + 2, `retired ${spun}`);
  v.setPauseExit!(0); // one vCPU: PAUSE is a plain hint
  n0 = v.instructions!;
  v.runQuantum!(Infinity, 100_000);
  assert.equal(v.instructions! - n0, 100_000);
  p.turnOff('test');
  await p.start();
});
