/**
 * Save-VM through the management service: a counting guest is saved (its worker ends), restored by start-vm
 * into a new worker process and carries on counting; a saved state can be discarded; a corrupt one is refused
 * and the VM stays Saved with a way out.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { VmView } from '../../src/vmms/service.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { counterCounts, counterKernel, haveBinutils } from '../platform/saved-state-kernel.js';
import { alive, openConsole, rejects, startService, waitFor, type Fixture } from './helpers.js';

const skip = !haveBinutils() && 'binutils (as, ld) not installed';
let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

const get = (name: string): Promise<VmView> => f.client.call<VmView>('GET', `/vms/${name}`);
const post = (name: string, action: string, body: unknown = {}): Promise<VmView> => f.client.call<VmView>('POST', `/vms/${name}/${action}`, body);


test('save-vm -> Saved (worker gone) -> start-vm restores in a new worker and the guest carries on -> stop', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'sv', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  await rejects(post('sv', 'save'), 409, /cannot save VM 'sv': it is Off \(.*start-vm sv first\)/);
  await post('sv', 'start');
  const con = await openConsole(f.client, 'sv');
  await waitFor('the guest to count', () => counterCounts(con.text()).length >= 30);
  const pid1 = f.service.workerPid('sv')!;
  const saved = await post('sv', 'save');
  assert.equal(saved.state, 'Saved');
  assert.equal((await get('sv')).state, 'Saved');
  assert.equal(saved.workerPid, null);
  await waitFor('the worker to end', () => !alive(pid1));
  const file = join(f.service.vmDirectory('sv'), 'saved-state.vmrs');
  assert.ok(existsSync(file));
  const before = counterCounts(con.text());

  const restored = await post('sv', 'start');
  assert.equal(restored.state, 'Running');
  assert.notEqual(restored.workerPid, pid1);
  assert.ok(!existsSync(file), 'a consumed saved state is deleted');
  await waitFor('the restored guest to count on', () => counterCounts(con.text()).length >= before.length + 30);
  const all = counterCounts(con.text());
  // One unbroken count across the save: the guest neither started over nor lost a step.
  all.forEach((n, i) => assert.equal(n, i + 1, `console line ${i + 1} says n=${n}`));
  con.ws.close();
  await post('sv', 'stop', { turnOff: true });
  assert.equal((await get('sv')).state, 'Off');

  const ev = await f.client.call<VmEvent[]>('GET', '/vms/sv/events?limit=100');
  const moves = ev.map((e) => `${e.from}->${e.to}`);
  for (const m of ['Running->Saving', 'Saving->Saved', 'Saved->Starting', 'Starting->Running']) assert.ok(moves.includes(m), `event log has ${m}: ${moves.join(' ')}`);
});

test('a saved state can be discarded (remove-vmsavedstate, stop-vm --turn-off) and goes with remove-vm', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'sd', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  const save = async (): Promise<void> => {
    await post('sd', 'start');
    await waitFor('a running guest', async () => (await get('sd')).state === 'Running');
    await post('sd', 'suspend');
    assert.equal((await post('sd', 'save')).state, 'Saved'); // Paused -> Saving -> Saved
  };
  const file = (): string => join(f.service.vmDirectory('sd'), 'saved-state.vmrs');
  await save();
  const off = await f.client.call<VmView>('DELETE', '/vms/sd/saved-state');
  assert.equal(off.state, 'Off');
  assert.ok(!existsSync(file()));
  await rejects(f.client.call('DELETE', '/vms/sd/saved-state'), 409, /it is Off \(it has no saved state\)/);
  await save();
  assert.equal((await post('sd', 'stop', { turnOff: true })).state, 'Off');
  assert.ok(!existsSync(file()));
  await save();
  await rejects(post('sd', 'stop'), 409, /it is Saved.*stop-vm sd --turn-off/);
  const dir = f.service.vmDirectory('sd');
  await f.client.call('DELETE', '/vms/sd');
  assert.ok(!existsSync(dir), 'remove-vm deletes the saved state');
});

test('a corrupt saved state is refused: the VM stays Saved, the message says how to get out', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'sc', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  await post('sc', 'start');
  await post('sc', 'save');
  const file = join(f.service.vmDirectory('sc'), 'saved-state.vmrs');
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 50));
  await rejects(post('sc', 'start'), 409, /cannot restore VM 'sc':.*checksum does not match.*remove-vmsavedstate sc/);
  const v = await get('sc');
  assert.equal(v.state, 'Saved');
  assert.match(v.status, /restore failed/);
  assert.deepEqual(readdirSync(f.service.vmDirectory('sc')), ['saved-state.vmrs']);
  assert.equal((await f.client.call<VmView>('DELETE', '/vms/sc/saved-state')).state, 'Off');
});

const bin = fileURLToPath(new URL('../../../bin/hyperts', import.meta.url));
function hyperts(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--data-dir', f.dir], { env: { ...process.env, HYPERTS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('CLI: save-vm, get-vm shows Saved, clear errors, start-vm restores, remove-vmsavedstate discards', { skip }, async () => {
  await f.client.call('POST', '/vms', { name: 'cli-s', kernel: counterKernel().path, memory: '64M', processor: 'emulated' });
  let r = await hyperts('save-vm', 'cli-s');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot save VM 'cli-s': it is Off .*start-vm cli-s first/);
  assert.equal((await hyperts('start-vm', 'cli-s')).code, 0);
  r = await hyperts('save-vm', 'cli-s');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cli-s +Saved/m);
  r = await hyperts('get-vm', 'cli-s');
  assert.match(r.stdout, /^cli-s +Saved/m);
  r = await hyperts('save-vm', 'cli-s');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /it is Saved \(it is already saved; start-vm restores it\)/);
  r = await hyperts('start-vm', 'cli-s');
  assert.match(r.stdout, /^cli-s +Running/m);
  assert.equal((await hyperts('save-vm', 'cli-s')).code, 0);
  r = await hyperts('remove-vmsavedstate', 'cli-s');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cli-s +Off/m);
});
