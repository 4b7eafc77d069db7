/**
 * The web console's checkpoints: the Checkpoint action, the Checkpoints tab (tree parent, "Now" marker),
 * Rename, Apply and Delete, checked against the service. Debian's headless Chromium (test/web/browser.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import { join } from 'node:path';
import { haveBinutils } from './test-kernel.js';
import { createVhdx } from '../../src/storage/open.js';
import { diskDir } from './checkpoint-disk-helpers.js';
import { testVm } from './helpers.js';
import { chromiumMissing, webConsoleFixture, openConsolePage, row } from '../web/browser.js';

const skip = chromiumMissing() || (!haveBinutils() ? 'binutils not installed' : false);
const TOKEN = 'checkpoint-web-token';
const w = webConsoleFixture(TOKEN, skip);

/** Rows of the Checkpoints tab: [name cell, parent, holds]. */
const rows = (): Promise<string[][]> => w.page.evaluate(() => [...document.querySelectorAll('#checkpoint-table tbody tr')]
  .map((tr) => [...tr.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent ?? '')).map((c) => [c[0], c[2], c[3]]));
const rowCount = (n: number): Promise<unknown> => w.page.waitForFunction((k) => document.querySelectorAll('#checkpoint-table tbody tr').length === k, n);

test('web console: Checkpoint action, Checkpoints tab, rename, apply, delete', { skip, timeout: 60_000 }, async () => {
  await w.service.client.call('POST', '/vms', testVm('webcp'));
  await w.service.client.call('POST', '/vms/webcp/snapshots', { name: 'base' });
  // Prompts (Rename...) answer "second"; confirms are accepted.
  w.page.removeAllListeners('dialog');
  w.page.on('dialog', (d) => { void d.accept(d.type() === 'prompt' ? 'second' : undefined); });
  await openConsolePage(w.page, w.url, TOKEN);
  await w.page.click(row('webcp'));
  await w.page.click('.tabs button[data-tab=checkpoints]');
  await rowCount(1);
  assert.deepEqual(await rows(), [['base  ◂ Now', '', 'Configuration only']]);

  await w.page.click('#vm-actions button[data-action=checkpoint]');
  await rowCount(2);
  const list = await w.service.client.call<CheckpointView[]>('GET', '/vms/webcp/snapshots');
  assert.equal(list.length, 2);
  assert.deepEqual((await rows())[1], [`${list[1].name}  ◂ Now`, 'base', 'Configuration only']);

  // Rename the second through the prompt, then apply the first (the "Now" marker moves), then delete the first.
  await w.page.click('#checkpoint-table tbody tr:nth-child(2) button:has-text("Rename...")');
  await w.page.waitForFunction(() => /^second/.test(document.querySelector('#checkpoint-table tbody tr:nth-child(2) td')?.textContent ?? ''));
  await w.service.client.call('PATCH', '/vms/webcp', { memory: '128M' });
  await w.page.click('#checkpoint-table tbody tr:nth-child(1) button:has-text("Apply")');
  await w.page.waitForFunction(() => /Now/.test(document.querySelector('#checkpoint-table tbody tr:nth-child(1) td')?.textContent ?? ''));
  assert.equal((await w.service.client.call<VmView>('GET', '/vms/webcp')).config.memoryBytes, 64 * 1048576, 'the applied checkpoint\'s memory size');
  await w.page.click('#checkpoint-table tbody tr:nth-child(1) button:has-text("Delete...")');
  await rowCount(1);
  assert.deepEqual((await w.service.client.call<CheckpointView[]>('GET', '/vms/webcp/snapshots')).map((s) => [s.name, s.parentSnapshotName]), [['second', null]]);
});

test('web console: the Checkpoints tab shows each checkpoint\'s type and the disk files it keeps', { skip, timeout: 60_000 }, async () => {
  const base = join(diskDir(w.service.dir, 'webdisk'), 'webdisk.vhdx');
  await createVhdx({ path: base, sizeBytes: 4 << 20, type: 'dynamic' });
  await w.service.client.call('POST', '/vms', testVm('webdisk'));
  await w.service.client.call('POST', '/vms/webdisk/hard-disk-drives', { path: base });
  await w.service.client.call('POST', '/vms/webdisk/snapshots', { name: 'one' });
  await w.service.client.call('POST', '/vms/webdisk/snapshots', { name: 'two' });
  const list = await w.service.client.call<CheckpointView[]>('GET', '/vms/webdisk/snapshots');
  await w.page.click(row('webdisk'));
  await w.page.click('.tabs button[data-tab=checkpoints]');
  await rowCount(2);
  const cells = await w.page.evaluate(() => [...document.querySelectorAll('#checkpoint-table tbody tr')]
    .map((tr) => [...tr.querySelectorAll('td')].slice(3, 6).map((td) => [td.textContent ?? '', [...td.querySelectorAll('div')].map((d) => d.title)])));
  assert.deepEqual(cells, list.map((c) => [['Configuration and disks', []], [c.snapshotType, []], [`SCSI 0:0: ${c.disks[0].path.split('/').pop()}`, [c.disks[0].path]]]));
  assert.equal(list[0].disks[0].path, base, 'the first checkpoint keeps the disk itself');
  assert.match(list[1].disks[0].path, /webdisk_[0-9A-F-]{36}\.avhdx$/, 'the second keeps the first one\'s child');
});
