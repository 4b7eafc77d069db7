/**
 * Online checkpoints of a running VM with a disk: the guest pauses only while the worker writes the state and
 * moves its disk onto the new AVHDX (same worker, still Running afterwards, the worker holds the child);
 * applying brings back the checkpoint's contents and running state; deleting while it runs merges online.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import { createVhdx, DiskLockedError, openDisk } from '../../src/storage/open.js';
import { startService, testVm, waitFor, type Fixture } from './helpers.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';

const support = isolationSupport();
/** With the worker plain, and isolated (where bubblewrap runs here; else skipped, saying why). */
const MODES: { mode: 'off' | 'auto'; skip: false | string }[] = [
  { mode: 'off', skip: false },
  { mode: 'auto', skip: !support.available && `bubblewrap cannot sandbox here: ${support.notes.join('; ')}` },
];
const fixtures = new Map<string, Fixture>();
let f: Fixture;
before(async () => { for (const m of MODES) if (!m.skip) fixtures.set(m.mode, await startService(undefined, { isolation: m.mode })); });
after(async () => { for (const x of fixtures.values()) await x.close(); });

const get = (name: string): Promise<VmView> => f.client.call<VmView>('GET', `/vms/${name}`);
const post = (name: string, action: string, body: unknown = {}): Promise<VmView> => f.client.call<VmView>('POST', `/vms/${name}/${action}`, body);
const checkpoint = (name: string, snap: string): Promise<CheckpointView> => f.client.call<CheckpointView>('POST', `/vms/${name}/snapshots`, { name: snap });
const currentDisk = async (name: string): Promise<string> => (await f.client.call<DriveView[]>('GET', `/vms/${name}/hard-disk-drives`))[0].path!;

async function lockedForWriting(path: string): Promise<boolean> {
  try { await (await openDisk(path)).close(); return false; } catch (e) { if (e instanceof DiskLockedError) return true; throw e; }
}

for (const { mode, skip } of MODES) {
  test(`checkpoint a running VM with a disk: same worker, it moves onto the child; apply and delete (isolation ${mode})`, { skip }, async () => {
    f = fixtures.get(mode)!;
    const dir = diskDir(f.dir, 'on');
    const base = join(dir, 'on.vhdx');
    await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
    await f.client.call('POST', '/vms', testVm('on'));
    await f.client.call('POST', '/vms/on/hard-disk-drives', { path: base });
    await writeMark(base, 'A');
    await post('on', 'start');
    const pid = f.service.workerPid('on');
    const isolated = !(await f.client.call<{ message: string }[]>('GET', '/vms/on/events')).some((ev) => /without isolation/i.test(ev.message));
    assert.equal(isolated, mode !== 'off');
    assert.ok(await lockedForWriting(base), 'the worker holds the disk');

    const c = await checkpoint('on', 'live');
    assert.equal(c.runningState, true);
    assert.equal((await get('on')).state, 'Running', 'the guest runs on');
    assert.equal(f.service.workerPid('on'), pid, 'the same worker');
    const child = await currentDisk('on');
    assert.match(child, /on_[0-9A-F-]{36}\.avhdx$/);
    assert.ok(await lockedForWriting(child), 'the worker now writes the child');
    // The checkpoint's file is only read now (a shared lock: another reader may open it, a writer may not).
    await (await openDisk(base, { readOnly: true })).close();
    assert.equal(await readMark(child), 'A');

    await post('on', 'stop', { turnOff: true });
    await waitFor('Off', async () => (await get('on')).state === 'Off');
    await writeMark(child, 'B');
    const v = await f.client.call<VmView>('POST', '/vms/on/snapshots/live/restore', {});
    assert.equal(v.state, 'Saved', 'the checkpoint has running state');
    assert.equal(await readMark(await currentDisk('on')), 'A');
    assert.deepEqual(folderFiles(dir).length, 2, 'the base and one fresh child (the child with B is gone)');

    // Resume from the checkpoint, then delete it while the VM runs: the worker merges its child into the base
    // online (the guest runs on, in the same worker, now on the base).
    await post('on', 'start');
    assert.equal((await get('on')).state, 'Running');
    const runner = f.service.workerPid('on');
    await f.client.call('DELETE', '/vms/on/snapshots/live');
    assert.equal((await get('on')).state, 'Running');
    assert.equal(f.service.workerPid('on'), runner, 'the same worker');
    assert.equal(await currentDisk('on'), base, 'merged into the base while it ran');
    assert.deepEqual(folderFiles(dir), ['on.vhdx']);
    assert.ok(await lockedForWriting(base), 'the worker writes the base again');
    await post('on', 'stop', { turnOff: true });
    await waitFor('Off', async () => (await get('on')).state === 'Off');
    await f.service.checkpointDisksSettled();
    assert.equal(await currentDisk('on'), base);
    assert.deepEqual(folderFiles(dir), ['on.vhdx']);
    assert.equal(await readMark(base), 'A');
  });
}
