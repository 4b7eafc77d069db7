/**
 * The passt backend with Debian's real passt: ARP and DHCP answered through the switch (with the MTU we ask
 * for, not passt's 65520), and a passt that dies brings the link down and comes back by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualSwitch, type NetworkEndpoint } from '../../src/net/switch.js';
import { PasstBackend, parseForward, passtArguments } from '../../src/net/passt.js';
import { EgressQueues } from '../../src/net/egress-queues.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MAC = [0x00, 0x15, 0x5d, 0x77, 0x00, 0x01];

class Guest implements NetworkEndpoint {
  got: Uint8Array[] = []; link: boolean[] = [];
  private waiters: Array<{ f: (x: Uint8Array) => boolean; r: (x: Uint8Array) => void }> = [];
  deliver(f: Uint8Array): void { this.got.push(f); for (const w of [...this.waiters]) if (w.f(f)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.r(f); } }
  linkChanged(up: boolean): void { this.link.push(up); }
  next(f: (x: Uint8Array) => boolean): Promise<Uint8Array> {
    const hit = this.got.find(f);
    return hit ? Promise.resolve(hit) : new Promise((r) => this.waiters.push({ f, r }));
  }
}

function ipChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function dhcpDiscover(xid: number): Uint8Array {
  const bootp = new Uint8Array(300);
  const v = new DataView(bootp.buffer);
  bootp[0] = 1; bootp[1] = 1; bootp[2] = 6;
  v.setUint32(4, xid);
  v.setUint16(10, 0x8000); // broadcast flag
  bootp.set(MAC, 28);
  v.setUint32(236, 0x63825363);
  bootp.set([53, 1, 1, 55, 3, 1, 3, 26, 255], 240);
  const udp = new Uint8Array(8 + bootp.length);
  const u = new DataView(udp.buffer);
  u.setUint16(0, 68); u.setUint16(2, 67); u.setUint16(4, udp.length);
  udp.set(bootp, 8);
  const ip = new Uint8Array(20 + udp.length);
  const i = new DataView(ip.buffer);
  ip[0] = 0x45; i.setUint16(2, ip.length); ip[8] = 64; ip[9] = 17;
  ip.set([255, 255, 255, 255], 16);
  i.setUint16(10, ipChecksum(ip.subarray(0, 20)));
  ip.set(udp, 20);
  return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC, 0x08, 0x00, ...ip]);
}

/** DHCP options of a reply frame (Ethernet + IPv4 without options + UDP + BOOTP). */
function dhcpOptions(f: Uint8Array): Map<number, Uint8Array> {
  const opts = new Map<number, Uint8Array>();
  let at = 14 + 20 + 8 + 240;
  while (at < f.length && f[at] !== 255) {
    if (f[at] === 0) { at++; continue; }
    opts.set(f[at], f.subarray(at + 2, at + 2 + f[at + 1]));
    at += 2 + f[at + 1];
  }
  return opts;
}

const isDhcpReply = (f: Uint8Array): boolean => f.length > 282 && f[12] === 8 && f[13] === 0 && f[23] === 17 && f[36] === 0 && f[37] === 68;

test('port mappings: HOSTPORT:GUESTPORT, checked, become passt -t arguments', () => {
  assert.deepEqual(parseForward('8080:80'), { protocol: 'tcp', hostPort: 8080, guestPort: 80 });
  assert.throws(() => parseForward('80'), /HOSTPORT:GUESTPORT/);
  assert.throws(() => parseForward('0:80'), /HOSTPORT:GUESTPORT/);
  assert.throws(() => parseForward('70000:80'), /HOSTPORT:GUESTPORT/);
  const a = passtArguments({ forwards: [parseForward('8080:80')] });
  assert.deepEqual(a.slice(a.indexOf('-t'), a.indexOf('-t') + 2), ['-t', '8080:80']);
  assert.equal(a[a.indexOf('--mtu') + 1], '1500');
});

