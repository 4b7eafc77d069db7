/**
 * Issue 5 acceptance with the real Debian guest (slow: each boot takes minutes on the emulated processor).
 * First boot through the CLI: `hyperts serve`, `new-vm demo`, `start-vm demo`, `get-vm` shows it Running with
 * heartbeat OK and its OS name from KVP, `stop-vm demo` shuts it down through the Shutdown service, `get-vm`
 * shows Off (before that, `save-vm` and `start-vm` restore it, its worker sandboxed where bubblewrap works). Second boot of the same VM through the web console in headless chromium and the REST API over
 * TCP with the token: Start button, live list, heartbeat, KVP and integration services in the details pane,
 * commands typed into the xterm serial console, Shut Down button, Off and the graceful reason over REST.
 * Screenshots: the run's temp dir and dist/test-output/vmms-acceptance/ (kept).
 * Waits poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestSession, kvpPoolCommand } from './guest-session.js';
import { ApiError, VmmsClient } from '../../src/vmms/client.js';
import { socketPath, tokenPath } from '../../src/vmms/paths.js';
import { guestConsole } from '../vmms/guest-console.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';
import { chromiumMissing, detailsFields, icStatuses, launchBrowser, openConsolePage, row, screenshots, waitForDetail, waitForTerminal, type Browser } from '../web/browser.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'hyperts');
const dir = mkdtempSync(join(tmpdir(), 'hyperts-accept-'));
const LIMIT_MS = 40 * 60_000;
const keptShots = fileURLToPath(new URL('../../test-output/vmms-acceptance/', import.meta.url));
let server: ChildProcess | null = null;
let browser: Browser | null = null;

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

function hyperts(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--data-dir', dir], { env: { ...process.env, HYPERTS_URL: '' }, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, limitMs = LIMIT_MS): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

test('serve, new-vm demo, start-vm, Running with heartbeat OK and OS name, graceful stop-vm, Off; again in the browser and REST',
  { skip: !GuestSession.imageAvailable() && 'default image not built (npm run setup)', timeout: LIMIT_MS * 3 }, async (t) => {
    // The CLI uses the unix socket; the browser and the REST checks use TCP with the token (port 0: any free one).
    server = spawn(process.execPath, [bin, 'serve', '--data-dir', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let serverLog = '';
    server.stderr!.setEncoding('utf8').on('data', (d: string) => {
      serverLog = (serverLog + d).slice(-20_000);
      if (process.env.HYPERTS_TEST_LOG) process.stderr.write(d);
    });
    const client = new VmmsClient({ socketPath: socketPath(dir) });
    await until('the service', async () => client.call('GET', '/vms').then(() => true, () => false), 60_000);
    const port = await until('the TCP listener', async () => /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(serverLog)?.[1], 60_000);

    assert.equal((await hyperts('new-vm', 'demo', '--processor', process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'auto')).code, 0);
    const start = await hyperts('start-vm', 'demo');
    assert.equal(start.code, 0, start.stderr);

    // Subtests run in order; one that fails (e.g. no OS name) still lets the graceful stop be checked.
    type View = { state: string; heartbeat: string | null; osName: string | null };
    const view = (): Promise<View> => client.call<View>('GET', '/vms/demo');
    await t.test('Running with heartbeat OK (hv_utils bound)', async () => {
      await until('heartbeat OK', async () => {
        const v = await view();
        assert.equal(v.state, 'Running', 'the VM stays Running while it boots');
        return v.heartbeat === 'OK';
      });
      assert.match((await hyperts('get-vm')).stdout, /^demo +Running +\d+ +512 +\d\d:\d\d:\d\d +Operating normally +OK/m);
      const ics = (await hyperts('get-vmintegrationservice', 'demo')).stdout;
      assert.match(ics, /demo +Heartbeat +True +OK/);
      assert.match(ics, /demo +Shutdown +True +OK/);
    });

    await t.test('OS name from KVP (hv_kvp_daemon), in get-vm, the REST API and get-vmkvp', async () => {
      // The daemon starts right after the modules load: a few more guest minutes at most.
      const v = await until('an OS name', async () => { const x = await view(); return x.osName ? x : null; }, 15 * 60_000);
      assert.match(v.osName!, /Debian|Linux/i);
      assert.match((await hyperts('get-vm')).stdout, new RegExp(`^demo +Running .* +OK +${v.osName!.split(' ')[0]}`, 'm'));
      const kvp = JSON.parse((await hyperts('get-vmkvp', 'demo', '--json')).stdout) as { guest: Record<string, string> };
      assert.equal(kvp.guest.OSName, v.osName);
      assert.equal((await hyperts('set-vmkvp', 'demo', 'HypertsAcceptance', 'yes')).code, 0);
      assert.match((await hyperts('get-vmkvp', 'demo')).stdout, /Host +HypertsAcceptance +yes/);
    });

    await t.test('save-vm, then start-vm: the guest resumes where it was, its worker isolated where bubblewrap works', async () => {
      if (isolationSupport().available) assert.doesNotMatch((await hyperts('get-vmevent', 'demo')).stdout, /without isolation/i, 'the worker runs in its sandbox');
      const con = await guestConsole(client, 'demo', LIMIT_MS);
      try {
        await con.sh('dmesg -n 1');
        // /tmp is the initramfs: a marker that survives proves the guest was restored, not booted again.
        await con.sh('echo marker-before-save > /tmp/saved-marker');
        const uptime = async (): Promise<number> => Number.parseFloat((await con.sh('cut -d" " -f1 /proc/uptime')).trim());
        const before = await uptime();
        const save = await hyperts('save-vm', 'demo');
        assert.equal(save.code, 0, save.stderr);
        assert.match((await hyperts('get-vm')).stdout, /^demo +Saved /m);
        const resume = await hyperts('start-vm', 'demo');
        assert.equal(resume.code, 0, resume.stderr);
        assert.equal((await con.sh('cat /tmp/saved-marker')).trim(), 'marker-before-save');
        assert.ok(await uptime() >= before, 'the guest\'s uptime went on from where it was saved');
        await until('heartbeat OK after the restore', async () => (await view()).heartbeat === 'OK');
        if (isolationSupport().available) assert.doesNotMatch((await hyperts('get-vmevent', 'demo')).stdout, /without isolation/i, 'the restored worker runs in its sandbox');
      } finally {
        con.close();
      }
    });

    await t.test('stop-vm shuts the guest down through the Shutdown service; get-vm shows Off', async () => {
      const stop = await hyperts('stop-vm', 'demo', '--timeout', '1800');
      assert.equal(stop.code, 0, stop.stderr);
      assert.match((await hyperts('get-vm')).stdout, /^demo +Off +0 +0 +00:00:00 +Operating normally/m);
      const events = (await hyperts('get-vmevent', 'demo')).stdout;
      assert.match(events, /Running +Stopping +shut down requested through the Shutdown integration service/);
      assert.match(events, /Stopping +Off +shut down by the guest operating system/);
    });
    await t.test('second boot through the web console (chromium) and the REST API over TCP', { skip: chromiumMissing() }, async () => {
      const url = `http://127.0.0.1:${port}`;
      const token = readFileSync(tokenPath(dir), 'utf8').trim();
      const rest = new VmmsClient({ url, token });
      type Event = { seq: number; from: string | null; to: string | null; message: string };
      type RestView = View & { osVersion: string | null; ipAddresses: string[] };
      await assert.rejects(new VmmsClient({ url }).call('GET', '/vms/demo'), (e: unknown) => e instanceof ApiError && e.status === 401, 'TCP needs the token');
      assert.equal((await rest.call<RestView>('GET', '/vms/demo')).state, 'Off');
      const since = (await rest.call<Event[]>('GET', '/vms/demo/events?limit=1'))[0]?.seq ?? 0;

      browser = await launchBrowser();
      const page = browser.page;
      const shot = screenshots(page, [join(dir, 'screenshots'), keptShots]);
      try {
        await openConsolePage(page, url, token);
        // Every list render is recorded (state, uptime) in the page, which is never reloaded: that is "live".
        await page.evaluate(() => {
          const w = window as unknown as { seen: Array<[string, string]>; loadMark: boolean };
          w.seen = []; w.loadMark = true;
          const note = (): void => {
            const tr = document.querySelector('#vms tbody tr[data-vm="demo"]');
            if (!tr) return;
            const s: [string, string] = [tr.getAttribute('data-state') ?? '', tr.querySelectorAll('td')[4]?.textContent ?? ''];
            const last = w.seen[w.seen.length - 1];
            if (!last || last[0] !== s[0] || last[1] !== s[1]) w.seen.push(s);
          };
          new MutationObserver(note).observe(document.querySelector('#vms tbody')!, { childList: true, subtree: true });
          note();
        });
        await page.waitForSelector(`${row('demo')}[data-state="Off"]`);
        await shot('01-off');

        // Start with the web console's button; the row turns Running without a reload.
        await page.click(row('demo'));
        await page.click('#vm-actions button[data-action=start]');
        await page.waitForSelector(`${row('demo')}[data-state="Running"]`, { timeout: 120_000 });
        assert.equal((await rest.call<RestView>('GET', '/vms/demo')).state, 'Running');
        assert.equal(await page.isDisabled('#vm-actions button[data-action=start]'), true);
        assert.equal(await page.isEnabled('#vm-actions button[data-action=shutdown]'), true);

        // Summary: heartbeat OK once hv_utils binds, then the OS from KVP, equal to what REST reports.
        await waitForDetail(page, 'Heartbeat', /^OK$/, LIMIT_MS);
        await shot('02-heartbeat-ok');
        const osText = await waitForDetail(page, 'Operating system', /\S/, 15 * 60_000);
        const v = await rest.call<RestView>('GET', '/vms/demo');
        assert.equal(v.state, 'Running');
        assert.equal(v.heartbeat, 'OK');
        assert.match(v.osName ?? '', /Debian|Linux/i);
        assert.equal(osText, [v.osName, v.osVersion].filter(Boolean).join(' '));
        t.diagnostic(`REST view: osName=${v.osName} osVersion=${v.osVersion} ipAddresses=${JSON.stringify(v.ipAddresses)}`);
        const kvp = await rest.call<{ guest: Record<string, string>; host: Record<string, string> }>('GET', '/vms/demo/kvp');
        assert.equal(kvp.guest.OSName, v.osName);
        const summary = await detailsFields(page);
        assert.equal(summary['Integration services'], 'Up to date');
        assert.match(summary.State, /^Running$/);

        // Integration services tab: every service's status as REST reports it; the guest's daemons answer.
        await page.click('.tabs button[data-tab=ics]');
        const ics = await rest.call<Array<{ name: string; status: string | null }>>('GET', '/vms/demo/integration-services');
        const want = Object.fromEntries(ics.map((i) => [i.name, i.status ?? '']));
        for (const n of ['Heartbeat', 'Shutdown', 'Time Synchronization', 'Key-Value Pair Exchange']) assert.equal(want[n], 'OK', `${n} over REST`);
        await until('the integration services table', async () => JSON.stringify(await icStatuses(page)) === JSON.stringify(want), 60_000);
        await shot('03-integration-services');

        // Networking tab: KVP OS name, version and addresses, as REST reports them.
        await page.click('.tabs button[data-tab=networking]');
        const net = await detailsFields(page);
        assert.equal(net['OS name (KVP)'], v.osName ?? '');
        assert.equal(net['OS version (KVP)'], v.osVersion ?? '');
        assert.equal(net['IP addresses'], v.ipAddresses.join(', ') || 'not reported by the guest (KVP)');
        await shot('04-networking');

        // Serial console in xterm: the guest answers typed commands (42 is computed by the guest's shell).
        await page.click('#vm-actions button[data-action=connect]');
        await page.click('#terminal');
        // Each command waits for its answer and the next prompt, so typing never runs ahead of the shell.
        const prompt = 'hyperts-guest:\\S*# *$';
        const command = async (cmd: string, answer: string): Promise<string> => {
          await page.keyboard.type(cmd);
          await page.keyboard.press('Enter');
          const m = await waitForTerminal(page, new RegExp(`^${answer}\\n${prompt}`, 'm'), 120_000);
          return m.split('\n')[0];
        };
        await page.keyboard.press('Enter');
        await waitForTerminal(page, new RegExp(prompt, 'm'), 120_000);
        const release = await command('uname -r', '\\d+\\.\\d+\\.\\d+-\\d+-cloud-amd64');
        if (kvp.guest.OSBuildNumber) assert.equal(release, kvp.guest.OSBuildNumber, 'uname -r in the console = KVP OSBuildNumber over REST');
        assert.ok(release.startsWith(`${v.osVersion}-`), `uname -r ${release} continues KVP OSVersion ${v.osVersion}`);
        await command('echo hyperts-$((6*7))', 'hyperts-42');
        // A host key set over REST reaches the guest's KVP pool 0, read back in the console.
        const value = `rest-${process.pid}`;
        await rest.call('PUT', '/vms/demo/kvp/HypertsWeb', { value });
        assert.equal((await rest.call<{ host: Record<string, string> }>('GET', '/vms/demo/kvp')).host.HypertsWeb, value);
        await command(`${kvpPoolCommand(0)} | grep '^HypertsWeb='`, `HypertsWeb=${value}`);
        await shot('05-serial-console');

        // Shut Down (graceful, through the guest's Shutdown service): Stopping, then Off, live in the list.
        await page.click(row('demo'));
        await page.click('#vm-actions button[data-action=shutdown]');
        await page.waitForSelector(`${row('demo')}[data-state="Off"]`, { timeout: LIMIT_MS });
        const seen = await page.evaluate(() => { const w = window as unknown as { seen: Array<[string, string]>; loadMark?: boolean }; return { seen: w.seen, loadMark: w.loadMark }; });
        assert.equal(seen.loadMark, true, 'the page was never reloaded');
        const states = seen.seen.map((x) => x[0]).filter((x, i, a) => i === 0 || a[i - 1] !== x);
        assert.deepEqual(states.slice(states.indexOf('Running')), ['Running', 'Stopping', 'Off'], `states seen: ${states.join(' ')}`);
        const uptimes = new Set(seen.seen.filter((x) => x[0] === 'Running').map((x) => x[1]));
        assert.ok(uptimes.size > 1, `the uptime column updated live (${[...uptimes].join(', ')})`);
        await page.click('.tabs button[data-tab=events]');
        await page.waitForFunction(() => /shut down by the guest operating system/.test(document.querySelector('#details-body')?.textContent ?? ''));
        await shot('06-off-events');

        // REST: Off, and the graceful reason in the event log of this boot.
        const off = await rest.call<RestView>('GET', '/vms/demo');
        assert.equal(off.state, 'Off');
        assert.equal(off.heartbeat, null);
        const events = await rest.call<Event[]>(`GET`, `/vms/demo/events?after=${since}`);
        const line = (e: Event): string => `${e.from} -> ${e.to}: ${e.message}`;
        assert.ok(events.some((e) => e.from === 'Running' && e.to === 'Stopping' && /Shutdown integration service/.test(e.message)), events.map(line).join('\n'));
        assert.ok(events.some((e) => e.from === 'Stopping' && e.to === 'Off' && /^shut down by the guest operating system/.test(e.message)), events.map(line).join('\n'));
      } catch (e) {
        await shot('99-failure').catch(() => undefined);
        throw e;
      }
      await browser.close();
      browser = null;
    });
  });
