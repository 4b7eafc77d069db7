/**
 * Online merge: deleting a checkpoint of a running VM merges the AVHDX the VM writes into its parent while
 * the (fast test) worker keeps writing records and flushing; afterwards the VM runs on the parent, the
 * merged file is gone, every acknowledged record reads back and the files pass the structural check.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { holderRecordPath } from '../../src/storage/lock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmmsService } from '../../src/vmms/service.js';
import { createVhdx, openDisk } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { waitFor, testBootRoots } from './helpers.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';
import { ackedRecord, checkRing } from './disk-writer-records.js';
import { crashRun } from './checkpoint-crash-random.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';

export const diskWorker = fileURLToPath(new URL('./disk-worker.js', import.meta.url));
const REGION = 4 << 20, SLOTS = 256;

const support = isolationSupport();
/** Each test runs with the worker plain and isolated under bubblewrap (where it can run here: else skipped, saying why). */
const MODES: { mode: 'off' | 'required'; skip: false | string }[] = [
  { mode: 'off', skip: false },
  { mode: 'required', skip: !support.available && `bubblewrap cannot sandbox here: ${support.notes.join('; ')}` },
];

let dir: string;
const services = new Map<string, VmmsService>();
let s: VmmsService;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'hyperts-merge-'));
  for (const m of MODES) if (!m.skip) services.set(m.mode, new VmmsService({ dataDir: join(dir, m.mode), bootRoots: testBootRoots(), isolation: m.mode, workerPath: diskWorker, turnOffGraceMs: 5000 }));
});
after(async () => { for (const x of services.values()) await x.close(); rmSync(dir, { recursive: true, force: true }); });

const disk = (vm: string): string => s.get(vm).config.hardware.drives.find((d) => d.kind === 'disk')!.path!;

/**
 * A VM of the fast test worker on a 32 MiB VHDX showing mark A, with 12 MiB of data to merge later. The writer's
 * acknowledgement file lies in the VM's folder, the one folder an isolated worker may write.
 */
async function vm(name: string): Promise<{ files: string; base: string; ack: string }> {
  const mode = [...services].find(([, x]) => x === s)![0];
  const data = join(dir, mode);
  const files = diskDir(data, name);
  const base = join(files, `${name}.vhdx`);
  await createVhdx({ path: base, sizeBytes: 32 << 20, type: 'dynamic' });
  s.create({ name, kernel: diskWorker, memory: '64M', processor: 'emulated', checkpointType: 'Standard',
    cmdline: JSON.stringify({ ackFile: mode === 'off' ? join(data, `${name}.ack`) : 'writer.ack', regionStart: REGION, slots: SLOTS }) });
  await s.drives.addHardDisk(name, { path: base });
  await writeMark(base, 'A');
  // An isolated worker's current folder is the VM's own.
  return { files, base, ack: mode === 'off' ? join(data, `${name}.ack`) : join(s.vmDirectory(name), 'writer.ack') };
}

/** Writes `bytes` of a recognisable pattern at 8 MiB.. of the disk (offline). */
async function fill(path: string, bytes: number, seed: number): Promise<void> {
  const d = await openDisk(path, { purpose: 'test' });
  try { for (let o = 0; o < bytes; o += 1 << 20) await d.write((8 << 20) + o, Buffer.alloc(1 << 20, (seed + o / (1 << 20)) & 0xff)); await d.flush(); } finally { await d.close(); }
}
async function checkFill(path: string, bytes: number, seed: number): Promise<boolean> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try {
    const b = Buffer.alloc(1 << 20);
    for (let o = 0; o < bytes; o += 1 << 20) { await d.read((8 << 20) + o, b); if (!b.equals(Buffer.alloc(1 << 20, (seed + o / (1 << 20)) & 0xff))) return false; }
    return true;
  } finally { await d.close(); }
}

const progress = async (ack: string, beyond: number): Promise<number> => waitFor(`the writer beyond record ${beyond}`, () => { const a = ackedRecord(ack); return a > beyond ? a : 0; });
const events = (name: string): string => s.events({ name }).map((e) => e.message).join('\n');

