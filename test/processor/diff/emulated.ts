/**
 * Runs cases on our emulated processor through the TestMachine contract (src/processor/emulated/testing.ts).
 * One machine serves many cases; it is recreated after a failed setup or after a 32-bit case that did not
 * return to 64-bit mode (the contract cannot reset CS).
 */
import { readFileSync } from 'node:fs';
import type { TestMachine, TestRunResult } from '../../../src/processor/emulated/testing-contract.js';
import { type CaseResult, type DiffCase, initialData } from './case.js';
import { CODE_ADDR, CODE_SIZE, DATA_ADDR, DATA_SIZE } from './layout.js';

type Factory = (opts?: { memoryBytes?: number; stringVendor?: 'amd' | 'intel' }) => TestMachine;
let factory: Factory | null | undefined;
let loadError = '';

/** Loads createTestMachine() if the emulator provides it (null otherwise; see emulatorLoadError()). */
export async function loadEmulator(): Promise<Factory | null> {
  if (factory !== undefined) return factory;
  // Computed specifier: the module may not exist yet while the core is being written.
  const spec = new URL('../../../src/processor/emulated/testing.js', import.meta.url).href;
  try {
    const mod = (await import(spec)) as { createTestMachine?: Factory };
    if (typeof mod.createTestMachine !== 'function') throw new Error('testing.js does not export createTestMachine()');
    factory = mod.createTestMachine;
  } catch (e) {
    loadError = (e as Error).message;
    factory = null;
  }
  return factory;
}
export function emulatorLoadError(): string { return loadError; }

const MAX_INSNS = 300000;

let vendor: 'amd' | 'intel' | undefined;
/**
 * The host CPU's vendor: where AMD and Intel differ in corners the manuals leave open (string instructions),
 * the emulator is run in the host's model so both models are checked, each on its own kind of host.
 */
export function hostVendor(): 'amd' | 'intel' {
  if (vendor === undefined) {
    let text = '';
    try { text = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux: keep the default */ }
    vendor = /^vendor_id\s*:\s*GenuineIntel/m.test(text) ? 'intel' : 'amd';
  }
  return vendor;
}

export class EmulatedRunner {
  private m: TestMachine | null = null;
  private readonly codeImage = new Uint8Array(CODE_SIZE);
  constructor(private readonly create: Factory) {}

  private machine(): TestMachine {
    if (!this.m) {
      const m = this.create({ memoryBytes: 16 << 20, stringVendor: hostVendor() });
      m.setCpl(3);
      m.map(CODE_ADDR, CODE_SIZE, { user: true, writable: true, exec: true });
      m.map(DATA_ADDR, DATA_SIZE, { user: true, writable: true });
      this.m = m;
    }
    return this.m;
  }

  run(c: DiffCase): CaseResult {
    let m: TestMachine;
    const empty = (kind: CaseResult['kind'], message: string): CaseResult => ({
      kind, message, gpr: [], rip: 0n, rflags: 0, mxcsr: 0, fcw: 0, xmm: [], data: new Uint8Array(0),
    });
    try {
      m = this.machine();
      this.codeImage.fill(0xcc);
      this.codeImage.set(c.code);
      m.writeVirt(CODE_ADDR, this.codeImage);
      m.writeVirt(DATA_ADDR, initialData(c));
      for (let i = 0; i < 16; i++) m.setReg(i, BigInt.asUintN(64, c.gpr[i]));
      for (let i = 0; i < 16; i++) m.setXmm(i, BigInt.asUintN(128, c.xmm[i]));
      m.mxcsr = c.mxcsr;
      m.fpuControlWord = c.fcw;
      m.rflags = BigInt((c.rflags & 0xcd5) | 0x202); // user mode runs with IF=1
      m.rip = BigInt(CODE_ADDR);
    } catch (e) {
      this.m = null;
      return empty('error', `test machine setup threw: ${(e as Error).stack ?? e}`);
    }
    let res: TestRunResult;
    try {
      res = m.run({ stopAt: BigInt(CODE_ADDR + c.endOffset), maxInsns: MAX_INSNS });
    } catch (e) {
      // Keep the machine (every case reloads all state it depends on): recreating it costs more than the case.
      if (c.mode32) this.m = null;
      return empty('error', `emulator threw: ${((e as Error).stack ?? String(e)).split('\n').slice(0, 4).join(' | ')}`);
    }
    const gpr: bigint[] = [];
    for (let i = 0; i < 16; i++) gpr.push(m.getReg(i));
    const xmm: bigint[] = [];
    for (let i = 0; i < 16; i++) xmm.push(m.getXmm(i));
    const base = {
      gpr, xmm, rip: m.rip, rflags: Number(m.rflags & 0xffffffffn), mxcsr: m.mxcsr, fcw: m.fpuControlWord,
      data: m.readVirt(DATA_ADDR, DATA_SIZE),
    };
    let r: CaseResult;
    switch (res.kind) {
      case 'stopped': r = { kind: 'stop', ...base }; break;
      case 'exception':
        r = { kind: 'fault', vector: res.vector, errorCode: res.errorCode, cr2: res.cr2, ...base, rip: res.rip };
        break;
      case 'limit': r = { kind: 'limit', message: `${res.insns} instructions without reaching the end`, ...base }; break;
      default: r = { kind: 'error', message: `run ended with ${res.kind}`, ...base };
    }
    if (c.mode32 && r.kind !== 'stop') this.m = null;
    return r;
  }
}
