/**
 * Checkpoints that capture disks: each checkpoint puts a differencing AVHDX on every disk; applying gives the
 * VM fresh children of the checkpoint's files; deleting merges what nothing needs. Guest views are written
 * and read through the disk layer (what the guest would see), for every order of deletes in a small tree.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CheckpointView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import { createVhdx, openDisk } from '../../src/storage/open.js';
import { rejects, startService, testVm, type Fixture } from './helpers.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';

let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

const snaps = (name: string): Promise<CheckpointView[]> => f.client.call<CheckpointView[]>('GET', `/vms/${name}/snapshots`);
const checkpoint = (name: string, snap: string): Promise<CheckpointView> => f.client.call<CheckpointView>('POST', `/vms/${name}/snapshots`, { name: snap });
const restore = (name: string, s: string): Promise<unknown> => f.client.call('POST', `/vms/${name}/snapshots/${encodeURIComponent(s)}/restore`, {});
const remove = (name: string, s: string): Promise<unknown> => f.client.call('DELETE', `/vms/${name}/snapshots/${encodeURIComponent(s)}`);
const currentDisk = async (name: string): Promise<string> => (await f.client.call<DriveView[]>('GET', `/vms/${name}/hard-disk-drives`))[0].path!;
const cpDisk = (c: CheckpointView): string => c.config.hardware.drives.find((d) => d.kind === 'disk')!.path!;

async function vmWithDisk(name: string): Promise<{ dir: string; base: string }> {
  const dir = diskDir(f.dir, name);
  const base = join(dir, `${name}.vhdx`);
  await createVhdx({ path: base, sizeBytes: 8 << 20, type: 'dynamic' });
  await f.client.call('POST', '/vms', testVm(name));
  await f.client.call('POST', `/vms/${name}/hard-disk-drives`, { path: base });
  return { dir, base };
}

/** Every file in the folder is the base disk or in the chain of something the VM or a checkpoint points at. */
async function assertNoOrphans(name: string, dir: string): Promise<void> {
  const needed = new Set<string>();
  const heads = [await currentDisk(name), ...(await snaps(name)).map(cpDisk)];
  for (const h of heads) {
    const d = await openDisk(h, { readOnly: true, lock: false });
    for (let x: unknown = d; x; x = (x as { parent?: unknown }).parent) needed.add(basename((x as { path: string }).path));
    await d.close();
  }
  for (const file of folderFiles(dir)) assert.ok(needed.has(file) || file === `${name}.vhdx`, `orphan file ${file} (needed: ${[...needed].join(', ')})`);
}

test('Off VM: checkpoint puts an AVHDX on the disk; apply brings back pattern A, B is gone', async () => {
  const { dir, base } = await vmWithDisk('one');
  await writeMark(base, 'A');
  const c = await checkpoint('one', 'first');
  assert.equal(cpDisk(c), base, 'the checkpoint keeps the file the drive pointed at');
  const child = await currentDisk('one');
  assert.match(basename(child), /^one_[0-9A-F-]{36}\.avhdx$/, 'Hyper-V style child name');
  const d = await openDisk(child, { readOnly: true, lock: false });
  assert.deepEqual(Buffer.from(d.diskId), Buffer.from((await openDisk(base, { readOnly: true, lock: false }).then(async (p) => { const id = p.diskId; await p.close(); return id; }))), 'same disk id');
  await d.close();
  await writeMark(child, 'B');
  assert.equal(await readMark(base), 'A', 'the checkpoint file is not written');
  await restore('one', 'first');
  const fresh = await currentDisk('one');
  assert.notEqual(fresh, child, 'a fresh child after apply');
  assert.equal(await readMark(fresh), 'A');
  assert.ok(!folderFiles(dir).includes(basename(child)), 'the discarded child (with B) is deleted');
  await assertNoOrphans('one', dir);
  await remove('one', 'first');
  assert.equal(await currentDisk('one'), base, 'deleting the last checkpoint merges the child back into the disk');
  assert.deepEqual(folderFiles(dir), ['one.vhdx']);
  assert.equal(await readMark(base), 'A');
});