for (const { mode, skip } of MODES) {
  test(`deleting the checkpoint of a running VM merges its AVHDX into the parent while the guest writes (isolation ${mode})`, { skip }, async () => {
    s = services.get(mode)!;
    const { files, base, ack } = await vm('m1');
    await s.start('m1');
    const pid = s.workerPid('m1');
    await progress(ack, 20);
    await s.checkpoint('m1', 'c1');
    const child = disk('m1');
    assert.match(child, /m1_[0-9A-F-]{36}\.avhdx$/);
    if (mode !== 'off') {
      // The service names the isolated worker as the holder of the new file it handed over.
      assert.equal((JSON.parse(readFileSync(holderRecordPath(child), 'utf8')) as { pid: number }).pid, pid);
    }
    const a1 = await progress(ack, ackedRecord(ack) + 300);
    assert.ok(a1 > 0);

    await s.removeCheckpoint('m1', 'c1');
    assert.equal(s.get('m1').state, 'Running', 'the guest ran on');
    assert.equal(s.workerPid('m1'), pid, 'in the same worker');
    assert.equal(disk('m1'), base, 'the VM now writes the merged parent');
    assert.deepEqual(folderFiles(files), ['m1.vhdx'], 'the AVHDX is gone');
    assert.match(events('m1'), /merged m1_.*\.avhdx into m1\.vhdx while the VM ran/);
    const a2 = await progress(ack, ackedRecord(ack) + 300);

    await s.stop('m1', { turnOff: true });
    await waitFor('Off', () => s.get('m1').state === 'Off');
    const acked = ackedRecord(ack);
    assert.ok(acked >= a2);
    const ring = await checkRing(base, REGION, SLOTS, acked);
    assert.deepEqual(ring.problems, []);
    assert.equal(await readMark(base), 'A');
    assert.deepEqual(await checkVhd(base), []);
  });

  test(`deleting the newer of two checkpoints merges the leaf into a differencing parent; the chain stays valid (isolation ${mode})`, { skip }, async () => {
    s = services.get(mode)!;
    const { files, base, ack } = await vm('m2');
    await s.start('m2');
    await progress(ack, 10);
    await s.checkpoint('m2', 'c1');
    const mid = disk('m2');
    await s.checkpoint('m2', 'c2');
    const leaf = disk('m2');
    assert.notEqual(mid, leaf);
    await progress(ack, ackedRecord(ack) + 500);
    await s.removeCheckpoint('m2', 'c2');
    assert.equal(disk('m2'), mid, 'the VM writes the first checkpoint\'s child again');
    assert.equal(folderFiles(files).length, 2);
    await progress(ack, ackedRecord(ack) + 200);
    await s.stop('m2', { turnOff: true });
    await waitFor('Off', () => s.get('m2').state === 'Off');
    assert.deepEqual((await checkRing(mid, REGION, SLOTS, ackedRecord(ack))).problems, []);
    for (const f of [base, mid]) assert.deepEqual(await checkVhd(f), []);
    assert.equal(await readMark(s.checkpoints('m2')[0].disks[0].path), 'A', 'c1 still shows its contents');
  });

  test(`a large child merges online while the guest writes; data written before the delete reads back (isolation ${mode})`, { skip }, async () => {
    s = services.get(mode)!;
    const { base, ack } = await vm('m3');
    await s.checkpoint('m3', 'c1'); // Off: the VM continues on a child
    const child = disk('m3');
    await fill(child, 12 << 20, 7);
    await writeMark(child, 'B');
    await s.start('m3');
    await progress(ack, 20);
    await s.removeCheckpoint('m3', 'c1');
    assert.equal(disk('m3'), base);
    await progress(ack, ackedRecord(ack) + 100);
    await s.stop('m3', { turnOff: true });
    await waitFor('Off', () => s.get('m3').state === 'Off');
    assert.ok(await checkFill(base, 12 << 20, 7), 'the 12 MiB written into the child before are in the parent');
    assert.equal(await readMark(base), 'B');
    assert.deepEqual((await checkRing(base, REGION, SLOTS, ackedRecord(ack))).problems, []);
    assert.deepEqual(await checkVhd(base), []);
  });
}

for (const step of ['online-merge-copied', 'online-merge-repointed']) {
  test(`the service killed during an online merge (${step}): recovery ends merged, nothing acknowledged is lost`, async () => {
    const r = await crashRun('merge-online', 'service', null, 77, step);
    assert.equal(r.killed, true, 'the service killed itself at the step');
    assert.deepEqual(r.problems, []);
    assert.equal(r.outcome, 'after');
    // Killed after the copy: the merge is finished at start; after the switch: the AVHDX is deleted as unused.
    assert.equal(r.removed.length, 1);
  });
}
