/**
 * The management plane against a real `hyperts serve --listen 127.0.0.1:0` over TCP, as a reviewer attacks it:
 * tokens in URLs, foreign Origins and Hosts, cross-site form posts, missing headers, reused tickets, leaked
 * tokens (output, command lines), unsafe listen addresses and file modes, and raw errors in 500s.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { socketPath, tokenPath } from '../../src/vmms/paths.js';
import { Tickets, TICKET_TTL_MS, SESSION_IDLE_MS } from '../../src/vmms/web-security.js';
import { startService, waitFor } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'hyperts');
const dirs: string[] = [];
const procs: ChildProcess[] = [];
const tmp = (p: string): string => { const d = mkdtempSync(join(tmpdir(), p)); dirs.push(d); return d; };
after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Served { proc: ChildProcess; url: string; port: number; stderr: () => string; dir: string }

async function serve(args: string[], dir = tmp('hyperts-sec-')): Promise<Served> {
  const proc = spawn(process.execPath, [bin, 'serve', '--data-dir', dir, '--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(proc);
  let err = '';
  proc.stderr!.on('data', (d) => { err += d; });
  const m = await waitFor('serve to listen', () => {
    if (proc.exitCode !== null) throw new Error(`serve exited ${proc.exitCode}: ${err}`);
    return /listening on (https?):\/\/127\.0\.0\.1:(\d+)\//.exec(err);
  });
  return { proc, url: `${m[1]}://127.0.0.1:${m[2]}`, port: Number(m[2]), stderr: () => err, dir };
}

/** Runs `serve` expecting it to refuse to start; returns its exit code and stderr. */
function serveFails(args: string[], dir: string): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [bin, 'serve', '--data-dir', dir, '--quiet', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stderr: r.stderr };
}

interface Res { status: number; headers: IncomingHttpHeaders; body: string }
function http(url: string, method: string, path: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<Res> {
  const u = new URL(path, url);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)({ hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: o.headers, rejectUnauthorized: false });
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Opens a WebSocket; resolves with 'open' or the HTTP status of the refusal. */
function wsOutcome(url: string, headers: Record<string, string> = {}): Promise<string | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => { ws.close(); resolve('open'); });
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.on('error', () => resolve('error'));
  });
}

let s: Served;
let token: string;
const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
const json = (): Record<string, string> => ({ ...auth(), 'content-type': 'application/json' });

before(async () => {
  s = await serve(['--listen', '127.0.0.1:0']);
  token = readFileSync(tokenPath(s.dir), 'utf8').trim();
});

test('REST: the token works only in the Authorization header, never as ?token=', async () => {
  assert.equal((await http(s.url, 'GET', '/api/v1/vms', { headers: auth() })).status, 200);
  const r = await http(s.url, 'GET', `/api/v1/vms?token=${encodeURIComponent(token)}`);
  assert.equal(r.status, 401);
  assert.match(r.body, /token in the URL is not accepted/);
  assert.equal((await http(s.url, 'POST', `/api/v1/vms?token=${encodeURIComponent(token)}`, { headers: { 'content-type': 'application/json' }, body: '{"name":"viaurl"}' })).status, 401);
  assert.equal((await http(s.url, 'GET', '/api/v1/vms/viaurl', { headers: auth() })).status, 404, 'nothing was created');
});