test('passt answers DHCP through the switch with an address, a router and MTU 1500', async () => {
  const sw = new VirtualSwitch('nat');
  const guest = new Guest();
  const port = sw.attach(guest, 'guest');
  const logs: string[] = [];
  const passt = new PasstBackend(sw, { log: (m) => logs.push(m) });
  passt.start();
  try {
    await passt.whenRunning();
    assert.equal(guest.link.at(-1), true);
    port.transmit(dhcpDiscover(0x1234));
    const offer = await guest.next(isDhcpReply);
    assert.deepEqual([...offer.subarray(0, 6)], MAC);
    const yiaddr = offer.subarray(14 + 20 + 8 + 16, 14 + 20 + 8 + 20);
    assert.ok(yiaddr.some((b) => b !== 0), 'an address is offered');
    const opts = dhcpOptions(offer);
    assert.equal(opts.get(53)?.[0], 2, 'DHCPOFFER');
    assert.ok(opts.get(3)?.length === 4, 'a router');
    assert.equal(new DataView(opts.get(26)!.buffer, opts.get(26)!.byteOffset).getUint16(0), 1500);
    assert.ok(passt.stats.toPasst >= 1 && passt.stats.fromPasst >= 1);
  } finally {
    passt.stop();
  }
  assert.equal(guest.link.at(-1), false, 'stopping the uplink brings the link down');
});

test('a passt that dies: link down, logged, restarted, link up again', async () => {
  const sw = new VirtualSwitch('nat');
  const guest = new Guest();
  const port = sw.attach(guest, 'guest');
  const logs: string[] = [];
  const events: string[] = [];
  const passt = new PasstBackend(sw, { log: (m) => logs.push(m), event: (m) => events.push(m), restartDelayMs: 50 });
  passt.start();
  try {
    await passt.whenRunning();
    assert.deepEqual(events, [], 'a first start is no event');
    const first = passt.pid!;
    const back = new Promise<void>((resolve) => {
      const t = setInterval(() => { if (passt.running && passt.pid !== first) { clearInterval(t); resolve(); } }, 20);
    });
    process.kill(first, 'SIGKILL');
    await back;
    assert.deepEqual(guest.link.slice(-2), [false, true]);
    assert.equal(passt.stats.restarts, 1);
    assert.ok(logs.some((l) => /killed by SIGKILL.*link down, restarting/.test(l)), logs.join('\n'));
    assert.equal(events.length, 2, events.join('\n'));
    assert.match(events[0], /killed by SIGKILL.*link down/);
    assert.match(events[1], new RegExp(`passt restarted \\(process ${passt.pid}\\): network link up`));
    // The new passt serves the guest.
    port.transmit(dhcpDiscover(0x4321));
    const offer = await guest.next((f) => isDhcpReply(f) && new DataView(f.buffer, f.byteOffset + 14 + 20 + 8 + 4).getUint32(0) === 0x4321);
    assert.equal(dhcpOptions(offer).get(53)?.[0], 2);
  } finally {
    passt.stop();
  }
});

test('a missing passt binary is reported with what to install, and nothing throws', async () => {
  const sw = new VirtualSwitch('nat');
  const guest = new Guest();
  sw.attach(guest, 'guest');
  const logs: string[] = [];
  const passt = new PasstBackend(sw, { binary: '/nonexistent/passt', log: (m) => logs.push(m), restartDelayMs: 10_000 });
  passt.start();
  await new Promise<void>((r) => { const t = setInterval(() => { if (logs.length) { clearInterval(t); r(); } }, 10); });
  passt.stop();
  assert.match(logs[0], /apt-get install passt/);
  assert.equal(guest.link.at(-1), false);
});

