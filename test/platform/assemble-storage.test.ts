import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeLinuxGuest } from '../vmbus/fake-guest.js';
import { ScsiStorage, type DiskOpener } from '../../src/platform/assemble-storage.js';
import { RawFileDisk } from '../../src/storage/raw-file-fallback.js';
import { MemoryDisk, DiskError, type Disk } from '../../src/storage/disk.js';
import type { DriveConfig, HardwareConfig } from '../../src/platform/hardware.js';
import { SCSI_CONTROLLER_CLASS } from '../../src/vsp/storvsp/protocol.js';

const MiB = 1 << 20;
const scsi = (controllerNumber: number, controllerLocation: number, path: string | null, extra: Partial<DriveConfig> = {}): DriveConfig =>
  ({ controllerType: 'scsi', controllerNumber, controllerLocation, kind: 'disk', path, ...extra });

function memoryOpener(): { open: DiskOpener; opened: Map<string, MemoryDisk & { wasClosed?: boolean }> } {
  const opened = new Map<string, MemoryDisk & { wasClosed?: boolean }>();
  return {
    opened,
    open: async (path, readOnly) => {
      if (path.includes('missing')) throw new Error(`disk image '${path}' does not exist`);
      const d = new MemoryDisk(MiB, { readOnly, path }) as MemoryDisk & { wasClosed?: boolean };
      const close = d.close.bind(d);
      d.close = async () => { d.wasClosed = true; return close(); };
      opened.set(path, d);
      return d;
    },
  };
}

test('one storvsp per SCSI controller is offered, with each drive at its location; IDE drives are left alone', async () => {
  const g = new FakeLinuxGuest(1);
  const { open, opened } = memoryOpener();
  const hw: HardwareConfig = { scsiControllers: 2, networkAdapters: [], drives: [scsi(0, 0, '/a'), scsi(1, 5, '/b', { readOnly: true }), { ...scsi(0, 0, '/ide'), controllerType: 'ide' }] };
  const s = await ScsiStorage.assemble(hw, g.vmbus, g.memory, { open });
  assert.equal(s.controllers.length, 2);
  assert.deepEqual(s.controllers.map((c) => c.attachedLuns), [[0], [5]]);
  assert.deepEqual([...opened.keys()].sort(), ['/a', '/b']);
  assert.equal(opened.get('/b')!.readOnly, true);
  const offers = g.bootToOffers().filter((o) => o.type === SCSI_CONTROLLER_CLASS);
  assert.equal(offers.length, 2);
  assert.notEqual(offers[0].instance, offers[1].instance);
  await s.close();
  assert.ok(opened.get('/a')!.wasClosed && opened.get('/b')!.wasClosed, 'disks closed when the partition stops');
});

test('bad hardware descriptions fail with messages that say what to do, and close what was opened', async () => {
  const g = new FakeLinuxGuest(1);
  const { open, opened } = memoryOpener();
  const hw = (scsiControllers: number, drives: DriveConfig[]): HardwareConfig => ({ scsiControllers, drives, networkAdapters: [] });
  await assert.rejects(ScsiStorage.assemble(hw(5, []), g.vmbus, g.memory, { open }), /0-4 SCSI controllers/);
  await assert.rejects(ScsiStorage.assemble(hw(1, [scsi(1, 0, '/x')]), g.vmbus, g.memory, { open }), /SCSI 1:0: the VM has 1 SCSI controller/);
  await assert.rejects(ScsiStorage.assemble(hw(1, [scsi(0, 64, '/x')]), g.vmbus, g.memory, { open }), /location must be 0-63/);
  await assert.rejects(ScsiStorage.assemble(hw(1, [scsi(0, 0, null)]), g.vmbus, g.memory, { open }), /needs a disk image path/);
  await assert.rejects(ScsiStorage.assemble(hw(1, [scsi(0, 0, '/ok'), scsi(0, 0, '/dup')]), g.vmbus, g.memory, { open }), /already holds a drive/);
  assert.ok(opened.get('/ok')!.wasClosed, 'the first disk was closed again');
  await assert.rejects(ScsiStorage.assemble(hw(1, [scsi(0, 1, '/fine'), scsi(0, 2, '/missing.img')]), g.vmbus, g.memory, { open }), /SCSI 0:2: disk image '\/missing.img' does not exist/);
  assert.ok(opened.get('/fine')!.wasClosed);
  assert.equal(g.vmbus.deviceList.length, 5, 'no controller was registered by a failed assembly (only the five ICs)');
});

test('raw image disks: reads, writes, FUA, unmap reads zeros, read-only refusal, size checks, close', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-raw-'));
  try {
    const p = join(dir, 'd.img');
    writeFileSync(p, Buffer.alloc(MiB, 0x11));
    const d = await RawFileDisk.open(p, false);
    assert.equal(d.sizeBytes, MiB);
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
    await d.write(8192, data, true);
    const back = new Uint8Array(4096);
    await d.read(8192, back);
    assert.deepEqual(back, data);
    await d.unmap(8192, 1024);
    await d.read(8192, back);
    assert.ok(back.subarray(0, 1024).every((x) => x === 0));
    assert.equal(back[1024], 0);
    assert.equal(back[1025], 1);
    await assert.rejects(d.read(MiB, new Uint8Array(512)), (e: unknown) => e instanceof DiskError && e.code === 'range');
    await d.flush();
    await d.close();
    await d.close();
    assert.deepEqual(readFileSync(p).subarray(8192 + 1024, 8192 + 4096), Buffer.from(data.subarray(1024)));
    await assert.rejects(d.read(0, new Uint8Array(512)), (e: unknown) => e instanceof DiskError && e.code === 'closed');
    const r: Disk = await RawFileDisk.open(p, true);
    await assert.rejects(r.write(0, new Uint8Array(512)), (e: unknown) => e instanceof DiskError && e.code === 'read-only');
    await r.close();
    writeFileSync(join(dir, 'odd.img'), Buffer.alloc(1000));
    await assert.rejects(RawFileDisk.open(join(dir, 'odd.img'), false), /1000 bytes, not a non-empty multiple of 512.*truncate/);
    await assert.rejects(RawFileDisk.open(join(dir, 'none.img'), false), /does not exist/);
    const again = await RawFileDisk.open(p, true);
    assert.deepEqual(again.diskId, (await RawFileDisk.open(p, true)).diskId, 'the disk identifier is stable across opens');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
