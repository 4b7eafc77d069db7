/**
 * TapBackend when the TAP device cannot be made (here: no root): the switch's adapters see the link down, the
 * VM's event log gets the reason, a retry is scheduled, and nothing throws into the service.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualSwitch, type NetworkEndpoint } from '../../src/net/switch.js';
import { TapBackend, TapDevice } from '../../src/net/tap.js';
import { HostNetworkError, bridgeName, tapName } from '../../src/net/host-bridge.js';

test('a TAP uplink that cannot be set up: link down, an event saying why, a retry; stop() ends it', async () => {
  const getuid = process.getuid;
  process.getuid = () => 1000;
  try {
    const sw = new VirtualSwitch('int');
    const links: boolean[] = [];
    const adapter: NetworkEndpoint = { deliver: () => {}, linkChanged: (up) => links.push(up) };
    sw.attach(adapter, 'nic');
    const events: string[] = [];
    const tap = new TapBackend(sw, { bridge: 'hvbr-test', tap: 'hvtap-test', log: () => {}, event: (m) => events.push(m), restartDelayMs: 20 });
    tap.start();
    assert.equal(tap.running, false);
    assert.equal(links.at(-1), false, 'the adapter sees its link down');
    assert.equal(events.length, 1);
    assert.match(events[0], /TAP device hvtap-test on bridge hvbr-test: .*needs root.*sudo hyperts serve.*network link down, retrying in 20 ms/);
    await new Promise((r) => setTimeout(r, 60));
    assert.ok(events.length >= 2, 'it tried again');
    assert.match(events[1], /retrying in 40 ms/, 'with a growing delay');
    tap.stop();
    const n = events.length;
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(events.length, n, 'no retries after stop');
    assert.throws(() => TapDevice.open('hvtap-x'), HostNetworkError);
  } finally { process.getuid = getuid; }
});

test('host names: bridge and TAP names fit Linux\'s 15 bytes and differ per switch and VM', () => {
  assert.match(bridgeName('My Switch'), /^hvbr-[0-9a-f]{8}$/);
  assert.equal(bridgeName('My Switch'), bridgeName('my switch'), 'switch names are case-insensitive');
  assert.notEqual(bridgeName('a'), bridgeName('b'));
  assert.match(tapName('vm-id-1', 'lab'), /^hvtap-[0-9a-f]{8}$/);
  assert.notEqual(tapName('vm-id-1', 'lab'), tapName('vm-id-2', 'lab'));
});
