/**
 * Issue 3 acceptance with the real guest: Debian's stock kernel, hv_utils and hyperv-daemons on the emulated
 * processor. Three boots, because two checks end the guest: (1) one interactive guest for VMBus, KVP, VSS,
 * time sync, heartbeat, ending with a kernel panic (Lost Communication); (2) a guest the host shuts down
 * through the Shutdown service; (3) the same image unenlightened, non-interactive.
 *
 * Waits below poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { GuestSession, kvpPoolCommand } from './guest-session.js';
import { RUN_EXIT_MARKER, SHUTDOWN_MARKER, SHUTDOWN_DONE_MARKER } from '../../src/image/init-script.js';
import type { IntegrationServices } from '../../src/vsp/ic/integration-services.js';

/** Hyper-V's class GUIDs of the five integration services (contract §12.1). */
const HYPERV_IC_CLASSES: Record<string, string> = {
  Heartbeat: '57164f39-9115-4e78-ab55-382f3bd5422d',
  Shutdown: '0e0b6031-5213-4934-818b-38d90ced39db',
  'Time Synchronization': '9527e630-d0ae-497b-adce-e80ab0175caf',
  'Key-Value Pair Exchange': 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6',
  VSS: '35fa2e29-ea23-4236-96ae-3a6ebacba440',
};

const BOOT_LIMIT = 40 * 60_000;

