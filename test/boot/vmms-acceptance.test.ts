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
  { skip: !GuestSession.imageAvailable() && 'default image not built (npm run setup)', timeout: LIMIT_MS * 2 }, async () => {
    server = spawn(process.execPath, [bin, 'serve', '--data-dir', dir], { stdio: ['ignore', 'ignore', process.env.HYPERTS_TEST_LOG ? 'inherit' : 'ignore'] });
    const client = new VmmsClient({ socketPath: socketPath(dir) });
    await until('the service', async () => client.call('GET', '/vms').then(() => true, () => false), 60_000);

    assert.equal((await hyperts('new-vm', 'demo', '--processor', process.env.HYPERTS_ACCEPT_PROCESSOR ?? 'auto')).code, 0);
    const start = await hyperts('start-vm', 'demo');
    assert.equal(start.code, 0, start.stderr);

    // Heartbeat OK needs hv_utils; the OS name needs hv_kvp_daemon answering the KVP service.
    const vm = await until('heartbeat OK and an OS name', async () => {
      const v = JSON.parse((await hyperts('get-vm', 'demo', '--json')).stdout) as { state: string; heartbeat: string | null; osName: string | null };
      assert.equal(v.state, 'Running', 'the VM stays Running while it boots');
      return v.heartbeat === 'OK' && v.osName ? v : null;
    });
    assert.match(vm.osName!, /Debian|Linux/i);
    const table = (await hyperts('get-vm')).stdout;
    assert.match(table, new RegExp(`^demo +Running +\\d+ +512 +\\d\\d:\\d\\d:\\d\\d +Operating normally +OK +${vm.osName!.split(' ')[0]}`, 'm'));
    // The same through the REST API.
    const api = await client.call<{ state: string; heartbeat: string; osName: string }>('GET', '/vms/demo');
    assert.deepEqual([api.state, api.heartbeat, api.osName], ['Running', 'OK', vm.osName]);
    const ics = (await hyperts('get-vmintegrationservice', 'demo')).stdout;
    assert.match(ics, /demo +Heartbeat +True +OK/);
    assert.match(ics, /demo +Shutdown +True +OK/);

    // KVP both ways: the guest's intrinsics, and a host key the guest stores.
    const kvp = JSON.parse((await hyperts('get-vmkvp', 'demo', '--json')).stdout) as { guest: Record<string, string> };
    assert.equal(kvp.guest.OSName, vm.osName);
    assert.equal((await hyperts('set-vmkvp', 'demo', 'HypertsAcceptance', 'yes')).code, 0);
    assert.match((await hyperts('get-vmkvp', 'demo')).stdout, /Host +HypertsAcceptance +yes/);

    const stop = await hyperts('stop-vm', 'demo', '--timeout', '1800');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match((await hyperts('get-vm')).stdout, /^demo +Off +0 +0 +00:00:00 +Operating normally/m);
    const events = (await hyperts('get-vmevent', 'demo')).stdout;
    assert.match(events, /Running +Stopping +shut down requested through the Shutdown integration service/);
    assert.match(events, /Stopping +Off +shut down by the guest operating system/);
  });
