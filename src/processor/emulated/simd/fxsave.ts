/**
 * FXSAVE / FXRSTOR: the 512-byte legacy region of the Intel SDM (Vol. 1, 10.5.1). The REX.W form stores
 * 64-bit FPU instruction/operand pointers; the other form stores 32-bit offsets plus selectors. All 16 XMM
 * registers are saved in 64-bit mode, 8 otherwise. Bytes 464..511 are left to software.
 */
import type { SimdCpu } from './contract.js';
import { MXCSR_MASK, type FpuState } from './state.js';
import { statusWord } from './x87.js';

const NM = 7, GP = 13;
const CR0_EM = 1 << 2, CR0_TS = 1 << 3;

function check(cpu: SimdCpu, lin: number): void {
  if ((cpu.cr0 & (CR0_EM | CR0_TS)) !== 0) cpu.raise(NM);
  if ((lin & 15) !== 0) cpu.raise(GP, 0);
}

/** XMM registers covered: 16 in 64-bit mode, 8 outside it (`long` false). */
function xmmCount(rexW: boolean, long?: boolean): number {
  return rexW || long !== false ? 16 : 8;
}

export function fxsave(cpu: SimdCpu, lin: number, rexW: boolean, long?: boolean): void {
  check(cpu, lin);
  const f = cpu.fpu as FpuState;
  cpu.probeWrite(lin, 464);
  let abridged = 0;
  for (let p = 0; p < 8; p++) if (((f.empty >> p) & 1) === 0) abridged |= 1 << p;
  cpu.write16(lin, f.fcw);
  cpu.write16(lin + 2, statusWord(f));
  cpu.write8(lin + 4, abridged);
  cpu.write8(lin + 5, 0);
  cpu.write16(lin + 6, f.fop & 0x7ff);
  if (rexW) {
    cpu.write32(lin + 8, f.fip); cpu.write32(lin + 12, 0);
    cpu.write32(lin + 16, f.fdp); cpu.write32(lin + 20, f.fdp < 0 ? -1 : 0);
  } else {
    cpu.write32(lin + 8, f.fip); cpu.write32(lin + 12, f.fcs & 0xffff);
    cpu.write32(lin + 16, f.fdp); cpu.write32(lin + 20, f.fds & 0xffff);
  }
  cpu.write32(lin + 24, f.mxcsr);
  cpu.write32(lin + 28, MXCSR_MASK);
  for (let k = 0; k < 8; k++) {
    const p = (f.top + k) & 7, a = lin + 32 + 16 * k;
    cpu.write32(a, f.mlo[p]); cpu.write32(a + 4, f.mhi[p]); cpu.write16(a + 8, f.sexp[p]);
    cpu.write16(a + 10, 0); cpu.write32(a + 12, 0);
  }
  const n = xmmCount(rexW, long);
  const x = cpu.xmm;
  for (let r = 0; r < n; r++) {
    const a = lin + 160 + 16 * r;
    cpu.write32(a, x[4 * r]); cpu.write32(a + 4, x[4 * r + 1]); cpu.write32(a + 8, x[4 * r + 2]); cpu.write32(a + 12, x[4 * r + 3]);
  }
}

export function fxrstor(cpu: SimdCpu, lin: number, rexW: boolean, long?: boolean): void {
  check(cpu, lin);
  const f = cpu.fpu as FpuState;
  // Read everything first so a fault or #GP leaves the state unchanged.
  const mx = cpu.read32(lin + 24);
  if ((mx & ~MXCSR_MASK) !== 0) cpu.raise(GP, 0);
  const n = xmmCount(rexW, long);
  cpu.read8(lin + 160 + 16 * n - 1); // touch the last byte (page fault before any change)
  const fcw = cpu.read16(lin), fsw = cpu.read16(lin + 2), abridged = cpu.read8(lin + 4), fop = cpu.read16(lin + 6);
  const fip = cpu.read32(lin + 8), fcs = cpu.read32(lin + 12), fdp = cpu.read32(lin + 16), fds = cpu.read32(lin + 20);
  f.fcw = fcw & 0x1f7f | 0x40;
  f.fsw = fsw & ~0x3800; f.top = (fsw >> 11) & 7;
  f.empty = ~abridged & 0xff;
  f.fop = fop & 0x7ff;
  f.fip = fip; f.fdp = fdp;
  if (rexW) { f.fcs = 0; f.fds = 0; } else { f.fcs = fcs & 0xffff; f.fds = fds & 0xffff; }
  f.mxcsr = mx;
  for (let k = 0; k < 8; k++) {
    const p = (f.top + k) & 7, a = lin + 32 + 16 * k;
    f.mlo[p] = cpu.read32(a); f.mhi[p] = cpu.read32(a + 4); f.sexp[p] = cpu.read16(a + 8);
  }
  const x = cpu.xmm;
  for (let r = 0; r < n; r++) {
    const a = lin + 160 + 16 * r;
    x[4 * r] = cpu.read32(a); x[4 * r + 1] = cpu.read32(a + 4); x[4 * r + 2] = cpu.read32(a + 8); x[4 * r + 3] = cpu.read32(a + 12);
  }
}
