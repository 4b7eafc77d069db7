/**
 * Standard checkpoints through the management service: a counting guest is checkpointed while it runs
 * (it keeps counting, same worker), turned off, the checkpoint applied (the VM becomes Saved) and start-vm
 * resumes the count from the checkpoint's value. Configuration-only checkpoints of an Off VM, checkpoints of a
 * Saved VM, rename/remove, remove-vm, and bad input that must change nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { readSavedStateFile } from '../../src/platform/saved-state.js';
import { counterCounts, counterKernel, haveBinutils } from '../platform/saved-state-kernel.js';
import { openConsole, rejects, startService, testVm, waitFor, type Fixture } from './helpers.js';

const skip = !haveBinutils() && 'binutils (as, ld) not installed';
let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

const get = (name: string): Promise<VmView> => f.client.call<VmView>('GET', `/vms/${name}`);
const post = (name: string, action: string, body: unknown = {}): Promise<VmView> => f.client.call<VmView>('POST', `/vms/${name}/${action}`, body);
const snaps = (name: string): Promise<CheckpointView[]> => f.client.call<CheckpointView[]>('GET', `/vms/${name}/snapshots`);
const checkpoint = (name: string, body: unknown = {}): Promise<CheckpointView> => f.client.call<CheckpointView>('POST', `/vms/${name}/snapshots`, body);
const snapPath = (name: string, s: string): string => `/vms/${name}/snapshots/${encodeURIComponent(s)}`;
const restore = (name: string, s: string): Promise<VmView> => f.client.call<VmView>('POST', `${snapPath(name, s)}/restore`, {});

const unbroken = (all: number[], first: number, what: string): void =>
  all.forEach((n, i) => assert.equal(n, first + i, `${what}: line ${i + 1} says n=${n}, expected ${first + i}`));

/** The guest's `count` variable as stored in a checkpoint's RAM image. */
function countIn(file: string): number {
  const nm = spawnSync('nm', [counterKernel().path], { encoding: 'utf8' });
  const m = /^([0-9a-f]+) [dD] count$/m.exec(nm.stdout);
  assert.ok(m, 'count symbol in the counter kernel');
  const saved = readSavedStateFile(file);
  const ram = new Uint8Array(saved.info.memoryBytes);
  saved.loadMemory(ram);
  return new DataView(ram.buffer).getUint32(parseInt(m[1], 16), true);
}

test('checkpoint a running guest (it keeps running), turn off, apply, start-vm resumes at the checkpoint', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'cp', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  await post('cp', 'start');
  const con = await openConsole(f.client, 'cp');
  await waitFor('the guest to count', () => counterCounts(con.text()).length >= 20);
  const pid = f.service.workerPid('cp')!;

  const c = await checkpoint('cp', { name: 'mid-count' });
  assert.equal(c.name, 'mid-count');
  assert.equal(c.snapshotType, 'Standard');
  assert.equal(c.runningState, true);
  assert.equal(c.parentSnapshotName, null);
  const file = join(f.service.vmDirectory('cp'), 'checkpoints', `${c.id}.vmrs`);
  assert.ok(existsSync(file), 'the checkpoint has its state file');
  const atCheckpoint = countIn(file);
  assert.ok(atCheckpoint >= 20, `the checkpoint holds the running count (${atCheckpoint})`);

  // The guest did not stop: same worker, still Running, and it counts on past the checkpoint without a restart.
  const v = await get('cp');
  assert.equal(v.state, 'Running');
  assert.equal(v.workerPid, pid);
  await waitFor('the guest to count past the checkpoint', () => Math.max(0, ...counterCounts(con.text())) >= atCheckpoint + 40);
  unbroken(counterCounts(con.text()), 1, 'the count across the checkpoint');

  // Hyper-V refuses to apply a checkpoint to a running VM; nothing changes.
  await rejects(restore('cp', 'mid-count'), 409, /cannot apply checkpoint 'mid-count' to VM 'cp': it is Running \(stop-vm cp or save-vm cp first\)/);
  assert.equal((await get('cp')).workerPid, pid);

  await post('cp', 'stop', { turnOff: true });
  const later = Math.max(...counterCounts(con.text()));
  const mark = con.text().length;
  const applied = await restore('cp', 'mid-count');
  assert.equal(applied.state, 'Saved');
  assert.ok(existsSync(file), 'applying keeps the checkpoint');
  assert.equal((await snaps('cp'))[0].current, true);

  await post('cp', 'start');
  await waitFor('the restored guest to count', () => counterCounts(con.text().slice(mark)).length >= 20);
  const resumed = counterCounts(con.text().slice(mark));
  // The first whole line after the restore is the checkpoint's count (the line being printed) or the next one.
  assert.ok(resumed[0] === atCheckpoint || resumed[0] === atCheckpoint + 1,
    `resumed at n=${resumed[0]}, the checkpoint held count=${atCheckpoint} (the count had reached ${later} before the turn-off)`);
  assert.ok(resumed[0] < later);
  unbroken(resumed, resumed[0], 'the count after the restore');
  con.ws.close();

  // A second checkpoint hangs under the applied one.
  const c2 = await checkpoint('cp');
  assert.equal(c2.parentSnapshotName, 'mid-count');
  assert.match(c2.name, /^cp - \(\d{1,2}\/\d{1,2}\/\d{4} - \d{1,2}:\d{2}:\d{2} [AP]M\)$/);
  await post('cp', 'stop', { turnOff: true });

  const ev = await f.client.call<VmEvent[]>('GET', '/vms/cp/events?limit=100');
  const msgs = ev.map((e) => e.message).join('\n');
  assert.match(msgs, /checkpoint 'mid-count' created \(with the running state\)/);
  assert.match(msgs, /checkpoint 'mid-count' applied/);
  assert.ok(ev.some((e) => e.from === 'Off' && e.to === 'Saved'), 'applying moves Off -> Saved');
});

