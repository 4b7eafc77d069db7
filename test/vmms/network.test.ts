/**
 * Virtual switches and network adapters in the management service: New-/Get-/Remove-VMSwitch, adapters
 * added to a VM, connected and disconnected while it runs (the adapter's link follows), bad input, and the
 * Private-switch relay carrying frames between two VMs' networks.
 */
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { haveBinutils } from './test-kernel.js';
import { rejects, startService, testVm, waitFor, type Fixture, testBootRoots } from './helpers.js';
import type { AdapterView, SwitchView, VmView } from '../../src/vmms/service.js';
import { VmmsService } from '../../src/vmms/service.js';
import { PrivateRelay } from '../../src/vmms/network.js';
import { assembleNetwork } from '../../src/platform/assemble-network.js';
import { FakeLinuxGuest } from '../vmbus/fake-guest.js';
import { FakeNetvsc, NIC_CLASS, ethernet } from '../vsp/netvsp/fake-netvsc.js';

const skip = !haveBinutils() && 'binutils (as, ld) not installed';
let f: Fixture;
before(async () => { f = await startService(); });
after(async () => { await f?.close(); });

test('switches: Default Switch exists; new NAT and Private switches; bad input; persisted across a restart', async () => {
  const list = await f.client.call<SwitchView[]>('GET', '/switches');
  assert.deepEqual(list.map((s) => [s.name, s.type]), [['Default Switch', 'NAT']]);
  const lab = await f.client.call<SwitchView>('POST', '/switches', { name: 'lab', switchType: 'Private' });
  assert.equal(lab.type, 'Private');
  const nat = await f.client.call<SwitchView>('POST', '/switches', { name: 'web', switchType: 'NAT', natForwards: ['18080:80'] });
  assert.deepEqual(nat.forwards, [{ protocol: 'tcp', hostPort: 18080, guestPort: 80 }]);
  await rejects(f.client.call('POST', '/switches', { name: 'lab', switchType: 'Private' }), 409, /already exists/);
  await rejects(f.client.call('POST', '/switches', { name: 'x', switchType: 'External' }), 400, /give netAdapterName/);
  await rejects(f.client.call('POST', '/switches', { name: 'x', switchType: 'Bridge' }), 400, /NAT, Private, Internal or External/);
  await rejects(f.client.call('POST', '/switches', { name: 'x', switchType: 'Internal', netAdapterName: 'eth0' }), 400, /External switches only/);
  await rejects(f.client.call('POST', '/switches', { name: 'x', switchType: 'External', netAdapterName: 'no-such-if0' }), process.getuid?.() === 0 ? 400 : 403, process.getuid?.() === 0 ? /no network interface 'no-such-if0'/ : /needs root/);
  // Without root the refusal says what to do (the uid is faked here when the test runs as root).
  const getuid = process.getuid;
  process.getuid = () => 1000;
  try {
    await rejects(f.client.call('POST', '/switches', { name: 'x', switchType: 'Internal' }), 403, /needs root.*sudo hyperts serve.*NAT or Private switch/);
  } finally { process.getuid = getuid; }
  await rejects(f.client.call('POST', '/switches', { name: 'y', switchType: 'NAT', natForwards: ['80'] }), 400, /HOSTPORT:GUESTPORT/);
  await rejects(f.client.call('POST', '/switches', { name: 'z', switchType: 'Private', natForwards: ['1:2'] }), 400, /NAT switches only/);
  await rejects(f.client.call('DELETE', '/switches/Default%20Switch'), 409, /cannot be removed/);
  await rejects(f.client.call('GET', '/switches/nope'), 404, /new-vmswitch/);
  // A second service on the same data directory sees the same switches.
  const again = new VmmsService({ dataDir: f.dir, bootRoots: testBootRoots() });
  try {
    assert.deepEqual(again.listSwitches().map((s) => s.name).sort(), ['Default Switch', 'lab', 'web']);
  } finally { await again.close(); }
  await f.client.call('DELETE', '/switches/web');
  assert.ok(!(await f.client.call<SwitchView[]>('GET', '/switches')).some((s) => s.name === 'web'));
});

