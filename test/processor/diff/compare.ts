/** Compares a native and an emulated result under the case's masks and renders a readable divergence. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CaseResult, type DiffCase, initialData } from './case.js';
import { CODE_ADDR, COMPARED_FLAGS, DATA_ADDR } from './layout.js';

export const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const FLAG_NAMES: [number, string][] = [[0x1, 'CF'], [0x4, 'PF'], [0x10, 'AF'], [0x40, 'ZF'], [0x80, 'SF'], [0x400, 'DF'], [0x800, 'OF']];

export const hex = (v: bigint | number, w = 16) => '0x' + BigInt.asUintN(w * 4, BigInt(v)).toString(16).padStart(w, '0');
export function flagStr(f: number): string {
  return FLAG_NAMES.map(([b, n]) => (f & b ? n : n.toLowerCase())).join(' ');
}

/** Differences as short lines ("rax: native 0x.. emulated 0x.."); empty when the results agree. */
export function compareResults(c: DiffCase, n: CaseResult, e: CaseResult): string[] {
  const d: string[] = [];
  if (n.kind === 'timeout' || n.kind === 'error') return [`native run did not complete (${n.kind})`];
  if (n.kind === 'unsupported') return [];
  if (e.kind === 'error' || e.kind === 'limit') return [`emulated: ${e.kind}: ${e.message}`];
  const outcome = (r: CaseResult) =>
    r.kind === 'stop' ? 'completed' : `#${vecName(r.vector!)} at ${hex(r.rip)}${r.errorCode !== undefined ? ` err=${hex(r.errorCode, 4)}` : ''}${r.cr2 !== undefined ? ` cr2=${hex(r.cr2)}` : ''}`;
  if (n.kind !== e.kind || n.vector !== e.vector || n.rip !== e.rip) {
    d.push(`outcome: native ${outcome(n)}, emulated ${outcome(e)}`);
    if (n.kind !== e.kind || n.vector !== e.vector) return d; // states are not comparable
  }
  if (n.kind === 'fault') {
    // #PF: compare P/W/U/I bits of the error code and CR2. #GP(0)/other error codes compared as is.
    const errMask = n.vector === 14 ? 0x1f : 0xffff;
    if (n.errorCode !== undefined && e.errorCode !== undefined && ((n.errorCode ^ e.errorCode) & errMask))
      d.push(`error code: native ${hex(n.errorCode, 4)} emulated ${hex(e.errorCode, 4)}`);
    if (n.vector === 14 && n.cr2 !== e.cr2) d.push(`cr2: native ${hex(n.cr2 ?? -1n)} emulated ${hex(e.cr2 ?? -1n)}`);
  }
  const gmask = c.gprLow32Only ? 0xffffffffn : 0xffffffffffffffffn;
  for (let i = 0; i < 16; i++) {
    if (c.undefGprs && c.undefGprs & (1 << i)) continue;
    if ((n.gpr[i] & gmask) !== (e.gpr[i] & gmask)) d.push(`${GPR_NAMES[i]}: native ${hex(n.gpr[i])} emulated ${hex(e.gpr[i])}  (input ${hex(c.gpr[i])})`);
  }
  const fm = COMPARED_FLAGS & ~(c.undefFlags ?? 0);
  if ((n.rflags ^ e.rflags) & fm) {
    d.push(`rflags: native [${flagStr(n.rflags)}] emulated [${flagStr(e.rflags)}] differ in [${FLAG_NAMES.filter(([b]) => (n.rflags ^ e.rflags) & fm & b).map(([, s]) => s).join(' ')}]  (input [${flagStr(c.rflags)}]${c.undefFlags ? `, undefined: ${FLAG_NAMES.filter(([b]) => c.undefFlags! & b).map(([, s]) => s).join(' ')}` : ''})`);
  }
  for (let i = 0; i < 16; i++) {
    if (c.undefXmm && c.undefXmm & (1 << i)) continue;
    if (n.xmm[i] !== e.xmm[i]) d.push(`xmm${i}: native ${hex(n.xmm[i], 32)} emulated ${hex(e.xmm[i], 32)}  (input ${hex(c.xmm[i], 32)})`);
  }
  if ((n.mxcsr ^ e.mxcsr) & ~(c.undefMxcsr ?? 0) & 0xffff) d.push(`mxcsr: native ${hex(n.mxcsr, 8)} emulated ${hex(e.mxcsr, 8)}  (input ${hex(c.mxcsr, 8)})`);
  if (n.fcw !== e.fcw) d.push(`fpu control word: native ${hex(n.fcw, 4)} emulated ${hex(e.fcw, 4)}`);
  if (n.data.length !== e.data.length) d.push('data pages: emulated image has a different length');
  else {
    const init = initialData(c);
    let shown = 0;
    for (let i = 0; i < n.data.length && shown < 4; i++) {
      if (n.data[i] === e.data[i]) continue;
      const s = i & ~7;
      const row = (a: Uint8Array) => Array.from(a.subarray(s, s + 16), (b) => b.toString(16).padStart(2, '0')).join(' ');
      d.push(`memory ${hex(DATA_ADDR + s, 8)}: native   ${row(n.data)}\n${' '.repeat(19)}emulated ${row(e.data)}\n${' '.repeat(19)}initial  ${row(init)}`);
      shown++;
      i = s + 15;
    }
  }
  return d;
}

