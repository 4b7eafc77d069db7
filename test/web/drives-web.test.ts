/**
 * The web console's Storage tab: a VM's hard disks and DVD drive with controller, location, path, virtual
 * size and file size, updated when a disk is added. Debian's headless Chromium (test/web/browser.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmView } from '../../src/vmms/service.js';
import { fileURLToPath } from 'node:url';
import { chromiumMissing, webConsoleFixture, openConsolePage, row, screenshots } from './browser.js';

const skip = chromiumMissing() || (spawnSync('qemu-img', ['--version']).status !== 0 ? 'qemu-img (qemu-utils) not installed' : false);
const TOKEN = 'drives-web-token';
const w = webConsoleFixture(TOKEN, skip);

const cells = (): Promise<string[][]> => w.page.evaluate(() => [...document.querySelectorAll('#drive-table tbody tr')]
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

test('web console: the Storage tab lists the VM\'s drives with sizes', { skip, timeout: 60_000 }, async () => {
  const vm = await w.service.client.call<VmView>('POST', '/vms', { name: 'webdisk', newVhdPath: 'webdisk.vhdx', newVhdSizeBytes: '2GB' });
  const disk = vm.config.hardware.drives[0].path!;
  const iso = join(w.service.dir, 'setup.iso');
  writeFileSync(iso, Buffer.alloc(3 * 1048576));
  await w.service.client.call('PUT', '/vms/webdisk/dvd-drive', { path: iso });
  await openConsolePage(w.page, w.url, TOKEN);
  await w.page.click(row('webdisk'));
  await w.page.click('.tabs button[data-tab=storage]');
  await w.page.waitForFunction(() => document.querySelectorAll('#drive-table tbody tr').length === 2);
  const fileMb = `${Math.round(statSync(disk).size / 1048576)} MB`;
  assert.deepEqual(await cells(), [
    ['IDE 0', '0', 'DVD drive', iso, '3 MB', '3 MB'],
    ['SCSI 0', '0', 'Hard drive', disk, '2 GB', fileMb],
  ]);

  // A disk added through the API shows up (the tab refreshes on the VM's events).
  const op = await w.service.client.call<{ id: string }>('POST', '/vhds', { path: 'second.vhdx', sizeBytes: '512MB' });
  for (;;) { const o = await w.service.client.call<{ state: string }>('GET', `/operations/${op.id}`); if (o.state !== 'Running') break; await new Promise((r) => setTimeout(r, 50)); }
  await w.service.client.call('POST', '/vms/webdisk/hard-disk-drives', { path: 'second.vhdx', controllerLocation: 1 });
  await w.page.waitForFunction(() => document.querySelectorAll('#drive-table tbody tr').length === 3);
  await screenshots(w.page, [fileURLToPath(new URL('../../test-output/web/', import.meta.url))])('storage-tab');
  const third = (await cells())[2];
  assert.deepEqual(third.slice(0, 5), ['SCSI 0', '1', 'Hard drive', join(w.service.dir, 'Virtual Hard Disks', 'second.vhdx'), '512 MB']);
});
