/**
 * VM hardware in the configuration (defaults, migration of stored configurations, validation), drive slot
 * rules, size parsing and New-VHD option checks: pure, no processes except the inventory file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { defaultConfig, migrateConfig } from '../../src/vmms/config.js';
import { VmmsError } from '../../src/vmms/errors.js';
import { Inventory } from '../../src/vmms/store.js';
import { chooseSlot, clientPath, parseSizeBytes, withDrive, withScsiController } from '../../src/vmms/drives.js';
import { VhdCommands } from '../../src/vmms/vhd-commands.js';
import { ProgressMeter } from '../../src/vmms/operations.js';
import { emptyHardware, type HardwareConfig } from '../../src/platform/hardware.js';

const G = 1024 ** 3;
const rejectsWith = (fn: () => unknown, status: number, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof VmmsError && e.status === status && re.test(e.message));

test('a new VM has one SCSI controller and no drives (Hyper-V Gen 2 New-VM)', () => {
  assert.deepEqual(defaultConfig('a').hardware, { scsiControllers: 1, drives: [], networkAdapters: [] });
});

test('stored configurations without hardware migrate to an empty machine; damaged hardware is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-mig-'));
  try {
    const file = join(dir, 'inv.sqlite');
    let inv = new Inventory(file);
    const rec = inv.insert(defaultConfig('old'));
    inv.close();
    // What an older service wrote: the same row without "hardware".
    const db = new Database(file);
    const { hardware: _, ...old } = defaultConfig('old');
    db.prepare('UPDATE vms SET config = ? WHERE id = ?').run(JSON.stringify(old), rec.id);
    db.prepare("INSERT INTO checkpoints (id, vm_id, name, created, parent_id, running, config) VALUES ('c1', ?, 'cp', 1, NULL, 0, ?)").run(rec.id, JSON.stringify(old));
    db.close();
    inv = new Inventory(file);
    assert.deepEqual(inv.list()[0].config.hardware, emptyHardware());
    assert.deepEqual(inv.checkpoints(rec.id)[0].config.hardware, emptyHardware());
    inv.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
  const base = defaultConfig('x');
  const bad = (hardware: unknown): void => assert.throws(() => migrateConfig({ ...base, hardware }), /stored hardware configuration is invalid/);
  bad({ scsiControllers: 5, drives: [], networkAdapters: [] });
  bad({ scsiControllers: 1, drives: [{ controllerType: 'scsi', controllerNumber: 1, controllerLocation: 0, kind: 'disk', path: '/d' }], networkAdapters: [] });
  bad({ scsiControllers: 1, drives: [{ controllerType: 'ide', controllerNumber: 0, controllerLocation: 2, kind: 'dvd', path: null }], networkAdapters: [] });
  const d = { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 3, kind: 'disk', path: '/d' };
  bad({ scsiControllers: 1, drives: [d, { ...d, path: '/e' }], networkAdapters: [] });
  assert.deepEqual(migrateConfig({ ...base, hardware: { scsiControllers: 1, drives: [d], networkAdapters: [] } }).hardware.drives, [d]);
});

test('drive slots: first free location, occupied slots, missing controllers, limits', () => {
  let hw: HardwareConfig = { scsiControllers: 1, drives: [], networkAdapters: [] };
  assert.deepEqual(chooseSlot('vm', hw, { controllerType: 'scsi' }), { controllerNumber: 0, controllerLocation: 0 });
  hw = withDrive(hw, { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: '/a.vhdx' });
  hw = withDrive(hw, { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 2, kind: 'disk', path: '/c.vhdx' });
  assert.deepEqual(chooseSlot('vm', hw, { controllerType: 'scsi' }), { controllerNumber: 0, controllerLocation: 1 });
  rejectsWith(() => chooseSlot('vm', hw, { controllerType: 'scsi', controllerNumber: 0, controllerLocation: 2 }), 409, /SCSI 0:2 of VM 'vm' is already in use by '\/c.vhdx'/);
  rejectsWith(() => chooseSlot('vm', hw, { controllerType: 'scsi', controllerNumber: 1 }), 400, /has 1 SCSI controller.*add-vmscsicontroller vm/);
  rejectsWith(() => chooseSlot('vm', emptyHardware(), { controllerType: 'scsi' }), 409, /no SCSI controller.*add-vmscsicontroller vm/);
  // IDE: two controllers of two locations, present whatever the SCSI count.
  let ide = emptyHardware();
  for (let i = 0; i < 4; i++) ide = withDrive(ide, { controllerType: 'ide', ...chooseSlot('vm', ide, { controllerType: 'ide' }), kind: 'disk', path: `/${i}` });
  assert.deepEqual(ide.drives.map((d) => `${d.controllerNumber}:${d.controllerLocation}`), ['0:0', '0:1', '1:0', '1:1']);
  rejectsWith(() => chooseSlot('vm', ide, { controllerType: 'ide' }), 409, /every IDE location of VM 'vm' is in use/);
  let four = emptyHardware();
  for (let i = 0; i < 4; i++) four = withScsiController('vm', four);
  rejectsWith(() => withScsiController('vm', four), 409, /already has 4 SCSI controllers/);
});

test('sizes: Hyper-V suffixes and byte counts', () => {
  assert.equal(parseSizeBytes('10GB', 's'), 10 * G);
  assert.equal(parseSizeBytes('512MB', 's'), 512 * 1048576);
  assert.equal(parseSizeBytes('1TB', 's'), 1024 * G);
  assert.equal(parseSizeBytes('1.5G', 's'), 1.5 * G);
  assert.equal(parseSizeBytes(4096, 's'), 4096);
  assert.equal(parseSizeBytes('4096', 's'), 4096);
  for (const v of ['', '10XB', '-1GB', 'GB', 0, -5, 1.5, '0']) rejectsWith(() => parseSizeBytes(v, 'sizeBytes'), 400, /sizeBytes/);
  fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (n) => parseSizeBytes(String(n), 's') === n && parseSizeBytes(`${n}KB`, 's') === n * 1024));
  fc.assert(fc.property(fc.string(), (s) => {
    try { const n = parseSizeBytes(s, 's'); return Number.isSafeInteger(n) && n > 0; } catch (e) { return e instanceof VmmsError && e.status === 400; }
  }));
});

test('New-VHD options: defaults, relative paths, and each bad field named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-vhdopt-'));
  try {
    const v = new VhdCommands(async () => null, (p, field) => clientPath(p, field, dir));
    assert.deepEqual(v.parseNew({ path: 'a.vhdx', sizeBytes: '10GB' }), { path: join(dir, 'a.vhdx'), type: 'Dynamic', sizeBytes: 10 * G, logicalSectorSizeBytes: undefined, physicalSectorSizeBytes: undefined });
    writeFileSync(join(dir, 'p.vhdx'), 'x');
    assert.equal(v.parseNew({ path: '/x/c.vhdx', parentPath: join(dir, 'p.vhdx') }).type, 'Differencing');
    const o = v.parseNew({ path: '/x/f.vhdx', sizeBytes: 1048576, type: 'fixed', blockSizeBytes: '32MB', logicalSectorSizeBytes: 4096, physicalSectorSizeBytes: '4096' });
    assert.deepEqual([o.type, o.blockSizeBytes, o.logicalSectorSizeBytes, o.physicalSectorSizeBytes], ['Fixed', 32 * 1048576, 4096, 4096]);
    const bad: [unknown, RegExp][] = [
      [{ path: 'a.vhdx' }, /give sizeBytes/], [{ path: 'a.vhdx', sizeBytes: '1GB', type: 'sparse' }, /Fixed, Dynamic or Differencing/],
      [{ path: 'a.vhdx', sizeBytes: '1GB', blockSizeBytes: '3MB' }, /power of two from 1MB to 256MB/],
      [{ path: 'a.vhdx', sizeBytes: '1GB', logicalSectorSizeBytes: 1024 }, /512 or 4096/],
      [{ path: 'a.vhdx', sizeBytes: 1000 }, /multiple of the 512-byte logical sector/],
      [{ path: 'a.vhdx', sizeBytes: '65TB' }, /above 64TB/],
      [{ path: 'a.vhdx', type: 'differencing' }, /needs parentPath/],
      [{ path: 'a.vhdx', sizeBytes: '1GB', bogus: 1 }, /unknown New-VHD option 'bogus'/],
      [{ path: 7, sizeBytes: '1GB' }, /path must be a file path/],
      [[], /JSON object/],
    ];
    for (const [input, re] of bad) rejectsWith(() => v.parseNew(input), 400, re);
    assert.throws(() => v.parseNew({ path: 'c.vhdx', parentPath: 'missing.vhdx' }), /missing.vhdx does not exist/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('progress meter: percent from done/total, no rate before any work', () => {
  const m = new ProgressMeter();
  assert.equal(m.percent, 0);
  assert.equal(m.rate, null);
  assert.match(m.line(), /^ {2}0% --:--:-- left$/);
  m.update(50, 200);
  assert.equal(m.percent, 25);
  m.update(200, 200);
  assert.equal(m.percent, 100);
});
