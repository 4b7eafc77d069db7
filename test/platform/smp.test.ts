import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Partition, type PartitionConfig, type PartitionExit } from '../../src/platform/partition.js';
import { smpKernel, haveBinutils, SHOOTDOWN_ROUNDS, STRESS_PHASES, stressResults } from './smp-kernel.js';

const skip = haveBinutils() ? false : 'needs binutils (as, ld)';

function config(kernel: string, cpus: number, out: string[], clockMode: 'icount' | 'realtime' = 'icount'): PartitionConfig {
  return {
    name: 'smp', processor: 'emulated', memoryBytes: 16 << 20, cpus, enlightened: true, kernel, cmdline: '',
    clockMode, quiet: true, onConsoleOutput: (b) => out.push(Buffer.from(b).toString('latin1')),
  };
}

async function runUntil(p: Partition, out: string[], done: (s: string) => boolean): Promise<{ exit: Promise<PartitionExit> }> {
  const exit = p.start();
  const end = Date.now() + 120_000;
  while (!done(out.join(''))) {
    if (Date.now() > end) throw new Error(`gave up; output so far: ${out.join('').slice(-400)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { exit };
}

async function bootSmp(cpus: number, clockMode: 'icount' | 'realtime' = 'icount'): Promise<string> {
  const out: string[] = [];
  const p = await Partition.create(config(smpKernel(), cpus, out, clockMode));
  const { exit } = await runUntil(p, out, (s) => s.includes('done\n'));
  p.turnOff('test done');
  await exit;
  return out.join('');
}

/**
 * Every phase ran all its rounds without an error: no AP read the old frame after acknowledging an INVLPG+IPI
 * shootdown or after the flush hypercall returned, and none ran old code after the patch IPI.
 */
function assertStress(out: string): void {
  const r = stressResults(out);
  for (const phase of STRESS_PHASES) {
    const x = r.get(phase);
    assert.ok(x, `no ${phase} results in:\n${out}`);
    assert.equal(x.rounds, SHOOTDOWN_ROUNDS, phase);
    assert.equal(x.errors, 0, `${phase}: an AP saw the old frame or the old code after the shootdown`);
    assert.ok(x.reads > 0, `${phase}: the APs kept reading during the rounds`);
  }
}

for (const cpus of [2, 4]) {
  test(`${cpus} vCPUs: INIT-SIPI-SIPI starts every AP, each reports its APIC ID; TLB shootdowns (IPI, flush hypercall) and code patches never leave a stale entry`, { skip }, async () => {
    const s = await bootSmp(cpus);
    const aps = [...s.matchAll(/AP (\d+) apic=(\d+) cpuid=(\d+)\n/g)].map((m) => ({ apic: Number(m[2]), cpuid: Number(m[3]) }));
    assert.equal(aps.length, cpus - 1, s);
    // Each AP's LAPIC ID register and CPUID initial APIC ID agree, and together they are 1..cpus-1.
    for (const a of aps) assert.equal(a.apic, a.cpuid);
    assert.deepEqual(aps.map((a) => a.apic).sort((x, y) => x - y), Array.from({ length: cpus - 1 }, (_, i) => i + 1));
    assert.match(s, new RegExp(`all up: cpus=${cpus}\n`));
    assertStress(s);
  });
}

test('two icount runs with 2 vCPUs print exactly the same output (turns end on instruction counts)', { skip }, async () => {
  const a = await bootSmp(2);
  const b = await bootSmp(2);
  assert.equal(a, b);
});

test('saved state with 2 vCPUs mid-shootdown: the restored partition finishes every round without a stale read', { skip }, async () => {
  const kernel = smpKernel();
  const out: string[] = [];
  const p = await Partition.create(config(kernel, 2, out));
  // Paused on the instruction that announces the rounds (POST 0x55): with an icount clock the host gets a
  // turn only every so many instructions, by which time the rounds could be over.
  p.devices.post.onWrite = (v) => { if (v === 0x55) p.pause(); };
  const { exit } = await runUntil(p, out, (s) => s.includes('all up: cpus=2'));
  p.pause();
  const file = p.saveState();
  p.turnOff('saved');
  await exit;
  const before = out.join('');
  assert.ok(!before.includes('done'), 'saved before the rounds finished');
  const out2: string[] = [];
  const q = await Partition.restore(config(kernel, 2, out2), file);
  assert.deepEqual([q.scheduler.state(0), q.scheduler.state(1) === 'wait-for-sipi'], ['runnable', false]);
  const r = await runUntil(q, out2, (s) => s.includes('done\n'));
  q.turnOff('test done');
  await r.exit;
  const after = out2.join('');
  assert.ok(!after.includes('AP '), 'the AP was not started again');
  assertStress(after);
});

test('saved state keeps an AP waiting for SIPI: it stays waiting after the restore while the BSP continues', { skip }, async () => {
  const { counterKernel, counterCounts } = await import('./saved-state-kernel.js');
  const { path } = counterKernel();
  const out: string[] = [];
  const p = await Partition.create(config(path, 2, out));
  const { exit } = await runUntil(p, out, (s) => counterCounts(s).length >= 20);
  p.pause();
  assert.equal(p.scheduler.state(1), 'wait-for-sipi');
  const file = p.saveState();
  p.turnOff('saved');
  await exit;
  const before = out.join('');
  const out2: string[] = [];
  const q = await Partition.restore(config(path, 2, out2), file);
  assert.equal(q.scheduler.state(1), 'wait-for-sipi');
  const n = counterCounts(before).length;
  const r = await runUntil(q, out2, (s) => counterCounts(before + s).length >= n + 20);
  q.turnOff('test done');
  await r.exit;
  counterCounts(before + out2.join('')).forEach((c, i) => assert.equal(c, i + 1));
  assert.equal(q.scheduler.state(1), 'wait-for-sipi');
});

test('saved state with 4 vCPUs, twice: mid-rounds (BSP and two APs busy, one AP waiting for SIPI), then with the APs halted; each restore finishes the workload', { skip }, async () => {
  const kernel = smpKernel(SHOOTDOWN_ROUNDS, { leaveOneWaiting: true });
  const cfg = (out: string[]): PartitionConfig => config(kernel, 4, out);
  const states = (p: Partition): string[] => [0, 1, 2, 3].map((i) => p.scheduler.state(i));
  // 1: paused where the rounds start (POST 0x55), saved, restored.
  const out1: string[] = [];
  const p = await Partition.create(cfg(out1));
  p.devices.post.onWrite = (v) => { if (v === 0x55) p.pause(); };
  const r1 = await runUntil(p, out1, (s) => s.includes('all up: cpus=3'));
  p.pause();
  assert.deepEqual(states(p), ['runnable', 'runnable', 'runnable', 'wait-for-sipi'], 'the fourth processor was never started');
  const file1 = p.saveState();
  p.turnOff('saved');
  await r1.exit;
  assert.ok(!out1.join('').includes('rounds='), 'saved before the rounds');
  // 2: the restored partition runs the rounds; paused again once every started AP halted (POST 0x56), saved.
  const out2: string[] = [];
  const q = await Partition.restore(cfg(out2), file1);
  assert.equal(q.scheduler.state(3), 'wait-for-sipi');
  let halted = false;
  q.devices.post.onWrite = (v) => { if (v === 0x56) { halted = true; q.pause(); } };
  const r2 = await runUntil(q, out2, () => halted);
  q.pause();
  assert.deepEqual(states(q), ['runnable', 'halted', 'halted', 'wait-for-sipi']);
  const file2 = q.saveState();
  q.turnOff('saved');
  await r2.exit;
  const rounds = out2.join('');
  assert.ok(!rounds.includes('done'), 'saved before the BSP finished');
  assert.ok(!rounds.includes('AP '), 'no AP was started again after the first restore');
  assertStress(rounds);
  // 3: restored with one processor of each kind; the BSP finishes, the halted APs stay halted, the last one waits.
  const out3: string[] = [];
  const z = await Partition.restore(cfg(out3), file2);
  assert.deepEqual(states(z), ['runnable', 'halted', 'halted', 'wait-for-sipi']);
  const r3 = await runUntil(z, out3, (s) => s.includes('done\n'));
  assert.deepEqual(states(z).slice(1), ['halted', 'halted', 'wait-for-sipi']);
  z.turnOff('test done');
  await r3.exit;
  assert.ok(!out3.join('').includes('AP '), 'no AP was started again');
});