test('an Off VM checkpoints its configuration; applying it restores the settings and leaves the VM Off', async () => {
  await f.client.call('POST', '/vms', testVm('co'));
  const c = await checkpoint('co', { name: 'base' });
  assert.equal(c.runningState, false);
  assert.equal(c.config.memoryBytes, 64 * 1048576);
  assert.ok(!existsSync(join(f.service.vmDirectory('co'), 'checkpoints', `${c.id}.vmrs`)));
  await f.client.call('PATCH', '/vms/co', { memory: '128M', cmdline: 'changed later', notes: 'later' });
  const v = await restore('co', 'BASE'); // names are case-insensitive
  assert.equal(v.state, 'Off');
  assert.equal(v.config.memoryBytes, 64 * 1048576);
  assert.equal(v.config.boot.cmdline, c.config.boot.cmdline);
  assert.notEqual(v.config.boot.cmdline, 'changed later');
  assert.equal(v.name, 'co');
});

test('bad input gives clear errors and changes nothing', async () => {
  await f.client.call('POST', '/vms', testVm('cb'));
  await checkpoint('cb', { name: 'one' });
  const before = await snaps('cb');
  await rejects(checkpoint('cb', { name: 'ONE' }), 409, /VM 'cb' already has a checkpoint named 'ONE'/);
  await rejects(checkpoint('cb', { name: '' }), 400, /invalid checkpoint name/);
  await rejects(checkpoint('cb', { name: 'x'.repeat(101) }), 400, /1-100 printable characters/);
  await rejects(checkpoint('cb', { name: 'a\nb' }), 400, /invalid checkpoint name/);
  await rejects(checkpoint('nope', { name: 'z' }), 404, /no virtual machine named 'nope'/);
  await rejects(restore('cb', 'two'), 404, /VM 'cb' has no checkpoint named 'two' \(list them with 'hyperts get-vmsnapshot cb'\)/);
  await rejects(f.client.call('DELETE', snapPath('cb', 'two')), 404, /no checkpoint named 'two'/);
  await rejects(f.client.call('PATCH', snapPath('cb', 'two'), { name: 'three' }), 404, /no checkpoint named 'two'/);
  await checkpoint('cb', { name: 'two' });
  await rejects(f.client.call('PATCH', snapPath('cb', 'two'), { name: 'One' }), 409, /already has a checkpoint named 'One'/);
  await rejects(f.client.call('PATCH', snapPath('cb', 'two'), { name: 42 }), 400, /invalid checkpoint name/);
  const after = await snaps('cb');
  assert.deepEqual(after.map((s) => s.name), [...before.map((s) => s.name), 'two']);
  assert.equal(after[1].parentSnapshotName, 'one');
  assert.equal((await get('cb')).state, 'Off');
});

