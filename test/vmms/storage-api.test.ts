/**
 * Drives and VHD files through the service's REST API: New-VM with a new or an existing disk, adding and
 * removing disks (slots, conflicts, disks of other VMs), SCSI controllers, DVD drives, remove-vm keeping the
 * VHDX, checkpoint refusal, VHD operations with progress resources, a running VM's disk hot-add reaching the
 * worker. Files are checked with qemu-img, the outside reference. No guest boots (the test kernel at most).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmView } from '../../src/vmms/service.js';
import type { DriveView } from '../../src/vmms/drives.js';
import type { OperationView } from '../../src/vmms/operations.js';
import type { VhdView } from '../../src/vmms/vhd-commands.js';
import { haveBinutils } from './test-kernel.js';
import { createVhdx, openDisk } from '../../src/storage/open.js';
import { holderRecordPath } from '../../src/storage/lock.js';
import { rejects, startService, testVm, waitFor, type Fixture } from './helpers.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';

const noQemuImg = spawnSync('qemu-img', ['--version']).status !== 0 && 'qemu-img (qemu-utils) not installed';
let f: Fixture;
let files: string;
/** A service whose API clients may name files in its data directory and in `files` (serve --path-root). */
const serviceWithFiles = (o: { isolation?: 'off' } = {}): Promise<Fixture> => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-'));
  return startService(dir, { ...o, pathRoots: [dir, join(dir, 'Virtual Hard Disks'), files] });
};
before(async () => { files = mkdtempSync(join(tmpdir(), 'hyperts-disks-')); f = await serviceWithFiles(); });
after(async () => { await f?.close(); rmSync(files, { recursive: true, force: true }); rmSync(f.dir, { recursive: true, force: true }); });

const qemuInfo = (p: string): { format: string; 'virtual-size': number } => JSON.parse(execFileSync('qemu-img', ['info', '--output=json', p], { encoding: 'utf8' }));
const disks = (vm: string): Promise<DriveView[]> => f.client.call<DriveView[]>('GET', `/vms/${vm}/hard-disk-drives`);
const slots = (l: DriveView[]): string[] => l.map((d) => `${d.controllerType} ${d.controllerNumber}:${d.controllerLocation} ${d.path}`);

async function finished(op: OperationView): Promise<OperationView> {
  return waitFor(`operation ${op.kind}`, async () => {
    const o = await f.client.call<OperationView>('GET', `/operations/${op.id}`);
    return o.state !== 'Running' ? o : null;
  });
}
async function newVhd(body: Record<string, unknown>): Promise<VhdView> {
  const op = await finished(await f.client.call<OperationView>('POST', '/vhds', body));
  assert.equal(op.state, 'Completed', JSON.stringify(op.error));
  return op.result as VhdView;
}

