/**
 * Decoder lengths against binutils: thousands of generated encodings (every one- and two-byte opcode with
 * random prefixes, ModRM/SIB/displacement/immediate bytes) are decoded by objdump and by our decoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Insn, decode } from '../../../src/processor/emulated/decoder.js';
import { opUD, opGP } from '../../../src/processor/emulated/exec-system.js';

const SLOT = 32;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
}

/** objdump's instruction lengths at each slot start (undefined when it printed "(bad)"). */
function objdumpLengths(bin: Uint8Array, arch: string, extra: string[]): Map<number, number> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-dec-'));
  try {
    const f = join(dir, 'x.bin');
    writeFileSync(f, bin);
    const out = execFileSync('objdump', ['-D', '-b', 'binary', '-m', arch, ...extra, '--insn-width=16', f], { maxBuffer: 64 << 20 }).toString();
    const res = new Map<number, number>();
    for (const line of out.split('\n')) {
      const m = /^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$/.exec(line);
      if (!m) continue;
      const addr = parseInt(m[1], 16);
      if (addr % SLOT !== 0) continue;
      if (/\(bad\)|\.byte/.test(m[3])) continue;
      res.set(addr, m[2].trim().split(' ').length);
    }
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PREFIXES64 = [[], [], [], [0x66], [0x67], [0xf3], [0xf2], [0x48], [0x41], [0x4c], [0x66, 0x48], [0x65], [0xf0], [0x66, 0x67, 0x45]];
const PREFIXES32 = [[], [], [], [0x66], [0x67], [0xf3], [0xf2], [0x26], [0x66, 0x67]];

function generate(mode: number, seed: number): Uint8Array[] {
  const r = rng(seed);
  const out: Uint8Array[] = [];
  const pfx = mode === 3 ? PREFIXES64 : PREFIXES32;
  const skip0 = new Set([0x9b, 0x0f, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0xc4, 0xc5, 0x62, 0x8f, 0xd6]);
  const opcodes: number[][] = [];
  for (let b = 0; b < 256; b++) {
    if (skip0.has(b)) continue;
    if (mode === 3 && b >= 0x40 && b <= 0x4f) continue;
    opcodes.push([b]);
  }
  for (let b = 0; b < 256; b++) if (b !== 0x38 && b !== 0x3a && b !== 0x0f && b !== 0x78 && b !== 0x79) opcodes.push([0x0f, b]);
  for (const b of [0x00, 0x01, 0x04, 0x0b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x29, 0x2b, 0x37, 0x39, 0x40]) opcodes.push([0x0f, 0x38, b]);
  for (const b of [0x0e, 0x0f, 0x0a, 0x0b, 0x14, 0x16, 0x20, 0x22, 0x44, 0x62, 0x63]) opcodes.push([0x0f, 0x3a, b]);
  for (const op of opcodes) {
    for (let k = 0; k < 6; k++) {
      const p = pfx[r() % pfx.length];
      const bytes = [...p, ...op];
      for (let t = 0; t < 14; t++) bytes.push(r() & 0xff);
      out.push(Uint8Array.from(bytes.slice(0, 15 + p.length)));
    }
  }
  return out;
}

function check(mode: number, arch: string, extra: string[], seed: number): void {
  const cases = generate(mode, seed);
  const bin = new Uint8Array(cases.length * SLOT).fill(0x90);
  cases.forEach((c, k) => bin.set(c.subarray(0, Math.min(c.length, SLOT)), k * SLOT));
  const ref = objdumpLengths(bin, arch, extra);
  const insn = new Insn();
  let compared = 0;
  const bad: string[] = [];
  cases.forEach((c, k) => {
    const want = ref.get(k * SLOT);
    if (want === undefined) return;
    const len = decode(insn, bin, k * SLOT, SLOT, mode);
    if (insn.fn === opUD || insn.fn === opGP) return; // invalid for us (e.g. not offered): length irrelevant
    compared++;
    if (len !== want && bad.length < 20) {
      bad.push(`${Array.from(bin.subarray(k * SLOT, k * SLOT + want), (x) => x.toString(16).padStart(2, '0')).join(' ')}: objdump ${want}, ours ${len}`);
    }
  });
  assert.ok(compared > 1500, `only ${compared} encodings compared`);
  assert.deepEqual(bad, []);
}

test('64-bit decoder lengths agree with objdump', () => {
  check(3, 'i386:x86-64', ['-M', 'intel'], 1);
});

test('32-bit decoder lengths agree with objdump', () => {
  check(2, 'i386', ['-M', 'intel'], 2);
});

test('16-bit decoder lengths agree with objdump', () => {
  check(1, 'i8086', ['-M', 'intel'], 3);
});
