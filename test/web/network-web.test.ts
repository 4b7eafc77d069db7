/**
 * The web console's Networking tab: each network adapter with its MAC, switch, link and the addresses the
 * guest reports for it; refreshed while the tab is open. Debian's headless Chromium (test/web/browser.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromiumMissing, webConsoleFixture, openConsolePage, row } from './browser.js';

const skip = chromiumMissing();
const TOKEN = 'network-web-token';
const w = webConsoleFixture(TOKEN, skip);

const cells = (): Promise<string[][]> => w.page.evaluate(() => [...document.querySelectorAll('#adapter-table tbody tr')]
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

test('web console: the Networking tab lists the adapters with MAC, switch and addresses', { skip, timeout: 60_000 }, async () => {
  await w.service.client.call('POST', '/vms', { name: 'webnet' });
  await w.service.client.call('POST', '/vms/webnet/network-adapters', { switchName: 'Default Switch', staticMacAddress: '00:15:5d:00:20:01' });
  await openConsolePage(w.page, w.url, TOKEN);
  await w.page.click(row('webnet'));
  await w.page.click('.tabs button[data-tab=networking]');
  await w.page.waitForFunction(() => document.querySelectorAll('#adapter-table tbody tr').length === 1);
  assert.deepEqual(await cells(), [['Network Adapter', '00:15:5d:00:20:01', 'Default Switch', '', '']]);
  await w.service.client.call('POST', '/vms/webnet/network-adapters', { name: 'lab', staticMacAddress: '00:15:5d:00:20:02' });
  await w.page.waitForFunction(() => document.querySelectorAll('#adapter-table tbody tr').length === 2, undefined, { timeout: 20_000 });
  assert.deepEqual((await cells())[1], ['lab', '00:15:5d:00:20:02', '(not connected)', '', '']);
});
