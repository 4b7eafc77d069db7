/**
 * The web console end to end in Debian's headless Chromium (playwright-core): create a VM with the form,
 * start it, see it Running, open the serial console and type into it, fail a graceful shutdown visibly,
 * turn it off, delete it. Screenshots go to dist/test-output/web/.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { haveBinutils, TEST_KERNEL_BANNER } from '../vmms/test-kernel.js';
import { startService, testKernel, type Fixture } from '../vmms/helpers.js';
import { chromiumMissing, launchBrowser, openConsolePage, row, screenshots, type Browser } from './browser.js';

const skip = chromiumMissing() || (!haveBinutils() ? 'binutils not installed' : false);
const shots = fileURLToPath(new URL('../../test-output/web/', import.meta.url));
const TOKEN = 'browser-test-token';

let f: Fixture;
let browser: Browser;
let page: Page;
let url: string;
let shot: (name: string) => Promise<Buffer>;

before(async () => {
  if (skip) return;
  f = await startService(undefined, { token: TOKEN });
  const a = await f.api.listenTcp('127.0.0.1', 0);
  url = `http://127.0.0.1:${a.port}`;
  browser = await launchBrowser();
  page = browser.page;
  shot = screenshots(page, [shots]);
});

after(async () => {
  await browser?.close();
  await f?.close();
});

test('web console: create, start, Running, console, shut down error, turn off, delete', { skip, timeout: 120_000 }, async () => {
  await openConsolePage(page, url, TOKEN);
  assert.ok(!page.url().includes('token='), 'the token leaves the address bar');
  await shot('01-empty');

  // Create-VM form: a bad memory size is refused in place, then a good one creates the VM.
  await page.click('#act-new');
  await page.fill('input[name=name]', 'webvm');
  await page.fill('input[name=memory]', '12Q');
  await page.selectOption('select[name=processor]', 'emulated');
  await page.fill('input[name=kernel]', testKernel());
  await page.click('#new-vm-create');
  await page.waitForFunction(() => /invalid memory size '12Q'/.test(document.querySelector('#new-vm-error')?.textContent ?? ''));
  await shot('02-form-error');
  assert.deepEqual((await f.service.list()).map((v) => v.name), [], 'nothing was created');
  await page.fill('input[name=memory]', '64M');
  await page.click('#new-vm-create');
  await page.waitForSelector(`${row('webvm')}[data-state="Off"]`);
  assert.equal(f.service.get('webvm').config.memoryBytes, 64 * 1048576);

  // Start: the list updates live to Running with assigned memory.
  await page.click(row('webvm'));
  await page.click('#vm-actions button[data-action=start]');
  await page.waitForSelector(`${row('webvm')}[data-state="Running"]`);
  const cells = await page.locator(`${row('webvm')} td`).allTextContents();
  assert.equal(cells[1], 'Running');
  assert.equal(cells[3], '64 MB');
  assert.match(cells[4], /^\d\d:\d\d:\d\d$/);
  assert.equal(await page.isDisabled('#vm-actions button[data-action=start]'), true);
  await page.click('.tabs button[data-tab=ics]');
  await page.waitForFunction(() => document.querySelectorAll('#ic-table tbody tr').length === 5);
  assert.match(await page.locator('#ic-table').innerText(), /Heartbeat\s+No Contact/);
  await shot('03-running');

  // Serial console in xterm: history, then typing echoes through the guest.
  await page.click('#vm-actions button[data-action=connect]');
  const screen = page.locator('#terminal .xterm-rows');
  await page.waitForFunction((b) => document.querySelector('#terminal .xterm-rows')?.textContent?.includes(b), TEST_KERNEL_BANNER);
  await page.click('#terminal');
  await page.keyboard.type('hi-from-chromium');
  await page.waitForFunction(() => document.querySelector('#terminal .xterm-rows')?.textContent?.includes('hi-from-chromium'));
  assert.match(await screen.innerText(), /hi-from-chromium/);
  await shot('04-console');

  // Shut Down needs the guest's Shutdown service, which the test kernel lacks: a visible error, still Running.
  await page.click(row('webvm'));
  await page.click('#vm-actions button[data-action=shutdown]');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.locator('#error').innerText(), /Shutdown integration service/);
  assert.equal(f.service.get('webvm').state, 'Running');
  await shot('05-shutdown-error');

  // Turn Off (confirmed), then Delete.
  await page.click('#vm-actions button[data-action=turnoff]');
  await page.waitForSelector(`${row('webvm')}[data-state="Off"]`);
  assert.equal(f.service.get('webvm').state, 'Off');
  await shot('06-off');
  await page.click('#vm-actions button[data-action=delete]');
  await page.waitForSelector(row('webvm'), { state: 'detached' });
  assert.deepEqual(f.service.list(), []);
  await shot('07-deleted');
});
