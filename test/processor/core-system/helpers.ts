import { Cpu } from '../../../src/processor/emulated/cpu.js';
import { createTestPlatform, type TestPlatform } from '../../../src/processor/emulated/testing.js';
import { flushTlb } from '../../../src/processor/emulated/mmu.js';

/** Run `fn` and return the fault it raised (vector, error code), or null. */
export function faultOf(cpu: Cpu, fn: () => void): { vector: number; errorCode: number } | null {
  try { fn(); } catch (e) {
    if (e === cpu.fault) return { vector: cpu.fault.vector, errorCode: cpu.fault.errorCode };
    throw e;
  }
  return null;
}

/** A bare CPU with hand-built page tables: helpers write 64-bit entries at physical addresses. */
export function bareCpu(mem = 16 * 1024 * 1024): { cpu: Cpu; plat: TestPlatform; pte: (pa: number, lo: number, hi?: number) => void; rd: (pa: number) => number } {
  const plat = createTestPlatform(mem);
  const cpu = new Cpu(0, plat);
  const v = plat.memory.view;
  return {
    cpu, plat,
    pte: (pa, lo, hi = 0) => { v.setUint32(pa, lo >>> 0, true); v.setUint32(pa + 4, hi >>> 0, true); },
    rd: (pa) => v.getUint32(pa, true),
  };
}

export function longMode(cpu: Cpu, cr3: number): void {
  cpu.cr0 = 0x80050033; cpu.cr4 = 0x6a0; cpu.efer = 0xd01; cpu.cr3 = cr3;
  cpu.segAttr[1] = 0xa09b; cpu.mode = 3; cpu.codeBits = 64; cpu.cpl = 0;
  flushTlb(cpu, true);
}
