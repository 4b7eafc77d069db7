/**
 * Random crash runs of checkpoint disk work: each run sets up a VM (fast test worker, VHDX with known data),
 * runs one operation (checkpoint offline/online, apply, merge offline/online) in a child service, and
 * SIGKILLs the service or the VM's worker at a random moment of it. A new service then recovers, and the run
 * checks: the VM is as before or as after the operation, never in between; data written before the operation
 * reads back (and, online, every record the guest saw acknowledged); no file is left over, every chain opens
 * with its links intact and passes the structural check; files removed at start are named in an event.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmmsService } from '../../src/vmms/service.js';
import { createVhdx, openDisk, VhdxDisk } from '../../src/storage/open.js';
import type { Disk } from '../../src/storage/disk.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { diskDir, folderFiles, readMark, writeMark } from './checkpoint-disk-helpers.js';
import { ackedRecord, checkRing } from './disk-writer-records.js';
import { testBootRoots } from './helpers.js';

const child = fileURLToPath(new URL('./checkpoint-crash-child.js', import.meta.url));
const worker = fileURLToPath(new URL('./disk-worker.js', import.meta.url));
const REGION = 4 << 20, SLOTS = 256, FILL_AT = 8 << 20;

export const OPS = ['checkpoint-off', 'checkpoint-online', 'apply', 'merge-off', 'merge-online'] as const;
export type CrashOp = typeof OPS[number];
export interface RunResult { op: CrashOp; victim: 'service' | 'worker'; delayMs: number; killed: boolean; outcome: 'before' | 'after'; removed: string[]; problems: string[] }

/** Deterministic pseudo-random numbers (the seed reproduces a run). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}

/** HYPERTS_CRASH_ISOLATION=required runs the VM's worker under bubblewrap (files handed over as descriptors). */
export const crashIsolation = (): 'off' | 'required' => process.env.HYPERTS_CRASH_ISOLATION === 'required' ? 'required' : 'off';
const service = (dir: string): VmmsService => new VmmsService({ dataDir: dir, bootRoots: testBootRoots(), isolation: crashIsolation(), workerPath: worker, turnOffGraceMs: 5000 });
const diskOf = (s: VmmsService): string => s.get('vm').config.hardware.drives.find((d) => d.kind === 'disk')!.path!;

async function fill(path: string, mib: number, seed: number): Promise<void> {
  const d = await openDisk(path, { purpose: 'test' });
  try { for (let m = 0; m < mib; m++) await d.write(FILL_AT + m * (1 << 20), Buffer.alloc(1 << 20, (seed + m) & 0xff)); await d.flush(); } finally { await d.close(); }
}
async function fillIntact(path: string, mib: number, seed: number): Promise<boolean> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try {
    const b = Buffer.alloc(1 << 20);
    for (let m = 0; m < mib; m++) { await d.read(FILL_AT + m * (1 << 20), b); if (!b.equals(Buffer.alloc(1 << 20, (seed + m) & 0xff))) return false; }
    return true;
  } finally { await d.close(); }
}

interface Setup { dir: string; files: string; base: string; ack: string; fillMib: number }

/** A VM on a VHDX showing A and 6 MiB of data; merge and apply runs add checkpoint c1 and B (+6 MiB) after it. */
async function setup(op: CrashOp, seed: number): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-cprand-'));
  const s = service(dir);
  const files = diskDir(dir, 'vm');
  const base = join(files, 'vm.vhdx');
  // An isolated writer may write only its VM's folder, which is also its current folder.
  const isolated = crashIsolation() !== 'off';
  let ack = join(dir, 'writer.ack');
  try {
    await createVhdx({ path: base, sizeBytes: 32 << 20, type: 'dynamic' });
    s.create({ name: 'vm', kernel: worker, memory: '64M', processor: 'emulated', checkpointType: 'Standard', cmdline: JSON.stringify({ ackFile: isolated ? 'writer.ack' : ack, regionStart: REGION, slots: SLOTS }) });
    if (isolated) ack = join(s.vmDirectory('vm'), 'writer.ack');
    await s.drives.addHardDisk('vm', { path: base });
    await writeMark(base, 'A');
    await fill(base, 6, seed);
    if (op === 'apply' || op.startsWith('merge')) {
      await s.checkpoint('vm', 'c1');
      await writeMark(diskOf(s), 'B');
      await fill(diskOf(s), 6, seed + 100);
    }
  } finally { await s.close(); }
  return { dir, files, base, ack, fillMib: 6 };
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

