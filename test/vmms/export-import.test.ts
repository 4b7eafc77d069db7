/**
 * Export-VM / Import-VM: a VM with a disk and a small checkpoint tree is exported (disks, checkpoints,
 * configuration), then imported as a copy with new ids next to the original: every checkpoint of the copy
 * shows its own contents, applying and deleting work on the copy's files only; imports that would clash fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import { createVhdx } from '../../src/storage/open.js';
import { rejects, startService, testVm, waitFor, type Fixture } from './helpers.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';

let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

const snaps = (name: string): Promise<CheckpointView[]> => f.client.call<CheckpointView[]>('GET', `/vms/${name}/snapshots`);
const currentDisk = async (name: string): Promise<string> => (await f.client.call<DriveView[]>('GET', `/vms/${name}/hard-disk-drives`))[0].path!;

test('export a VM with checkpoints, import a copy with new ids: contents, apply and delete on the copy', async () => {
  const dir = diskDir(f.dir, 'ex');
  const base = join(dir, 'ex.vhdx');
  await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
  await f.client.call('POST', '/vms', testVm('ex'));
  await f.client.call('POST', '/vms/ex/hard-disk-drives', { path: base });
  await writeMark(base, 'A');
  await f.client.call('POST', '/vms/ex/snapshots', { name: 'a' });
  await writeMark(await currentDisk('ex'), 'B');
  await f.client.call('POST', '/vms/ex/snapshots', { name: 'b' });
  await writeMark(await currentDisk('ex'), 'C');

  const out = join(f.dir, 'exports');
  const { path } = await f.client.call<{ path: string }>('POST', '/vms/ex/export', { path: out });
  assert.equal(path, join(out, 'ex'));
  assert.equal(readdirSync(join(path, 'Virtual Hard Disks')).length, 3, 'the disk and both AVHDX');
  await rejects(f.client.call('POST', '/vms/ex/export', { path: out }), 409, /already exists/);
  await rejects(f.client.call('POST', '/imports', { path }), 409, /named 'ex' already exists/);

  await f.client.call('PATCH', '/vms/ex', { name: 'ex-original' });
  await rejects(f.client.call('POST', '/imports', { path }), 409, /already registered; import a copy with --copy --generate-new-id/);
  const copy = await f.client.call<VmView>('POST', '/imports', { path, copy: true, generateNewId: true });
  assert.equal(copy.name, 'ex');
  assert.notEqual(copy.id, (await f.client.call<VmView>('GET', '/vms/ex-original')).id);
  const list = await snaps('ex');
  assert.deepEqual(list.map((c) => [c.name, c.parentSnapshotName]), [['a', null], ['b', 'a']]);
  const orig = await snaps('ex-original');
  assert.ok(list.every((c) => !orig.some((o) => o.id === c.id)), 'new checkpoint ids');
  for (const [c, m] of [[list[0], 'A'], [list[1], 'B']] as const) {
    assert.ok(!c.disks[0].path.startsWith(dir), 'the copy uses its own files');
    assert.equal(await readMark(c.disks[0].path), m);
  }
  assert.equal(await readMark(await currentDisk('ex')), 'C');

  await f.client.call('POST', '/vms/ex/snapshots/a/restore', {});
  assert.equal(await readMark(await currentDisk('ex')), 'A');
  await f.client.call('DELETE', '/vms/ex/snapshots/a');
  await f.client.call('DELETE', '/vms/ex/snapshots/b');
  assert.equal(await readMark(await currentDisk('ex')), 'A');
  // The original is untouched.
  for (const [c, m] of [[orig[0], 'A'], [orig[1], 'B']] as const) assert.equal(await readMark(c.disks[0].path), m);
  assert.equal(await readMark(await currentDisk('ex-original')), 'C');

  // In place: once the original is gone, the export registers with its own id and uses the exported files.
  const origId = (await f.client.call<VmView>('GET', '/vms/ex-original')).id;
  await f.client.call('DELETE', '/vms/ex-original');
  await f.client.call('PATCH', '/vms/ex', { name: 'ex-copy' });
  const inPlace = await f.client.call<VmView>('POST', '/imports', { path });
  assert.equal(inPlace.id, origId);
  const again = await snaps('ex');
  assert.deepEqual(again.map((c) => c.id), orig.map((c) => c.id));
  for (const [c, m] of [[again[0], 'A'], [again[1], 'B']] as const) {
    assert.ok(c.disks[0].path.startsWith(join(path, 'Virtual Hard Disks')), 'the export\'s own files');
    assert.equal(await readMark(c.disks[0].path), m);
  }
  assert.equal(await readMark(await currentDisk('ex')), 'C');
});

test('export a running VM: through a checkpoint taken for the purpose, removed again; the VM runs on; the export imports Saved', async () => {
  const dir = diskDir(f.dir, 'live');
  const base = join(dir, 'live.vhdx');
  await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
  await f.client.call('POST', '/vms', testVm('live'));
  await f.client.call('POST', '/vms/live/hard-disk-drives', { path: base });
  await writeMark(base, 'A');
  await f.client.call('POST', '/vms/live/snapshots', { name: 'a' });
  const child = await currentDisk('live');
  await writeMark(child, 'B');
  await f.client.call('POST', '/vms/live/start', {});
  const pid = f.service.workerPid('live');

  const { path } = await f.client.call<{ path: string }>('POST', '/vms/live/export', { path: join(f.dir, 'exports-live') });
  const vm = await f.client.call<VmView>('GET', '/vms/live');
  assert.equal(vm.state, 'Running', 'the VM runs on');
  assert.equal(f.service.workerPid('live'), pid, 'in the same worker');
  assert.deepEqual((await snaps('live')).map((c) => c.name), ['a'], 'the export\'s checkpoint is removed again');
  // Its AVHDX merged back into the VM's disk (online): the folder holds what it held before.
  await waitFor('the merge', async () => folderFiles(dir).length === 2 && await currentDisk('live') === child, 60_000);
  assert.deepEqual(folderFiles(dir), [basename(base), basename(child)].sort());
  const events = (await f.client.call<{ message: string }[]>('GET', '/vms/live/events')).map((e) => e.message);
  assert.ok(events.some((m) => /exported to .* from (standard|production) checkpoint 'Export [^']+' \(removed again\)/.test(m)), events.join('\n'));
  assert.equal(readdirSync(join(path, 'Virtual Hard Disks')).length, 2, 'the disk and the checkpoint\'s AVHDX (the running VM\'s own child is not exported)');

  await f.client.call('POST', '/vms/live/stop', { turnOff: true });
  await waitFor('Off', async () => (await f.client.call<VmView>('GET', '/vms/live')).state === 'Off', 60_000);
  await f.client.call('DELETE', '/vms/live');
  // The test kernel has no VSS daemon: the production checkpoint fell back to a standard one, so the export is Saved.
  const imported = await f.client.call<VmView>('POST', '/imports', { path });
  assert.equal(imported.state, 'Saved');
  assert.deepEqual((await snaps('live')).map((c) => [c.name, c.parentSnapshotName]), [['a', null]]);
  assert.equal(await readMark(await currentDisk('live')), 'B');
  assert.equal(await readMark((await snaps('live'))[0].disks[0].path), 'A');
  await f.client.call('POST', '/vms/live/start', {});
  assert.equal((await f.client.call<VmView>('GET', '/vms/live')).state, 'Running', 'the imported VM resumes from the export\'s state');
  await f.client.call('POST', '/vms/live/stop', { turnOff: true });
});