test('a raw disk cannot be checkpointed: clear message, nothing changes', async () => {
  const dir = diskDir(f.dir, 'raw');
  const img = join(dir, 'raw.img');
  writeFileSync(img, Buffer.alloc(1 << 20));
  await f.client.call('POST', '/vms', testVm('raw'));
  await f.client.call('POST', '/vms/raw/hard-disk-drives', { path: img });
  await rejects(checkpoint('raw', 'x'), 409, /raw image.*need VHDX.*convert/);
  assert.deepEqual(await snaps('raw'), []);
  assert.deepEqual(folderFiles(dir), ['raw.img']);
});

const permutations = <T>(xs: T[]): T[][] => xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));

for (const order of permutations(['c1', 'c2', 'c3'])) {
  test(`tree of three checkpoints, deleted in order ${order.join(', ')}: contents kept, no orphan files`, async () => {
    const name = `t-${order.join('')}`;
    const { dir, base } = await vmWithDisk(name);
    // P(c1: A) <- c2: B ; P <- c3: C (after applying c1) <- VM: D
    await writeMark(base, 'A');
    await checkpoint(name, 'c1');
    await writeMark(await currentDisk(name), 'B');
    await checkpoint(name, 'c2');
    await writeMark(await currentDisk(name), 'X');
    await restore(name, 'c1');
    await writeMark(await currentDisk(name), 'C');
    await checkpoint(name, 'c3');
    await writeMark(await currentDisk(name), 'D');
    const want: Record<string, string> = { c1: 'A', c2: 'B', c3: 'C' };
    await assertNoOrphans(name, dir);
    for (const s of order) {
      await remove(name, s);
      delete want[s];
      for (const c of await snaps(name)) assert.equal(await readMark(cpDisk(c)), want[c.name], `checkpoint ${c.name} after deleting ${s}`);
      assert.equal(await readMark(await currentDisk(name)), 'D', `the VM's disk after deleting ${s}`);
      await assertNoOrphans(name, dir);
    }
    assert.equal(await currentDisk(name), base);
    assert.deepEqual(folderFiles(dir), [`${name}.vhdx`]);
    assert.equal(await readMark(base), 'D');
  });
}

test('apply each checkpoint of a tree in turn: each shows its own content and the folder stays clean', async () => {
  const { dir, base } = await vmWithDisk('ap');
  await writeMark(base, 'A');
  await checkpoint('ap', 'a');
  await writeMark(await currentDisk('ap'), 'B');
  await checkpoint('ap', 'b');
  for (const [s, m] of [['a', 'A'], ['b', 'B'], ['a', 'A'], ['b', 'B']] as const) {
    await restore('ap', s);
    assert.equal(await readMark(await currentDisk('ap')), m, `after applying ${s}`);
    await writeMark(await currentDisk('ap'), 'Z');
    await assertNoOrphans('ap', dir);
  }
  await remove('ap', 'a');
  await remove('ap', 'b');
  assert.deepEqual(folderFiles(dir), ['ap.vhdx']);
  assert.equal(await readMark(base), 'Z');
});

test('a checkpoint child taken out of the VM stays the user\'s: deleting the checkpoint neither merges nor deletes it', async () => {
  const { dir, base } = await vmWithDisk('kept');
  await writeMark(base, 'A');
  await checkpoint('kept', 'k');
  const child = await currentDisk('kept');
  await writeMark(child, 'B');
  await f.client.call('DELETE', '/vms/kept/hard-disk-drives/SCSI/0/0');
  await remove('kept', 'k');
  assert.deepEqual(folderFiles(dir), [basename(child), 'kept.vhdx'].sort());
  assert.equal(await readMark(child), 'B', 'the removed drive\'s data is intact');
  assert.equal(await readMark(base), 'A');
});
