/** Validation of VM settings, the inventory store and the CLI's formatting: pure, no processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applySettings, defaultConfig, icName, parseMemory } from '../../src/vmms/config.js';
import { VmmsError } from '../../src/vmms/errors.js';
import { Inventory } from '../../src/vmms/store.js';
import { formatUptime, table } from '../../src/cli/vm-commands.js';

const M = 1048576;

test('memory sizes: suffixes, bytes, limits and clear rejections', () => {
  assert.equal(parseMemory('512M'), 512 * M);
  assert.equal(parseMemory('1G'), 1024 * M);
  assert.equal(parseMemory('1536MiB'), 1536 * M);
  assert.equal(parseMemory(64 * M), 64 * M);
  for (const [v, re] of [['12Q', /invalid memory size '12Q'/], ['32M', /too small/], ['17G', /too large/], [64 * M + 1, /multiple of 4K/], [-1, /positive integer/], [true, /size like 512M/]] as const) {
    assert.throws(() => parseMemory(v), (e: unknown) => e instanceof VmmsError && e.status === 400 && re.test(e.message));
  }
});

test('settings: applied, changes listed, bad fields named', () => {
  const base = defaultConfig('a');
  const { config, changed } = applySettings(base, { memory: '1G', processor: 'emulated', kernel: '/k', cmdline: 'quiet', integrationServices: { kvp: false, 'time synchronization': false } });
  assert.equal(config.memoryBytes, 1024 * M);
  assert.deepEqual(config.boot, { kernel: '/k', initrd: null, cmdline: 'quiet' });
  assert.equal(config.integrationServices['Key-Value Pair Exchange'], false);
  assert.equal(config.integrationServices['Time Synchronization'], false);
  assert.equal(config.integrationServices.Heartbeat, true);
  assert.deepEqual(changed.sort(), ['boot', 'integrationServices', 'memory', 'processor']);
  assert.equal(base.memoryBytes, 512 * M, 'the base configuration is not modified');
  assert.deepEqual(applySettings(config, { memory: '1024M' }).changed, []);
  assert.deepEqual(applySettings(config, { kernel: null }).config.boot.kernel, null);
  // Several processors (up to 64), as set-vm --cpus / set-vmprocessor --count send them.
  assert.equal(applySettings(config, { cpus: 64 }).config.cpus, 64);
  assert.deepEqual(applySettings(config, { cpus: '2' }).changed, ['cpus']);
  const bad: [unknown, RegExp][] = [
    [{ initrd: '/i' }, /an initrd needs a kernel/], [{ cpus: 65 }, /at most 64/], [{ cpus: 2, processor: 'kvm' }, /emulated processor/], [{ cpus: 1.5 }, /positive integer/],
    [{ com1: 'pipe' }, /com1 must be console or none/], [{ enlightened: 'yes' }, /true or false/], [{ integrationServices: { Foo: true } }, /unknown integration service 'Foo'/],
    [{ name: '-x' }, /invalid VM name/], [{ kernel: '' }, /file path/], [null, /JSON object/],
  ];
  for (const [input, re] of bad) assert.throws(() => applySettings(base, input), re);
  assert.equal(icName('KVP'), 'Key-Value Pair Exchange');
  assert.equal(icName('timesync'), 'Time Synchronization');
});

test('inventory: VMs and events persist across reopen; names are unique case-insensitively', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-inv-'));
  try {
    const file = join(dir, 'inv.sqlite');
    let inv = new Inventory(file);
    const r = inv.insert(defaultConfig('Alpha'));
    assert.throws(() => inv.insert(defaultConfig('alpha')), /UNIQUE/);
    inv.setState(r.id, 'Running');
    inv.addEvent({ vmId: r.id, vmName: 'Alpha', from: 'Off', to: 'Running', message: 'one' });
    inv.addEvent({ vmId: r.id, vmName: 'Alpha', from: 'Running', to: 'Off', message: 'two' });
    inv.close();
    inv = new Inventory(file);
    const [back] = inv.list();
    assert.equal(back.name, 'Alpha');
    assert.equal(back.state, 'Running');
    assert.deepEqual(back.config, defaultConfig('Alpha'));
    assert.equal(inv.byName('ALPHA')?.id, r.id);
    assert.deepEqual(inv.events({ vmId: r.id }).map((e) => e.message), ['one', 'two']);
    assert.deepEqual(inv.events({ vmId: r.id, limit: 1 }).map((e) => e.message), ['two']);
    inv.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('CLI formatting: Hyper-V uptime and PowerShell-style tables', () => {
  assert.equal(formatUptime(0), '00:00:00');
  assert.equal(formatUptime(3725), '01:02:05');
  assert.equal(formatUptime(2 * 86400 + 61), '2.00:01:01');
  assert.equal(table(['Name', 'State'], [['demo', 'Running'], ['x', 'Off']]), 'Name State\n---- -------\ndemo Running\nx    Off\n');
});
