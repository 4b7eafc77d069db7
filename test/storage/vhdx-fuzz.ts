/**
 * Mutation fuzzing of the VHDX parser with fast-check: valid files (clean dynamic, fixed, dirty with a log entry,
 * differencing) get bytes changed in their headers, region tables, log, metadata and BAT (checksums recomputed
 * half the time so mutations get past them), or get truncated. A read-only open must either fail with a
 * VhdxFormatError or give a disk whose reads work; nothing may write the file, throw anything else, or hang.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { DiskError } from '../../src/storage/disk.js';
import { createVhdx, openDisk, VhdxDisk } from '../../src/storage/open.js';
import { crcWithZeroField, MiB, VhdxFormatError } from '../../src/storage/vhdx/format.js';
import { pattern, tempDir } from './helpers.js';
import { MemFile, PowerLossFile } from './mem-file.js';

interface Seed { name: string; bytes: Uint8Array; path: string }

async function seeds(): Promise<Seed[]> {
  const t = tempDir('vhdx-fuzz');
  try {
    const out: Seed[] = [];
    const mk = async (name: string, type: 'dynamic' | 'fixed', parent?: string): Promise<string> => {
      const p = join(t.dir, name);
      await createVhdx({ path: p, sizeBytes: 4 * MiB, type, blockSizeBytes: MiB, parentPath: parent });
      const d = await openDisk(p);
      await d.write(0, pattern(1, 0, 8192));
      await d.write(2 * MiB + 4096, pattern(2, 2 * MiB + 4096, 4096));
      await d.close();
      out.push({ name, bytes: readFileSync(p), path: p });
      return p;
    };
    const dyn = await mk('dynamic.vhdx', 'dynamic');
    await mk('fixed.vhdx', 'fixed');
    await createVhdx({ path: join(t.dir, 'diff.vhdx'), type: 'differencing', parentPath: dyn, blockSizeBytes: MiB });
    out.push({ name: 'diff.vhdx', bytes: readFileSync(join(t.dir, 'diff.vhdx')), path: join(t.dir, 'diff.vhdx') });
    // A dirty file: power lost after the log entry is durable, before it is applied.
    for (let crashAt = 1; crashAt < 40; crashAt++) {
      const f = new PowerLossFile(dyn, out[0]!.bytes, crashAt);
      const d = await VhdxDisk.open(dyn, { file: f, lock: false });
      try { await d.write(3 * MiB, pattern(3, 3 * MiB, 4096)); await d.flush(); await d.close(); } catch { /* lost */ }
      const img = Buffer.from(await f.afterPowerLoss());
      const h = (o: number) => img.subarray(o, o + 4096);
      const cur = h(65536).readBigUInt64LE(8) > h(131072).readBigUInt64LE(8) ? h(65536) : h(131072);
      if (!cur.subarray(48, 64).every((x) => x === 0) && img.readUInt32LE(3 * MiB + 3 * 8) === 0) {
        out.push({ name: 'dirty.vhdx', bytes: img, path: join(t.dir, 'dirty.vhdx') });
        break;
      }
    }
    assert.equal(out.length, 4, 'built the dirty seed');
    return out;
  } finally {
    t.cleanup();
  }
}

const TARGETS = {
  ident: [0, 16], header1: [64 * 1024, 80], header2: [128 * 1024, 80], region1: [192 * 1024, 112], region2: [256 * 1024, 112],
  log: [MiB, 3 * 4096], mdtable: [2 * MiB, 256], mditems: [2 * MiB + 64 * 1024, 8192], bat: [3 * MiB, 256],
} as const;
type Target = keyof typeof TARGETS;

function fixChecksums(b: Uint8Array): void {
  const dv = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (const [at, len] of [[64 * 1024, 4096], [128 * 1024, 4096], [192 * 1024, 65536], [256 * 1024, 65536]] as const) {
    if (at + len <= b.length) dv.writeUInt32LE(crcWithZeroField(b.subarray(at, at + len), 4), at + 4);
  }
  const elen = dv.readUInt32LE(MiB + 8);
  if (elen >= 4096 && elen <= MiB && elen % 4096 === 0 && MiB + elen <= b.length) dv.writeUInt32LE(crcWithZeroField(b.subarray(MiB, MiB + elen), 4), MiB + 4);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => { timer = setTimeout(() => rej(new Error(`hang: ${what}`)), ms); })]).finally(() => clearTimeout(timer));
}

export async function fuzzVhdx(numRuns: number, seed: number, log = false): Promise<{ runs: number; opened: number; rejected: number }> {
  const base = await seeds();
  let opened = 0, rejected = 0, runs = 0;
  const arb = fc.record({
    image: fc.nat(base.length - 1),
    target: fc.constantFrom(...(Object.keys(TARGETS) as Target[])),
    muts: fc.array(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }), { minLength: 1, maxLength: 4 }),
    fixCrc: fc.boolean(),
    truncate: fc.option(fc.nat(), { freq: 8 }),
  });
  await fc.assert(fc.asyncProperty(arb, async (c) => {
    runs++;
    const s = base[c.image]!;
    const b = new Uint8Array(s.bytes);
    const [start, span] = TARGETS[c.target];
    for (const m of c.muts) {
      const at = start + (m.at % span);
      b.set(m.bytes.subarray(0, Math.max(0, b.length - at)), at);
    }
    if (c.fixCrc) fixChecksums(b);
    const f = new MemFile(s.path, c.truncate === null ? b : b.subarray(0, c.truncate % b.length));
    let disk: VhdxDisk;
    try {
      disk = await withTimeout(VhdxDisk.open(s.path, { file: f, readOnly: true, lock: false }), 5000, 'open');
    } catch (e) {
      if (!(e instanceof VhdxFormatError)) throw e;
      assert.ok(e.message.startsWith(s.path));
      rejected++;
      assert.equal(f.writes, 0);
      return;
    }
    opened++;
    try {
      const buf = new Uint8Array(64 * 1024);
      for (const off of [0, MiB, 2 * MiB, Math.max(0, disk.sizeBytes - buf.length)]) {
        if (off + buf.length > disk.sizeBytes) continue;
        await withTimeout(disk.read(off, buf), 5000, 'read').catch((e: unknown) => { if (!(e instanceof DiskError)) throw e; });
      }
      await assert.rejects(disk.write(0, new Uint8Array(disk.logicalSectorSize)), DiskError);
    } finally {
      await disk.close();
    }
    assert.equal(f.writes, 0, 'a read-only open never writes');
  }), { numRuns, seed, endOnFailure: true });
  if (log) console.log(`fuzz:vhdx seed ${seed}: ${runs} cases, ${opened} opened, ${rejected} rejected with a clear error`);
  return { runs, opened, rejected };
}