test('New-VM with a new VHDX: dynamic, at SCSI 0:0, in the default folder for a relative path; duplicate names create no file', { skip: noQemuImg }, async () => {
  const vm = await f.client.call<VmView>('POST', '/vms', { name: 'web1', newVhdPath: 'web1.vhdx', newVhdSizeBytes: '1GB' });
  const path = join(f.dir, 'Virtual Hard Disks', 'web1.vhdx');
  assert.deepEqual(vm.config.hardware, { scsiControllers: 1, drives: [{ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path }], networkAdapters: [] });
  const info = qemuInfo(path);
  assert.equal(info.format, 'vhdx');
  assert.equal(info['virtual-size'], 1024 ** 3);
  const [d] = await disks('web1');
  assert.deepEqual([d.controllerType, d.controllerNumber, d.controllerLocation, d.path, d.sizeBytes], ['SCSI', 0, 0, path, 1024 ** 3]);
  assert.ok(d.fileSizeBytes! > 0 && d.fileSizeBytes! < 1024 ** 3, 'dynamic: the file is smaller than the disk');
  const v = await f.client.call<VhdView>('GET', `/vhds?path=${encodeURIComponent(path)}`);
  assert.deepEqual([v.vhdFormat, v.vhdType, v.size, v.attached, v.attachedTo], ['VHDX', 'Dynamic', 1024 ** 3, true, 'web1 (SCSI 0:0)']);

  await rejects(f.client.call('POST', '/vms', { name: 'web1', newVhdPath: join(files, 'dup.vhdx'), newVhdSizeBytes: '1GB' }), 409, /already exists/);
  assert.equal(existsSync(join(files, 'dup.vhdx')), false, 'no file for a VM that was not created');
  await rejects(f.client.call('POST', '/vms', { name: 'bad', memory: '1Q', newVhdPath: join(files, 'bad.vhdx'), newVhdSizeBytes: '1GB' }), 400, /invalid memory size/);
  assert.equal(existsSync(join(files, 'bad.vhdx')), false);
  await rejects(f.client.call('POST', '/vms', { name: 'web2', newVhdPath: path, newVhdSizeBytes: '1GB' }), 409, /web1.vhdx already exists/);
  await rejects(f.client.call('POST', '/vms', { name: 'web2', newVhdPath: join(files, 'x.vhdx') }), 400, /needs both newVhdPath and newVhdSizeBytes/);
  await rejects(f.client.call('POST', '/vms', { name: 'web2', vhdPath: path }), 409, /already attached to VM 'web1' at SCSI 0:0.*remove-vmharddiskdrive web1/);
  assert.equal((await f.client.call<VmView[]>('GET', '/vms')).length, 1);

  // Remove-VM leaves the disk; another VM can then use it (-VHDPath).
  await f.client.call('DELETE', '/vms/web1');
  assert.ok(existsSync(path), 'remove-vm keeps the VHDX');
  const again = await f.client.call<VmView>('POST', '/vms', { name: 'web2', vhdPath: path });
  assert.equal(again.config.hardware.drives[0].path, path);
  await f.client.call('DELETE', '/vms/web2');
});

