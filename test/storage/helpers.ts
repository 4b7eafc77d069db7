/** Shared helpers for the storage tests: temp dirs, qemu-img/libvhdi availability, patterns. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `hyperts-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const haveQemu = spawnSync('qemu-img', ['--version']).status === 0;
export const qemuSkip: string | false = haveQemu ? false : 'qemu-img missing (Debian qemu-utils, see .ci/packages.txt)';
export const PY = '/usr/bin/python3';
export const haveLibvhdi = spawnSync(PY, ['-c', 'import pyvhdi']).status === 0;

export function run(cmd: string, args: string[]): { status: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Deterministic bytes for (seed, offset): every sector distinct, so misplaced data is detected. */
export function pattern(seed: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  const dv = new DataView(b.buffer);
  for (let o = 0; o < length; o += 4) dv.setUint32(o, (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul((offset + o) >>> 2, 0x85ebca6b)) >>> 0, true);
  return b;
}

/** A small PRNG (mulberry32) for reproducible random workloads. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
