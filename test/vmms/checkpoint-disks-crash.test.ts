/**
 * A management service killed (SIGKILL) in the middle of checkpoint disk work comes back consistent: the VM is
 * as before or as after the operation, every checkpoint shows its contents, leftovers are removed at start with
 * an event, and an interrupted merge is finished.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmmsService } from '../../src/vmms/service.js';
import { createVhdx } from '../../src/storage/open.js';
import { testVm, testBootRoots } from './helpers.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';

const child = fileURLToPath(new URL('./checkpoint-crash-child.js', import.meta.url));
const disk = (s: VmmsService, vm: string): string => s.get(vm).config.hardware.drives.find((d) => d.kind === 'disk')!.path!;

/** A VM with a VHDX showing A and, when `withCheckpoint`, checkpoint 'c1' (A) with B written after it. */
async function setup(withCheckpoint: boolean): Promise<{ dir: string; files: string; base: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-cpcrash-'));
  const s = new VmmsService({ dataDir: dir, bootRoots: testBootRoots() });
  const files = diskDir(dir, 'vm');
  const base = join(files, 'vm.vhdx');
  await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
  s.create(testVm('vm'));
  await s.drives.addHardDisk('vm', { path: base });
  await writeMark(base, 'A');
  if (withCheckpoint) {
    await s.checkpoint('vm', 'c1');
    await writeMark(disk(s, 'vm'), 'B');
  }
  await s.close();
  return { dir, files, base };
}

/** Runs `op` in a child service that kills itself at `step`; then a new service recovers. */
async function crashAndRecover(dir: string, step: string, op: string, snap: string): Promise<VmmsService> {
  const r = spawnSync(process.execPath, [child, dir, op, 'vm', snap], { env: { ...process.env, HYPERTS_CRASH_AT: step }, encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', `the service was killed at ${step} (exit ${r.status}: ${r.stderr})`);
  const s = new VmmsService({ dataDir: dir, bootRoots: testBootRoots() });
  await s.checkpointDisksSettled();
  return s;
}

const events = (s: VmmsService): string => s.events({ name: 'vm' }).map((e) => e.message).join('\n');

test('killed after creating the checkpoint child: the VM is as before, the child is removed with an event', async () => {
  const { dir, files, base } = await setup(false);
  const s = await crashAndRecover(dir, 'child-created', 'checkpoint', 'c1');
  try {
    assert.deepEqual(s.checkpoints('vm'), []);
    assert.equal(disk(s, 'vm'), base);
    assert.deepEqual(folderFiles(files), ['vm.vhdx']);
    assert.match(events(s), /deleted .*vm_[0-9A-F-]{36}\.avhdx: nothing needs it/);
    // And the checkpoint works afterwards.
    await s.checkpoint('vm', 'c1');
    assert.equal(await readMark(disk(s, 'vm')), 'A');
  } finally { await s.close(); }
});

test('killed after creating the fresh child of an apply: the VM keeps its disk (B), the fresh child is removed', async () => {
  const { dir, files } = await setup(true);
  const before = folderFiles(files);
  const s = await crashAndRecover(dir, 'child-created', 'apply', 'c1');
  try {
    assert.equal(await readMark(disk(s, 'vm')), 'B');
    assert.deepEqual(folderFiles(files), before);
    assert.equal(await readMark(s.checkpoints('vm')[0].config.hardware.drives[0].path!), 'A');
  } finally { await s.close(); }
});

for (const step of ['merge-partial', 'merge-copied', 'merge-repointed']) {
  test(`killed during the merge of a deleted checkpoint (${step}): the merge completes at start`, async () => {
    const { dir, files, base } = await setup(true);
    const s = await crashAndRecover(dir, step, 'remove', 'c1');
    try {
      assert.deepEqual(s.checkpoints('vm'), [], 'the checkpoint was deleted before its disk merged');
      assert.equal(disk(s, 'vm'), base, 'the VM ends on the merged disk');
      assert.equal(await readMark(base), 'B', 'the data written after the checkpoint survives');
      assert.deepEqual(folderFiles(files), ['vm.vhdx']);
      assert.match(events(s), step === 'merge-repointed' ? /deleted .*avhdx: nothing needs it/ : /merg/);
    } finally { await s.close(); }
  });
}

for (const step of ['child-created', 'online-switched']) {
  test(`killed during an online checkpoint of a running VM (${step}): the VM comes back Off, as before or after`, async () => {
    const { dir, files, base } = await setup(false);
    const s = await crashAndRecover(dir, step, 'start-checkpoint', 'live');
    try {
      assert.equal(s.get('vm').state, 'Off', 'its worker ended with the service');
      const cps = s.checkpoints('vm');
      if (step === 'child-created') {
        assert.deepEqual(cps, [], 'before: no checkpoint');
        assert.equal(disk(s, 'vm'), base);
        assert.deepEqual(folderFiles(files), ['vm.vhdx']);
      } else {
        assert.deepEqual(cps.map((c) => [c.name, c.disks[0].path]), [['live', base]], 'after: the checkpoint keeps the disk');
        assert.match(disk(s, 'vm'), /vm_[0-9A-F-]{36}\.avhdx$/);
        assert.equal(folderFiles(files).length, 2);
      }
      assert.equal(await readMark(disk(s, 'vm')), 'A');
    } finally { await s.close(); }
  });
}