test('Add-/Remove-VMHardDiskDrive: first free slot, explicit slots, errors that name the problem, controllers', { skip: noQemuImg }, async () => {
  const a = (await newVhd({ path: join(files, 'a.vhdx'), sizeBytes: '64MB' })).path;
  const b = (await newVhd({ path: join(files, 'b.vhdx'), sizeBytes: '64MB' })).path;
  const c = (await newVhd({ path: join(files, 'c.vhdx'), sizeBytes: '64MB', type: 'Fixed' })).path;
  assert.equal((await f.client.call<VhdView>('GET', `/vhds?path=${encodeURIComponent(c)}`)).vhdType, 'Fixed');
  await f.client.call('POST', '/vms', { name: 'd1' });
  await f.client.call('POST', '/vms', { name: 'd2' });
  const add = (vm: string, body: unknown): Promise<DriveView> => f.client.call<DriveView>('POST', `/vms/${vm}/hard-disk-drives`, body);
  assert.equal((await add('d1', { path: a })).controllerLocation, 0);
  assert.deepEqual([(await add('d1', { path: b, controllerLocation: 5 }))].map((d) => d.controllerLocation), [5]);
  await rejects(add('d1', { path: c, controllerNumber: 0, controllerLocation: 5 }), 409, /SCSI 0:5 of VM 'd1' is already in use by '.*b.vhdx'/);
  await rejects(add('d1', { path: c, controllerNumber: 1 }), 400, /has 1 SCSI controller.*add-vmscsicontroller d1/);
  await rejects(add('d2', { path: a }), 409, /a.vhdx is already attached to VM 'd1' at SCSI 0:0; a disk can belong to one VM only/);
  await rejects(add('d1', { path: join(files, 'nope.vhdx') }), 404, /nope.vhdx does not exist.*new-vhd/);
  await rejects(add('d1', { path: files }), 400, /is not a (regular )?file/);
  // Paths are confined to the host's allowed folders, through symlinks too.
  await rejects(add('d1', { path: '/etc/passwd' }), 400, /outside the folders this host allows; allowed folders: .*hyperts-disks-/);
  symlinkSync('/etc/passwd', join(files, 'sneaky.vhdx'));
  await rejects(add('d1', { path: join(files, 'sneaky.vhdx') }), 400, /outside the folders this host allows/);
  await rejects(f.client.call('POST', '/vhds', { path: '/root/x.vhdx', sizeBytes: '1GB' }), 400, /outside the folders this host allows/);
  await rejects(add('d1', { path: c, controllerType: 'SATA' }), 400, /SCSI or IDE/);
  await rejects(add('d1', { path: c, controllerLocation: 64 }), 400, /controllerLocation must be an integer from 0 to 63/);
  await rejects(add('ghost', { path: c }), 404, /no virtual machine named 'ghost'/);
  assert.equal((await add('d1', { path: c, controllerType: 'IDE' })).controllerType, 'IDE');
  assert.deepEqual(slots(await disks('d1')), [`IDE 0:0 ${c}`, `SCSI 0:0 ${a}`, `SCSI 0:5 ${b}`]);

  // More SCSI controllers, up to four.
  for (let i = 2; i <= 4; i++) assert.deepEqual(await f.client.call('POST', '/vms/d2/scsi-controllers'), { scsiControllers: i });
  await rejects(f.client.call('POST', '/vms/d2/scsi-controllers'), 409, /already has 4 SCSI controllers/);

  await rejects(f.client.call('DELETE', '/vms/d1/hard-disk-drives/SCSI/0/7'), 404, /no hard disk at SCSI 0:7.*get-vmharddiskdrive d1/);
  await f.client.call('DELETE', '/vms/d1/hard-disk-drives/SCSI/0/5');
  await f.client.call('DELETE', '/vms/d1/hard-disk-drives/ide/0/0');
  assert.ok(existsSync(b) && existsSync(c), 'removing a drive leaves its file');
  assert.deepEqual(slots(await f.client.call<DriveView[]>('GET', '/hard-disk-drives')), [`SCSI 0:0 ${a}`]);
  assert.equal((await add('d2', { path: b, controllerNumber: 3 })).controllerNumber, 3);
  const ev = await f.client.call<{ message: string }[]>('GET', '/vms/d1/events');
  assert.ok(ev.some((e) => /hard disk .*b.vhdx removed from SCSI 0:5; the file stays/.test(e.message)));
});

test('Set-/Get-VMDvdDrive: an ISO on IDE, eject, errors', async () => {
  const iso = join(files, 'tools.iso');
  writeFileSync(iso, Buffer.alloc(2048 * 16));
  await f.client.call('POST', '/vms', { name: 'dvd' });
  await rejects(f.client.call('PUT', '/vms/dvd/dvd-drive', { path: '' }), 404, /has no DVD drive to eject/);
  await rejects(f.client.call('PUT', '/vms/dvd/dvd-drive', { path: join(files, 'missing.iso') }), 404, /missing.iso does not exist/);
  const d = await f.client.call<DriveView>('PUT', '/vms/dvd/dvd-drive', { path: iso, controllerNumber: 1, controllerLocation: 0 });
  assert.deepEqual([d.controllerType, d.controllerNumber, d.controllerLocation, d.path, d.sizeBytes], ['IDE', 1, 0, iso, 2048 * 16]);
  const e = await f.client.call<DriveView>('PUT', '/vms/dvd/dvd-drive', { path: '' });
  assert.deepEqual([e.controllerNumber, e.path], [1, null]);
  assert.deepEqual((await f.client.call<DriveView[]>('GET', '/vms/dvd/dvd-drives')).map((x) => [x.controllerType, x.controllerNumber, x.path]), [['IDE', 1, null]]);
  assert.deepEqual((await f.client.call<DriveView[]>('GET', '/vms/dvd/hard-disk-drives')), [], 'a DVD drive is not a hard disk drive');
  // The same ISO may go into another VM's DVD drive too (read-only media).
  await f.client.call('PUT', '/vms/dvd/dvd-drive', { path: iso });
  await f.client.call('POST', '/vms', { name: 'dvd2' });
  assert.equal((await f.client.call<DriveView>('PUT', '/vms/dvd2/dvd-drive', { path: iso })).path, iso);
  await rejects(f.client.call('POST', '/vms/dvd2/hard-disk-drives', { path: iso }), 409, /already attached to VM 'dvd'/);
});

