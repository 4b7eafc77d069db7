/**
 * Issue 18 acceptance with the real guest: Debian's stock kernel with two virtual processors taking turns
 * on the emulated processor (icount clock). Linux starts CPU 1 by INIT-SIPI-SIPI, both CPUs take LAPIC timer
 * interrupts, work pinned to CPU 1 runs there, and the Hyper-V remote TLB flush and IPI hypercalls are used.
 *
 * Waits below poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { GuestSession } from './guest-session.js';
import * as T from '../../src/hypervisor/tlfs.js';

const BOOT_LIMIT = 60 * 60_000;

describe('Debian with --cpus 2', () => {
  let g: GuestSession;
  const sh = async (cmd: string): Promise<string> => {
    const r = await g.run(cmd);
    assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
    return r.out;
  };
  const loc = async (): Promise<number[]> => {
    const line = (await sh('grep LOC: /proc/interrupts')).trim();
    return line.split(/\s+/).slice(1, 3).map(Number);
  };

  before(async () => {
    if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
    g = await GuestSession.boot({ cpus: 2 });
    await g.waitForShell();
  }, { timeout: BOOT_LIMIT });

  after(() => { if (g && !g.exit) g.vm.turnOff('test end'); });

  test('nproc says 2 and the kernel brought CPU 1 up', async () => {
    assert.equal((await sh('nproc')).trim(), '2');
    assert.match(await sh('dmesg'), /smp: Brought up 1 node, 2 CPUs/);
  });

  test('the LAPIC timer (LOC) ticks on both CPUs', async () => {
    const a = await loc();
    await sh('sleep 1');
    const b = await loc();
    assert.equal(a.length, 2);
    assert.ok(b[0] > a[0] && b[1] > a[1], `LOC before ${a}, after ${b}`);
  });

  test('taskset -c 1 runs work on CPU 1', async () => {
    const out = await sh(`taskset -c 1 sh -c 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; cut -d" " -f39 /proc/self/stat'`);
    assert.equal(out.trim(), '1');
    const out0 = await sh(`taskset -c 0 cut -d" " -f39 /proc/self/stat`);
    assert.equal(out0.trim(), '0');
  });

  test('Linux uses the remote TLB flush and IPI hypercalls', async () => {
    const dmesg = await sh('dmesg');
    assert.match(dmesg, /Using hypercall for remote TLB flush/);
    // Work on both CPUs that changes mappings (fork/exit) makes flushes; IPIs come from the scheduler.
    await sh(`for c in 0 1; do taskset -c $c sh -c 'for i in 1 2 3 4 5 6 7 8; do true | cat >/dev/null; done' & done; wait`);
    const stats = g.vm.hyperv.hypervisor.hypercalls.stats;
    const flushes = (stats.get(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE) ?? 0) + (stats.get(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST) ?? 0);
    assert.ok(flushes > 0, `flush hypercalls: ${flushes}`);
    assert.ok((stats.get(T.HVCALL_SEND_IPI) ?? 0) > 0, 'no HvCallSendSyntheticClusterIpi');
  });

  test('a VMBus channel moved to CPU 1 (MODIFYCHANNEL) interrupts CPU 1', async () => {
    // The heartbeat channel: the host sends it a request every few seconds. (`if`, not `&&`: the loop's status
    // must not depend on which device the glob lists last.)
    const dir = (await sh(`for d in /sys/bus/vmbus/devices/*; do if [ "$(cat $d/class_id)" = "{57164f39-9115-4e78-ab55-382f3bd5422d}" ]; then ls -d $d/channels/* | head -n 1; fi; done`)).trim();
    assert.match(dir, /channels\/\d+$/);
    const hyp = async (): Promise<number> => Number((await sh('grep HYP: /proc/interrupts')).trim().split(/\s+/)[2]);
    await sh(`echo 1 > ${dir}/cpu`);
    assert.equal((await sh(`cat ${dir}/cpu`)).trim(), '1');
    const before = { hyp: await hyp(), irqs: Number(await sh(`cat ${dir}/interrupts`)) };
    await sh('sleep 4');
    const after = { hyp: await hyp(), irqs: Number(await sh(`cat ${dir}/interrupts`)) };
    assert.ok(after.irqs > before.irqs, `heartbeat channel interrupts ${before.irqs} -> ${after.irqs}`);
    assert.ok(after.hyp > before.hyp, `HYP interrupts on CPU 1 ${before.hyp} -> ${after.hyp}`);
  });

  test('no oops, RCU stall or soft lockup', async () => {
    const dmesg = await sh('dmesg');
    assert.doesNotMatch(dmesg, /Oops|BUG:|rcu_sched self-detected stall|rcu: INFO|soft lockup|hard LOCKUP|Call Trace/);
  });
});
