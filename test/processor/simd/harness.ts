/**
 * Test double for the SIMD unit (a CpuState with a small flat memory) and the native reference runner
 * (host-simd.c compiled with gcc into a temporary directory).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuState } from '../../../src/processor/emulated/cpu-state.js';
import type { PlatformServices } from '../../../src/processor/backend.js';
import type { SimdCpu, SimdInsn } from '../../../src/processor/emulated/simd/contract.js';
import { createFpuState } from '../../../src/processor/emulated/simd/index.js';
import type { FpuState } from '../../../src/processor/emulated/simd/state.js';

export class SimdFault extends Error {
  constructor(readonly vector: number, readonly errorCode?: number) { super(`fault ${vector}`); }
}

export const MEM_SIZE = 0x10000;

export class TestCpu extends CpuState implements SimdCpu {
  readonly mem = new Uint8Array(MEM_SIZE);
  constructor() {
    super(0, {} as PlatformServices);
    this.fpu = createFpuState();
    this.cr0 = 0x80000031 | 0; // PE, ET, NE, PG
    this.cr4 = (1 << 9) | (1 << 10); // OSFXSR, OSXMMEXCPT
  }
  get f(): FpuState { return this.fpu as FpuState; }
  private at(lin: number, n: number): number {
    if (lin < 0 || lin + n > MEM_SIZE) this.raise(14, 0);
    return lin;
  }
  read8(lin: number): number { return this.mem[this.at(lin, 1)]; }
  read16(lin: number): number { const a = this.at(lin, 2); return this.mem[a] | (this.mem[a + 1] << 8); }
  read32(lin: number): number { const a = this.at(lin, 4); return (this.mem[a] | (this.mem[a + 1] << 8) | (this.mem[a + 2] << 16) | (this.mem[a + 3] << 24)) | 0; }
  write8(lin: number, v: number): void { this.mem[this.at(lin, 1)] = v; }
  write16(lin: number, v: number): void { const a = this.at(lin, 2); this.mem[a] = v; this.mem[a + 1] = v >> 8; }
  write32(lin: number, v: number): void { const a = this.at(lin, 4); this.mem[a] = v; this.mem[a + 1] = v >> 8; this.mem[a + 2] = v >> 16; this.mem[a + 3] = v >> 24; }
  probeWrite(lin: number, len: number): void { this.at(lin, len); }
  raise(vector: number, errorCode?: number): never { throw new SimdFault(vector, errorCode); }
}

export function insn(op: number, mandatory: number, fields: Partial<SimdInsn> = {}): SimdInsn {
  return { op, mandatory, rexW: false, mod: 3, reg: 0, rm: 1, ea: 0, imm8: 0, opsize: 32, long: true, ...fields };
}

/** 16 bytes <-> hex (little-endian byte order, as the C runner prints). */
export function toHex(b: Uint8Array): string { return Buffer.from(b).toString('hex'); }
export function fromHex(s: string): Uint8Array { return new Uint8Array(Buffer.from(s, 'hex')); }

export function setXmm(cpu: TestCpu, r: number, bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 16);
  for (let i = 0; i < 4; i++) cpu.xmm[4 * r + i] = dv.getInt32(4 * i, true);
}
export function getXmm(cpu: TestCpu, r: number): Uint8Array {
  const out = new Uint8Array(16); const dv = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) dv.setInt32(4 * i, cpu.xmm[4 * r + i], true);
  return out;
}

export interface HostCase { op: string; ctl: number; a: Uint8Array; b: Uint8Array }
export interface HostResult { r: string; ctl: number; flags: number }

let binary: string | undefined;
let dir: string | undefined;
function build(): string {
  if (binary) return binary;
  dir = mkdtempSync(join(tmpdir(), 'hyperts-simd-'));
  const src = fileURLToPath(new URL('../../../../test/processor/simd/host-simd.c', import.meta.url));
  binary = join(dir, 'host-simd');
  execFileSync('gcc', ['-O1', '-o', binary, src]);
  return binary;
}
export function cleanup(): void { if (dir) rmSync(dir, { recursive: true, force: true }); dir = undefined; binary = undefined; }

/** Run all cases natively in one process. */
export function runHost(cases: HostCase[]): HostResult[] {
  const bin = build();
  const input = cases.map((c) => `${c.op} ${c.ctl.toString(16)} ${toHex(c.a)} ${toHex(c.b)}`).join('\n') + '\n';
  const out = execFileSync(bin, { input, maxBuffer: 256 * 1024 * 1024 }).toString().trim().split('\n');
  if (out.length !== cases.length) throw new Error(`host runner returned ${out.length} lines for ${cases.length} cases`);
  return out.map((line, i) => {
    const [r, ctl, fl] = line.split(' ');
    if (r === 'unknown') throw new Error(`host runner does not know ${cases[i].op}`);
    return { r, ctl: parseInt(ctl, 16), flags: parseInt(fl, 16) };
  });
}

/** Deterministic PRNG (xorshift32) so failures reproduce. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 1; }
  u32(): number { let x = this.s; x ^= x << 13; x ^= x >>> 17; x ^= x << 5; this.s = x >>> 0; return this.s; }
  int(n: number): number { return this.u32() % n; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
}