test('a VM with a missing disk does not start and says which; checkpoints refuse it too', { skip: noQemuImg }, async () => {
  const p = (await newVhd({ path: join(files, 'cp.vhdx'), sizeBytes: '16MB' })).path;
  await f.client.call('POST', '/vms', { ...testVm('cp'), vhdPath: p });
  rmSync(p);
  await rejects(f.client.call('POST', '/vms/cp/start', {}), 409, /cp.vhdx at SCSI 0:0 does not exist.*remove-vmharddiskdrive cp --controller-type SCSI --controller-number 0 --controller-location 0/);
  assert.equal((await f.client.call<VmView>('GET', '/vms/cp')).state, 'Off');
  await rejects(f.client.call('POST', '/vms/cp/snapshots', {}), 409, /its disk .*cp.vhdx is missing/);
  assert.deepEqual(await f.client.call('GET', '/vms/cp/snapshots'), []);
});

test('VHD operations: progress resource, convert, optimize, test; refusals for disks of running VMs and overwrites', { skip: noQemuImg }, async () => {
  const src = (await newVhd({ path: join(files, 'src.vhdx'), sizeBytes: '32MB', blockSizeBytes: '1MB' })).path;
  // One block of data, and one block allocated but holding only zeros (what Optimize-VHD gives back).
  execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xab 0 1M', '-c', 'write -P 0 8M 1M', src]);
  const dest = join(files, 'dst.vhdx');
  const op = await f.client.call<OperationView>('POST', '/vhds/convert', { path: src, destinationPath: dest, vhdType: 'fixed' });
  assert.equal(op.kind, 'convert-vhd');
  const done = await finished(op);
  assert.equal(done.state, 'Completed', JSON.stringify(done.error));
  assert.equal(done.percentComplete, 100);
  assert.equal((done.result as VhdView).vhdType, 'Fixed');
  assert.equal(spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'vhdx', src, dest]).status, 0, 'same contents');
  assert.ok((await f.client.call<OperationView[]>('GET', '/operations')).some((o) => o.id === op.id));
  await rejects(f.client.call('GET', '/operations/none'), 404, /no operation 'none'/);

  const again = await finished(await f.client.call<OperationView>('POST', '/vhds/convert', { path: src, destinationPath: dest }));
  assert.equal(again.state, 'Failed');
  assert.match(again.error!.message, /dst.vhdx already exists/);
  const allocated = statSync(src).blocks;
  const opt = await finished(await f.client.call<OperationView>('POST', '/vhds/optimize', { path: src }));
  assert.equal(opt.state, 'Completed', JSON.stringify(opt.error));
  assert.ok(statSync(src).blocks <= allocated - 2048, `the zero block's 1 MiB is given back (${allocated} -> ${statSync(src).blocks} sectors)`);
  assert.equal(spawnSync('qemu-img', ['check', '-f', 'vhdx', src]).status, 0, 'qemu-img check accepts the optimized file');
  assert.equal(spawnSync('qemu-io', ['-f', 'vhdx', '-r', '-c', 'read -P 0xab 0 1M', src]).status, 0, 'optimize keeps the data');

  assert.deepEqual(await f.client.call('POST', '/vhds/test', { path: src }), { path: src, ok: true, problems: [], message: `${src} is a usable virtual hard disk` });
  const junk = join(files, 'junk.vhdx');
  writeFileSync(junk, 'not a disk');
  const t = await f.client.call<{ ok: boolean; message: string }>('POST', '/vhds/test', { path: junk });
  assert.equal(t.ok, false);
  assert.match(t.message, /junk.vhdx is not usable/);
  assert.equal((await f.client.call<{ ok: boolean }>('POST', '/vhds/test', { path: join(files, 'none.vhdx') })).ok, false);
  const bad = await f.client.call<OperationView>('POST', '/vhds', { path: join(files, 'n.vhdx') }).catch((e) => e);
  assert.match(bad.message, /give sizeBytes/);

  if (haveBinutils()) {
    // A disk of a running VM is not converted, resized or optimized under it.
    const img = join(files, 'busy.img');
    writeFileSync(img, Buffer.alloc(1048576));
    await f.client.call('POST', '/vms', { ...testVm('busy'), vhdPath: img });
    await f.client.call('POST', '/vms/busy/start', {});
    for (const [kind, body] of [['optimize', { path: img }], ['convert', { path: img, destinationPath: join(files, 'busy2.vhdx') }], ['resize', { path: img, sizeBytes: '2MB' }]] as const) {
      const r = await finished(await f.client.call<OperationView>('POST', `/vhds/${kind}`, body));
      assert.equal(r.state, 'Failed');
      assert.match(r.error!.message, /busy.img: it is attached to VM 'busy' at SCSI 0:0, which is Running \(stop-vm busy first\)/);
    }
    await f.client.call('POST', '/vms/busy/stop', { turnOff: true });
  }
});

