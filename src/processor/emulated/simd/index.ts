/**
 * The SIMD unit: SSE/SSE2, x87, FXSAVE/FXRSTOR. Entry points called by the emulated processor core.
 *
 * Known deviations from hardware (all documented where they live):
 *  - x87 arithmetic (fadd..fdivr, fsqrt) is correctly rounded to at most 53 bits: precision control 64
 *    computes as 53. Operands with more than 53 significant bits (from FLD m80, FILD m64, constants) are
 *    rounded to 53 bits before arithmetic. Loads, stores, compares, integer/BCD conversions, FSCALE,
 *    FRNDINT, FXTRACT of normals, moves and sign operations are exact.
 *  - Transcendentals (fsin fcos fsincos fptan fpatan f2xm1 fyl2x fyl2xp1) use the host's double functions;
 *    FPREM/FPREM1 always reduce completely (C2 = 0).
 *  - Unmasked x87 overflow/underflow store the masked result (no 2^24576 bias adjust).
 *  - RCPPS/RSQRTPS return the correctly rounded value (hardware tables differ by vendor; the architectural
 *    bound of 1.5*2^-12 relative error holds).
 *  - FIP/FCS are not tracked (zero); FDP is the last x87 memory operand's linear address. FNSTENV/FNSAVE use
 *    the protected-mode layout in every mode.
 */
export { createFpuState, resetFpuState, FpuState, MXCSR_DEFAULT, MXCSR_MASK } from './state.js';
export { execSse } from './sse.js';
export { execX87, fwait } from './x87.js';
export { fxsave, fxrstor } from './fxsave.js';
