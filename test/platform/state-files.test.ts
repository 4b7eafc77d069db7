/**
 * State files replaced atomically (src/platform/state-files.ts): a writer SIGKILLed at random points, hundreds
 * of times, leaves the file holding the last version it acknowledged or the one it was writing, complete and
 * intact: never empty, mixed or truncated. (A process kill keeps the page cache, so this checks ordering and
 * atomicity; durability across power loss rests on the fsyncs, which this machine cannot cut.)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFileAtomic, writeFileAtomic, TEMP_MARK } from '../../src/platform/state-files.js';

const dir = mkdtempSync(join(tmpdir(), 'hyperts-statefile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const helper = fileURLToPath(new URL('../../src/platform/state-files.js', import.meta.url));

/** Version n: a header with its length and digest, then n-dependent bytes of a size that varies up to ~3 MB. */
function content(n: number): Buffer {
  const len = (n * 7919) % (3 << 20);
  const body = Buffer.alloc(len, n & 0xff);
  for (let i = 0; i + 4 <= len; i += 4096) body.writeUInt32LE(n, i);
  return Buffer.concat([Buffer.from(`v=${n} len=${len} sha=${createHash('sha256').update(body).digest('hex')}\n`), body]);
}

function parse(b: Buffer): number {
  const nl = b.indexOf(10);
  assert.ok(nl > 0, `no header (file of ${b.length} bytes)`);
  const m = /^v=(\d+) len=(\d+) sha=([0-9a-f]{64})$/.exec(b.subarray(0, nl).toString());
  assert.ok(m, `bad header ${JSON.stringify(b.subarray(0, Math.min(nl, 80)).toString())}`);
  const body = b.subarray(nl + 1);
  assert.equal(body.length, Number(m[2]), `version ${m[1]}: truncated or overlong`);
  assert.equal(createHash('sha256').update(body).digest('hex'), m[3], `version ${m[1]}: mixed contents`);
  return Number(m[1]);
}

/** A deterministic generator (mulberry32), so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

test('content(): versions parse and differ', () => {
  for (const n of [0, 1, 2, 399]) assert.equal(parse(content(n)), n);
});

test('a writer SIGKILLed at random points leaves the old or the new version, whole', { timeout: 600_000 }, async () => {
  const file = join(dir, 'state.vmrs');
  writeFileSync(file, content(0));
  let acked = 0;
  const RUNS = 150;
  for (let seed = 1; seed <= RUNS; seed++) {
    const r = rng(seed);
    const start = acked + 1;
    // The child writes versions start, start+1, ... and prints each one's number once writeFileAtomic returned.
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { writeFileAtomic } from ${JSON.stringify(helper)};
      import { createHash } from 'node:crypto';
      ${content.toString()}
      process.stdout.write('ready\\n');
      for (let n = ${start}; ; n++) { writeFileAtomic(${JSON.stringify(file)}, content(n)); process.stdout.write(n + '\\n'); }
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => { out += d; });
    await new Promise<void>((res) => { const t = setInterval(() => { if (out.includes('ready')) { clearInterval(t); res(); } }, 1); });
    await new Promise((res) => setTimeout(res, Math.floor(r() * 40)));
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    const lines = out.trim().split('\n').slice(1).map(Number);
    const lastAck = lines.length ? lines.at(-1)! : acked;
    const v = parse(readFileSync(file));
    assert.ok(v === lastAck || v === lastAck + 1, `seed ${seed}: the file holds version ${v}, but the writer had acknowledged ${lastAck}`);
    acked = v;
    for (const f of readdirSync(dir)) if (f.includes(TEMP_MARK)) rmSync(join(dir, f));
  }
});

test('copyFileAtomic copies whole files and refuses a source that is not a regular file', () => {
  const src = join(dir, 'src.vmrs');
  writeFileSync(src, content(42));
  const dst = join(dir, 'dst.vmrs');
  writeFileSync(dst, content(41));
  copyFileAtomic(src, dst);
  assert.equal(parse(readFileSync(dst)), 42);
  assert.throws(() => copyFileAtomic(dir, dst), /not a regular file|EISDIR/);
  assert.equal(parse(readFileSync(dst)), 42, 'a failed copy leaves the previous file');
  writeFileAtomic(dst, 'x');
  assert.equal(readFileSync(dst, 'utf8'), 'x');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes(TEMP_MARK)), [], 'no temporary files left');
});
