import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeLinuxGuest } from '../vmbus/fake-guest.js';
import { ScsiStorage, diskOpener, type DiskOpener } from '../../src/platform/assemble-storage.js';
import { createVhdx } from '../../src/storage/open.js';
import { MemoryDisk } from '../../src/storage/disk.js';
import type { DriveConfig, HardwareConfig } from '../../src/platform/hardware.js';
import { IDE_ACCELERATOR_CLASS, SCSI_CONTROLLER_CLASS } from '../../src/vsp/storvsp/protocol.js';

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

test('IDE hard disks handed in get IDE accelerator channels; their disks stay the IDE controller\'s', async () => {
  const g = new FakeLinuxGuest(1);
  const { open } = memoryOpener();
  const ide0 = new MemoryDisk(MiB) as MemoryDisk & { wasClosed?: boolean };
  const ide1 = new MemoryDisk(MiB) as MemoryDisk & { wasClosed?: boolean };
  for (const d of [ide0, ide1]) { const close = d.close.bind(d); d.close = async () => { d.wasClosed = true; return close(); }; }
  const hw: HardwareConfig = { scsiControllers: 0, networkAdapters: [], drives: [] };
  const s = await ScsiStorage.assemble(hw, g.vmbus, g.memory, { open, ideDisks: [{ channel: 0, drive: 0, disk: ide0 }, { channel: 1, drive: 1, disk: ide1 }] });
  assert.equal(s.controllers.length, 0);
  assert.equal(s.ideAccelerators.length, 2);
  const offers = g.bootToOffers();
  assert.deepEqual(offers.filter((o) => o.type === IDE_ACCELERATOR_CLASS).map((o) => o.instance).sort(),
    ['00000000-0000-8899-0000-000000000000', '00000001-0001-8899-0000-000000000000']);
  assert.equal(offers.filter((o) => o.type === SCSI_CONTROLLER_CLASS).length, 0);
  const saved = s.saveState();
  assert.equal(saved.ide.length, 2);
  await s.close();
  assert.ok(!ide0.wasClosed && !ide1.wasClosed, 'the IDE controller closes its own disks');
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

test('the default opener takes VHDX and raw images, locks them while the VM runs, and says who holds them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-scsi-open-'));
  try {
    const raw = join(dir, 'raw.img'), vhdx = join(dir, 'disk.vhdx');
    writeFileSync(raw, Buffer.alloc(MiB));
    await createVhdx({ path: vhdx, sizeBytes: 8 * MiB, type: 'dynamic' });
    const hw: HardwareConfig = { scsiControllers: 1, networkAdapters: [], drives: [scsi(0, 0, vhdx), scsi(0, 1, raw)] };
    const g = new FakeLinuxGuest(1);
    const s = await ScsiStorage.assemble(hw, g.vmbus, g.memory, { open: diskOpener("VM 'one'") });
    assert.equal(s.disk(0, 0)!.sizeBytes, 8 * MiB);
    assert.equal(s.disk(0, 1)!.sizeBytes, MiB);
    const g2 = new FakeLinuxGuest(1);
    await assert.rejects(ScsiStorage.assemble(hw, g2.vmbus, g2.memory, { open: diskOpener("VM 'two'") }), /SCSI 0:0: .*in use by .*one/);
    await s.close();
    const again = await ScsiStorage.assemble(hw, g2.vmbus, g2.memory, { open: diskOpener("VM 'two'") });
    await again.close();
    assert.ok(readFileSync(vhdx).subarray(0, 8).toString() === 'vhdxfile');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
