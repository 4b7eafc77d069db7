/**
 * Shared runner for guest-program tests: assembles a small program with GNU as/ld, loads it into a
 * one-vCPU partition on any ProcessorBackend, wires a test device and recording Hyper-V handlers, and
 * runs until the program reports done (or a bounded number of run slices passes).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  BootCpuState, CpuidResult, HypercallRegs, InterruptController, PlatformServices, ProcessorBackend, RunOutcome,
} from '../../../src/processor/backend.js';
import { GuestMemory } from '../../../src/platform/memory.js';
import { IoBus, MmioBus, type AccessSize } from '../../../src/platform/bus.js';
import { VirtualClock } from '../../../src/platform/clock.js';

export const RESULT_PORT = 0x510; // 4-byte OUT: append to results
export const DONE_PORT = 0x514; // OUT: program finished
export const ARM_PORT = 0x518; // OUT: make the test interrupt pending
export const ECHO_PORT = 0x500; // 4 ports: IN returns last OUT value XOR 0xffffffff (masked to size)
export const MMIO_BASE = 0xd000_0000; // 4 KiB test register file in the MMIO hole
export const TEST_VECTOR = 0x40;
export const MEM_SIZE = 0x40_0000;

/** Missing tool → skip reason. */
export function assemblerSkipReason(): string | false {
  for (const t of ['as', 'ld', 'objcopy']) {
    if (spawnSync(t, ['--version']).status !== 0) return `${t} (binutils) is not installed: apt-get install binutils`;
  }
  return false;
}

