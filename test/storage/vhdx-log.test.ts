import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyReplay, buildEntry, planReplay, type LogWrite } from '../../src/storage/vhdx/log.js';
import { MemFile } from './mem-file.js';
import { VhdxFormatError } from '../../src/storage/vhdx/format.js';

const MiB = 1 << 20, L = MiB, LOG_AT = MiB;
const G = '11111111-2222-3333-4444-555555555555';

function page(fill: number): Uint8Array { return new Uint8Array(4096).fill(fill).map((x, i) => (i < 8 || i > 4090 ? x ^ i : x)); }

/** Writes an entry into the circular log at `at` (may wrap). */
async function put(f: MemFile, at: number, e: Uint8Array): Promise<void> {
  const first = Math.min(e.length, L - at);
  await f.write(e.subarray(0, first), LOG_AT + at);
  if (first < e.length) await f.write(e.subarray(first), LOG_AT);
}

async function setup(bSeq: bigint, tearB: boolean): Promise<MemFile> {
  const f = new MemFile('/x/log.vhdx', new Uint8Array(4 * MiB));
  // Stale but valid entry of the same log (lower sequence) and one of another log (higher sequence).
  await put(f, 64 * 1024, buildEntry(G, 3n, 64 * 1024, [{ offset: 3 * MiB, data: page(0x33) }], 4 * MiB, 4 * MiB));
  await put(f, 128 * 1024, buildEntry('99999999-2222-3333-4444-555555555555', 100n, 128 * 1024, [{ offset: 3 * MiB, data: page(0x99) }], 4 * MiB, 4 * MiB));
  // A: sequence 10, three sectors starting two sectors before the end (wraps); B: 11, continues it, tail = A.
  const aAt = L - 8192;
  await put(f, aAt, buildEntry(G, 10n, aAt, [{ offset: 2 * MiB, data: page(0xa1) }, { offset: 2 * MiB + 4096, data: page(0xa2) }], 4 * MiB, 4 * MiB));
  const b = buildEntry(G, bSeq, aAt, [{ offset: 2 * MiB + 4096, data: page(0xb1) }, { offset: 2 * MiB + 8192, zeroLength: 8192 }], 4 * MiB, 5 * MiB);
  if (tearB) b[b.length - 100]! ^= 1;
  await put(f, 4096, b);
  await f.write(new Uint8Array(8192).fill(0xee), 2 * MiB + 8192);
  return f;
}

test('replay follows a multi-entry sequence that wraps around the log, with data and zero descriptors', async () => {
  const f = await setup(11n, false);
  const plan = await planReplay(f.path, f, LOG_AT, L, G, 4 * MiB);
  assert.equal(plan.entries, 2);
  assert.equal(plan.headSeq, 11n);
  assert.deepEqual(plan.writes.map((w: LogWrite) => [w.offset - 2 * MiB, w.data ? w.data[100] : `zero ${w.zeroLength}`]), [[0, 0xa1], [4096, 0xa2], [4096, 0xb1], [8192, 'zero 8192']]);
  await applyReplay(f, plan);
  const got = new Uint8Array(4 * 4096);
  await f.read(got, 2 * MiB);
  assert.deepEqual(got.subarray(0, 4096), page(0xa1));
  assert.deepEqual(got.subarray(4096, 8192), page(0xb1));
  assert.ok(got.subarray(8192).every((x) => x === 0));
  assert.equal(await f.size(), 5 * MiB, 'extended to LastFileOffset');
});

test('a torn or out-of-sequence last entry falls back to the newest complete sequence', async () => {
  for (const [seq, torn] of [[11n, true], [12n, false]] as const) {
    const f = await setup(seq, torn);
    const plan = await planReplay(f.path, f, LOG_AT, L, G, 4 * MiB);
    assert.equal(plan.headSeq, 10n);
    assert.deepEqual(plan.writes.map((w) => w.data![100]), [0xa1, 0xa2]);
  }
});

test('no complete sequence, or a file shorter than FlushedFileOffset, is refused', async () => {
  const f = new MemFile('/x/empty.vhdx', new Uint8Array(4 * MiB));
  // No entry of this log at all (QEMU killed between setting the LogGuid and writing the entry): nothing to replay.
  assert.equal((await planReplay(f.path, f, LOG_AT, L, G, 4 * MiB)).entries, 0);
  const e = buildEntry(G, 1n, 0, [{ offset: 2 * MiB, data: page(1) }], 4 * MiB, 4 * MiB);
  e[5000]! ^= 1;
  await f.write(e, LOG_AT);
  await assert.rejects(planReplay(f.path, f, LOG_AT, L, G, 4 * MiB), (x: unknown) => x instanceof VhdxFormatError && /no complete entry sequence/.test(x.message));
  const g = await setup(11n, false);
  await assert.rejects(planReplay(g.path, g, LOG_AT, L, G, 3 * MiB), /truncated/);
});
