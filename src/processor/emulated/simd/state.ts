/**
 * x87 and MXCSR state of one processor. x87 registers are kept in their exact 80-bit form (so loads,
 * stores, FXSAVE and FXRSTOR are bit-exact); arithmetic converts them to doubles (see x87.ts).
 */
import type { FpuStateLike } from './contract.js';

export const MXCSR_DEFAULT = 0x1f80;
/** DAZ supported: every bit of the low 16 is writable. */
export const MXCSR_MASK = 0xffff;

export class FpuState implements FpuStateLike {
  mxcsr = MXCSR_DEFAULT;
  fcw = 0x37f;
  /** Status word without TOP (bits 11..13 kept in `top`). */
  fsw = 0;
  top = 0;
  /** One bit per physical register: 1 = empty. */
  empty = 0xff;
  /** Physical registers R0..R7: significand halves and sign|exponent. */
  readonly mlo = new Int32Array(8);
  readonly mhi = new Int32Array(8);
  readonly sexp = new Uint16Array(8);
  /** Last instruction opcode / operand pointers (operand pointer = last memory operand's linear address). */
  fop = 0;
  fip = 0; fcs = 0;
  fdp = 0; fds = 0;
}

export function createFpuState(): FpuState {
  return new FpuState();
}

/** Power-on / INIT values. */
export function resetFpuState(s: FpuStateLike): void {
  const f = s as FpuState;
  f.mxcsr = MXCSR_DEFAULT;
  f.fcw = 0x37f;
  f.fsw = 0; f.top = 0; f.empty = 0xff;
  f.mlo.fill(0); f.mhi.fill(0); f.sexp.fill(0);
  f.fop = 0; f.fip = 0; f.fcs = 0; f.fdp = 0; f.fds = 0;
}