/** Assembles GNU as source (AT&T syntax) linked at `org`, returns the flat binary. */
export function assemble(source: string, org: number): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-guest-'));
  try {
    writeFileSync(join(dir, 'p.S'), `${source}\n`);
    const run = (cmd: string, args: string[]): void => {
      const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
    };
    run('as', ['--64', '-o', 'p.o', 'p.S']);
    run('ld', ['-m', 'elf_x86_64', '-N', '-Ttext', `0x${org.toString(16)}`, '-e', `0x${org.toString(16)}`, '-o', 'p.elf', 'p.o']);
    run('objcopy', ['-O', 'binary', '-j', '.text', 'p.elf', 'p.bin']);
    return new Uint8Array(readFileSync(join(dir, 'p.bin')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Long-mode scaffolding the tests place in RAM: GDT at 0x500, identity map of the low 4 GiB with 2 MiB pages. */
export const GDT_ADDR = 0x500;
export const PML4_ADDR = 0x10000;
export function buildLongModeTables(mem: GuestMemory): Pick<BootCpuState, 'cr3' | 'gdtBase' | 'gdtLimit' | 'cs' | 'ds'> {
  const v = mem.view;
  // null, unused, code64 (0x10), data (0x18)
  const gdt = [[0, 0], [0, 0], [0x0000ffff, 0x00af9b00], [0x0000ffff, 0x00cf9300]];
  gdt.forEach(([lo, hi], i) => { v.setUint32(GDT_ADDR + i * 8, lo, true); v.setUint32(GDT_ADDR + i * 8 + 4, hi, true); });
  const pdpt = PML4_ADDR + 0x1000;
  v.setUint32(PML4_ADDR, pdpt | 3, true);
  for (let g = 0; g < 4; g++) {
    const pd = pdpt + 0x1000 * (g + 1);
    v.setUint32(pdpt + g * 8, pd | 3, true);
    for (let i = 0; i < 512; i++) {
      const phys = g * 0x4000_0000 + i * 0x20_0000;
      v.setUint32(pd + i * 8, (phys | 0x83) >>> 0, true); // present, writable, 2 MiB
      v.setUint32(pd + i * 8 + 4, 0, true);
    }
  }
  return { cr3: PML4_ADDR, gdtBase: GDT_ADDR, gdtLimit: 4 * 8 - 1, cs: 0x10, ds: 0x18 };
}

/** CPUID the tests define: sane basic/extended leaves (KVM validates long mode against them) and Hyper-V leaves. */
export const HV_LEAVES: Record<number, CpuidResult> = {
  0x4000_0000: { eax: 0x4000_0001, ebx: 0x7263694d, ecx: 0x666f736f, edx: 0x76482074 },
  0x4000_0001: { eax: 0x31237648, ebx: 0, ecx: 0, edx: 0 },
};
function testCpuid(leaf: number): CpuidResult {
  switch (leaf >>> 0) {
    case 0: return { eax: 1, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 }; // AuthenticAMD
    case 1: return { eax: 0x00060fb1, ebx: 0, ecx: 0x8000_0000, edx: 0x0781_abfd };
    case 0x8000_0000: return { eax: 0x8000_0008, ebx: 0, ecx: 0, edx: 0 };
    case 0x8000_0001: return { eax: 0, ebx: 0, ecx: 0, edx: (1 << 29) | (1 << 20) | (1 << 11) };
    case 0x8000_0008: return { eax: 0x3028, ebx: 0, ecx: 0, edx: 0 };
    default: return HV_LEAVES[leaf >>> 0] ?? { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  }
}

/** A LAPIC stand-in: one vector becomes pending when the guest writes ARM_PORT. */
class TestInterrupts implements InterruptController {
  armed = false;
  delivered = 0;
  pendingVector(): number { return this.armed ? TEST_VECTOR : -1; }
  acknowledge(): number { if (!this.armed) return -1; this.armed = false; this.delivered++; return TEST_VECTOR; }
  nmiPending(): boolean { return false; }
  acknowledgeNmi(): void {}
  getTpr(): number { return 0; }
  setTpr(): void {}
}

export interface HypercallRecord { rcx: [number, number]; rdx: [number, number]; r8: [number, number] }

export interface RunResult {
  results: number[];
  done: boolean;
  outcomes: RunOutcome['kind'][];
  msrWrites: Array<[number, number, number]>;
  msrReads: number[];
  hypercalls: HypercallRecord[];
  resets: string[];
  interruptsDelivered: number;
  mmio: Map<number, number>;
}

export interface ProgramSpec {
  boot: BootCpuState;
  /** Called with guest RAM before the first instruction (load code, tables). */
  load(mem: GuestMemory): void;
  /** Loaded and booted (once) when the machine resets, as the partition reloads its firmware. */
  afterReset?: ProgramSpec;
  /** Upper bound on run() slices before giving up (no timing assertion: a bound on work). */
  maxSlices?: number;
}

export interface BackendUnderTest {
  name: string;
  /** Reason on one line when this backend cannot run here. */
  skip: string | false;
  create(): ProcessorBackend;
  allocateMemory(size: number): GuestMemory;
  /** Cases this host's backend is shown (by a probe) to handle unlike hardware, with the reason. */
  hostSkips?: { realModeTripleFault?: string | false };
}

/** Value returned for MSR reads the test handler knows. */
export const MSR_VALUES: Record<number, [number, number]> = {
  0x4000_0020: [0x89abcdef, 0x01234567],
};
export const HYPERCALL_STATUS = 0x0000_1234;

export async function runProgram(b: BackendUnderTest, spec: ProgramSpec): Promise<RunResult> {
  const memory = b.allocateMemory(MEM_SIZE);
  const r: RunResult = {
    results: [], done: false, outcomes: [], msrWrites: [], msrReads: [], hypercalls: [], resets: [], interruptsDelivered: 0,
    mmio: new Map(),
  };
  const io = new IoBus();
  const ints = new TestInterrupts();
  let echo = 0;
  let vcpuRef: { requestExit(): void } | null = null;
  io.register(ECHO_PORT, 4, {
    pioRead: (_o, size: AccessSize) => (~echo >>> 0) & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff),
    pioWrite: (_o, _s, v) => { echo = v >>> 0; },
  }, 'echo');
  io.register(RESULT_PORT, 4, { pioRead: () => 0, pioWrite: (_o, _s, v) => { r.results.push(v >>> 0); } }, 'result');
  io.register(DONE_PORT, 4, { pioRead: () => 0, pioWrite: () => { r.done = true; vcpuRef?.requestExit(); } }, 'done');
  io.register(ARM_PORT, 4, { pioRead: () => 0, pioWrite: () => { ints.armed = true; } }, 'arm');
  const mmio = new MmioBus();
  mmio.register(MMIO_BASE, 0x1000, {
    mmioRead: (o) => ((r.mmio.get(o) ?? 0) + 1) >>> 0,
    mmioWrite: (o, _s, v) => { r.mmio.set(o, v >>> 0); },
  }, 'regs');
  const platform: PlatformServices = {
    memory, io, mmio, clock: new VirtualClock('realtime'),
    cpuid: { cpuid: (leaf) => testCpuid(leaf) },
    msr: {
      read(_vp, index, out) {
        const v = MSR_VALUES[index >>> 0];
        r.msrReads.push(index >>> 0);
        if (!v) return false;
        out.lo = v[0]; out.hi = v[1];
        return true;
      },
      write(_vp, index, lo, hi) {
        r.msrWrites.push([index >>> 0, lo >>> 0, hi >>> 0]);
        if ((index >>> 0) === 0x4000_0001 && (lo & 1)) {
          // What the hypervisor layer does for the emulated processor: VMCALL; RET (KVM overwrites with its stub).
          memory.write((lo & ~0xfff) >>> 0, new Uint8Array([0x0f, 0x01, 0xc1, 0xc3]));
        }
        return (index >>> 0) >= 0x4000_0000 && (index >>> 0) < 0x4000_0200;
      },
    },
    hypercall: {
      hypercall(_vp, regs: HypercallRegs) {
        const g = (i: number): [number, number] => { const x = regs.get(i); return [x.lo >>> 0, x.hi >>> 0]; };
        r.hypercalls.push({ rcx: g(1), rdx: g(2), r8: g(8) });
        regs.set(0, HYPERCALL_STATUS, 0);
      },
    },
    interrupts: [ints],
    tscHz: 1_000_000_000,
    onReset: (why) => { r.resets.push(why); },
    onShutdown: () => {},
  };
  spec.load(memory);
  const backend = b.create();
  try {
    const vp = await backend.createVcpu(0, platform);
    vcpuRef = vp;
    vp.setBootState(spec.boot);
    const max = spec.maxSlices ?? 200;
    let rebooted = false;
    for (let i = 0; i < max && !r.done; i++) {
      const o = await vp.run(20);
      r.outcomes.push(o.kind);
      // A reset reaches the platform through onReset (as the partition sees it), whatever run() returned.
      if (r.resets.length > 0 && spec.afterReset && !rebooted) {
        rebooted = true;
        spec.afterReset.load(memory);
        vp.setBootState(spec.afterReset.boot);
        continue;
      }
      if (o.kind === 'shutdown' || o.kind === 'reset' || r.resets.length > 0) break;
      if (o.kind === 'halted' && !ints.armed) break;
    }
  } finally {
    backend.destroy();
  }
  r.interruptsDelivered = ints.delivered;
  return r;
}

export function emulatedMemory(size: number): GuestMemory { return new GuestMemory(size); }
