/**
 * The management service through its REST API and WebSockets, with VMs that boot the assembled test kernel
 * (never Linux): lifecycle, console, guest power-off, worker crash, bad input, tokens, live state.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { execFileSync } from 'node:child_process';
import { copyFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmmsClient } from '../../src/vmms/client.js';
import type { VmView } from '../../src/vmms/service.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { haveBinutils } from './test-kernel.js';
import { TEST_KERNEL_BANNER } from './test-kernel.js';
import { openConsole, rejects, startService, testKernel, testVm, waitFor, type Fixture } from './helpers.js';

const skip = !haveBinutils() && 'binutils (as, ld) not installed';
let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

const get = (name: string): Promise<VmView> => f.client.call<VmView>('GET', `/vms/${name}`);
const post = (name: string, action: string, body: unknown = {}): Promise<VmView> => f.client.call<VmView>('POST', `/vms/${name}/${action}`, body);

test('lifecycle: create, start, console echo, pause, resume, reset, failed graceful stop, turn off', { skip }, async () => {
  const created = await f.client.call<VmView>('POST', '/vms', testVm('life'));
  assert.equal(created.state, 'Off');
  assert.equal(created.memoryAssignedBytes, 0);
  assert.equal(created.config.memoryBytes, 64 * 1048576);

  const con = await openConsole(f.client, 'life');
  const started = await post('life', 'start');
  assert.equal(started.state, 'Running');
  assert.equal(started.memoryAssignedBytes, 64 * 1048576);
  assert.equal(started.backend, 'emulated');
  assert.ok(started.workerPid && started.workerPid !== process.pid, 'the VM runs in its own process');
  await waitFor('banner', () => con.text().includes(TEST_KERNEL_BANNER));
  con.send('ping-123');
  await waitFor('echo', () => con.text().includes('ping-123'));

  assert.equal((await post('life', 'suspend')).state, 'Paused');
  await rejects(post('life', 'start'), 409, /Paused.*resume-vm life/);
  assert.equal((await post('life', 'resume')).state, 'Running');

  const before = con.text().split(TEST_KERNEL_BANNER).length;
  assert.equal((await post('life', 'restart')).state, 'Running');
  await waitFor('banner after reset', () => con.text().split(TEST_KERNEL_BANNER).length > before);

  // The test kernel has no VMBus driver, so the Shutdown service cannot answer: clear error, nothing changes.
  await rejects(post('life', 'stop'), 409, /Shutdown integration service.*--turn-off/s);
  assert.equal((await get('life')).state, 'Running');

  const ics = await f.client.call<{ name: string; enabled: boolean; status: string }[]>('GET', '/vms/life/integration-services');
  assert.deepEqual(ics.map((i) => i.name), ['Heartbeat', 'Shutdown', 'Time Synchronization', 'Key-Value Pair Exchange', 'VSS']);
  assert.ok(ics.every((i) => i.enabled && i.status === 'No Contact'));
  await rejects(f.client.call('GET', '/vms/life/kvp'), 409, /no Key-Value Pair Exchange|KVP|key-value/i);

  const off = await post('life', 'stop', { turnOff: true });
  assert.equal(off.state, 'Off');
  assert.equal(off.memoryAssignedBytes, 0);
  assert.equal(off.workerPid, null);
  con.ws.close();

  const ev = await f.client.call<VmEvent[]>('GET', '/vms/life/events');
  const path = ev.filter((e) => e.to).map((e) => `${e.from ?? ''}>${e.to}`);
  assert.deepEqual(path, [
    '>Off', 'Off>Starting', 'Starting>Running', 'Running>Pausing', 'Pausing>Paused', 'Paused>Resuming', 'Resuming>Running',
    'Running>Reset', 'Reset>Running', 'Running>Stopping', 'Stopping>Running', 'Running>Stopping', 'Stopping>Off',
  ]);
  assert.match(ev.at(-1)!.message, /turned off by the user/);
  await f.client.call('DELETE', '/vms/life');
  await rejects(get('life'), 404, /no virtual machine named 'life'/);
});

test('integration services: disabled in the configuration, shown and kept', { skip }, async () => {
  await f.client.call('POST', '/vms', { ...testVm('icvm'), integrationServices: { VSS: false } });
  let list = await f.client.call<{ name: string; enabled: boolean }[]>('PUT', '/vms/icvm/integration-services/kvp', { enabled: false });
  assert.deepEqual(list.filter((i) => !i.enabled).map((i) => i.name), ['Key-Value Pair Exchange', 'VSS']);
  await post('icvm', 'start');
  list = await f.client.call('GET', '/vms/icvm/integration-services');
  assert.deepEqual(list.map((i) => [i.name, i.enabled]), [['Heartbeat', true], ['Shutdown', true], ['Time Synchronization', true], ['Key-Value Pair Exchange', false], ['VSS', false]]);
  // Live toggle reaches the worker's VMBus.
  list = await f.client.call('PUT', '/vms/icvm/integration-services/VSS', { enabled: true });
  assert.equal(list.find((i) => i.name === 'VSS')!.enabled, true);
  await rejects(f.client.call('PUT', '/vms/icvm/integration-services/Bogus', { enabled: true }), 400, /unknown integration service 'Bogus'/);
  await rejects(f.client.call('PATCH', '/vms/icvm', { memory: '128M' }), 409, /Running: memory can be changed only while it is Off/);
  await post('icvm', 'stop', { turnOff: true });
  assert.equal((await get('icvm')).config.integrationServices.VSS, true);
  await f.client.call('DELETE', '/vms/icvm');
});

test('the guest powering itself off marks the VM Off with its reason', { skip }, async () => {
  await f.client.call('POST', '/vms', testVm('selfoff'));
  const con = await openConsole(f.client, 'selfoff');
  await post('selfoff', 'start');
  await waitFor('banner', () => con.text().includes(TEST_KERNEL_BANNER));
  con.send('\x11');
  await waitFor('Off', async () => (await get('selfoff')).state === 'Off');
  const ev = await f.client.call<VmEvent[]>('GET', '/vms/selfoff/events');
  assert.match(ev.at(-1)!.message, /isa-debug-exit/);
  assert.equal((await get('selfoff')).status, 'Operating normally');
  con.ws.close();
  await f.client.call('DELETE', '/vms/selfoff');
});

test('killing a worker marks its VM Off with the reason; the service and the other VMs carry on', { skip }, async () => {
  await f.client.call('POST', '/vms', testVm('victim'));
  await f.client.call('POST', '/vms', testVm('bystander'));
  const v = await post('victim', 'start');
  await post('bystander', 'start');
  const con = await openConsole(f.client, 'bystander');
  process.kill(v.workerPid!, 'SIGKILL');
  await waitFor('victim Off', async () => (await get('victim')).state === 'Off');
  const victim = await get('victim');
  assert.match(victim.status, /^Error: worker process \d+ ended unexpectedly \(signal SIGKILL\)/);
  const ev = await f.client.call<VmEvent[]>('GET', '/vms/victim/events');
  assert.equal(ev.at(-1)!.to, 'Off');
  assert.match(ev.at(-1)!.message, /ended unexpectedly \(signal SIGKILL\)/);
  assert.equal((await get('bystander')).state, 'Running');
  con.send('still-alive');
  await waitFor('bystander echo', () => con.text().includes('still-alive'));
  // The crashed VM starts again, and a clean start clears the error status.
  assert.equal((await post('victim', 'start')).status, 'Operating normally');
  await post('victim', 'stop', { turnOff: true });
  await post('bystander', 'stop', { turnOff: true });
  con.ws.close();
  await f.client.call('DELETE', '/vms/victim');
  await f.client.call('DELETE', '/vms/bystander');
});

test('bad input gets a clear error and changes nothing', { skip }, async () => {
  const before = await f.client.call<VmView[]>('GET', '/vms');
  const evBefore = (await f.client.call<VmEvent[]>('GET', '/events?limit=1'))[0].seq;
  await rejects(get('nosuch'), 404, /no virtual machine named 'nosuch'.*get-vm/);
  await rejects(post('nosuch', 'start'), 404, /nosuch/);
  await rejects(post('nosuch', 'stop', { turnOff: true }), 404, /nosuch/);
  await rejects(f.client.call('DELETE', '/vms/nosuch'), 404, /nosuch/);
  await rejects(f.client.call('POST', '/vms', { ...testVm('bad'), memory: '12Q' }), 400, /invalid memory size '12Q'/);
  await rejects(f.client.call('POST', '/vms', { ...testVm('bad'), memory: '16M' }), 400, /too small: a VM needs at least 64M/);
  await rejects(f.client.call('POST', '/vms', { ...testVm('bad'), processor: 'quantum' }), 400, /processor must be auto, kvm or emulated/);
  await rejects(f.client.call('POST', '/vms', { ...testVm('bad'), colour: 'blue' }), 400, /unknown VM setting 'colour'/);
  await rejects(f.client.call('POST', '/vms', { name: 'bad name!' }), 400, /invalid VM name/);
  await rejects(f.client.call('POST', '/vms', [1, 2]), 400, /JSON object/);
  await rejects(f.client.call('POST', '/vms', { ...testVm('bad'), cpus: 0 }), 400, /cpus must be a positive integer/);
  await rejects(f.client.call('GET', '/nowhere'), 404, /no API endpoint/);
  await rejects(f.client.call('PUT', '/vms'), 405, /not allowed/);
  // Raw malformed JSON.
  const raw = await new Promise<{ status: number; body: { error: { code: string; message: string } } }>((resolve, reject) => {
    const req = request({ socketPath: f.client.target.socketPath, path: '/api/v1/vms', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let t = '';
      res.on('data', (c) => { t += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(t) }));
    });
    req.on('error', reject);
    req.end('{"name": "half');
  });
  assert.equal(raw.status, 400);
  assert.equal(raw.body.error.code, 'MalformedBody');
  assert.match(raw.body.error.message, /not valid JSON/);
  // Duplicate name (case-insensitive, as in Hyper-V's inventory).
  await f.client.call('POST', '/vms', testVm('dup'));
  await rejects(f.client.call('POST', '/vms', testVm('DUP')), 409, /named 'DUP' already exists/);
  await rejects(f.client.call('PATCH', '/vms/dup', { memory: 'lots' }), 400, /invalid memory size 'lots'/);
  assert.equal((await get('dup')).config.memoryBytes, 64 * 1048576);
  await rejects(f.client.call('PATCH', '/vms/dup', { kernel: '/nonexistent/vmlinuz' }), 400, /kernel '\/nonexistent\/vmlinuz' does not exist or cannot be resolved/);
  // A kernel that vanished: the VM stays Off.
  const vanishing = join(f.dir, 'vmlinuz-vanishing');
  writeFileSync(vanishing, 'kernel');
  await f.client.call('PATCH', '/vms/dup', { kernel: vanishing });
  rmSync(vanishing);
  await rejects(post('dup', 'start'), 409, /cannot start VM 'dup': kernel '.*vmlinuz-vanishing' does not exist or cannot be resolved .*\(set-vm dup --kernel FILE\)/);
  assert.equal((await get('dup')).state, 'Off');
  await f.client.call('DELETE', '/vms/dup');
  assert.deepEqual((await f.client.call<VmView[]>('GET', '/vms')).map((v) => v.name), before.map((v) => v.name));
  // Only the dup VM's own events were logged: no failed request left a transition behind.
  const newer = await f.client.call<VmEvent[]>('GET', `/events?after=${evBefore}`);
  assert.ok(newer.every((e) => e.vmName === 'dup'), JSON.stringify(newer));
  assert.deepEqual(newer.filter((e) => e.to).map((e) => e.to), ['Off']);
});

test('kernel and initrd paths are confined to the boot roots: no .., no link or /proc file out of them, regular files only, checked again at start', async () => {
  const g = await startService();
  try {
    // Roots of this service: the test folders (testBootRoots); /etc and /proc lie outside.
    const vm = (settings: Record<string, unknown>): Promise<unknown> => g.client.call('POST', '/vms', { name: 'boot', memory: '64M', ...settings });
    await rejects(vm({ kernel: '/etc/passwd' }), 400, /kernel '\/etc\/passwd' is outside the folders this host allows; allowed folders: /);
    await rejects(vm({ kernel: `${g.dir}/../../etc/passwd` }), 400, /is outside the folders this host allows/);
    await rejects(vm({ kernel: '/proc/self/environ' }), 400, /is outside the folders this host allows/);
    const out = join(g.dir, 'out-link');
    symlinkSync('/etc/shadow', out);
    await rejects(vm({ kernel: out }), 400, /is outside the folders this host allows/);
    const fifo = join(g.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await rejects(vm({ kernel: testKernel(), initrd: fifo }), 400, /initrd '.*fifo' is not a regular file/);
    await rejects(vm({ kernel: g.dir }), 400, /is not a regular file/);
    // A good kernel through a link inside the roots: its real path is kept.
    const k = join(g.dir, 'kernel-copy');
    copyFileSync(testKernel(), k);
    symlinkSync(k, join(g.dir, 'k-link'));
    assert.equal((await vm({ kernel: join(g.dir, 'k-link') }) as VmView).config.boot.kernel, realpathSync(k));
    // Swapped for a link out of the roots after it was set: refused at start.
    rmSync(k);
    symlinkSync('/etc/passwd', k);
    await rejects(g.client.call('POST', '/vms/boot/start', {}), 409, /cannot start VM 'boot': kernel '.*kernel-copy' is outside the folders this host allows.*\(set-vm boot --kernel FILE\)/);
    assert.equal((await g.client.call<VmView>('GET', '/vms/boot')).state, 'Off');
  } finally { await g.close(); rmSync(g.dir, { recursive: true, force: true }); }
});

test('a running VM cannot be removed; stop of an Off VM says it is off', { skip }, async () => {
  await f.client.call('POST', '/vms', testVm('busy'));
  await post('busy', 'start');
  await rejects(f.client.call('DELETE', '/vms/busy'), 409, /Running: turn it off before removing it \(stop-vm busy --turn-off\)/);
  await post('busy', 'stop', { turnOff: true });
  await rejects(post('busy', 'stop'), 409, /already off/);
  await f.client.call('DELETE', '/vms/busy');
});

test('TCP needs the token: wrong or missing tokens are rejected and change nothing', async () => {
  const t = await startService(undefined, { token: 'right-token' });
  try {
    const a = await t.api.listenTcp('127.0.0.1', 0);
    const url = `http://127.0.0.1:${a.port}`;
    for (const token of [undefined, 'wrong-token', 'right-token-but-longer']) {
      const c = new VmmsClient({ url, token });
      await rejects(c.call('POST', '/vms', { name: 'sneaky' }), 401, /missing or wrong API token/);
      await rejects(c.call('GET', '/vms'), 401, /token/);
    }
    const good = new VmmsClient({ url, token: 'right-token' });
    assert.deepEqual(await good.call('GET', '/vms'), []);
    // WebSockets too.
    const status = await new Promise<number>((resolve) => {
      const ws = new VmmsClient({ url, token: 'wrong' }).webSocket('/live');
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => {});
    });
    assert.equal(status, 401);
    // The web console's files carry no secrets and load without it.
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Hyper-V Manager/);
    assert.equal((await fetch(`${url}/vendor/xterm/lib/xterm.mjs`)).status, 200);
    assert.equal((await fetch(`${url}/..%2f..%2fpackage.json`)).status, 404);
  } finally { await t.close(); }
  // Without a token no TCP listener can be opened at all.
  const u = await startService();
  try { await assert.rejects(u.api.listenTcp('127.0.0.1', 0), /needs an API token/); } finally { await u.close(); }
});

test('OpenAPI document describes every route the API serves', async () => {
  const doc = await f.client.call<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json');
  assert.match(doc.openapi, /^3\./);
  const want: [string, string][] = [
    ['/vms', 'get'], ['/vms', 'post'], ['/vms/{name}', 'get'], ['/vms/{name}', 'patch'], ['/vms/{name}', 'delete'],
    ['/vms/{name}/start', 'post'], ['/vms/{name}/stop', 'post'], ['/vms/{name}/suspend', 'post'], ['/vms/{name}/resume', 'post'],
    ['/vms/{name}/restart', 'post'], ['/vms/{name}/integration-services', 'get'], ['/vms/{name}/integration-services/{service}', 'put'],
    ['/vms/{name}/kvp', 'get'], ['/vms/{name}/kvp/{key}', 'put'], ['/vms/{name}/kvp/{key}', 'delete'], ['/host', 'get'], ['/events', 'get'],
  ];
  for (const [p, m] of want) assert.ok(doc.paths[p]?.[m], `${m.toUpperCase()} ${p} documented`);
});

test('live WebSocket: the VM list on connect, then events and updated lists', async () => {
  const ws = f.client.webSocket('/live');
  const msgs: { type: string; vms?: VmView[]; event?: VmEvent }[] = [];
  ws.on('message', (d: Buffer) => msgs.push(JSON.parse(d.toString())));
  await new Promise<void>((r, j) => { ws.once('open', () => r()); ws.once('error', j); });
  await waitFor('initial list', () => msgs.some((m) => m.type === 'vms'));
  await f.client.call('POST', '/vms', { name: 'livevm' });
  await waitFor('event', () => msgs.some((m) => m.type === 'event' && m.event!.vmName === 'livevm' && m.event!.to === 'Off'));
  await waitFor('list with livevm', () => msgs.some((m) => m.type === 'vms' && m.vms!.some((v) => v.name === 'livevm')));
  await f.client.call('DELETE', '/vms/livevm');
  await waitFor('list without livevm', () => { const l = msgs.filter((m) => m.type === 'vms').at(-1); return l && !l.vms!.some((v) => v.name === 'livevm'); });
  ws.close();
});

test('host: check report plus capacity', async () => {
  const h = await f.client.call<{ logicalProcessorCount: number; memoryCapacityBytes: number; check: { items: unknown[]; backends: { emulated: { usable: boolean } } } }>('GET', '/host');
  assert.ok(h.logicalProcessorCount >= 1);
  assert.ok(h.memoryCapacityBytes > 0);
  assert.ok(h.check.items.length > 0);
  assert.equal(typeof h.check.backends.emulated.usable, 'boolean');
});
