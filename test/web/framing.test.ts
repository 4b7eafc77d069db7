/**
 * Clickjacking: a page from another origin cannot frame the web console (CSP frame-ancestors 'none' and
 * X-Frame-Options DENY), checked in Debian's headless Chromium. The same console opened at top level works,
 * so the check could fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startService, type Fixture } from '../vmms/helpers.js';
import { chromiumMissing, launchBrowser, openConsolePage, type Browser } from './browser.js';

const skip = chromiumMissing();
const TOKEN = 'framing-test-token';
let f: Fixture;
let browser: Browser;
let url: string;
let evil: Server;
let evilUrl: string;

before(async () => {
  if (skip) return;
  f = await startService(undefined, { token: TOKEN });
  url = `http://127.0.0.1:${(await f.api.listenTcp('127.0.0.1', 0)).port}`;
  // Another origin (another port) whose page frames the console.
  evil = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>evil</title><iframe id="victim" src="${url}/" width="800" height="600"></iframe>`);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
  evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); evil?.close(); await f?.close(); });

test('another origin cannot frame the console; at top level it loads', { skip, timeout: 60_000 }, async () => {
  const page = browser.page;
  const refusal = page.waitForEvent('console', { predicate: (m) => /frame-ancestors|X-Frame-Options/i.test(m.text()), timeout: 30_000 });
  await page.goto(evilUrl);
  const message = (await refusal).text();
  const frame = await (await page.$('#victim'))!.contentFrame();
  assert.ok(frame);
  // A blocked frame shows Chromium's error page: none of the console's elements, nothing of its script ran.
  const hasConsole = await frame.evaluate(() => !!document.querySelector('#vms')).catch(() => false);
  assert.equal(hasConsole, false, `the console rendered inside a foreign frame (${frame.url()})`);
  assert.match(message, /frame-ancestors 'none'.*blocked|Refused to (display|frame)/s, 'Chromium reported the refusal');

  await openConsolePage(page, url, TOKEN);
  assert.equal(await page.evaluate(() => !!document.querySelector('#vms')), true, 'the console itself loads');
});