test('Host allowlist: a rebinding name is refused on REST, static files and WebSockets', async () => {
  const r = await http(s.url, 'GET', '/api/v1/vms', { headers: { ...auth(), host: `evil.example:${s.port}` } });
  assert.equal(r.status, 421);
  assert.match(r.body, /does not answer to host 'evil\.example/);
  assert.equal((await http(s.url, 'GET', '/', { headers: { host: 'evil.example' } })).status, 421);
  assert.equal(await wsOutcome(`ws://127.0.0.1:${s.port}/api/v1/live`, { ...auth(), host: 'evil.example' }), 421);
  for (const h of [`127.0.0.1:${s.port}`, `localhost:${s.port}`]) assert.equal((await http(s.url, 'GET', '/api/v1/vms', { headers: { ...auth(), host: h } })).status, 200, h);
});

test('Origin: a WebSocket or a state-changing request from a foreign origin is refused', async () => {
  const live = `ws://127.0.0.1:${s.port}/api/v1/live`;
  assert.equal(await wsOutcome(live, { ...auth(), origin: 'http://evil.example' }), 403, 'foreign Origin even with the token');
  assert.equal(await wsOutcome(live, { ...auth(), origin: `http://127.0.0.1:${s.port}` }), 'open', 'own origin');
  assert.equal(await wsOutcome(live, {}), 401, 'no credential');
  const r = await http(s.url, 'POST', '/api/v1/vms', { headers: { ...json(), origin: 'http://evil.example' }, body: '{"name":"crosssite"}' });
  assert.equal(r.status, 403);
  assert.equal((await http(s.url, 'GET', '/api/v1/vms/crosssite', { headers: auth() })).status, 404);
});

test('JSON only: text/plain and form posts get 415 and change nothing, token or not', async () => {
  const cases: Record<string, string>[] = [
    { 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'multipart/form-data; boundary=x' }, {},
  ];
  for (const h of cases) {
    for (const withToken of [true, false]) {
      const r = await http(s.url, 'POST', '/api/v1/vms', { headers: { ...h, ...(withToken ? auth() : {}), origin: 'http://evil.example' }, body: '{"name":"plainvm"}' });
      assert.equal(r.status, 415, `cross-site ${JSON.stringify(h)}`);
      const r2 = await http(s.url, 'POST', '/api/v1/vms', { headers: { ...h, ...(withToken ? auth() : {}) }, body: '{"name":"plainvm"}' });
      assert.equal(r2.status, 415, `same-site ${JSON.stringify(h)}`);
    }
  }
  assert.equal((await http(s.url, 'GET', '/api/v1/vms/plainvm', { headers: auth() })).status, 404, 'nothing was created');
  assert.equal((await http(s.url, 'POST', '/api/v1/vms', { headers: { ...json(), 'content-type': 'application/json; charset=utf-8' }, body: '{"name":"jsonvm"}' })).status, 201);
});

test('security headers on the console page and the API; API responses are not stored', async () => {
  for (const path of ['/', '/app.js', '/api/v1/vms']) {
    const r = await http(s.url, 'GET', path, { headers: auth() });
    assert.equal(r.status, 200, path);
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, `${path}: no inline or eval script`);
    assert.doesNotMatch(csp, /script-src[^;]*unsafe/, path);
    assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
    assert.equal(r.headers['referrer-policy'], 'no-referrer', path);
    assert.equal(r.headers['x-frame-options'], 'DENY', path);
  }
  assert.equal((await http(s.url, 'GET', '/api/v1/vms', { headers: auth() })).headers['cache-control'], 'no-store');
  assert.equal((await http(s.url, 'GET', '/api/v1/vms')).headers['cache-control'], 'no-store', 'errors too');
  const page = (await http(s.url, 'GET', '/')).body;
  assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)[^>]*>/, 'index.html has no inline script');
});

test('tickets: issued over the authenticated API, one WebSocket each, for one path only', async () => {
  const issue = async (body: unknown): Promise<Res> => http(s.url, 'POST', '/api/v1/tickets', { headers: json(), body: JSON.stringify(body) });
  assert.equal((await http(s.url, 'POST', '/api/v1/tickets', { headers: { 'content-type': 'application/json' }, body: '{"path":"/live"}' })).status, 401, 'no ticket without the token');
  const t = JSON.parse((await issue({ path: '/live' })).body) as { ticket: string; expiresInSeconds: number };
  assert.equal(t.expiresInSeconds, TICKET_TTL_MS / 1000);
  const live = `ws://127.0.0.1:${s.port}/api/v1/live?ticket=`;
  assert.equal(await wsOutcome(live + t.ticket), 'open');
  assert.equal(await wsOutcome(live + t.ticket), 401, 'used once');
  const other = JSON.parse((await issue({ path: '/vms/jsonvm/console' })).body) as { ticket: string };
  assert.equal(await wsOutcome(live + other.ticket), 401, 'a console ticket does not open /live');
  assert.equal(await wsOutcome(`ws://127.0.0.1:${s.port}/api/v1/live?token=${token}`), 401, 'the token is not taken from the URL');
  assert.equal((await issue({ path: '/etc/passwd' })).status, 400);
  // A ticket is not a REST credential either.
  const t2 = JSON.parse((await issue({ path: '/live' })).body) as { ticket: string };
  assert.equal((await http(s.url, 'GET', '/api/v1/vms', { headers: { authorization: `Bearer ${t2.ticket}` } })).status, 401);
});

test('browser sessions: from the token or a single-use login ticket; a session is a REST credential, a ticket is not', async () => {
  const login = JSON.parse((await http(s.url, 'POST', '/api/v1/tickets', { headers: json(), body: '{"purpose":"login"}' })).body) as { ticket: string };
  const body = JSON.stringify({ ticket: login.ticket });
  const first = await http(s.url, 'POST', '/api/v1/sessions', { headers: { 'content-type': 'application/json' }, body });
  assert.equal(first.status, 201);
  assert.equal((await http(s.url, 'POST', '/api/v1/sessions', { headers: { 'content-type': 'application/json' }, body })).status, 401, 'login tickets work once');
  const { session } = JSON.parse(first.body) as { session: string };
  assert.equal((await http(s.url, 'GET', '/api/v1/vms', { headers: { authorization: `Bearer ${session}` } })).status, 200);
  assert.equal((await http(s.url, 'POST', '/api/v1/sessions', { headers: { authorization: 'Bearer wrong' } })).status, 401);
});

