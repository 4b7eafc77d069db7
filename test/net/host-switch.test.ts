/**
 * Internal and External switches as root, inside network namespaces this test makes (never the host's own
 * network): the service creates the switch's bridge, a VM's traffic goes through a TAP device the service
 * owns, and the host side reaches the VM: the bridge's address (Internal) or a peer namespace behind a veth
 * pair that plays the physical interface (External). Skipped, with the reason, without root or `ip netns`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const tag = `${process.pid % 10000}`;
const NS = `hvt-host-${tag}`, PEER = `hvt-peer-${tag}`;
const child = fileURLToPath(new URL('./host-switch-child.js', import.meta.url));

function reasonToSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (TAP devices and bridges)';
  const r = spawnSync('ip', ['netns', 'add', `hvt-probe-${tag}`], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `ip netns is unavailable here: ${(r.stderr || r.error?.message || '').trim()}`;
  spawnSync('ip', ['netns', 'del', `hvt-probe-${tag}`]);
  if (spawnSync('test', ['-c', '/dev/net/tun']).status !== 0) return '/dev/net/tun is missing';
  return false;
}
const skip = reasonToSkip();
if (skip) console.log(`# skipping Internal/External switch tests: ${skip}`);

const sh = (...args: string[]): void => {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
};

function runChild(...args: string[]): Record<string, unknown> {
  const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, child, ...args], { encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(line) as Record<string, unknown>; } catch { throw new Error(`child printed no result (status ${r.status}):\n${r.stdout}\n${r.stderr}`); }
}

before(() => {
  if (skip) return;
  sh('netns', 'add', NS);
  sh('netns', 'add', PEER);
  sh('-n', NS, 'link', 'set', 'lo', 'up');
  // The "physical" interface of the External switch, its other end in the peer namespace.
  sh('-n', NS, 'link', 'add', 'hvt-phys', 'type', 'veth', 'peer', 'name', 'hvt-wire');
  sh('-n', NS, 'link', 'set', 'hvt-wire', 'netns', PEER);
  sh('-n', PEER, 'addr', 'add', '10.199.1.1/24', 'dev', 'hvt-wire');
  sh('-n', PEER, 'link', 'set', 'hvt-wire', 'up');
  sh('-n', PEER, 'link', 'set', 'lo', 'up');
});

after(() => {
  if (skip) return;
  spawnSync('ip', ['netns', 'del', NS]);
  spawnSync('ip', ['netns', 'del', PEER]);
});

test('Internal switch: the host\'s interface on the switch (its bridge) reaches a VM through the service\'s TAP device', { skip }, () => {
  const r = runChild('internal', '10.199.0.2', '10.199.0.1');
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.bridgeExists, true);
  assert.deepEqual((r.taps as string[]).map((t) => /^hvtap-[0-9a-f]{8}$/.test(t)), [true], 'one TAP device on the bridge for the VM');
  assert.equal(r.linkAfterSetup, true, 'the VM\'s link is up once its TAP device is on the bridge');
  assert.equal(r.linkAfterStop, false);
  assert.match(String(r.echo), /^ping-\d+$/, 'the host\'s UDP datagram came back from the VM');
  assert.deepEqual(r.tapsAfterStop, [], 'the TAP device goes away with the VM');
  assert.equal(r.bridgeAfterRemove, false, 'remove-vmswitch deletes the bridge');
});

test('External switch: bridged to a veth ("physical" interface); a peer in another namespace reaches the VM', { skip }, () => {
  const r = runChild('external', '10.199.1.2', '', 'hvt-phys', PEER);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.physMaster, r.bridge, 'the host interface is enslaved to the switch\'s bridge');
  assert.deepEqual((r.taps as string[]).sort(), ['hvt-phys', (r.taps as string[]).find((t) => t.startsWith('hvtap-'))].sort());
  assert.deepEqual(r.tapsAfterStop, ['hvt-phys']);
  assert.match(String(r.echo), /^ping-\d+$/, `the peer's datagram came back from the VM (${r.echo})`);
  assert.equal(r.bridgeAfterRemove, false);
  assert.equal(r.physAfterRemove, false, 'the interface is released when the switch goes');
});