test('running VMs: SCSI disks hot-added and removed through the worker, which holds their lock; IDE waits for Off; save and restore keep the disks', { skip: (noQemuImg || (!haveBinutils() && 'binutils not installed')) || false }, async () => {
  // Hot add needs a worker whose file view can grow: a service without isolation (the isolated case is the next test).
  const shared = f;
  f = await serviceWithFiles({ isolation: 'off' });
  try {
  const raw = join(files, 'hot.img');
  writeFileSync(raw, Buffer.alloc(16 * 1048576));
  const vhdx = (await newVhd({ path: join(files, 'hot.vhdx'), sizeBytes: '16MB' })).path;
  await f.client.call('POST', '/vms', testVm('hot'));
  await f.client.call('POST', '/vms/hot/start', {});
  await rejects(f.client.call('POST', '/vms/hot/hard-disk-drives', { path: raw, controllerType: 'IDE' }), 409, /IDE disks can be added only while it is off/);
  await rejects(f.client.call('POST', '/vms/hot/scsi-controllers'), 409, /while it is Running/);
  assert.equal((await f.client.call<DriveView>('POST', '/vms/hot/hard-disk-drives', { path: raw, controllerLocation: 2 })).controllerLocation, 2);
  assert.equal((await f.client.call<DriveView>('POST', '/vms/hot/hard-disk-drives', { path: vhdx })).controllerLocation, 0);
  assert.deepEqual(slots(await disks('hot')), [`SCSI 0:0 ${vhdx}`, `SCSI 0:2 ${raw}`]);
  // The worker opened the VHDX: anyone else is turned away with the holder named.
  await assert.rejects(openDisk(vhdx, { purpose: 'test' }), /hot.vhdx is in use by VM hot \(pid \d+/);
  await f.client.call('DELETE', '/vms/hot/hard-disk-drives/SCSI/0/2');
  assert.deepEqual(slots(await disks('hot')), [`SCSI 0:0 ${vhdx}`]);
  const ev = await f.client.call<{ message: string }[]>('GET', '/vms/hot/events');
  assert.ok(ev.some((e) => /hot.img added at SCSI 0:2 \(hot-added\)/.test(e.message)));
  assert.ok(ev.some((e) => /hot.img removed from SCSI 0:2 \(hot-removed\)/.test(e.message)));
  // The hot-removed raw image was closed: it can be opened for writing again.
  await (await openDisk(raw, { purpose: 'test' })).close();
  // Saved state still works with a disk: save, then restore onto the same drives.
  assert.equal((await f.client.call<VmView>('POST', '/vms/hot/save', {})).state, 'Saved');
  await (await openDisk(vhdx, { purpose: 'test' })).close();
  assert.equal((await f.client.call<VmView>('POST', '/vms/hot/start', {})).state, 'Running');
  await assert.rejects(openDisk(vhdx, { purpose: 'test' }), /in use by VM hot/);
  await f.client.call('POST', '/vms/hot/stop', { turnOff: true });
  await f.client.call('DELETE', '/vms/hot/hard-disk-drives/SCSI/0/0');
  assert.equal((await f.client.call<DriveView>('POST', '/vms/hot/hard-disk-drives', { path: raw, controllerType: 'IDE' })).controllerType, 'IDE');
  // IDE disks are opened like SCSI ones (VHDX by content, never presented raw), with the VM's lock.
  assert.equal((await f.client.call<DriveView>('POST', '/vms/hot/hard-disk-drives', { path: vhdx, controllerType: 'IDE' })).controllerLocation, 1);
  assert.equal((await f.client.call<VmView>('POST', '/vms/hot/start', {})).state, 'Running');
  await assert.rejects(openDisk(vhdx, { purpose: 'test' }), /hot.vhdx is in use by VM hot/);
  await f.client.call('POST', '/vms/hot/stop', { turnOff: true });

  // An unenlightened VM has no synthetic SCSI controller: it starts without one, but not with a SCSI disk.
  await f.client.call('POST', '/vms', { ...testVm('plain'), enlightened: false });
  assert.equal((await f.client.call<VmView>('POST', '/vms/plain/start', {})).state, 'Running');
  await f.client.call('POST', '/vms/plain/stop', { turnOff: true });
  writeFileSync(join(files, 'plain.img'), Buffer.alloc(1048576));
  await f.client.call('POST', '/vms/plain/hard-disk-drives', { path: join(files, 'plain.img') });
  await rejects(f.client.call('POST', '/vms/plain/start', {}), 409, /not enlightened, so it has no synthetic SCSI controller for SCSI 0:0/);
  } finally { await f.close(); rmSync(f.dir, { recursive: true, force: true }); f = shared; }
});

test('an isolated worker gets hot-added disks from the service as descriptors (a differencing VHDX with its chain); hot remove lets go of them', { skip: (!isolationSupport().available && `isolation not available here: ${isolationSupport().notes.join('; ')}`) || (!haveBinutils() && 'binutils not installed') || false }, async () => {
  const own = join(files, 'iso-own.img'), later = join(files, 'iso-later.img');
  writeFileSync(own, Buffer.alloc(1048576));
  writeFileSync(later, Buffer.alloc(1048576));
  const base = (await newVhd({ path: join(files, 'iso-base.vhdx'), sizeBytes: '16MB' })).path;
  const diff = (await newVhd({ path: join(files, 'iso-diff.avhdx'), parentPath: base })).path;
  await f.client.call('POST', '/vms', { ...testVm('iso'), vhdPath: own });
  assert.equal((await f.client.call<VmView>('POST', '/vms/iso/start', {})).state, 'Running');
  const events = async (): Promise<string> => (await f.client.call<{ message: string }[]>('GET', '/vms/iso/events')).map((e) => e.message).join('\n');
  assert.doesNotMatch(await events(), /without isolation/i, 'the worker runs in its sandbox');
  const pid = f.service.workerPid('iso');
  // Neither file is in the sandbox: the service opens them (and the parent) and hands them over.
  assert.equal((await f.client.call<DriveView>('POST', '/vms/iso/hard-disk-drives', { path: later })).controllerLocation, 1);
  assert.equal((await f.client.call<DriveView>('POST', '/vms/iso/hard-disk-drives', { path: diff })).controllerLocation, 2);
  assert.deepEqual(slots(await disks('iso')), [`SCSI 0:0 ${own}`, `SCSI 0:1 ${later}`, `SCSI 0:2 ${diff}`]);
  assert.equal(f.service.workerPid('iso'), pid, 'the same worker');
  // The sandboxed worker holds the disks' locks (the parent shared); the service wrote the holder records it could not.
  for (const p of [own, later, diff]) await assert.rejects(openDisk(p, { purpose: 'test' }), new RegExp(`${p.split('/').pop()!.replace('.', '\\.')} is in use by VM iso \\(pid ${pid}`));
  await assert.rejects(openDisk(base, { purpose: 'test' }), /iso-base\.vhdx is in use/, 'the parent is open read-only in the worker');
  await (await openDisk(base, { readOnly: true, purpose: 'test' })).close();
  await f.client.call('DELETE', '/vms/iso/hard-disk-drives/SCSI/0/1');
  await f.client.call('DELETE', '/vms/iso/hard-disk-drives/SCSI/0/2');
  assert.deepEqual(slots(await disks('iso')), [`SCSI 0:0 ${own}`]);
  // Hot remove closed the descriptors: the files open for writing again, and no record names the worker.
  for (const p of [later, diff, base]) await (await openDisk(p, { purpose: 'test' })).close();
  assert.equal(existsSync(holderRecordPath(later)), false);
  assert.equal(existsSync(holderRecordPath(diff)), false);
  await f.client.call('POST', '/vms/iso/stop', { turnOff: true });
  assert.equal(existsSync(holderRecordPath(own)), false, 'the holder record goes with the worker');
  await (await openDisk(own, { purpose: 'test' })).close();
});

test('an isolated worker gets no file outside the path roots through a parent locator: start and hot add refuse, naming the file', { skip: (!isolationSupport().available && `isolation not available here: ${isolationSupport().notes.join('; ')}`) || (!haveBinutils() && 'binutils not installed') || false }, async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), 'hyperts-elsewhere-'));
  try {
    const parent = join(elsewhere, 'outside-parent.vhdx');
    await createVhdx({ path: parent, sizeBytes: 8 << 20, type: 'dynamic' });
    const child = join(files, 'leaky.avhdx');
    await createVhdx({ path: child, sizeBytes: 8 << 20, type: 'differencing', parentPath: parent });
    await f.client.call('POST', '/vms', { ...testVm('leaky'), vhdPath: child });
    await rejects(f.client.call('POST', '/vms/leaky/start', {}), 409, /cannot start VM 'leaky' isolated: disk file '.*outside-parent\.vhdx' is outside the folders this host allows/);
    assert.equal((await f.client.call<VmView>('GET', '/vms/leaky')).state, 'Off');
    await f.client.call('DELETE', '/vms/leaky/hard-disk-drives/SCSI/0/0');
    assert.equal((await f.client.call<VmView>('POST', '/vms/leaky/start', {})).state, 'Running');
    await rejects(f.client.call('POST', '/vms/leaky/hard-disk-drives', { path: child }), 409, /cannot hand the worker the files for attachDrive: disk file '.*outside-parent\.vhdx' is outside the folders this host allows/);
    assert.deepEqual(await disks('leaky'), []);
    await f.client.call('POST', '/vms/leaky/stop', { turnOff: true });
  } finally { rmSync(elsewhere, { recursive: true, force: true }); }
});