test('adapters: added while Off with a Hyper-V MAC or a static one; bad input is refused with a fix', async () => {
  await f.client.call('POST', '/vms', { name: 'nics', memory: '64M' });
  const a = await f.client.call<AdapterView>('POST', '/vms/nics/network-adapters', { switchName: 'Default Switch' });
  assert.equal(a.name, 'Network Adapter');
  assert.match(a.macAddress, /^00:15:5d:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
  assert.equal(a.switchName, 'Default Switch');
  const b = await f.client.call<AdapterView>('POST', '/vms/nics/network-adapters', { name: 'second', staticMacAddress: '00-15-5D-AA-BB-CC' });
  assert.equal(b.macAddress, '00:15:5d:aa:bb:cc');
  assert.equal(b.switchName, null);
  await rejects(f.client.call('POST', '/vms/nics/network-adapters', { name: 'second' }), 409, /already has a network adapter/);
  await rejects(f.client.call('POST', '/vms/nics/network-adapters', { name: 'third', staticMacAddress: '01:00:5e:00:00:01' }), 400, /multicast/);
  await rejects(f.client.call('POST', '/vms/nics/network-adapters', { name: 'third', switchName: 'nope' }), 404, /no virtual switch/);
  await rejects(f.client.call('POST', '/vms/nics/network-adapters', { bogus: 1 }), 400, /unknown adapter setting/);
  const listed = await f.client.call<AdapterView[]>('GET', '/vms/nics/network-adapters');
  assert.deepEqual(listed.map((x) => [x.name, x.switchName, x.status]), [['Network Adapter', 'Default Switch', null], ['second', null, null]]);
  const sw = await f.client.call<SwitchView>('GET', '/switches/Default%20Switch');
  assert.deepEqual(sw.adapters, [{ vmName: 'nics', adapter: 'Network Adapter' }]);
  await f.client.call('DELETE', '/vms/nics/network-adapters/second');
  assert.equal((await f.client.call<VmView>('GET', '/vms/nics')).config.hardware.networkAdapters.length, 1);
});

test('legacy adapters (Add-VMNetworkAdapter -IsLegacy): taken by an unenlightened VM, stored as legacy, at most 4', async () => {
  await f.client.call('POST', '/vms', { name: 'oldos', memory: '64M', enlightened: false });
  await rejects(f.client.call('POST', '/vms/oldos/network-adapters', {}), 409, /unenlightened.*--is-legacy/);
  await rejects(f.client.call('POST', '/vms/oldos/network-adapters', { isLegacy: 'yes' }), 400, /isLegacy must be true or false/);
  const a = await f.client.call<AdapterView>('POST', '/vms/oldos/network-adapters', { isLegacy: true, switchName: 'Default Switch' });
  assert.equal(a.legacy, true);
  assert.equal(a.name, 'Legacy Network Adapter');
  assert.match(a.macAddress, /^00:15:5d:/);
  for (let i = 0; i < 3; i++) await f.client.call('POST', '/vms/oldos/network-adapters', { isLegacy: true });
  await rejects(f.client.call('POST', '/vms/oldos/network-adapters', { isLegacy: true }), 409, /at most 4 legacy/);
  const listed = await f.client.call<AdapterView[]>('GET', '/vms/oldos/network-adapters');
  assert.deepEqual(listed.map((x) => [x.name, x.legacy]), [['Legacy Network Adapter', true], ['Legacy Network Adapter 2', true], ['Legacy Network Adapter 3', true], ['Legacy Network Adapter 4', true]]);
  const cfg = (await f.client.call<VmView>('GET', '/vms/oldos')).config.hardware.networkAdapters;
  assert.ok(cfg.every((x) => x.legacy), 'stored in the VM configuration');
});

test('a running VM: connect and disconnect change the adapter\'s link; adapters are added and removed while it runs; a used switch stays', { skip }, async () => {
  await f.client.call('POST', '/vms', testVm('netrun'));
  await f.client.call('POST', '/vms/netrun/network-adapters', { switchName: 'lab' });
  await f.client.call('POST', '/vms/netrun/start', {});
  const status = async (): Promise<AdapterView> => (await f.client.call<AdapterView[]>('GET', '/vms/netrun/network-adapters'))[0];
  const first = await waitFor('adapter status', async () => (await status()).status);
  assert.equal(first.linkUp, true);
  // Hot add: the worker offers a new netvsp channel; the adapter is live at once and kept in the configuration.
  const hot = await f.client.call<AdapterView>('POST', '/vms/netrun/network-adapters', { name: 'hot', switchName: 'lab' });
  assert.equal(hot.name, 'hot');
  assert.ok(hot.status, 'the running worker reports the new adapter');
  assert.equal(hot.status!.linkUp, true);
  assert.deepEqual((await f.client.call<AdapterView[]>('GET', '/vms/netrun/network-adapters')).map((a) => a.name), ['Network Adapter', 'hot']);
  await f.client.call('DELETE', '/vms/netrun/network-adapters/hot');
  await rejects(f.client.call('POST', '/vms/netrun/network-adapters', { name: 'old', isLegacy: true }), 409, /legacy network adapter to running VM 'netrun': it is a PCI device/);
  assert.deepEqual((await f.client.call<AdapterView[]>('GET', '/vms/netrun/network-adapters')).map((a) => [a.name, !!a.status]), [['Network Adapter', true]]);
  const events = await f.client.call<Array<{ message: string }>>('GET', '/vms/netrun/events');
  assert.ok(events.some((e) => /network adapter 'hot' .*added.* while the VM runs/.test(e.message)), 'the hot add is in the event log');
  assert.ok(events.some((e) => /network adapter 'hot' removed while the VM runs/.test(e.message)));
  await rejects(f.client.call('DELETE', '/switches/lab'), 409, /in use by running VM 'netrun'/);
  const off = await f.client.call<AdapterView>('PUT', '/vms/netrun/network-adapters/Network%20Adapter/switch', { switchName: null });
  assert.equal(off.switchName, null);
  assert.equal(off.status?.linkUp, false);
  // Connecting to the NAT switch starts passt in the VM's worker; the link comes up with it.
  const on = await f.client.call<AdapterView>('PUT', '/vms/netrun/network-adapters/Network%20Adapter/switch', { switchName: 'Default Switch' });
  assert.equal(on.switchName, 'Default Switch');
  await waitFor('link up through passt', async () => (await status()).status?.linkUp);
  // The VM's passt runs in the service (the worker is sandboxed without a network), and ends with the VM.
  const passtChildren = (): number => spawnSync('ps', ['--ppid', String(process.pid), '-o', 'comm=']).stdout.toString().split('\n').filter((l) => /passt/.test(l)).length;
  await waitFor('passt started by the service', () => passtChildren() === 1);
  await rejects(f.client.call('PUT', '/vms/netrun/network-adapters/nope/switch', { switchName: null }), 404, /no network adapter named 'nope'/);
  await f.client.call('POST', '/vms/netrun/stop', { turnOff: true });
  assert.equal((await status()).switchName, 'Default Switch', 'the connection is kept in the configuration');
  await waitFor('passt to end with the VM', () => passtChildren() === 0);
});

test('a VM\'s passt that dies: link down, an event, passt restarted, link up again; the worker carries on', { skip }, async () => {
  await f.client.call('POST', '/vms', testVm('passtkill'));
  await f.client.call('POST', '/vms/passtkill/network-adapters', { switchName: 'Default Switch' });
  const vm = await f.client.call<VmView>('POST', '/vms/passtkill/start', {});
  const status = async (): Promise<AdapterView> => (await f.client.call<AdapterView[]>('GET', '/vms/passtkill/network-adapters'))[0];
  await waitFor('link up through passt', async () => (await status()).status?.linkUp);
  const passtPids = (): number[] => spawnSync('ps', ['--ppid', String(process.pid), '-o', 'pid=,comm=']).stdout.toString().split('\n')
    .filter((l) => /passt/.test(l)).map((l) => Number(l.trim().split(/\s+/)[0]));
  const [first] = await waitFor('the VM\'s passt', () => { const p = passtPids(); return p.length === 1 ? p : null; });
  process.kill(first, 'SIGKILL');
  const events = async (): Promise<string[]> => (await f.client.call<Array<{ message: string }>>('GET', '/vms/passtkill/events')).map((e) => e.message);
  await waitFor('the restart in the event log', async () => (await events()).some((m) => /passt restarted \(process \d+\): network link up/.test(m)));
  const log = await events();
  assert.ok(log.some((m) => /switch 'Default Switch': passt killed by SIGKILL.*network link down, restarting/.test(m)), log.join('\n'));
  const now = passtPids();
  assert.equal(now.length, 1);
  assert.notEqual(now[0], first, 'a new passt runs');
  await waitFor('link up again', async () => (await status()).status?.linkUp);
  const after = await f.client.call<VmView>('GET', '/vms/passtkill');
  assert.equal(after.state, 'Running');
  assert.equal(after.workerPid, vm.workerPid, 'the same worker, never crashed');
  await f.client.call('POST', '/vms/passtkill/stop', { turnOff: true });
});

test('without root: a kept Internal switch is reported, and a VM on it is refused with what to do', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-noroot-'));
  // As a service that lost root would find it: the switch exists, its bridge cannot be set up.
  writeFileSync(join(dir, 'switches.json'), JSON.stringify([{ name: 'host', type: 'Internal', forwards: [], bridge: 'hvbr-00000000', created: 1, notes: '' }]));
  const getuid = process.getuid;
  // As root, this service pretends to be uid 1000 (owning its data directory, as the service checks).
  if (getuid?.() === 0) { chownSync(dir, 1000, 1000); process.getuid = () => 1000; }
  const svc = new VmmsService({ dataDir: dir, bootRoots: testBootRoots() });
  try {
    const startup = svc.events({ limit: 50 }).map((e) => e.message);
    assert.ok(startup.some((m) => /switch 'host' \(Internal\): its host bridge could not be set up: .*needs root/.test(m)), startup.join('\n'));
    svc.create(testVm('onhost'));
    await svc.addNetworkAdapter('onhost', { switchName: 'host' });
    await assert.rejects(svc.start('onhost'), /virtual switch 'host' is Internal, and its TAP devices need a management service running as root \(sudo hyperts serve\).*disconnect-vmnetworkadapter onhost/);
  } finally {
    process.getuid = getuid;
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Private switch relay: a frame from one VM\'s adapter reaches the other VM\'s guest', () => {
  const relay = new PrivateRelay();
  const vms = ['a', 'b'].map((id, i) => {
    const g = new FakeLinuxGuest(1, {}, 32 << 20);
    const mac = `00:15:5d:00:00:0${i + 1}`;
    const net = assembleNetwork(g.vmbus, { scsiControllers: 0, drives: [], networkAdapters: [{ name: 'Network Adapter', legacy: false, macAddress: mac, switchName: 'lab' }] },
      [{ name: 'lab', type: 'Private' }], { relay: (sw, frame) => relay.fromWorker(id, sw, frame) });
    // The service side: frames for this VM go into its network as the worker would inject them.
    relay.attach(id, { name: 'lab', type: 'Private' }, (frame) => net.inject('lab', frame), () => {}, () => {});
    const offer = g.bootToOffers().find((o) => o.type === NIC_CLASS)!;
    const nic = new FakeNetvsc(g, offer);
    nic.full();
    return { g, nic, net, mac: mac.split(':').map((x) => parseInt(x, 16)) };
  });
  const [a, b] = vms;
  a.nic.sendRndisPages(FakeNetvsc.packet(ethernet([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], a.mac, 'hello b')), 0);
  a.nic.pump(); b.nic.pump();
  assert.equal(b.nic.frames.length, 1);
  assert.equal(new TextDecoder().decode(b.nic.frames[0].subarray(14)), 'hello b');
  b.nic.sendRndisPages(FakeNetvsc.packet(ethernet(a.mac, b.mac, 'hello a')), 0);
  b.nic.pump(); a.nic.pump();
  assert.equal(new TextDecoder().decode(a.nic.frames.at(-1)!.subarray(14)), 'hello a');
  relay.detachVm('b');
  a.nic.sendRndisPages(FakeNetvsc.packet(ethernet(b.mac, a.mac, 'gone')), 0);
  a.nic.pump(); b.nic.pump();
  assert.equal(b.nic.frames.length, 1, 'a stopped VM gets nothing');
  for (const v of vms) v.net.stop();
});

test('OpenAPI documents the switch and adapter routes', async () => {
  const doc = await f.client.call<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json');
  for (const [p, m] of [['/switches', 'get'], ['/switches', 'post'], ['/switches/{switch}', 'get'], ['/switches/{switch}', 'delete'],
    ['/vms/{name}/network-adapters', 'get'], ['/vms/{name}/network-adapters', 'post'], ['/vms/{name}/network-adapters/{adapter}', 'delete'],
    ['/vms/{name}/network-adapters/{adapter}/switch', 'put']] as const) assert.ok(doc.paths[p]?.[m], `${m.toUpperCase()} ${p} documented`);
});
