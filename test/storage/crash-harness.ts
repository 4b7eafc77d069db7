/**
 * Crash-safety harness for VHDX: a reproducible workload of writes, unmaps and flushes, run either over the
 * power-loss file layer (everything not flushed is lost, or a random part of it survives) or in a child process
 * killed with SIGKILL. After reopening (log replay) the checks are: the file opens and passes the structural check
 * (and qemu-img check for dynamic disks); every write acknowledged before the last completed flush reads back
 * intact; every other sector holds its old data or data of a write to that very sector (sector contents depend on
 * their position, so data of another block or sector is detected).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Disk } from '../../src/storage/disk.js';
import { createVhdx, openDisk, VhdxDisk } from '../../src/storage/open.js';
import { checkVhd } from '../../src/storage/vhdx/ops.js';
import { haveQemu, pattern, rng, run, tempDir } from './helpers.js';
import { PowerLossFile } from './mem-file.js';

export interface Op { kind: 'write' | 'unmap' | 'flush'; off: number; len: number; id: number }

export const SIZE = 8 * 1024 * 1024;
export const BLOCK = 1024 * 1024;
const SECTOR = 512;

export function genOps(seed: number, count: number): Op[] {
  const r = rng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const x = r();
    if (x < 0.15) { ops.push({ kind: 'flush', off: 0, len: 0, id: i + 1 }); continue; }
    let len: number, off: number;
    if (x < 0.22) { len = BLOCK; off = Math.floor(r() * (SIZE / BLOCK)) * BLOCK; }
    else {
      len = (1 + Math.floor(r() * (r() < 0.2 ? 512 : 16))) * SECTOR;
      // Often straddle a block boundary.
      off = r() < 0.3 ? Math.max(0, Math.min(SIZE - len, Math.floor(r() * (SIZE / BLOCK)) * BLOCK - SECTOR * Math.floor(r() * 8)))
        : Math.floor(r() * ((SIZE - len) / SECTOR + 1)) * SECTOR;
    }
    ops.push({ kind: x < 0.3 ? 'unmap' : 'write', off, len, id: i + 1 });
  }
  return ops;
}

export async function runOp(d: Disk, op: Op): Promise<void> {
  if (op.kind === 'flush') await d.flush();
  else if (op.kind === 'unmap') await d.unmap(op.off, op.len);
  else await d.write(op.off, pattern(op.id, op.off, op.len));
}

/** Problems found comparing the disk with what the acknowledgements allow. */
export async function verify(d: Disk, ops: Op[], lastFlushIdx: number, lastStartedIdx: number, initial: (off: number) => Uint8Array): Promise<string[]> {
  const n = SIZE / SECTOR;
  const stable = new Int32Array(n); // 0 = initial, -1 = zeros, k = op id
  const cands: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i <= Math.min(lastStartedIdx, ops.length - 1); i++) {
    const op = ops[i]!;
    if (op.kind === 'flush') continue;
    const v = op.kind === 'unmap' ? -1 : op.id;
    for (let s = op.off / SECTOR; s < (op.off + op.len) / SECTOR; s++) {
      if (i <= lastFlushIdx) stable[s] = v; else cands[s]!.push(v);
    }
  }
  const all = new Uint8Array(SIZE);
  await d.read(0, all);
  const problems: string[] = [];
  const zero = new Uint8Array(SECTOR);
  const content = (v: number, off: number): Uint8Array => v === -1 ? zero : v === 0 ? initial(off) : pattern(v, off, SECTOR);
  for (let s = 0; s < n && problems.length < 5; s++) {
    const got = Buffer.from(all.subarray(s * SECTOR, (s + 1) * SECTOR));
    const ok = [stable[s]!, ...cands[s]!].some((v) => got.equals(content(v, s * SECTOR)));
    if (!ok) problems.push(`sector ${s} (offset ${s * SECTOR}) holds neither its flushed version ${stable[s]} nor a later write [${cands[s]!.join(',')}]`);
  }
  return problems;
}

export type CrashKind = 'dynamic' | 'differencing';

