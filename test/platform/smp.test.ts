import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Partition, type PartitionConfig, type PartitionExit } from '../../src/platform/partition.js';
import { smpKernel, haveBinutils, SHOOTDOWN_ROUNDS } from './smp-kernel.js';

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

for (const cpus of [2, 4]) {
  test(`${cpus} vCPUs: INIT-SIPI-SIPI starts every AP, each reports its APIC ID, TLB shootdowns never leave a stale entry`, { skip }, async () => {
    const s = await bootSmp(cpus);
    const aps = [...s.matchAll(/AP (\d+) apic=(\d+) cpuid=(\d+)\n/g)].map((m) => ({ apic: Number(m[2]), cpuid: Number(m[3]) }));
    assert.equal(aps.length, cpus - 1, s);
    // Each AP's LAPIC ID register and CPUID initial APIC ID agree, and together they are 1..cpus-1.
    for (const a of aps) assert.equal(a.apic, a.cpuid);
    assert.deepEqual(aps.map((a) => a.apic).sort((x, y) => x - y), Array.from({ length: cpus - 1 }, (_, i) => i + 1));
    assert.match(s, new RegExp(`all up: cpus=${cpus}\n`));
    const m = /shootdown rounds=(\d+) errors=(\d+) reads=(\d+)\n/.exec(s);
    assert.ok(m, s);
    assert.equal(Number(m[1]), SHOOTDOWN_ROUNDS);
    assert.equal(Number(m[2]), 0, 'an AP read the old frame after acknowledging a shootdown');
    assert.ok(Number(m[3]) > 0, 'the APs kept reading the remapped page during the rounds');
  });
}

test('two icount runs with 2 vCPUs print exactly the same output (turns end on instruction counts)', { skip }, async () => {
  const a = await bootSmp(2);
  const b = await bootSmp(2);
  assert.equal(a, b);
});
