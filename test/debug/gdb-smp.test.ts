/**
 * The GDB stub with two vCPUs (a GDB thread per vCPU), on the kernel of smp-gdb-kernel.ts: once with GDB
 * itself (Debian's gdb, batch mode) and once with raw remote-protocol packets for what GDB does not show
 * directly (thread ids it never sends, run states, per-vCPU paging of memory reads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
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
  const gdb = spawn('gdb', ['-nx', '-batch', kernel,
    '-ex', `target remote 127.0.0.1:${port}`,
    '-ex', 'info threads',
    '-ex', 'break ap_only',
    '-ex', 'continue',
    '-ex', 'echo @@stopped\\n',
    '-ex', 'info threads',
    '-ex', 'thread 2',
    '-ex', 'info registers rip r12',
    '-ex', 'x/wx 0x40000000',
    '-ex', 'thread 1',
    '-ex', 'echo @@bsp\\n',
    '-ex', 'info registers rip r12',
    '-ex', 'x/wx 0x40000000',
    '-ex', 'thread 2',
    '-ex', 'stepi',
    '-ex', 'echo @@stepped\\n',
    '-ex', 'info registers rip r12',
    '-ex', 'thread 1',
    '-ex', 'info registers rip',
    '-ex', 'delete',
    '-ex', 'break bsp_done',
    '-ex', 'continue',
    '-ex', 'echo @@done\\n',
    '-ex', 'print (long)ap_count',
    '-ex', 'delete',
    '-ex', 'continue',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gdb.stdout.on('data', (d: Buffer) => { out += d; });
  gdb.stderr.on('data', (d: Buffer) => { out += d; });
  const code = await new Promise<number | null>((r) => gdb.on('exit', r));
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
  const apCount = /\$\d+ = (\d+)/.exec(done);
  assert.ok(apCount && Number(apCount[1]) >= AP_COUNT_LIMIT, out);
  assert.match(done, /exited with code 01/, out);
  assert.equal(exit.code, 1, `debug-exit 0 -> exit code 1 (${exit.reason})`);
  assert.equal(code, 0, out);
});
