/**
 * The GDB stub with two vCPUs (a GDB thread per vCPU), on the kernel of smp-gdb-kernel.ts: once with GDB
 * itself (Debian's gdb, batch mode) and once with raw remote-protocol packets for what GDB does not show
 * directly (thread ids it never sends, run states, per-vCPU paging of memory reads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { gdbBatch } from './gdb-batch.js';
import { Partition, type PartitionExit } from '../../src/platform/partition.js';
import { smpGdbKernel, AP_COUNT_LIMIT } from './smp-gdb-kernel.js';

const haveTools = spawnSync('as', ['--version']).status === 0 && spawnSync('gdb', ['--version']).status === 0;
const skip = haveTools ? false : 'needs binutils and gdb';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

async function startVm(kernel: string): Promise<{ port: number; exited: Promise<PartitionExit> }> {
  const port = await freePort();
  const vm = await Partition.create({
    processor: 'emulated', memoryBytes: 64 * 1024 * 1024, cpus: 2, enlightened: false,
    kernel, cmdline: '', clockMode: 'icount', gdbPort: port, gdbWait: true,
  });
  return { port, exited: vm.start() };
}

/** A value GDB printed for `info registers NAME` (the last one when printed several times). */
function regValues(out: string, name: string): bigint[] {
  return [...out.matchAll(new RegExp(`^${name}\\s+(0x[0-9a-f]+)`, 'gm'))].map((m) => BigInt(m[1]));
}