test('frames reach a slow passt in reads that never end inside a frame (bookworm passt loses sync otherwise)', { skip: spawnSync('python3', ['--version']).status !== 0 && 'no python3' }, async () => {
  // A stand-in for passt: reads fd 3 slowly with a large buffer and reports whether each read held whole frames.
  const dir = mkdtempSync(join(tmpdir(), 'fake-passt-'));
  const script = join(dir, 'fake-passt');
  writeFileSync(script, `#!/usr/bin/env python3
import socket, struct, sys, time
s = socket.socket(fileno=3)
frames = bad = 0
while True:
    time.sleep(0.002)
    b = s.recv(1 << 20)
    if not b: break
    at = 0
    while at + 4 <= len(b):
        n = struct.unpack('>I', b[at:at + 4])[0]
        if at + 4 + n > len(b): break
        at += 4 + n; frames += 1
    if at != len(b): bad += 1
    if frames >= 2000: break
sys.stderr.write('frames=%d bad=%d\\n' % (frames, bad))
`, { mode: 0o755 });
  const sw = new VirtualSwitch('nat');
  const guest = new Guest();
  const port = sw.attach(guest, 'guest');
  const logs: string[] = [];
  const passt = new PasstBackend(sw, { binary: script, log: (m) => logs.push(m), restartDelayMs: 60_000 });
  passt.start();
  try {
    await passt.whenRunning();
    const frame = Uint8Array.from({ length: 1514 }, (_, i) => i & 0xff);
    frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC], 0);
    // Faster than the reader drains: the socket fills and the backend has to hold frames back.
    for (let i = 0; i < 2000; i++) { port.transmit(frame); if (i % 100 === 99) await new Promise((r) => setImmediate(r)); }
    // The limit is a safety net against a hang (a desynchronised reader never counts 2000 frames).
    const t0 = Date.now();
    await new Promise<void>((r) => { const t = setInterval(() => { if (logs.length || Date.now() - t0 > 60_000) { clearInterval(t); r(); } }, 20); });
    assert.match(logs[0] ?? 'the stand-in never finished reading', /frames=2000 bad=0/);
  } finally {
    passt.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backpressure: while the VM is full the backend stops reading, the writer blocks in its socket, and nothing is lost', { skip: spawnSync('python3', ['--version']).status !== 0 && 'no python3' }, async () => {
  // A stand-in for passt that sends frames to the guest as fast as its socket takes them and notes when it blocks.
  const dir = mkdtempSync(join(tmpdir(), 'fake-passt-'));
  const script = join(dir, 'fake-passt');
  const marker = join(dir, 'blocked');
  const N = 6000;
  writeFileSync(script, `#!/usr/bin/env python3
import socket, struct, time
s = socket.socket(fileno=3)
s.setblocking(False)
noted = False
for i in range(${N}):
    f = bytes([${MAC.join(', ')}]) + bytes([2, 0, 0, 0, 0, 1, 0x88, 0xb5]) + struct.pack('>I', i) + bytes(1480)
    b = struct.pack('>I', len(f)) + f
    while b:
        try:
            b = b[s.send(b):]
        except BlockingIOError:
            if not noted:
                open('${marker}', 'w').write(str(i)); noted = True
            time.sleep(0.001)
time.sleep(3600)
`, { mode: 0o755 });
  const sw = new VirtualSwitch('nat');
  let room = 0;
  const got: number[] = [];
  const guest: NetworkEndpoint = {
    canReceive: () => room > 0,
    deliver: (f) => { room--; got.push(new DataView(f.buffer, f.byteOffset).getUint32(14)); },
  };
  const port = sw.attach(guest, 'guest');
  const passt = new PasstBackend(sw, { binary: script, log: () => {}, restartDelayMs: 60_000 });
  passt.start();
  const until = async (what: () => boolean): Promise<void> => {
    // The limit is a safety net against a hang, not a timing assertion.
    for (let i = 0; i < 6000 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  try {
    await passt.whenRunning();
    port.transmit(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...MAC, 0x88, 0xb5])); // the guest's MAC is learned
    await until(() => passt.stats.pauses > 0 && existsSync(marker));
    assert.equal(passt.stats.pauses, 1, 'paused once the switch queue for the full guest reached its mark');
    assert.ok(existsSync(marker), 'the writer blocked: its socket filled');
    assert.equal(got.length, 0);
    assert.equal(passt.stats.fromPasst, EgressQueues.PAUSE_AT, 'not one frame read past the pause; the rest waits in the socket');
    assert.equal(sw.stats.queueDropped, 0);
    // The guest returns buffers a few hundred at a time: every frame arrives, in order.
    while (got.length < N) {
      const before: number = got.length;
      room += 300;
      port.resume();
      await until(() => room === 0 || got.length === N);
      if (got.length === before) break;
    }
    assert.equal(got.length, N);
    assert.ok(got.every((v, i) => v === i), 'in order, none lost or repeated');
    assert.equal(sw.stats.queueDropped, 0);
  } finally {
    passt.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