export function vecName(v: number): string {
  return ({ 0: 'DE', 1: 'DB', 3: 'BP', 4: 'OF', 5: 'BR', 6: 'UD', 7: 'NM', 10: 'TS', 11: 'NP', 12: 'SS', 13: 'GP', 14: 'PF', 16: 'MF', 17: 'AC', 19: 'XM' } as Record<number, string>)[v] ?? String(v);
}

/** Disassembly of the instruction(s) under test through objdump (binutils); raw bytes if it is missing. */
export function disassemble(c: DiffCase): string {
  const bytes = c.code.subarray(c.insnOffset, c.insnOffset + c.insnLength);
  const raw = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'hyperts-dis-'));
    const f = join(dir, 'code.bin');
    writeFileSync(f, bytes);
    const out = execFileSync('objdump', ['-D', '-b', 'binary', '-m', c.mode32 ? 'i386' : 'i386:x86-64', '-M', 'intel',
      `--adjust-vma=${hex(CODE_ADDR + c.insnOffset, 8)}`, f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = out.split('\n').filter((l) => /^\s+[0-9a-f]+:\t/.test(l)).map((l) => '    ' + l.trim().replace(/\t/g, '  '));
    return lines.join('\n') || `    ${raw}`;
  } catch {
    return `    ${raw}  (objdump unavailable)`;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export function describeCase(c: DiffCase): string {
  const regs = c.gpr.map((v, i) => `${GPR_NAMES[i]}=${hex(v)}`);
  const lines: string[] = [];
  for (let i = 0; i < 16; i += 4) lines.push('    ' + regs.slice(i, i + 4).join(' '));
  const extra = [`rflags [${flagStr(c.rflags)}]`, `mxcsr ${hex(c.mxcsr, 8)}`, `fcw ${hex(c.fcw, 4)}`, `data seed ${hex(c.dataSeed, 8)}`];
  if (c.patches.length) extra.push(`patches ${c.patches.map((p) => `${hex(DATA_ADDR + p.offset, 8)}=[${Array.from(p.bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')}]`).join(' ')}`);
  return `${lines.join('\n')}\n    ${extra.join('  ')}`;
}

export function xmmInputs(c: DiffCase, which: number[]): string {
  return which.map((i) => `    xmm${i}=${hex(c.xmm[i], 32)}`).join('\n');
}

export function renderDivergence(c: DiffCase, diffs: string[]): string {
  return [
    `--- ${c.name}${c.mode32 ? ' (32-bit compatibility mode)' : ''}`,
    `  code: ${Array.from(c.code.subarray(c.insnOffset, c.insnOffset + c.insnLength), (b) => b.toString(16).padStart(2, '0')).join(' ')}`,
    disassemble(c),
    '  inputs:',
    describeCase(c),
    '  differences:',
    ...diffs.map((l) => '    ' + l),
  ].join('\n');
}