test('gdb with 2 vCPUs: info threads, a breakpoint only the AP reaches stops thread 2, per-thread registers and memory, stepping one thread, continue runs both', { skip }, async () => {
  const kernel = smpGdbKernel();
  const { port, exited } = await startVm(kernel);
  // `echo` markers split the output into the phases the assertions look at.
  const { out, code } = await gdbBatch(kernel, port, [
    'info threads',
    'break ap_only',
    'continue',
    'echo @@stopped\\n',
    'info threads',
    'thread 2',
    'info registers rip r12',
    'x/wx 0x40000000',
    'thread 1',
    'echo @@bsp\\n',
    'info registers rip r12',
    'x/wx 0x40000000',
    'thread 2',
    'stepi',
    'echo @@stepped\\n',
    'info registers rip r12',
    'thread 1',
    'info registers rip',
    'delete',
    'break bsp_done',
    'continue',
    'echo @@done\\n',
    'info threads',
    'print (long)ap_count',
    'delete',
    'continue',
  ]);
  const exit = await exited;
  const [attached, stopped, bsp, stepped, done] = out.split(/@@\w+\n/);
  assert.ok(done !== undefined, out);

  // Before the guest runs: two threads, the AP still waiting for its startup IPI.
  assert.match(attached, /^\*?\s+1\s+Thread 1 \(CPU#0 \[running\]\)/m, out);
  assert.match(attached, /^\s+2\s+Thread 2 \(CPU#1 \[wait-for-SIPI\]\)/m, out);
  // The breakpoint in code only the AP runs names thread 2, which becomes GDB's current thread.
  assert.match(attached, /Thread 2 hit Breakpoint 1, .*ap_only/, out);
  assert.match(stopped, /^\*\s+2\s+Thread 2 \(CPU#1 \[running\]\).*ap_only/m, out);
  // Each thread shows its own vCPU: the AP at ap_only with r12 = 0xa9a9, the BSP in its loop with 0xb5b5,
  // and virtual 0x40000000 read through each vCPU's own page tables.
  const apRip = regValues(stopped, 'rip')[0];
  assert.match(stopped, /^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <ap_only>/m, out);
  assert.equal(regValues(stopped, 'r12')[0], 0xa9a9n, out);
  assert.match(stopped, /0x40000000:\s+0x22222222/, out);
  assert.match(bsp, /^rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <bsp_loop(\+\d+)?>/m, out);
  assert.equal(regValues(bsp, 'r12')[0], 0xb5b5n, out);
  assert.match(bsp, /0x40000000:\s+0x11111111/, out);
  const bspRip = regValues(bsp, 'rip')[0];
  // stepi on thread 2 runs one AP instruction (addq $1, %r12: 4 bytes); the BSP does not move.
  const [apRip2, bspRip2] = regValues(stepped, 'rip');
  assert.equal(apRip2, apRip + 4n, out);
  assert.equal(regValues(stepped, 'r12')[0], 0xa9aan, out);
  assert.equal(bspRip2, bspRip, 'the BSP stays put while thread 2 steps');
  // continue resumes both: the AP counts to the limit, and only then does the BSP reach bsp_done.
  assert.match(stepped, /Thread 1 hit Breakpoint 2, .*bsp_done/, out);
  assert.match(done, /^\s+2\s+Thread 2 \(CPU#1 \[halted\]\)/m, 'the AP halted after counting');
  const apCount = /\$\d+ = (\d+)/.exec(done);
  assert.ok(apCount && Number(apCount[1]) >= AP_COUNT_LIMIT, out);
  assert.match(done, /exited with code 01/, out);
  assert.equal(exit.code, 1, `debug-exit 0 -> exit code 1 (${exit.reason})`);
  assert.equal(code, 0, out);
});

/** A minimal remote-protocol client: sends a packet, answers with the reply's body (acks skipped). */
class RspClient {
  private buf = '';
  private waiting: (() => void) | null = null;
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.setNoDelay(true);
    sock.on('data', (d: string) => { this.buf += d; this.waiting?.(); });
  }
  /** Connects once the partition listens (start() opens the port asynchronously). */
  static async open(port: number): Promise<RspClient> {
    for (let tries = 0; ; tries++) {
      try {
        return await new Promise<RspClient>((resolve, reject) => {
          const s = connect(port, '127.0.0.1', () => resolve(new RspClient(s)));
          s.once('error', reject);
        });
      } catch (e) {
        if (tries >= 200) throw e;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }
  async ask(p: string): Promise<string> {
    this.send(p);
    return this.reply();
  }
  /** Ctrl-C while the VM runs; answers with the stop reply. */
  interrupt(): Promise<string> {
    this.sock.write('\x03', 'latin1');
    return this.reply();
  }
  private async reply(): Promise<string> {
    for (;;) {
      const m = /\$([^#]*)#[0-9a-f]{2}/.exec(this.buf);
      if (m) { this.buf = this.buf.slice(m.index + m[0].length); this.sock.write('+'); return m[1]; }
      await new Promise<void>((r) => { this.waiting = r; });
    }
  }
  /** A packet whose reply comes later (continue). */
  send(p: string): void {
    let sum = 0;
    for (const c of p) sum = (sum + c.charCodeAt(0)) & 0xff;
    this.sock.write(`$${p}#${sum.toString(16).padStart(2, '0')}`, 'latin1');
  }
  close(): void { this.sock.destroy(); }
}

const hexText = (s: string): string => Buffer.from(s).toString('hex');
const rip = async (c: RspClient, thread: number): Promise<bigint> => {
  assert.equal(await c.ask(`Hg${thread}`), 'OK');
  return Buffer.from(await c.ask('p10'), 'hex').readBigUInt64LE();
};

test('remote protocol with 2 vCPUs: thread ids are checked, an AP waiting for SIPI does not run when stepped, Hg picks the registers and page tables, vCont steps one vCPU', { skip }, async () => {
  const kernel = smpGdbKernel();
  const { port, exited } = await startVm(kernel);
  const apOnly = BigInt(`0x${/^([0-9a-f]+) T ap_only$/m.exec(spawnSync('nm', [kernel], { encoding: 'utf8' }).stdout)![1]}`);
  const c = await RspClient.open(port);
  assert.equal(await c.ask('qfThreadInfo'), 'm01,02');
  assert.equal(await c.ask('qsThreadInfo'), 'l');
  assert.equal(await c.ask('qC'), 'QC01');
  assert.equal(await c.ask('qThreadExtraInfo,2'), hexText('CPU#1 [wait-for-SIPI]'));
  assert.equal(await c.ask('qThreadExtraInfo,1'), hexText('CPU#0 [running]'));
  // Threads that do not exist, and ids that are not numbers, are errors (and change nothing).
  for (const bad of ['Hg3', 'Hc3', 'Hgzz', 'Hg', 'Hx1', 'T3', 'T0', 'Tzz', 'qThreadExtraInfo,3', 'qThreadExtraInfo,', 'vCont;s:3', 'vCont;s:zz', 'vCont;q', 'Hg100000001']) {
    assert.match(await c.ask(bad), /^E[0-9a-f]{2}$/, bad);
  }
  assert.equal(await c.ask('T2'), 'OK');
  assert.equal(await c.ask('T1'), 'OK');
  // Stepping the AP before its startup IPI reports a stop but runs nothing.
  const sipiRip = await rip(c, 2);
  assert.equal(await c.ask('vCont;s:2'), 'T05thread:02;');
  assert.equal(await rip(c, 2), sipiRip);
  assert.equal(await c.ask('qThreadExtraInfo,2'), hexText('CPU#1 [wait-for-SIPI]'));

  assert.equal(await c.ask(`Z0,${apOnly.toString(16)},1`), 'OK');
  assert.equal(await c.ask('vCont;c'), 'T05swbreak:;thread:02;');
  assert.equal(await c.ask('qC'), 'QC02');
  assert.equal(await c.ask('qThreadExtraInfo,2'), hexText('CPU#1 [running]'));
  assert.equal(await rip(c, 2), apOnly);
  // The same virtual address through each vCPU's own page tables.
  assert.equal(await c.ask('Hg2'), 'OK');
  assert.equal(await c.ask('m40000000,4'), '22222222');
  assert.equal(await c.ask('Hg1'), 'OK');
  assert.equal(await c.ask('m40000000,4'), '11111111');
  // Writes go through the selected vCPU's paging too (the BSP's frame only).
  assert.equal(await c.ask('M40000004,4:78563412'), 'OK');
  assert.equal(await c.ask('m40000004,4'), '78563412');
  assert.equal(await c.ask('Hg2'), 'OK');
  assert.equal(await c.ask('m40000004,4'), '00000000');
  // Breakpoint bytes stay hidden from memory reads.
  assert.equal(await c.ask(`m${apOnly.toString(16)},1`), '49', 'REX.W of addq, not INT3');

  const bspRip = await rip(c, 1);
  // GDB's step with the others "continuing": in all-stop, only the stepped vCPU runs.
  assert.equal(await c.ask('z0,' + apOnly.toString(16) + ',1'), 'OK');
  assert.equal(await c.ask('vCont;s:2;c'), 'T05thread:02;');
  assert.equal(await rip(c, 2), apOnly + 4n);
  assert.equal(await rip(c, 1), bspRip);
  // Hc picks the vCPU of the legacy step packet.
  assert.equal(await c.ask('Hc1'), 'OK');
  assert.equal(await c.ask('s'), 'T05thread:01;');
  assert.notEqual(await rip(c, 1), bspRip);
  assert.equal(await rip(c, 2), apOnly + 4n);
  assert.equal(await c.ask('qC'), 'QC01');
  // Ctrl-C while both run (the BSP loops for as long as `forever` is set) names the vCPU that was running.
  const forever = /^([0-9a-f]+) [DdBb] forever$/m.exec(spawnSync('nm', [kernel], { encoding: 'utf8' }).stdout)![1];
  assert.equal(await c.ask(`M${forever},8:0100000000000000`), 'OK');
  c.send('vCont;c');
  await new Promise((r) => setTimeout(r, 300));
  const stop = await c.interrupt();
  const m = /^T02thread:(0[12]);$/.exec(stop);
  assert.ok(m, stop);
  assert.equal(await c.ask('qC'), `QC${m[1]}`);
  assert.equal(await c.ask('Hg2'), 'OK');
  const apCount = /^([0-9a-f]+) [DdBb] ap_count$/m.exec(spawnSync('nm', [kernel], { encoding: 'utf8' }).stdout)![1];
  assert.ok(Buffer.from(await c.ask(`m${apCount},8`), 'hex').readBigUInt64LE() > 0n, 'the AP ran after the continue');
  assert.equal(await c.ask(`M${forever},8:0000000000000000`), 'OK');
  // Continue runs both to the end: the BSP leaves only once the AP has counted to the limit.
  assert.equal(await c.ask('c'), 'W01');
  c.close();
  assert.equal((await exited).code, 1);
});
