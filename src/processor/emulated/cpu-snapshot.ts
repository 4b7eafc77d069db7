/**
 * Saved state of one emulated processor (Save-VM): every architectural field of the CPU object and its
 * x87/SSE unit, taken at an instruction boundary (between run slices).
 *
 * Fields are collected by enumeration rather than by a hand-kept list, so a field another module adds to
 * CpuState later (debug state, a pending single-step...) is saved without touching this file. What is
 * *not* state is listed in NOT_STATE: caches rebuilt on demand (TLB, decoded blocks, code-page map), host
 * wiring (platform, hooks) and per-run scratch. A restore only writes fields this build has with the same
 * type and size, so a file from a different build is rejected instead of half-applied.
 */
import type { Cpu } from './cpu.js';
import { flushTlb } from './mmu.js';

/** Caches, host wiring and run-loop scratch: rebuilt or reset on restore, never saved. */
const NOT_STATE = new Set([
  'platform', 'vp', 'fault', 'blocks', 'codePages', 'onCodeWrite', 'onCodeCached', 'codePagesShared', 'breakpointHook', 'ram', 'ramView',
  'tlbTag', 'tlbAddend', 'tlbPhys', 'tlbFlags', 'tlbLargeBase', 'tlbLargeSize', 'tlbGlobalCount', 'tlbLargeCount',
  'msrOut', 'exitRequested', 'stopOnFault', 'faultStopped', 'irqCheck', 'ifWasOn', 'codeDirty', 'memHi', 'opHi',
  'opAddr', 'nextRip', 'mtrr', 'fpu', 'stateMem', 'stateBase', 'tlbInWasm', 'wasmJit',
]);

type Field = number | boolean | string | ArrayBufferView;

export interface CpuSnapshot {
  fields: Record<string, Field>;
  /** Stored MSRs (MTRRs, PAT-like values) as [key, value] pairs. */
  msrs: Array<[number, number]>;
  fpu: Record<string, Field>;
}

function isTyped(v: unknown): v is ArrayBufferView & { length: number; constructor: { name: string } } {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function collect(obj: object, skip: ReadonlySet<string>): Record<string, Field> {
  const out: Record<string, Field> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (skip.has(k)) continue;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') out[k] = v;
    else if (isTyped(v)) out[k] = (v as unknown as { slice(): ArrayBufferView }).slice();
  }
  return out;
}

function apply(obj: object, fields: Record<string, unknown>, skip: ReadonlySet<string>, what: string): void {
  const target = obj as Record<string, unknown>;
  // Check everything first: a mismatch must leave the processor untouched.
  for (const [k, v] of Object.entries(fields)) {
    if (skip.has(k) || !(k in target)) throw new Error(`${what} field '${k}' is unknown to this version of hyperts`);
    const cur = target[k];
    if (isTyped(cur)) {
      if (!isTyped(v) || v.constructor.name !== cur.constructor.name || v.length !== cur.length) {
        throw new Error(`${what} field '${k}' has the wrong type or size`);
      }
    } else if (typeof cur !== typeof v || (typeof v === 'number' && Number.isNaN(v) && !Number.isNaN(cur))) {
      throw new Error(`${what} field '${k}' should be a ${typeof cur}, found ${typeof v}`);
    }
  }
  for (const [k, v] of Object.entries(fields)) {
    const cur = target[k];
    if (isTyped(cur)) (cur as unknown as { set(a: ArrayLike<number>): void }).set(v as unknown as ArrayLike<number>);
    else target[k] = v;
  }
}

export function saveCpu(cpu: Cpu): CpuSnapshot {
  return {
    fields: collect(cpu, NOT_STATE),
    msrs: [...cpu.mtrr.entries()],
    fpu: cpu.fpu ? collect(cpu.fpu, new Set()) : {},
  };
}

export function restoreCpu(cpu: Cpu, s: CpuSnapshot): void {
  if (typeof s !== 'object' || s === null || typeof s.fields !== 'object' || !Array.isArray(s.msrs) || typeof s.fpu !== 'object') {
    throw new Error('processor state is malformed');
  }
  for (const e of s.msrs) {
    if (!Array.isArray(e) || e.length !== 2 || !Number.isInteger(e[0]) || !Number.isFinite(e[1])) throw new Error('processor MSR list is malformed');
  }
  if (Object.keys(s.fpu).length > 0 && !cpu.fpu) throw new Error('processor state has x87/SSE registers but this processor has no SIMD unit');
  apply(cpu, s.fields, NOT_STATE, 'processor');
  if (cpu.fpu) apply(cpu.fpu, s.fpu, new Set(), 'x87/SSE');
  cpu.mtrr.clear();
  for (const [k, v] of s.msrs) cpu.mtrr.set(k, v);
  // Translations and decoded code describe the old memory image: start from nothing.
  flushTlb(cpu, true);
  cpu.blocks.clear();
  cpu.exitRequested = false;
  cpu.irqCheck = true;
  cpu.ifWasOn = false;
  cpu.faultStopped = false;
}
