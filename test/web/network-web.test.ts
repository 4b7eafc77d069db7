/**
 * The web console's Networking tab: each network adapter with its MAC, switch, link and the addresses the
 * guest reports for it; refreshed while the tab is open. Debian's headless Chromium (test/web/browser.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startService, type Fixture } from '../vmms/helpers.js';
import { chromiumMissing, launchBrowser, openConsolePage, row, type Browser } from './browser.js';

const skip = chromiumMissing();
const TOKEN = 'network-web-token';
let f: Fixture;
let browser: Browser;
let page: Page;
let url: string;

before(async () => {
  if (skip) return;
  f = await startService(undefined, { token: TOKEN });
  url = `http://127.0.0.1:${(await f.api.listenTcp('127.0.0.1', 0)).port}`;
  browser = await launchBrowser();
  page = browser.page;
});
after(async () => { await browser?.close(); await f?.close(); });

const cells = (): Promise<string[][]> => page.evaluate(() => [...document.querySelectorAll('#adapter-table tbody tr')]
  .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

test('web console: the Networking tab lists the adapters with MAC, switch and addresses', { skip, timeout: 60_000 }, async () => {
  await f.client.call('POST', '/vms', { name: 'webnet' });
  await f.client.call('POST', '/vms/webnet/network-adapters', { switchName: 'Default Switch', staticMacAddress: '00:15:5d:00:20:01' });
  await openConsolePage(page, url, TOKEN);
  await page.click(row('webnet'));
  await page.click('.tabs button[data-tab=networking]');
  await page.waitForFunction(() => document.querySelectorAll('#adapter-table tbody tr').length === 1);
  assert.deepEqual(await cells(), [['Network Adapter', '00:15:5d:00:20:01', 'Default Switch', '', '']]);
  await f.client.call('POST', '/vms/webnet/network-adapters', { name: 'lab', staticMacAddress: '00:15:5d:00:20:02' });
  await page.waitForFunction(() => document.querySelectorAll('#adapter-table tbody tr').length === 2, undefined, { timeout: 20_000 });
  assert.deepEqual((await cells())[1], ['lab', '00:15:5d:00:20:02', '(not connected)', '', '']);
});
