/** Shared fixtures of the service tests: a data directory, the test kernel, a service with its API on a socket. */
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { VmmsService } from '../../src/vmms/service.js';
import { ApiServer } from '../../src/vmms/api.js';
import { ApiError, VmmsClient } from '../../src/vmms/client.js';
import { socketPath } from '../../src/vmms/paths.js';
import { buildTestKernel } from './test-kernel.js';

let kernelDir: string | null = null;
/** The assembled test kernel (built once per test process). */
export function testKernel(): string {
  kernelDir ??= mkdtempSync(join(tmpdir(), 'hyperts-kernel-'));
  return buildTestKernel(kernelDir);
}
process.on('exit', () => { if (kernelDir) rmSync(kernelDir, { recursive: true, force: true }); });

/**
 * Boot roots for tests: their kernels are assembled under the temporary folder and the substitute workers (given
 * as kernels) lie in dist/test. A real service allows only its path roots and the guest image cache.
 */
export const testBootRoots = (): string[] => [tmpdir(), fileURLToPath(new URL('..', import.meta.url))];

export interface Fixture { dir: string; service: VmmsService; api: ApiServer; client: VmmsClient; close: () => Promise<void> }

export async function startService(dir = mkdtempSync(join(tmpdir(), 'hyperts-vmms-')), o: { token?: string; isolation?: 'auto' | 'off'; pathRoots?: string[] } = {}): Promise<Fixture> {
  const service = new VmmsService({ dataDir: dir, turnOffGraceMs: 3000, isolation: o.isolation, pathRoots: o.pathRoots, bootRoots: testBootRoots() });
  const api = new ApiServer(service, { token: o.token });
  await api.listenUnix(socketPath(dir));
  const client = new VmmsClient({ socketPath: socketPath(dir) });
  return {
    dir, service, api, client,
    close: async () => { await api.close(); await service.close(); },
  };
}

/** Settings of a VM that boots the test kernel on the emulated processor. */
export function testVm(name: string): Record<string, unknown> {
  return { name, kernel: testKernel(), memory: '64M', processor: 'emulated' };
}

/** Polls until `fn` returns a truthy value (an upper bound against hangs, not a timing assertion). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, limitMs = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A console WebSocket that accumulates everything the guest printed. */
export async function openConsole(client: VmmsClient, name: string): Promise<{ ws: WebSocket; text: () => string; send: (s: string) => void }> {
  const ws = client.webSocket(`/vms/${encodeURIComponent(name)}/console`);
  let buf = '';
  ws.on('message', (d: Buffer) => { buf += d.toString('latin1'); });
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  return { ws, text: () => buf, send: (s) => ws.send(Buffer.from(s)) };
}

/** Asserts that `p` fails with an API error of `status` whose message matches `re`; returns the error. */
export async function rejects(p: Promise<unknown>, status: number, re: RegExp): Promise<ApiError> {
  try { await p; } catch (e) {
    assert.ok(e instanceof ApiError, `expected an API error, got ${e}`);
    assert.equal(e.status, status, e.message);
    assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

/** Whether process `pid` still exists. */
export const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
