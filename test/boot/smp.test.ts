/**
 * Issue 18 acceptance with the real guest: Debian's stock kernel with 2 and with 4 virtual processors taking
 * turns on the emulated processor (icount clock), one boot per count. Linux starts the APs by INIT-SIPI-SIPI,
 * every CPU takes LAPIC timer interrupts, work pinned to each CPU runs there, the Hyper-V remote TLB flush and
 * IPI hypercalls are used, and VMBus channels moved to other CPUs (heartbeat, storvsc) keep working. Each guest
 * ends with poweroff from its shell.
 *
 * Waits below poll the state that proves the behaviour; their limits are safety nets, not timing assertions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestSession } from './guest-session.js';
import type { HardwareConfig } from '../../src/platform/hardware.js';
import * as T from '../../src/hypervisor/tlfs.js';

const BOOT_LIMIT = 60 * 60_000;
const MiB = 1 << 20;
const HEARTBEAT = '{57164f39-9115-4e78-ab55-382f3bd5422d}';
const STORVSC = '{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}';
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

for (const cpus of [2, 4]) {
  describe(`Debian with --cpus ${cpus}`, () => {
    let g: GuestSession;
    const dir = mkdtempSync(join(tmpdir(), 'hyperts-smp-boot-'));
    const disk = join(dir, 'disk.img');
    // The first 4 MiB hold a pattern the guest reads back through a moved storvsc channel.
    const pattern = Buffer.alloc(4 * MiB);
    for (let i = 0; i < pattern.length; i += 4) pattern.writeUInt32LE((i * 2654435761) >>> 0, i);
    const sh = async (cmd: string): Promise<string> => {
      const r = await g.run(cmd);
      assert.equal(r.status, 0, `'${cmd}' failed (${r.status}):\n${r.out}`);
      return r.out;
    };
    /** A per-CPU line of /proc/interrupts (e.g. 'LOC:', 'HYP:'), one count per CPU. */
    const perCpu = async (label: string): Promise<number[]> => {
      const line = (await sh(`grep ${label} /proc/interrupts`)).trim();
      return line.split(/\s+/).slice(1, 1 + cpus).map(Number);
    };
    /** The channel directories of the VMBus device of class `classId`. */
    const channels = async (classId: string): Promise<string[]> => (await sh(
      // `if`, not `&&`: the loop's status must not depend on which device the glob lists last.
      `for d in /sys/bus/vmbus/devices/*; do if [ "$(cat $d/class_id)" = "${classId}" ]; then ls -d $d/channels/*; fi; done`,
    )).trim().split(/\s+/).filter((s) => s !== '');
    const channelIrqs = async (dirs: string[]): Promise<number> => {
      let n = 0;
      for (const d of dirs) n += Number(await sh(`cat ${d}/interrupts`));
      return n;
    };

    before(async () => {
      if (!GuestSession.imageAvailable()) throw new Error("default guest image missing: run 'npm run setup' (hyperts image build) first");
      const img = Buffer.alloc(16 * MiB);
      pattern.copy(img);
      writeFileSync(disk, img);
      const hardware: HardwareConfig = {
        scsiControllers: 1, networkAdapters: [],
        drives: [{ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: disk }],
      };
      g = await GuestSession.boot({ cpus, hardware });
      await g.waitForShell();
    }, { timeout: BOOT_LIMIT });

    after(() => {
      if (g && !g.exit) g.vm.turnOff('test end');
      rmSync(dir, { recursive: true, force: true });
    });

    test(`nproc says ${cpus}, the kernel brought every CPU up and uses the Hyper-V IPI and remote TLB flush hypercalls`, async () => {
      assert.equal((await sh('nproc')).trim(), String(cpus));
      const dmesg = await sh('dmesg');
      assert.match(dmesg, new RegExp(`smp: Brought up 1 node, ${cpus} CPUs`));
      assert.match(dmesg, /Hyper-V: Using IPI hypercalls/);
      assert.match(dmesg, /Using hypercall for remote TLB flush/);
    });

    test('the LAPIC timer (LOC) ticks on every CPU', async () => {
      // Work pinned to every CPU between the reads: the kernel is tickless when idle (NO_HZ_IDLE), so an idle
      // CPU may rightly take no timer interrupt for a while; a busy one takes its scheduler tick.
      const all = Array.from({ length: cpus }, (_, k) => k).join(' ');
      const a = await perCpu('LOC:');
      await sh(`for c in ${all}; do taskset -c $c sh -c 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done' & done; wait`);
      const b = await perCpu('LOC:');
      assert.equal(a.length, cpus);
      for (let k = 0; k < cpus; k++) assert.ok(b[k] > a[k], `CPU ${k}: LOC before ${a}, after ${b}`);
    });

    test('taskset -c k runs work on CPU k, for every k', async () => {
      for (let k = 0; k < cpus; k++) {
        const out = await sh(`taskset -c ${k} sh -c 'i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; cut -d" " -f39 /proc/self/stat'`);
        assert.equal(out.trim(), String(k), `work pinned to CPU ${k}`);
      }
    });

    test('work on every CPU makes remote TLB flush and IPI hypercalls', async () => {
      const stats = g.vm.hyperv.hypervisor.hypercalls.stats;
      const flushes = (): number => (stats.get(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE) ?? 0) + (stats.get(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST) ?? 0);
      const f0 = flushes(), i0 = stats.get(T.HVCALL_SEND_IPI) ?? 0;
      // Work on all CPUs that changes mappings (fork/exit) makes flushes; IPIs come from the scheduler.
      const all = Array.from({ length: cpus }, (_, k) => k).join(' ');
      await sh(`for c in ${all}; do taskset -c $c sh -c 'for i in 1 2 3 4 5 6 7 8; do true | cat >/dev/null; done' & done; wait`);
      assert.ok(flushes() > f0, `flush hypercalls: ${f0} -> ${flushes()}`);
      assert.ok((stats.get(T.HVCALL_SEND_IPI) ?? 0) > i0, 'no HvCallSendSyntheticClusterIpi during the work');
    });

    test(`the heartbeat channel moved to CPU ${cpus - 1} (MODIFYCHANNEL) interrupts that CPU`, async () => {
      const target = cpus - 1;
      // The host sends the heartbeat channel a request every few seconds.
      const dir = (await channels(HEARTBEAT))[0];
      assert.match(dir ?? '', /channels\/\d+$/);
      await sh(`echo ${target} > ${dir}/cpu`);
      assert.equal((await sh(`cat ${dir}/cpu`)).trim(), String(target));
      const before = { hyp: (await perCpu('HYP:'))[target], irqs: await channelIrqs([dir]) };
      await sh('sleep 4');
      const after = { hyp: (await perCpu('HYP:'))[target], irqs: await channelIrqs([dir]) };
      assert.ok(after.irqs > before.irqs, `heartbeat channel interrupts ${before.irqs} -> ${after.irqs}`);
      assert.ok(after.hyp > before.hyp, `HYP interrupts on CPU ${target} ${before.hyp} -> ${after.hyp}`);
    });

    test('disk I/O keeps working after the storvsc channels move to another CPU', async () => {
      const target = cpus === 2 ? 1 : 2;
      const dirs = await channels(STORVSC);
      assert.ok(dirs.length >= 1, 'no storvsc channel in sysfs');
      for (const d of dirs) {
        await sh(`echo ${target} > ${d}/cpu`);
        assert.equal((await sh(`cat ${d}/cpu`)).trim(), String(target));
      }
      const dev = (await sh('ls /sys/bus/scsi/devices/*:0:0:0/block')).trim();
      assert.match(dev, /^sd[a-z]+$/);
      const irqs0 = await channelIrqs(dirs);
      // Read the host's pattern (page cache dropped: the data comes over the channel), from a task on each CPU.
      for (let k = 0; k < cpus; k++) {
        await sh('echo 3 > /proc/sys/vm/drop_caches');
        const sum = (await sh(`taskset -c ${k} dd if=/dev/${dev} bs=64k count=64 2>/dev/null | md5sum`)).trim().split(/\s+/)[0];
        assert.equal(sum, md5(pattern), `read from CPU ${k}`);
      }
      // A write the guest flushed reaches the host file.
      await sh(`dd if=/dev/urandom of=/tmp/w bs=64k count=16 2>/dev/null && dd if=/tmp/w of=/dev/${dev} bs=64k seek=64 conv=fsync 2>/dev/null`);
      const guestSum = (await sh('md5sum /tmp/w')).trim().split(/\s+/)[0];
      const fd = openSync(disk, 'r');
      const back = Buffer.alloc(MiB);
      try { readSync(fd, back, 0, MiB, 4 * MiB); } finally { closeSync(fd); }
      assert.equal(md5(back), guestSum);
      assert.ok(await channelIrqs(dirs) > irqs0, 'the moved channels carried the I/O');
    });

    test('no TSC-unstable or unstable-clocksource message, no oops, RCU stall or soft lockup', async () => {
      const dmesg = await sh('dmesg');
      assert.doesNotMatch(dmesg, /TSC unstable|clocksource.*unstable|Oops|BUG:|rcu_sched self-detected stall|rcu: INFO|soft lockup|hard LOCKUP|Call Trace/i);
    });

    // Last: it ends the guest (issue 7's check, once in linux.test.ts with a one-CPU boot of its own).
    test('poweroff in the guest ends the VM with exit code 0', async () => {
      g.vm.consoleInput(new TextEncoder().encode('poweroff -f\n'));
      const exit = await g.exited;
      assert.equal(exit.code, 0, `exit: ${exit.reason}`);
    });
  });
}
