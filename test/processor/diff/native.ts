/**
 * Runs cases on the host CPU through native/runner.c, which is compiled with gcc on first use into a cache
 * directory keyed by the source hash (os.tmpdir()/hyperts-diff-<hash>). One child process per batch.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CaseResult, type DiffCase, initialData, fillData } from './case.js';
import { FAR_JUMP_TO_32_OFFSET } from './build.js';
import { CODE_ADDR, CODE_SIZE, DATA_ADDR, DATA_SIZE } from './layout.js';

const IN_MAGIC = 0x45534143;
const OUT_MAGIC = 0x544c5352;
const IN_HDR = 4 + 4 + 16 * 8 + 8 + 4 + 2 + 2 + 256 + 4 + 4;
const OUT_HDR = 4 + 4 + 4 + 4 + 8 + 8 + 16 * 8 + 8 + 8 + 4 + 2 * 4 + 128 + 256 + 4;

/** Source lives next to this file in test/ (the compiled .js is in dist/test/...). */
function runnerSource(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, 'native', 'runner.c'),
    resolve(here, '../../../../test/processor/diff/native/runner.c'),
  ];
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(`diff runner source not found (looked in ${candidates.join(', ')})`);
}

let runnerPath: string | undefined;
export function buildRunner(): string {
  if (runnerPath) return runnerPath;
  const src = runnerSource();
  const text = readFileSync(src);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `hyperts-diff-${hash}`);
  const exe = join(dir, 'runner');
  if (!existsSync(exe)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${exe}.${process.pid}.tmp`;
    try {
      execFileSync('gcc', ['-O2', '-Wall', '-no-pie', '-o', tmp, src], { stdio: 'pipe' });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`compiling the diff runner failed (is gcc installed? apt-get install gcc): ${err.stderr?.toString() ?? err.message}`);
    }
    renameSync(tmp, exe); // atomic: parallel test files may build at once
  }
  runnerPath = exe;
  return exe;
}

function encodeCase(c: DiffCase): Buffer {
  let patchBytes = 0;
  for (const p of c.patches) patchBytes += 8 + p.bytes.length;
  const buf = Buffer.alloc(IN_HDR + c.code.length + patchBytes);
  let o = 0;
  buf.writeUInt32LE(IN_MAGIC, o); o += 4;
  buf.writeUInt32LE(c.code.length, o); o += 4;
  for (let i = 0; i < 16; i++) { buf.writeBigUInt64LE(BigInt.asUintN(64, c.gpr[i]), o); o += 8; }
  buf.writeBigUInt64LE(BigInt(c.rflags >>> 0), o); o += 8;
  buf.writeUInt32LE(c.mxcsr >>> 0, o); o += 4;
  buf.writeUInt16LE(c.fcw & 0xffff, o); o += 2;
  o += 2;
  for (let i = 0; i < 16; i++) {
    const v = BigInt.asUintN(128, c.xmm[i]);
    buf.writeBigUInt64LE(v & 0xffffffffffffffffn, o);
    buf.writeBigUInt64LE(v >> 64n, o + 8);
    o += 16;
  }
  buf.writeUInt32LE(c.dataSeed >>> 0, o); o += 4;
  buf.writeUInt32LE(c.patches.length, o); o += 4;
  buf.set(c.code, o); o += c.code.length;
  for (const p of c.patches) {
    buf.writeUInt32LE(p.offset, o); buf.writeUInt32LE(p.bytes.length, o + 4); o += 8;
    buf.set(p.bytes, o); o += p.bytes.length;
  }
  return buf;
}

/** Vector from Linux's trap number (ucontext REG_TRAPNO); SIGALRM means the case ran away. */
function decodeResult(c: DiffCase, buf: Buffer, o: number): { r: CaseResult; next: number } {
  if (buf.readUInt32LE(o) !== OUT_MAGIC) throw new Error('diff runner: bad result record');
  const signo = buf.readInt32LE(o + 4);
  const trapno = buf.readInt32LE(o + 8);
  const err = Number(buf.readBigUInt64LE(o + 16) & 0xffffffffn);
  const cr2 = buf.readBigUInt64LE(o + 24);
  let p = o + 32;
  const gpr: bigint[] = [];
  for (let i = 0; i < 16; i++) { gpr.push(buf.readBigUInt64LE(p)); p += 8; }
  const rip = buf.readBigUInt64LE(p); p += 8;
  const rflags = Number(buf.readBigUInt64LE(p) & 0xffffffffn); p += 8;
  const mxcsr = buf.readUInt32LE(p); p += 4;
  const fcw = buf.readUInt16LE(p); p += 8;
  p += 128; // x87 stack registers (not exposed by the test machine; x87 cases store results to memory)
  const xmm: bigint[] = [];
  for (let i = 0; i < 16; i++) { xmm.push(buf.readBigUInt64LE(p) | (buf.readBigUInt64LE(p + 8) << 64n)); p += 16; }
  const nranges = buf.readUInt32LE(p); p += 4;
  const data = initialData(c);
  for (let i = 0; i < nranges; i++) {
    const off = buf.readUInt32LE(p), len = buf.readUInt32LE(p + 4); p += 8;
    data.set(buf.subarray(p, p + len), off); p += len;
  }
  const end = BigInt(CODE_ADDR + c.endOffset);
  let r: CaseResult;
  const base = { gpr, rflags, mxcsr, fcw, xmm, data };
  if (signo === 14 /* SIGALRM */) r = { kind: 'timeout', rip, ...base };
  else if (signo === 5 && trapno === 3 && rip === end + 1n) r = { kind: 'stop', rip: end, ...base };
  else if (c.mode32 && trapno === 13 && rip === BigInt(CODE_ADDR + FAR_JUMP_TO_32_OFFSET)) {
    // The far jump to the 32-bit code selector failed: this kernel/hypervisor offers no compatibility mode.
    r = { kind: 'unsupported', message: 'host cannot enter compatibility mode (no 32-bit user code segment)', rip, ...base };
  } else if (trapno === 3) r = { kind: 'fault', vector: 3, rip: rip - 1n, ...base }; // int3 reports the next RIP
  else {
    // #PF/#GP/#SS/#AC carry an error code; for #PF only the P/W/U bits are meaningful to compare.
    const withErr = trapno === 13 || trapno === 14 || trapno === 12 || trapno === 17 || trapno === 10 || trapno === 11;
    r = { kind: 'fault', vector: trapno, errorCode: withErr ? err : undefined, cr2: trapno === 14 ? cr2 : undefined, rip, ...base };
  }
  return { r, next: p };
}

/**
 * Runs `cases` natively. Cases that did not complete are run again (twice if the second run disagrees,
 * keeping the majority): this host (a PVM guest) now and then reports the final int3 as #UD.
 */
export function runNative(cases: DiffCase[], batch = 4000): CaseResult[] {
  const first = runNativeOnce(cases, batch);
  const again = first.map((r, i) => (r.kind === 'stop' ? -1 : i)).filter((i) => i >= 0);
  if (again.length === 0) return first;
  const second = runNativeOnce(again.map((i) => cases[i]), batch);
  const disputed: number[] = [];
  again.forEach((ci, k) => { if (!sameOutcome(first[ci], second[k])) disputed.push(k); });
  if (disputed.length) {
    const third = runNativeOnce(disputed.map((k) => cases[again[k]]), batch);
    disputed.forEach((k, j) => { if (sameOutcome(second[k], third[j])) first[again[k]] = second[k]; });
  }
  return first;
}

function sameOutcome(a: CaseResult, b: CaseResult): boolean {
  return a.kind === b.kind && a.vector === b.vector && a.rip === b.rip;
}

type BatchOutcome = { ok: true; results: CaseResult[] } | { ok: false; signal: string };

/** One runner process over `part`. A runner killed by a signal is reported, any other failure throws. */
function runBatch(part: DiffCase[]): BatchOutcome {
  const exe = buildRunner();
  const input = Buffer.concat(part.map(encodeCase));
  const hex = (n: number) => '0x' + n.toString(16);
  const r = spawnSync(exe, [hex(CODE_ADDR), hex(CODE_SIZE), hex(DATA_ADDR), hex(DATA_SIZE)], {
    input, maxBuffer: 1 << 30,
  });
  if (r.signal) return { ok: false, signal: r.signal };
  if (r.status !== 0) throw new Error(`diff runner failed (status ${r.status}): ${r.stderr?.toString()}`);
  const out = r.stdout;
  const results: CaseResult[] = [];
  let o = 0;
  for (const c of part) {
    if (o + OUT_HDR > out.length) throw new Error(`diff runner: ${part.length} cases sent, output ends early`);
    const d = decodeResult(c, out, o);
    results.push(d.r);
    o = d.next;
  }
  return { ok: true, results };
}

function unsupported(message: string): CaseResult {
  return { kind: 'unsupported', message, rip: 0n, gpr: [], rflags: 0, mxcsr: 0, fcw: 0, xmm: [], data: new Uint8Array(0) };
}

/**
 * Some hosts kill a process outright when it runs 32-bit code (sandboxes and hypervisors without compatibility
 * mode for user code). 64-bit cases never justify that, so a killed 64-bit batch is an error; 32-bit cases are
 * then run one per process, and those the host kills are marked unsupported (checked against the reference model).
 */
/** Runs `cases` splitting every killed batch in halves, so only the cases the host kills are marked unsupported. */
function isolateKills(cases: DiffCase[]): CaseResult[] {
  const r = runBatch(cases);
  if (r.ok) return r.results;
  if (cases.length === 1) return [unsupported(`host killed the runner on this 32-bit case (${r.signal})`)];
  const half = cases.length >> 1;
  return [...isolateKills(cases.slice(0, half)), ...isolateKills(cases.slice(half))];
}

function runNativeOnce(cases: DiffCase[], batch: number): CaseResult[] {
  const results: CaseResult[] = [];
  for (let s = 0; s < cases.length; s += batch) {
    const part = cases.slice(s, s + batch);
    const whole = runBatch(part);
    if (whole.ok) { results.push(...whole.results); continue; }
    if (!part.some((c) => c.mode32)) throw new Error(`diff runner killed by ${whole.signal} on 64-bit cases`);
    const wide = part.filter((c) => !c.mode32);
    const wideRun = wide.length ? runBatch(wide) : { ok: true as const, results: [] };
    if (!wideRun.ok) throw new Error(`diff runner killed by ${wideRun.signal} on 64-bit cases`);
    const narrow = part.filter((c) => c.mode32);
    const probe = runBatch([narrow[0]]);
    const narrowResults = probe.ok ? isolateKills(narrow)
      : narrow.map(() => unsupported(`host kills processes that run compatibility-mode code (${probe.signal})`));
    let w = 0, n = 0;
    for (const c of part) results.push(c.mode32 ? narrowResults[n++] : wideRun.results[w++]);
  }
  return results;
}

export { fillData };