/** Runs the operation in a child service; kills `victim` `delayMs` after the operation started (null: never). */
async function runChild(su: Setup, op: CrashOp, victim: 'service' | 'worker', delayMs: number | null, crashAt?: string): Promise<{ killed: boolean; ms: number; out: string }> {
  const cop = op === 'checkpoint-off' ? 'checkpoint' : op === 'checkpoint-online' ? 'start-checkpoint' : op === 'apply' ? 'apply' : op === 'merge-off' ? 'remove' : 'start-remove';
  const p = spawn(process.execPath, [child, su.dir, cop, 'vm', 'c1', su.ack], { env: { ...process.env, HYPERTS_TEST_WORKER: worker, HYPERTS_CRASH_AT: crashAt ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let workerPid = 0, startedAt = 0, killed = false, timer: NodeJS.Timeout | undefined;
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const w = /worker (\d+)/.exec(out);
    if (w) workerPid = Number(w[1]);
    if (!startedAt && out.includes('op-start')) {
      startedAt = performance.now();
      if (delayMs !== null) {
        timer = setTimeout(() => {
          if (out.includes('op-done')) return;
          const pid = victim === 'worker' ? workerPid : p.pid!;
          if (pid && alive(pid)) { process.kill(pid, 'SIGKILL'); killed = true; }
        }, delayMs);
      }
    }
  });
  const code = await new Promise<number | null>((r) => p.on('exit', (c, sig) => { if (crashAt && sig === 'SIGKILL') killed = true; r(c); }));
  clearTimeout(timer);
  const ms = out.includes('op-done') ? performance.now() - startedAt : -1;
  // A killed service's worker ends when it notices (it must let go of its disks before recovery).
  for (let i = 0; workerPid && alive(workerPid) && i < 400; i++) await new Promise((r) => setTimeout(r, 25));
  if (!killed && code !== 0) throw new Error(`the operation failed without a kill (exit ${code}): ${err.slice(-2000)}`);
  return { killed, ms, out: out + err };
}

/** How long each operation takes unkilled here (the random kill moments spread over that). */
export async function calibrate(): Promise<Record<CrashOp, number>> {
  const r = {} as Record<CrashOp, number>;
  for (const op of OPS) {
    // The quicker of two runs (the first pays for warming up).
    for (let k = 0; k < 2; k++) {
      const su = await setup(op, 1);
      try { r[op] = Math.min(r[op] ?? Infinity, Math.max(20, (await runChild(su, op, 'service', null)).ms)); } finally { rmSync(su.dir, { recursive: true, force: true }); }
    }
  }
  return r;
}

/** One run: set up, kill, recover, check. */
export async function crashRun(op: CrashOp, victim: 'service' | 'worker', delayMs: number | null, seed: number, crashAt?: string): Promise<RunResult> {
  const su = await setup(op, seed);
  const problems: string[] = [];
  const res: RunResult = { op, victim, delayMs: delayMs ?? -1, killed: false, outcome: 'before', removed: [], problems };
  try {
    res.killed = (await runChild(su, op, victim, delayMs, crashAt)).killed;
    const present = folderFiles(su.files);
    const s = service(su.dir);
    try {
      await s.checkpointDisksSettled();
      const after = folderFiles(su.files);
      res.removed = present.filter((f) => !after.includes(f));
      const events = s.events({ name: 'vm', limit: 1000 }).map((e) => e.message).join('\n');
      for (const f of res.removed) if (!events.includes(f)) problems.push(`${f} was removed at start without an event naming it`);
      const vm = s.get('vm');
      if (vm.state !== 'Off') problems.push(`the VM is ${vm.state}, not Off`);
      const cps = s.checkpoints('vm');
      const cur = diskOf(s);
      // Before or after, never in between.
      if (op.startsWith('checkpoint')) {
        if (cps.length === 0) { res.outcome = 'before'; if (cur !== su.base) problems.push(`no checkpoint, but the VM is on ${basename(cur)}`); }
        else {
          res.outcome = 'after';
          if (cps.length !== 1 || cps[0].disks[0]?.path !== su.base) problems.push(`checkpoints ${JSON.stringify(cps.map((c) => [c.name, c.disks]))}`);
          if (cur === su.base) problems.push('the checkpoint exists but the VM still writes its disk');
        }
        if (await readMark(cur) !== 'A') problems.push(`the VM's disk shows '${await readMark(cur)}', not A`);
      } else if (op === 'apply') {
        const m = await readMark(cur);
        res.outcome = m === 'A' ? 'after' : 'before';
        if (m !== 'A' && m !== 'B') problems.push(`the VM's disk shows '${m}', neither A (applied) nor B (before)`);
        if (cps.length !== 1 || await readMark(cps[0].disks[0].path) !== 'A') problems.push('checkpoint c1 lost its contents');
        if (!await fillIntact(cur, 6, m === 'A' ? seed : seed + 100)) problems.push('data written before the apply does not read back');
      } else {
        res.outcome = cps.length ? 'before' : 'after';
        if (cps.length === 0 && cur !== su.base) problems.push(`the checkpoint is gone but the VM is on ${basename(cur)}, not merged`);
        if (cps.length === 1 && cur === su.base) problems.push('the checkpoint exists but the VM writes its disk');
        if (await readMark(cur) !== 'B') problems.push(`the VM's disk shows '${await readMark(cur)}', not B`);
        if (!await fillIntact(cur, 6, seed + 100)) problems.push('data written before the merge does not read back');
        if (cps.length === 1 && await readMark(cps[0].disks[0].path) !== 'A') problems.push('checkpoint c1 lost its contents');
      }
      // The checkpoint's (or, before any, the VM's) first data; a finished merge overwrote it with the newer.
      const oldest = cps[0]?.disks[0]?.path ?? (op.startsWith('merge') ? null : su.base);
      if (oldest && !await fillIntact(oldest, 6, seed)) problems.push('the oldest data does not read back');
      if (op.endsWith('online')) {
        const ring = await checkRing(cur, REGION, SLOTS, ackedRecord(su.ack));
        problems.push(...ring.problems.slice(0, 5));
      }
      // No leftovers: every file is the VM's disk, a checkpoint's, or an ancestor of one; all pass the check.
      const needed = new Set<string>();
      for (const p of [cur, ...cps.flatMap((c) => c.disks.map((d) => d.path))]) {
        const d = await openDisk(p, { readOnly: true, lock: false }).catch((e: Error) => { problems.push(`${basename(p)} does not open with its chain: ${e.message}`); return null; });
        for (let x: Disk | null = d; x; x = x instanceof VhdxDisk ? x.parent : null) needed.add(basename(x.path));
        await d?.close();
      }
      for (const f of after) if (!needed.has(f)) problems.push(`${f} is left over`);
      for (const f of after) for (const p of await checkVhd(join(su.files, f))) problems.push(p);
      if (!existsSync(cur)) problems.push('the VM\'s disk is missing');
      // And the VM runs again on what it has.
      if (!problems.length) {
        await s.start('vm');
        await s.stop('vm', { turnOff: true });
      }
    } finally { await s.close(); }
  } catch (e) {
    problems.push(`run failed: ${(e as Error).stack ?? e}`);
  } finally {
    if (!problems.length) rmSync(su.dir, { recursive: true, force: true });
    else problems.push(`(data directory kept: ${su.dir})`);
  }
  return res;
}

/** `count` runs over all operations with random victims and moments; `log` gets one line per run. */
export async function crashRuns(count: number, seed: number, log: (line: string) => void): Promise<RunResult[]> {
  const times = await calibrate();
  log(`operation times unkilled (ms): ${Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
  const rand = rng(seed);
  const results: RunResult[] = [];
  for (let i = 0; i < count; i++) {
    const op = OPS[i % OPS.length];
    const victim = op.endsWith('online') && rand() < 0.5 ? 'worker' : 'service';
    const delayMs = Math.floor(rand() * times[op]);
    const r = await crashRun(op, victim, delayMs, 1000 + i);
    results.push(r);
    log(`run ${i + 1}/${count}: ${op}, killed the ${victim} after ${delayMs} ms: ${r.killed ? 'killed' : 'finished first'}, outcome ${r.outcome}` +
      `${r.removed.length ? `, removed at start: ${r.removed.join(' ')}` : ''}${r.problems.length ? `\n  PROBLEMS: ${r.problems.join('\n  ')}` : ''}`);
  }
  return results;
}