test('differencing disks: New-VHD with a parent, Get-VHD fields, Merge-VHD into the parent, Test-VHD of a broken chain; Resize-VHD, locks', async () => {
  const parent = (await newVhd({ path: join(files, 'parent.vhdx'), sizeBytes: '8MB', blockSizeBytes: '1MB', logicalSectorSizeBytes: 4096 })).path;
  const p0 = await f.client.call<VhdView>('GET', `/vhds?path=${encodeURIComponent(parent)}`);
  assert.match(p0.diskIdentifier!, /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);
  assert.deepEqual([p0.vhdType, p0.blockSize, p0.logicalSectorSize, p0.attached], ['Dynamic', 1048576, 4096, false]);
  // Data in the parent, then a child (writing the parent later would break the child's link), then changes in the child.
  let d = await openDisk(parent);
  await d.write(0, new Uint8Array(4096).fill(1));
  await d.write(4 * 1048576, new Uint8Array(4096).fill(2));
  await d.close();
  const child = await newVhd({ path: join(files, 'child.vhdx'), parentPath: parent });
  assert.deepEqual([child.vhdType, child.parentPath, child.size, child.logicalSectorSize], ['Differencing', parent, 8 * 1048576, 4096]);
  assert.notEqual(p0.diskIdentifier, child.diskIdentifier);
  d = await openDisk(child.path);
  await d.write(4 * 1048576, new Uint8Array(4096).fill(3));
  await d.close();
  const op = await finished(await f.client.call<OperationView>('POST', '/vhds/merge', { path: child.path }));
  assert.equal(op.state, 'Completed', JSON.stringify(op.error));
  assert.equal((op.result as VhdView).path, parent);
  assert.equal(existsSync(child.path), false, 'the merged child is gone');
  d = await openDisk(parent, { readOnly: true });
  const b = new Uint8Array(4096);
  await d.read(0, b);
  assert.ok(b.every((x) => x === 1), 'parent data kept');
  await d.read(4 * 1048576, b);
  assert.ok(b.every((x) => x === 3), 'child changes merged');
  await d.close();
  const notDiff = await finished(await f.client.call<OperationView>('POST', '/vhds/merge', { path: parent }));
  assert.match(notDiff.error!.message, /only a differencing disk can be merged/);

  // A child whose parent went away: Test-VHD says so; Get-VHD fails with the reason.
  const orphanParent = (await newVhd({ path: join(files, 'op.vhdx'), sizeBytes: '4MB' })).path;
  const orphan = (await newVhd({ path: join(files, 'orphan.vhdx'), parentPath: orphanParent })).path;
  rmSync(orphanParent);
  const t = await f.client.call<{ ok: boolean; message: string }>('POST', '/vhds/test', { path: orphan });
  assert.equal(t.ok, false);
  assert.match(t.message, /orphan.vhdx is not usable: .*parent disk not found/);
  await rejects(f.client.call('GET', `/vhds?path=${encodeURIComponent(orphan)}`), 400, /parent disk not found/);

  // Resize: raw images grow (never shrink); VHDX through the VHDX code.
  const img = join(files, 'grow.img');
  writeFileSync(img, Buffer.alloc(1048576));
  const r = await finished(await f.client.call<OperationView>('POST', '/vhds/resize', { path: img, sizeBytes: '2MB' }));
  assert.equal((r.result as VhdView).size, 2 * 1048576);
  const shrink = await finished(await f.client.call<OperationView>('POST', '/vhds/resize', { path: img, sizeBytes: '1MB' }));
  assert.match(shrink.error!.message, /shrinking a raw image .* would cut off data/);
  const rv = await finished(await f.client.call<OperationView>('POST', '/vhds/resize', { path: parent, sizeBytes: '16MB' }));
  assert.equal(rv.state, 'Completed', JSON.stringify(rv.error));
  const grown = rv.result as VhdView;
  assert.deepEqual([grown.size, grown.vhdType], [16 * 1048576, 'Dynamic']);
  assert.equal(typeof grown.minimumSize, 'number');
  assert.equal(typeof grown.fragmentationPercentage, 'number');
  // A VM's running disk is not resized under it even without the inventory knowing: the file lock says who has it.
  const held = await openDisk(parent, { purpose: 'VM lockholder' });
  try {
    const locked = await finished(await f.client.call<OperationView>('POST', '/vhds/resize', { path: parent, sizeBytes: '32MB' }));
    assert.equal(locked.state, 'Failed');
    assert.equal(locked.error!.code, 'DiskInUse');
    assert.match(locked.error!.message, /parent.vhdx is in use by VM lockholder/);
  } finally { await held.close(); }
});

test('the OpenAPI document describes the drive, VHD and operation endpoints', async () => {
  const doc = await f.client.call<{ paths: Record<string, object>; components: { schemas: Record<string, object> } }>('GET', '/openapi.json');
  for (const p of ['/vms/{name}/hard-disk-drives', '/vms/{name}/hard-disk-drives/{type}/{number}/{location}', '/vms/{name}/scsi-controllers', '/vms/{name}/dvd-drive', '/vhds', '/vhds/convert', '/operations/{id}']) {
    assert.ok(doc.paths[p], `${p} documented`);
  }
  for (const s of ['Drive', 'Vhd', 'Operation', 'NewVMDisk', 'NewVM']) assert.ok(doc.components.schemas[s], `${s} schema`);
});
