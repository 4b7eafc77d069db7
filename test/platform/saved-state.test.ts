import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Partition, type PartitionConfig, type PartitionExit } from '../../src/platform/partition.js';
import { decodeSavedState, encodeSavedState, SavedStateError } from '../../src/platform/saved-state.js';
import { counterKernel, counterSteps, haveBinutils } from './saved-state-kernel.js';

const skip = haveBinutils() ? false : 'needs binutils (as, ld)';

function config(kernel: string, clockMode: 'icount' | 'realtime' | 'warp', out: string[]): PartitionConfig {
  return {
    name: 'counter', processor: 'emulated', memoryBytes: 16 << 20, cpus: 1, enlightened: true, kernel, cmdline: '',
    clockMode, quiet: true, onConsoleOutput: (b) => out.push(Buffer.from(b).toString('latin1')),
  };
}

/** Runs `p` until `done(output)` holds (an upper bound guards against hangs), leaving it running. */
async function runUntil(p: Partition, out: string[], done: (s: string) => boolean): Promise<{ exit: Promise<PartitionExit> }> {
  const exit = p.start();
  const end = Date.now() + 60_000;
  while (!done(out.join(''))) {
    if (Date.now() > end) throw new Error(`gave up; output so far: ${out.join('').slice(-200)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { exit }; // wrapped: an async function would otherwise wait for the partition to exit
}


/** Saves a partition mid-computation; returns the file bytes and the output printed before the save. */
async function saveMidway(clockMode: 'icount' | 'realtime' | 'warp'): Promise<{ file: Buffer; before: string; kernel: string; table: number }> {
  const { path, table } = counterKernel();
  const out: string[] = [];
  const p = await Partition.create(config(path, clockMode, out));
  const { exit } = await runUntil(p, out, (s) => counterSteps(s).length >= 40);
  p.pause();
  const file = p.saveState();
  p.turnOff('saved');
  await exit;
  return { file, before: out.join(''), kernel: path, table };
}

for (const mode of ['icount', 'realtime'] as const) {
  test(`a saved counter guest continues in a new partition (${mode} clock): output, timer and memory carry on`, { skip }, async () => {
    const { file, before, kernel, table } = await saveMidway(mode);
    const saved = decodeSavedState(file);
    const out: string[] = [];
    const p = await Partition.restore(config(kernel, mode, out), file);
    // The uptime base carries over (exactly, when nothing has run yet and time counts instructions).
    if (mode === 'icount') assert.equal(p.clock.now(), saved.info.virtualTimeNs);
    else assert.ok(p.clock.now() >= saved.info.virtualTimeNs);
    const beforeLines = counterSteps(before);
    const last = beforeLines[beforeLines.length - 1];
    // At least 30 more steps and one more timer tick (a tick comes every ~30 steps; where the save fell
    // within a tick period depends on host timing, so a fixed step count could end just before one).
    const { exit } = await runUntil(p, out, (s) => {
      const st = counterSteps(before + s);
      return st.length >= beforeLines.length + 30 && st[st.length - 1].t > last.t;
    });
    p.turnOff('test done');
    await exit;
    // Joined, the two outputs are one unbroken count: the guest neither restarted nor skipped a step
    // (a line cut by the save is finished by the restored guest).
    const all = counterSteps(before + out.join(''));
    assert.equal(all[0].n, 1);
    all.forEach((l, i) => assert.equal(l.n, i + 1, `line ${i + 1} of the joined output says n=${l.n}`));
    assert.ok(!/n=1 /.test(out.join('')), 'the restored guest did not start over');
    // The LAPIC timer keeps interrupting after the restore.
    const after = all.slice(beforeLines.length);
    assert.ok(after[after.length - 1].t > last.t, `ticks went from ${last.t} to ${after[after.length - 1].t}`);
    for (let i = 1; i < all.length; i++) assert.ok(all[i].t >= all[i - 1].t);
    // The table the guest wrote before the save is intact in the new partition.
    const view = new DataView(p.memory.bytes.buffer, p.memory.bytes.byteOffset);
    for (let n = 1; n <= last.n; n++) assert.equal(view.getUint32(table + (n % 4096) * 4, true), n);
  });
}

test('a corrupt, truncated or foreign saved state is refused with a clear error, before the VM runs', { skip }, async () => {
  const { file, kernel } = await saveMidway('icount');
  const cfg = config(kernel, 'icount', []);
  const refuse = async (bytes: Uint8Array, re: RegExp): Promise<void> => {
    await assert.rejects(Partition.restore(cfg, bytes), (e: unknown) => e instanceof SavedStateError && re.test((e as Error).message));
  };
  const flipped = Buffer.from(file); flipped[flipped.length - 100] ^= 0x40;
  await refuse(flipped, /checksum does not match/);
  await refuse(file.subarray(0, file.length >> 1), /checksum does not match/);
  await refuse(file.subarray(0, 20), /not a hyperts saved-state file/);
  await refuse(Buffer.from('{"hello":"world"}'.padEnd(100)), /not a hyperts saved-state file/);
  const v2 = Buffer.from(file); v2.writeUInt32LE(99, 16);
  await refuse(v2, /format version 99/);
  // Well-formed files whose content does not fit this VM or this build.
  const d = decodeSavedState(file);
  const ram = new Uint8Array(d.info.memoryBytes); d.loadMemory(ram);
  // Loading over memory that held something else leaves exactly the saved image (zero pages cleared too).
  const dirty = new Uint8Array(d.info.memoryBytes).fill(0xa5); d.loadMemory(dirty);
  assert.ok(Buffer.from(dirty).equals(Buffer.from(ram)));
  assert.ok(ram.some((b) => b !== 0) && ram.some((b, i) => b === 0 && i % 4096 === 0));
  await assert.rejects(Partition.restore({ ...cfg, memoryBytes: 32 << 20 }, file), /taken with memory 16777216.*remove-vmsavedstate/);
  const s = d.state as { vcpus: Array<{ fields: Record<string, unknown> }>; devices: Record<string, unknown> };
  s.vcpus[0].fields.someFutureRegister = 5;
  await refuse(encodeSavedState(d.info, s, ram), /someFutureRegister is unknown/);
  delete s.vcpus[0].fields.someFutureRegister;
  delete s.devices.pit;
  await refuse(encodeSavedState(d.info, s, ram), /state\.devices\.pit is missing/);
});

test('a partition whose processor cannot save refuses with a clear error', { skip }, async () => {
  const { path } = counterKernel();
  const p = await Partition.create(config(path, 'icount', []));
  (p.vcpus[0] as { saveState?: unknown }).saveState = undefined; // what a KVM vCPU looks like
  assert.throws(() => p.saveState(), /saved state is supported on the emulated processor only/);
});
