/**
 * Headless Debian chromium for the web console tests (playwright-core): launch, screenshots kept in several
 * folders, and readers for the page's VM list, details pane and xterm screen.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, after } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startService, type Fixture } from '../vmms/helpers.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test cannot run here (Debian's chromium missing), or false. */
export function chromiumMissing(): string | false {
  return existsSync(CHROMIUM) ? false : `Debian chromium is not installed at ${CHROMIUM} (apt-get install chromium; CI installs it from .ci/packages.txt)`;
}

export interface Browser { ctx: BrowserContext; page: Page; close: () => Promise<void> }

/** A fresh profile in a temporary folder; dialogs (confirm) are accepted. HYPERTS_WEB_DEBUG logs console and frames. */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'hyperts-chromium-'));
  let ctx: BrowserContext;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 860 },
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const page = ctx.pages()[0] ?? await ctx.newPage();
  page.on('dialog', (d) => { void d.accept(); });
  if (process.env.HYPERTS_WEB_DEBUG) {
    page.on('console', (m) => console.log('console:', m.type(), m.text()));
    page.on('websocket', (ws) => { ws.on('framesent', (fr) => console.log('sent', fr.payload)); ws.on('framereceived', (fr) => console.log('recv', String(fr.payload).slice(0, 80))); });
  }
  return {
    ctx, page,
    close: async () => { await ctx.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

/** Saves each screenshot as NAME.png in every folder (created when missing); returns the PNG bytes. */
export function screenshots(page: Page, dirs: string[]): (name: string) => Promise<Buffer> {
  for (const d of dirs) mkdirSync(d, { recursive: true });
  return async (name) => {
    const png = await page.screenshot({ path: join(dirs[0], `${name}.png`) });
    for (const d of dirs.slice(1)) writeFileSync(join(d, `${name}.png`), png);
    return png;
  };
}

/** CSS selector of a VM's row in the list. */
export const row = (name: string): string => `#vms tbody tr[data-vm="${name}"]`;

/** A one-time login ticket for the web console, asked for with the API token (as `hyperts` users would). */
export async function loginTicket(url: string, token: string): Promise<string> {
  const r = await fetch(`${url}/api/v1/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ purpose: 'login' }) });
  if (r.status !== 201) throw new Error(`login ticket: HTTP ${r.status} ${await r.text()}`);
  return ((await r.json()) as { ticket: string }).ticket;
}

/** Opens the web console with a login ticket in the fragment (never the token) and waits for its live connection. */
export async function openConsolePage(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/#ticket=${encodeURIComponent(await loginTicket(url, token))}`);
  await page.waitForFunction(() => document.querySelector('#conn')?.textContent === 'connected');
}

/** The details pane's definition list as {label: value}. */
export function detailsFields(page: Page): Promise<Record<string, string>> {
  return page.evaluate(() => {
    const out: Record<string, string> = {};
    for (const dt of document.querySelectorAll('#details-body dt')) out[dt.textContent ?? ''] = (dt.nextElementSibling as HTMLElement | null)?.textContent ?? '';
    return out;
  });
}

/** Waits (polling once a second, up to limitMs) until the details pane shows `label` matching `re`; returns the value. */
export async function waitForDetail(page: Page, label: string, re: RegExp, limitMs: number): Promise<string> {
  const h = await page.waitForFunction(([l, src, flags]) => {
    for (const dt of document.querySelectorAll('#details-body dt')) {
      if (dt.textContent !== l) continue;
      const v = dt.nextElementSibling?.textContent ?? '';
      return new RegExp(src, flags).test(v) ? v : null;
    }
    return null;
  }, [label, re.source, re.flags] as const, { timeout: limitMs, polling: 1000 });
  return (await h.jsonValue()) as string;
}

/** The integration services table as {service: status}. */
export function icStatuses(page: Page): Promise<Record<string, string>> {
  return page.evaluate(() => {
    const out: Record<string, string> = {};
    for (const tr of document.querySelectorAll('#ic-table tbody tr')) {
      const td = tr.querySelectorAll('td');
      out[td[0]?.textContent ?? ''] = td[2]?.textContent ?? '';
    }
    return out;
  });
}

/** The text of the xterm screen (the DOM renderer's rows, one line each; no-break spaces as spaces). */
export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => [...document.querySelectorAll('#terminal .xterm-rows > div')].map((d) => (d.textContent ?? '').replace(/\u00a0/g, ' ')).join('\n'));
}

/** Waits until the xterm screen matches `re` (polling twice a second, up to limitMs); returns the match. */
export async function waitForTerminal(page: Page, re: RegExp, limitMs: number): Promise<string> {
  try {
    const h = await page.waitForFunction(([src, flags]) => {
      const text = [...document.querySelectorAll('#terminal .xterm-rows > div')].map((d) => (d.textContent ?? '').replace(/\u00a0/g, ' ')).join('\n');
      return new RegExp(src, flags).exec(text)?.[0] ?? null;
    }, [re.source, re.flags] as const, { timeout: limitMs, polling: 500 });
    return (await h.jsonValue()) as string;
  } catch (e) {
    const screen = await terminalText(page).catch(() => '(unreadable)');
    throw new Error(`the console did not show ${re} (${(e as Error).message.split('\n')[0]}); screen:\n${JSON.stringify(screen)}`);
  }
}

/** A management service listening on loopback TCP and a browser, for one test file (see webConsoleFixture). */
export interface WebFixture { service: Fixture; browser: Browser; page: Page; url: string }

/**
 * Registers before/after hooks that start a service with `token` and an HTTP listener, and a browser; with a
 * skip reason, nothing starts. The fields are filled in when the hooks have run.
 */
export function webConsoleFixture(token: string, skip: string | false): WebFixture {
  const w = {} as WebFixture;
  before(async () => {
    if (skip) return;
    w.service = await startService(undefined, { token });
    w.url = `http://127.0.0.1:${(await w.service.api.listenTcp('127.0.0.1', 0)).port}`;
    w.browser = await launchBrowser();
    w.page = w.browser.page;
  });
  after(async () => { await w.browser?.close(); await w.service?.close(); });
  return w;
}