test('rename and remove: children move up to the removed one\'s parent; remove-vm deletes the checkpoints', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'cr', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  await checkpoint('cr', { name: 'a' });
  await post('cr', 'start');
  await post('cr', 'suspend');
  const b = await checkpoint('cr', { name: 'b' });
  assert.equal((await get('cr')).state, 'Paused', 'a paused VM stays paused');
  assert.equal(b.runningState, true);
  await post('cr', 'save');
  const c = await checkpoint('cr', { name: 'c' }); // a Saved VM's state is copied
  assert.equal(c.runningState, true);
  assert.equal(c.parentSnapshotName, 'b');
  assert.equal((await get('cr')).state, 'Saved');
  const dir = join(f.service.vmDirectory('cr'), 'checkpoints');
  assert.deepEqual(readdirSync(dir).sort(), [`${b.id}.vmrs`, `${c.id}.vmrs`].sort());

  const renamed = await f.client.call<CheckpointView>('PATCH', snapPath('cr', 'b'), { name: 'b renamed' });
  assert.equal(renamed.name, 'b renamed');
  assert.equal((await snaps('cr'))[2].parentSnapshotName, 'b renamed');
  await f.client.call('DELETE', snapPath('cr', 'b renamed'));
  const left = await snaps('cr');
  assert.deepEqual(left.map((s) => [s.name, s.parentSnapshotName]), [['a', null], ['c', 'a']]);
  assert.deepEqual(readdirSync(dir), [`${c.id}.vmrs`]);

  // Applying a configuration-only checkpoint to a Saved VM discards its saved state: Off.
  const savedFile = join(f.service.vmDirectory('cr'), 'saved-state.vmrs');
  assert.ok(existsSync(savedFile));
  assert.equal((await restore('cr', 'a')).state, 'Off');
  assert.ok(!existsSync(savedFile));
  assert.ok((await snaps('cr')).find((s) => s.name === 'a')!.current);
  const vmDir = f.service.vmDirectory('cr');
  await f.client.call('DELETE', '/vms/cr');
  assert.ok(!existsSync(vmDir));
  await f.client.call('POST', '/vms', { name: 'cr', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  assert.deepEqual(await snaps('cr'), [], 'a new VM of the same name has no checkpoints');
});

const bin = fileURLToPath(new URL('../../../bin/hyperts', import.meta.url));
function hyperts(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--data-dir', f.dir], { env: { ...process.env, HYPERTS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('CLI: checkpoint-vm, get-vmsnapshot, rename-vmsnapshot, restore-vmsnapshot, remove-vmsnapshot', async () => {
  await f.client.call('POST', '/vms', testVm('cli-c'));
  let r = await hyperts('checkpoint-vm', 'cli-c', '--snapshot-name', 'first');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('checkpoint-vm', 'cli-c');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('get-vmsnapshot', 'cli-c');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^VMName +Name +SnapshotType +CreationTime +ParentSnapshotName$/m);
  assert.match(r.stdout, /^cli-c +first +Standard +\S/m);
  assert.match(r.stdout, /^cli-c +cli-c - \(.*\) +Standard +.* first$/m);
  r = await hyperts('get-vmsnapshot', 'cli-c', '--json');
  const list = JSON.parse(r.stdout) as CheckpointView[];
  assert.equal(list.length, 2);
  r = await hyperts('rename-vmsnapshot', 'cli-c', 'first', 'base');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('restore-vmsnapshot', 'cli-c', 'nope');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /hyperts restore-vmsnapshot: VM 'cli-c' has no checkpoint named 'nope'/);
  r = await hyperts('restore-vmsnapshot', 'cli-c', 'base');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cli-c +Off/m);
  r = await hyperts('remove-vmsnapshot', 'cli-c', 'base');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('get-vmsnapshot', 'cli-c', '--json');
  assert.deepEqual((JSON.parse(r.stdout) as CheckpointView[]).map((s) => s.id), [list[1].id]);
  r = await hyperts('checkpoint-vm');
  assert.equal(r.code, 2);
});

test('a restarted service removes state files an interrupted save or checkpoint left behind, and keeps the rest', async () => {
  const g = await startService();
  let vmDir: string, cpFile: string;
  try {
    await g.client.call('POST', '/vms', testVm('sweep'));
    const cp = await g.client.call<CheckpointView>('POST', '/vms/sweep/snapshots', { name: 'kept' });
    vmDir = g.service.vmDirectory('sweep');
    // Stand-ins: a recorded checkpoint's file, and what a crash mid-write leaves (temporary and unrecorded files).
    mkdirSync(join(vmDir, 'checkpoints'), { recursive: true });
    cpFile = join(vmDir, 'checkpoints', `${cp.id}.vmrs`);
    writeFileSync(cpFile, 'recorded');
    writeFileSync(join(vmDir, 'checkpoints', 'never-recorded.vmrs'), 'x');
    writeFileSync(join(vmDir, 'checkpoints', `${cp.id}.vmrs.tmp-4242`), 'x');
    writeFileSync(join(vmDir, 'saved-state.vmrs.tmp-4242'), 'x');
    writeFileSync(join(vmDir, 'notes.txt'), 'not ours to remove');
  } finally {
    await g.close();
  }
  const h = await startService(g.dir);
  try {
    assert.deepEqual(readdirSync(join(vmDir, 'checkpoints')), [`${cp0(cpFile)}`]);
    assert.deepEqual(readdirSync(vmDir).sort(), ['checkpoints', 'notes.txt']);
    const events = await h.client.call<VmEvent[]>('GET', '/vms/sweep/events');
    assert.ok(events.some((e) => /removed 3 unfinished state file/.test(e.message)), JSON.stringify(events.map((e) => e.message)));
    assert.deepEqual((await h.client.call<CheckpointView[]>('GET', '/vms/sweep/snapshots')).map((s) => s.name), ['kept']);
  } finally {
    await h.close();
  }
});

function cp0(path: string): string { return path.slice(path.lastIndexOf('/') + 1); }
