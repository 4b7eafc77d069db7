/**
 * Issue 5 acceptance with the real Debian guest (slow: the boot takes minutes on the emulated processor):
 * `hyperts serve`, `new-vm demo`, `start-vm demo`, `get-vm` shows it Running with heartbeat OK and its OS
 * name from KVP, `stop-vm demo` shuts it down through the Shutdown service, `get-vm` shows Off.
 * Waits poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestSession } from './guest-session.js';
import { VmmsClient } from '../../src/vmms/client.js';
import { socketPath } from '../../src/vmms/paths.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'hyperts');
const dir = mkdtempSync(join(tmpdir(), 'hyperts-accept-'));
const LIMIT_MS = 40 * 60_000;
let server: ChildProcess | null = null;

after(() => {
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

test('serve, new-vm demo, start-vm, Running with heartbeat OK and OS name, graceful stop-vm, Off',
  { skip: !GuestSession.imageAvailable() && 'default image not built (npm run setup)', timeout: LIMIT_MS * 2 }, async (t) => {
    server = spawn(process.execPath, [bin, 'serve', '--data-dir', dir], { stdio: ['ignore', 'ignore', process.env.HYPERTS_TEST_LOG ? 'inherit' : 'ignore'] });
    const client = new VmmsClient({ socketPath: socketPath(dir) });
    await until('the service', async () => client.call('GET', '/vms').then(() => true, () => false), 60_000);

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

    await t.test('stop-vm shuts the guest down through the Shutdown service; get-vm shows Off', async () => {
      const stop = await hyperts('stop-vm', 'demo', '--timeout', '1800');
      assert.equal(stop.code, 0, stop.stderr);
      assert.match((await hyperts('get-vm')).stdout, /^demo +Off +0 +0 +00:00:00 +Operating normally/m);
      const events = (await hyperts('get-vmevent', 'demo')).stdout;
      assert.match(events, /Running +Stopping +shut down requested through the Shutdown integration service/);
      assert.match(events, /Stopping +Off +shut down by the guest operating system/);
    });
  });