/** A base file (and for differencing its parent filled with a pattern); returns the disk path and initial content. */
export async function prepare(dir: string, kind: CrashKind): Promise<{ path: string; initial: (off: number) => Uint8Array }> {
  const path = join(dir, `${kind}.vhdx`);
  if (kind === 'dynamic') {
    await createVhdx({ path, sizeBytes: SIZE, type: 'dynamic', blockSizeBytes: BLOCK });
    return { path, initial: () => new Uint8Array(SECTOR) };
  }
  const parent = join(dir, 'parent.vhdx');
  await createVhdx({ path: parent, sizeBytes: SIZE, type: 'dynamic', blockSizeBytes: BLOCK });
  const p = await openDisk(parent);
  await p.write(0, pattern(999_999, 0, SIZE));
  await p.close();
  await createVhdx({ path, type: 'differencing', parentPath: parent, blockSizeBytes: BLOCK });
  return { path, initial: (off) => pattern(999_999, off, SECTOR) };
}

async function afterCrash(path: string, kind: CrashKind, ops: Op[], lastFlush: number, lastStarted: number, initial: (off: number) => Uint8Array): Promise<string[]> {
  const problems: string[] = [];
  let d: Disk;
  try {
    d = await openDisk(path);
  } catch (e) {
    return [`reopen failed: ${(e as Error).message}`];
  }
  try {
    problems.push(...await verify(d, ops, lastFlush, lastStarted, initial));
  } finally {
    await d.close();
  }
  problems.push(...await checkVhd(path));
  if (kind === 'dynamic' && haveQemu) {
    const r = run('qemu-img', ['check', '-f', 'vhdx', path]);
    if (r.status !== 0) problems.push(`qemu-img check: ${r.out.trim()}`);
  }
  return problems;
}

/** One simulated power loss at a random I/O call; `partial` keeps a random subset of unflushed writes. */
export async function powerLossCase(seed: number, kind: CrashKind, partial: boolean): Promise<string[]> {
  const t = tempDir('vhdx-powerloss');
  try {
    const { path, initial } = await prepare(t.dir, kind);
    const ops = genOps(seed, 60);
    const r = rng(seed ^ 0xabcdef);
    const f = new PowerLossFile(path, readFileSync(path), 5 + Math.floor(r() * 400));
    const d = await VhdxDisk.open(path, { file: f, lock: false });
    let lastFlush = -1, lastStarted = -1;
    try {
      for (let i = 0; i < ops.length; i++) {
        lastStarted = i;
        await runOp(d, ops[i]!);
        if (ops[i]!.kind === 'flush') lastFlush = i;
      }
      await d.close();
      lastFlush = ops.length - 1;
    } catch (e) {
      if (!f.lost) throw e;
      await d.close().catch(() => undefined);
    }
    writeFileSync(path, await f.afterPowerLoss(() => partial && r() < 0.5));
    return (await afterCrash(path, kind, ops, lastFlush, lastStarted, initial)).map((p) => `seed ${seed} ${kind}${partial ? ' partial' : ''} crash at call ${f.crashAt}: ${p}`);
  } finally {
    t.cleanup();
  }
}

/** A child process doing the workload on a real file, killed with SIGKILL after a random number of acknowledgements. */
export async function sigkillCase(seed: number, kind: CrashKind, childScript: string): Promise<string[]> {
  const t = tempDir('vhdx-sigkill');
  try {
    const { path, initial } = await prepare(t.dir, kind);
    const count = 80;
    const ops = genOps(seed, count);
    const killAfter = 1 + Math.floor(rng(seed ^ 0x1234)() * (count - 1));
    const child = spawn(process.execPath, [childScript, path, String(seed), String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acks = '';
    let killed = false;
    child.stdout.on('data', (b: Buffer) => {
      acks += b.toString();
      if (!killed && acks.split('\n').length - 1 >= killAfter) { killed = true; child.kill('SIGKILL'); }
    });
    await new Promise<void>((res) => child.on('close', () => res()));
    const done = acks.split('\n').filter((l) => l !== '').map(Number);
    const lastAck = done.length ? done[done.length - 1]! : -1;
    let lastFlush = -1;
    for (const i of done) if (ops[i]!.kind === 'flush') lastFlush = i;
    return (await afterCrash(path, kind, ops, lastFlush, lastAck + 1, initial)).map((p) => `seed ${seed} ${kind} SIGKILL after ${done.length} acks: ${p}`);
  } finally {
    t.cleanup();
  }
}