test('tickets and sessions expire (clock injected: no waiting)', () => {
  let now = 1_000_000;
  const t = new Tickets(() => now);
  const a = t.issue({ kind: 'websocket', path: '/live' });
  now += TICKET_TTL_MS + 1;
  assert.equal(t.redeem(a.ticket, { kind: 'websocket', path: '/live' }), false, 'expired');
  const b = t.issue({ kind: 'websocket', path: '/live' });
  now += TICKET_TTL_MS - 1;
  assert.equal(t.redeem(b.ticket, { kind: 'websocket', path: '/live' }), true, 'just in time');
  const { session } = t.newSession();
  now += SESSION_IDLE_MS - 1;
  assert.equal(t.session(session), true);
  now += SESSION_IDLE_MS + 1;
  assert.equal(t.session(session), false, 'idle too long');
});

test('the token is never printed and is in no process command line', async () => {
  assert.ok(!s.stderr().includes(token), 'serve output has no token');
  assert.match(s.stderr(), /sign in with the API token in .*api-token, which starts/);
  assert.doesNotMatch(s.stderr(), /token=/);
  // The CLI reads it from a file; a --token option no longer exists.
  const cli = spawnSync(process.execPath, [bin, 'get-vm', '--url', s.url, '--token', token], { encoding: 'utf8' });
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /unknown option --token/);
  const ok = spawnSync(process.execPath, [bin, 'get-vm', '--url', s.url, '--token-file', tokenPath(s.dir)], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^Name +State/);
  // The one-time console link carries a login ticket in the fragment, not the token.
  const link = spawnSync(process.execPath, [bin, 'console-url', '--url', s.url, '--data-dir', s.dir], { encoding: 'utf8' });
  assert.equal(link.status, 0, link.stderr);
  const m = /^http:\/\/127\.0\.0\.1:\d+\/#ticket=([\w-]+)\n$/.exec(link.stdout);
  assert.ok(m && !link.stdout.includes(token), link.stdout);
  assert.equal((await http(s.url, 'POST', '/api/v1/sessions', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticket: m[1] }) })).status, 201);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    assert.ok(!cmd.includes(token) || Number(pid) === ok.pid, `process ${pid} has the token on its command line: ${cmd.replace(/\0/g, ' ')}`);
  }
});

test('a 500 answers a generic message with an id; the details go to the service log', async () => {
  const logs: string[] = [];
  const f = await startService(undefined, { token: 't' });
  const { ApiServer } = await import('../../src/vmms/api.js');
  const api = new ApiServer(f.service, { token: 't', log: (m) => logs.push(m) });
  f.service.list = () => { throw new Error('ENOENT /secret/internal/path'); };
  const a = await api.listenTcp('127.0.0.1', 0);
  try {
    const r = await http(`http://127.0.0.1:${a.port}`, 'GET', '/api/v1/vms', { headers: { authorization: 'Bearer t' } });
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body, /secret|ENOENT/);
    const id = /internal error \(id ([0-9a-f]+)\)/.exec(r.body)?.[1];
    assert.ok(id, r.body);
    assert.ok(logs.some((l) => l.includes(id) && l.includes('/secret/internal/path')), logs.join('\n'));
  } finally { await api.close(); await f.close(); }
});

test('unix socket: created with mode 0600 (no chmod afterwards), the process umask restored', async () => {
  const before = process.umask();
  const f = await startService();
  try {
    assert.equal(statSync(socketPath(f.dir)).mode & 0o777, 0o600);
    assert.equal(process.umask(), before);
  } finally { await f.close(); }
});

test('beyond loopback: plain HTTP is refused unless forced; TLS serves HTTPS', async () => {
  const dir = tmp('hyperts-sec-tls-');
  const r = serveFails(['--listen', '0.0.0.0:0'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /plain HTTP to the network.*--tls-cert FILE --tls-key FILE.*--insecure-http/);
  const key = join(dir, 'key.pem'); const cert = join(dir, 'cert.pem');
  const g = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  const t = await serve(['--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key], dir);
  const tok = readFileSync(tokenPath(dir), 'utf8').trim();
  assert.ok(t.url.startsWith('https://'));
  const res = await http(t.url, 'GET', '/api/v1/vms', { headers: { authorization: `Bearer ${tok}` } });
  assert.equal(res.status, 200);
  assert.match(String(res.headers['strict-transport-security']), /max-age=/);
  t.proc.kill('SIGTERM');
  await waitFor('serve to stop', () => t.proc.exitCode !== null);
});

test('data directory and token file: group/world-writable or readable by others is refused with the fix', async () => {
  const dir = tmp('hyperts-sec-perm-');
  chmodSync(dir, 0o777);
  let r = serveFails([], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /writable by every user \(mode 777\): chmod 700/);
  chmodSync(dir, 0o700);
  mkdirSync(dir, { recursive: true });
  writeFileSync(tokenPath(dir), 'leaked-token\n', { mode: 0o644 });
  chmodSync(tokenPath(dir), 0o644);
  r = serveFails(['--listen', '127.0.0.1:0'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /token file .* readable or writable by other users \(mode 644\): chmod 600/);
  if (process.getuid?.() === 0) {
    chmodSync(tokenPath(dir), 0o600);
    spawnSync('chown', ['65534', dir]);
    r = serveFails([], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /belongs to uid 65534.*chown/);
  }
});