/** Poll `f` (host time) until it returns a truthy value; throws with `what` after the safety limit. */
async function until<T>(what: string, f: () => T | Promise<T>, limitMs = 10 * 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function requireImage(): void {
  if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
}

describe('enlightened guest: VMBus and the integration services', () => {
  let g: GuestSession;
  let ics: IntegrationServices;
  const sh = async (cmd: string): Promise<string> => {
    const r = await g.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };

  before(async () => {
    requireImage();
    g = await GuestSession.boot();
    await g.waitForShell();
    ics = g.vm.integrationServices!;
  }, { timeout: BOOT_LIMIT });

  after(() => { if (g && !g.exit) g.vm.turnOff('test end'); });

  test('/sys/bus/vmbus/devices lists the five services with Hyper-V class GUIDs', async () => {
    const out = await sh('for d in /sys/bus/vmbus/devices/*; do echo "$(cat $d/class_id) $(basename $(readlink $d/driver))"; done');
    const classes = out.trim().split('\n').map((l) => l.split(' '));
    assert.deepEqual(classes.map(([c]) => c.replace(/[{}]/g, '')).sort(), Object.values(HYPERV_IC_CLASSES).sort());
    for (const [c, drv] of classes) assert.equal(drv, 'hv_utils', `driver of ${c}`);
  });

  test('hv_vmbus negotiated a protocol version; no errors or warnings from hv_* drivers', async () => {
    const out = await sh('dmesg -r');
    assert.match(out, /hv_vmbus: Vmbus version:\d+\.\d+/);
    for (const ic of ['Shutdown', 'Heartbeat', 'TimeSync', 'VSS']) assert.match(out, new RegExp(`hv_utils: ${ic} IC version \\d+\\.\\d+`));
    // Console log levels 0-4 are emergency .. warning.
    const bad = out.split('\n').filter((l) => /^<[0-4]>/.test(l) && /hv_|vmbus|hyperv/i.test(l));
    assert.deepEqual(bad, []);
  });

  test('the host reports every service OK with the versions the guest negotiated', async () => {
    // KVP negotiates only once hv_kvp_daemon runs (a few seconds after /init started it).
    await until('KVP negotiation', () => ics.kvp.status === 'OK');
    const list = ics.list();
    assert.deepEqual(list.map((s) => [s.name, s.status]), Object.keys(HYPERV_IC_CLASSES).map((n) => [n, 'OK']));
    for (const s of list) assert.match(s.protocol ?? '', /^\d+\.\d+\/\d+\.\d+$/, s.name);
  });

  test('heartbeat: the guest keeps answering while it runs', async () => {
    const before = ics.heartbeat.answers;
    await sh('sleep 3');
    await until('another heartbeat answer', () => ics.heartbeat.answers > before);
    assert.equal(ics.heartbeat.status, 'OK');
  });

  // The tests after this one run on the restored partition: KVP, VSS, time sync and the panic keep working.
  test('saved state: saved to a file and restored into a new partition, the guest carries on', async () => {
    await until('KVP negotiation', () => ics.kvp.status === 'OK');
    await sh('echo before-save > /tmp/saved-marker');
    const uptime = async (): Promise<number> => Number((await sh("cut -d' ' -f1 /proc/uptime")).split(' ')[0]);
    const upBefore = await uptime();
    const answersBefore = ics.heartbeat.answers;
    const { session, bytes } = await g.saveAndRestore();
    assert.ok(bytes < 512 * 1024 * 1024, `saved state of ${bytes} bytes: zero pages should be left out`);
    g = session;
    ics = g.vm.integrationServices!;
    // The restored guest continues: same shell, same files, same uptime base (not a new boot).
    assert.equal((await sh('cat /tmp/saved-marker')).trim(), 'before-save');
    const upAfter = await uptime();
    assert.ok(upAfter >= upBefore && upAfter < upBefore + 600, `uptime went from ${upBefore} to ${upAfter}`);
    assert.doesNotMatch(g.output.slice(g.output.lastIndexOf('before-save')), /Linux version/);
    // VMBus and the integration services survived: the heartbeat keeps counting, KVP and time sync answer.
    assert.equal(ics.heartbeat.answers, answersBefore);
    await sh('sleep 3');
    await until('a heartbeat answer after the restore', () => ics.heartbeat.answers > answersBefore);
    assert.equal(ics.heartbeat.status, 'OK');
    assert.equal(ics.kvp.status, 'OK');
    const kv = await ics.kvp.guestIntrinsics();
    assert.equal(kv.ProcessorArchitecture, 'x86_64');
    await ics.timeSync.syncNow();
    const bad = (await sh('dmesg -r')).split('\n').filter((l) => /^<[0-4]>/.test(l) && /hv_|vmbus|hyperv/i.test(l));
    assert.deepEqual(bad, []);
  });

  test('KVP: the host reads OSName, OSVersion and NetworkAddressIPv4 as hv_kvp_daemon reports them', async () => {
    // No synthetic NIC yet: give the dummy interface an address (the daemon skips loopback).
    await sh('ip addr add 192.0.2.77/24 dev dummy0 && ip link set dummy0 up');
    const sysname = (await sh('uname -s')).trim(), release = (await sh('uname -r')).trim();
    const osRelease = (await g.run('cat /etc/os-release')).out;
    await until('KVP negotiation', () => ics.kvp.status === 'OK');
    const kv = await ics.kvp.guestIntrinsics();
    // The daemon's rules: NAME/VERSION_ID from /etc/os-release when present, else uname; OSVersion is the
    // release up to its first '-'.
    const name = /^NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? sysname;
    assert.equal(kv.OSName, name);
    assert.equal(kv.OSVersion, release.split('-')[0]);
    assert.equal(kv.OSBuildNumber, release);
    assert.equal(kv.ProcessorArchitecture, 'x86_64');
    assert.ok(kv.NetworkAddressIPv4.split(';').includes('192.0.2.77'), `NetworkAddressIPv4 = ${kv.NetworkAddressIPv4}`);
  });

  test('KVP: a key written by the host appears in /var/lib/hyperv/.kvp_pool_0, and removing it removes it', async () => {
    const value = `from-the-host-${process.pid}`;
    await ics.kvp.setHostKey('HypertsTestKey', value);
    const pool = async (): Promise<string[]> => (await g.run(kvpPoolCommand(0))).out.split('\n');
    const lines = await pool();
    assert.ok(lines.includes(`HypertsTestKey=${value}`), `pool 0:\n${lines.join('\n')}`);
    await ics.kvp.removeHostKey('HypertsTestKey');
    assert.ok(!(await pool()).some((l) => l.startsWith('HypertsTestKey=')));
  });

  test('VSS: a freeze request freezes a mounted ext4 (writes block) and thaw releases it', async () => {
    // A RAM disk, not a loop device: hv_vss_daemon leaves loop-backed file systems alone.
    await sh('mke2fs -q /dev/ram0 >/dev/null && mkdir -p /mnt/vss && mount -t ext4 /dev/ram0 /mnt/vss && echo before > /mnt/vss/a');
    assert.match(await sh('grep " /mnt/vss " /proc/mounts'), /^\/dev\/ram0 \/mnt\/vss ext4 rw/);
    await until('hv_vss_daemon', async () => (await g.run('pidof hv_vss_daemon')).status === 0);
    const frozen = await ics.vss.freeze();
    assert.equal(frozen.statusText, 'OK');
    // A writer in its own session: it must block inside the kernel (state D) instead of finishing.
    await sh("rm -f /tmp/vss-done; (setsid sh -c 'echo during > /mnt/vss/b && echo done > /tmp/vss-done' </dev/null >/dev/null 2>&1 & echo $! > /tmp/vss-pid)");
    await until('the writer to block', async () => /^D$/m.test((await g.run('sed -n "s/^State:\\t\\(.\\).*/\\1/p" /proc/$(cat /tmp/vss-pid)/status')).out));
    assert.equal((await g.run('cat /tmp/vss-done')).status, 1, 'the write finished while the file system was frozen');
    const thawed = await ics.vss.thaw();
    assert.equal(thawed.statusText, 'OK');
    await until('the writer to finish', async () => (await g.run('cat /tmp/vss-done')).status === 0);
    assert.equal((await sh('cat /mnt/vss/b')).trim(), 'during');
  });

  test('time sync: after the VM was paused and resumed, the guest clock is corrected', async () => {
    // Wall clock minus monotonic clock: constant while nobody steps the clock (warp idling moves both).
    const offset = async (): Promise<{ wall: number; off: number }> => {
      const [wall, up] = (await sh("date +%s; cut -d' ' -f1 /proc/uptime")).trim().split('\n').map(Number);
      return { wall, off: wall - up };
    };
    // Put the guest clock an hour behind so the correction is unmistakable, then pause.
    await sh(`date -s @${Math.floor(Date.now() / 1000) - 3600} >/dev/null`);
    const before = await offset();
    const known = new Set(ics.timeSync.samples);
    g.vm.pause();
    await new Promise((r) => setTimeout(r, 5000));
    g.vm.resume();
    await until('the SYNC sample to be acknowledged', () => ics.timeSync.samples.some((s) => !known.has(s) && s.flags === 1 && s.acknowledged));
    const after = await offset();
    // The SYNC stepped the clock forward by about the hour (minus the virtual time the guest ran in
    // between, which warp mode may stretch); the guest is no longer behind the host.
    assert.ok(after.off - before.off > 1800, `clock stepped by ${after.off - before.off} s`);
    assert.ok(after.wall > Date.now() / 1000 - 120, `guest clock ${after.wall} still behind host ${Date.now() / 1000}`);
  });

  test('heartbeat: Lost Communication once the guest kernel stops answering (panic with no reboot)', async () => {
    assert.equal(ics.heartbeat.status, 'OK');
    g.vm.consoleInput(new TextEncoder().encode('echo 0 > /proc/sys/kernel/panic; echo c > /proc/sysrq-trigger\n'));
    await g.waitFor('Kernel panic - not syncing');
    await until('the heartbeat status to change', () => ics.heartbeat.status !== 'OK', 5 * 60_000);
    assert.equal(ics.heartbeat.status, 'Lost Communication');
    assert.equal(g.exit, null, 'the guest hangs (panic=0): the VM itself keeps running');
  });
});

describe('enlightened guest: host-initiated shutdown', () => {
  let g: GuestSession;
  before(async () => {
    requireImage();
    g = await GuestSession.boot();
    await g.waitForShell();
  }, { timeout: BOOT_LIMIT });
  after(() => { if (g && !g.exit) g.vm.turnOff('test end'); });

  test('without the Shutdown service the host gets a clear error; with it the guest powers off cleanly', async () => {
    const ics = g.vm.integrationServices!;
    await until('Shutdown negotiation', () => ics.shutdown.status === 'OK');
    ics.disable('Shutdown'); // rescinds the channel in the running guest
    await assert.rejects(ics.requestShutdown(), /Shutdown integration service is disabled/);
    ics.enable('Shutdown'); // offered again: hv_utils binds it again
    await until('Shutdown renegotiation', () => ics.shutdown.status === 'OK');
    await ics.requestShutdown();
    const exit = await g.exited;
    assert.equal(exit.code, 0, `exit: ${exit.reason}`);
    const out = g.output;
    const a = out.indexOf(`${SHUTDOWN_MARKER}poweroff`), b = out.indexOf(`${SHUTDOWN_DONE_MARKER}poweroff`);
    assert.ok(a >= 0 && b > a, `init's shutdown path did not run:\n${out.slice(-3000)}`);
    assert.match(out.slice(b), /reboot: Power down/);
  });
});

describe('unenlightened guest (--enlightenments off)', () => {
  test('boots the same image on the emulated devices with no Hyper-V leaves and no VMBus', { timeout: BOOT_LIMIT }, async () => {
    requireImage();
    const cmd = 'dmesg | grep -c "Hypervisor detected: Microsoft Hyper-V"; ls /sys/bus/vmbus/devices 2>/dev/null | wc -l; ' +
      'ls /dev/vmbus 2>/dev/null | wc -l; echo unenlightened-ok';
    const g = await GuestSession.boot({ enlightened: false }, `hyperts.run64=${Buffer.from(cmd).toString('base64')}`);
    assert.equal(g.vm.integrationServices, null);
    const exit = await g.exited;
    assert.equal(exit.code, 0, `exit: ${exit.reason}`);
    const m = /\r?\n0\r?\n0\r?\n0\r?\nunenlightened-ok\r?\n/.exec(g.output);
    assert.ok(m, `expected no Hyper-V detection, no VMBus devices:\n${g.output.slice(-3000)}`);
    assert.match(g.output, new RegExp(`${RUN_EXIT_MARKER}0`));
  });
});
