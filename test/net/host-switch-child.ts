/**
 * Runs inside a network namespace made by host-switch.test.ts (`ip netns exec`): the management service
 * creates an Internal or External switch (its host bridge), a "VM" joins it through the service's relay (a
 * TAP device the service owns), and a tiny guest stand-in answers ARP and echoes UDP. The host side (the
 * bridge's own address for Internal, a peer namespace behind the veth for External) must reach it.
 * Prints one JSON line with what happened; the test asserts on it.
 */
import { mkdtempSync, existsSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { VmmsService } from '../../src/vmms/service.js';
import { PrivateRelay } from '../../src/vmms/network.js';
import { testBootRoots } from '../vmms/helpers.js';

const [mode, guestIp, hostIp, physIf, peerNs] = process.argv.slice(2) as [string, string, string, string?, string?];
const GUEST_MAC = [0x00, 0x15, 0x5d, 0x00, 0x99, 0x01];
const ipBytes = (s: string): number[] => s.split('.').map(Number);

function checksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/** ARP replies and a UDP echo for `guestIp`, like a guest's kernel and `nc -u -l -e cat` would give. */
function answer(f: Uint8Array): Uint8Array | null {
  const gip = ipBytes(guestIp);
  const type = (f[12] << 8) | f[13];
  if (type === 0x0806 && f.length >= 42 && f[21] === 1 && gip.every((x, i) => f[38 + i] === x)) {
    const r = new Uint8Array(42);
    r.set(f.subarray(6, 12), 0); r.set(GUEST_MAC, 6); r[12] = 8; r[13] = 6;
    r.set(f.subarray(14, 20), 14); r[21] = 2;
    r.set(GUEST_MAC, 22); r.set(gip, 28); r.set(f.subarray(22, 32), 32);
    return r;
  }
  if (type === 0x0800 && f.length >= 42 && f[23] === 17 && gip.every((x, i) => f[30 + i] === x)) {
    const ihl = (f[14] & 15) * 4, total = (f[16] << 8) | f[17];
    if (total > f.length - 14 || ihl < 20) return null;
    const r = f.slice(0, 14 + total);
    r.set(f.subarray(6, 12), 0); r.set(GUEST_MAC, 6);
    r.set(f.subarray(30, 34), 26); r.set(f.subarray(26, 30), 30); // swap addresses
    r[24] = 0; r[25] = 0; const c = checksum(r.subarray(14, 14 + ihl)); r[24] = c >> 8; r[25] = c & 0xff;
    const u = 14 + ihl;
    r.set(f.subarray(u + 2, u + 4), u); r.set(f.subarray(u, u + 2), u + 2); // swap ports
    r[u + 6] = 0; r[u + 7] = 0; // no UDP checksum (allowed on IPv4)
    return r;
  }
  return null;
}

const CLIENT = `const d=require('dgram').createSocket('udp4');let n=0;const t=setInterval(()=>{if(++n>40){console.log('TIMEOUT');process.exit(1)}d.send('ping-'+n,7007,process.argv[1])},250);d.on('message',m=>{console.log(String(m));process.exit(0)})`;

async function udpEcho(): Promise<string> {
  if (peerNs) {
    // Not spawnSync: this process's event loop must keep relaying the VM's frames meanwhile.
    const c = spawn('ip', ['netns', 'exec', peerNs, process.execPath, '-e', CLIENT, guestIp], { stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '', e = '';
    c.stdout.on('data', (d: Buffer) => { o += d; });
    c.stderr.on('data', (d: Buffer) => { e += d; });
    return new Promise((resolve) => c.on('close', () => resolve(o.trim() || `client failed: ${e}`)));
  }
  const s = createSocket('udp4');
  return new Promise((resolve) => {
    let n = 0;
    const t = setInterval(() => { if (++n > 40) { clearInterval(t); s.close(); resolve('TIMEOUT'); } else s.send(`ping-${n}`, 7007, guestIp); }, 250);
    s.on('message', (m) => { clearInterval(t); s.close(); resolve(String(m)); });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'hyperts-hostswitch-'));
const svc = new VmmsService({ dataDir: dir, bootRoots: testBootRoots() });
const out: Record<string, unknown> = {};
try {
  const sw = svc.newSwitch(mode === 'external' ? { name: 'ext', switchType: 'External', netAdapterName: physIf } : { name: 'int', switchType: 'Internal' });
  out.bridge = sw.bridge;
  out.bridgeExists = existsSync(`/sys/class/net/${sw.bridge}`);
  if (physIf) out.physMaster = readlinkSync(`/sys/class/net/${physIf}/master`).split('/').pop();
  if (mode === 'internal') spawnSync('ip', ['addr', 'add', `${hostIp}/24`, 'dev', sw.bridge!]);
  const relay = new PrivateRelay();
  const links: boolean[] = [];
  const events: string[] = [];
  const cfg = { name: sw.name, type: sw.type, forwards: [], bridge: sw.bridge, relayed: true };
  // The worker's side of the relay: frames for the VM come here; its answers go back through the service.
  relay.attach('vm1', cfg, (frame) => { const r = answer(frame); if (r) relay.fromWorker('vm1', sw.name, r); }, (up) => links.push(up), () => {}, (m) => events.push(m));
  // The relay's TAP comes up at once; the link news arrives as it does for a worker.
  await new Promise((r) => setTimeout(r, 100));
  out.linkAfterSetup = links.at(-1);
  out.taps = spawnSync('ip', ['-o', 'link', 'show', 'master', sw.bridge!], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]);
  out.echo = await udpEcho();
  relay.detachVm('vm1');
  out.linkAfterStop = links.at(-1);
  await new Promise((r) => setTimeout(r, 500));
  out.tapsAfterStop = spawnSync('ip', ['-o', 'link', 'show', 'master', sw.bridge!], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]);
  out.events = events;
  svc.removeSwitch(sw.name);
  out.bridgeAfterRemove = existsSync(`/sys/class/net/${sw.bridge}`);
  if (physIf) out.physAfterRemove = existsSync(`/sys/class/net/${physIf}/master`);
} catch (e) {
  out.error = (e as Error).message;
} finally {
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(0);
