/**
 * The SIMD unit: SSE/SSE2, x87, MMX (registers aliased on the x87 ones, with the SSE/SSE2 MMX extensions),
 * FXSAVE/FXRSTOR. Entry points called by the emulated processor core.
 *
 * Known deviations from hardware (all documented where they live):
 *  - x87 arithmetic (add, sub, mul, div, sqrt, fprem, fprem1, fscale, frndint, fxtract), loads, stores,
 *    compares and integer/BCD conversions are exact (checked bit for bit against the host at every
 *    precision and rounding control). Transcendentals (fsin fcos fsincos fptan fpatan f2xm1 fyl2x fyl2xp1)
 *    use the host's double functions, so they carry double accuracy only.
 *  - Unmasked x87 overflow/underflow on register results store the masked result (no 2^24576 bias adjust).
 *  - RCPPS/RSQRTPS return the correctly rounded value (hardware tables differ by vendor; the architectural
 *    bound of 1.5*2^-12 relative error holds).
 *  - FIP/FCS are not tracked (zero); FDP is the last x87 memory operand's linear address. FNSTENV/FNSAVE use
 *    the protected-mode layout in every mode. FPREM's partial-reduction step follows the AMD host.
 */
export { createFpuState, resetFpuState, FpuState, MXCSR_DEFAULT, MXCSR_MASK } from './state.js';
export { execSse } from './sse.js';
export { execX87, fwait } from './x87.js';
export { fxsave, fxrstor } from './fxsave.js';
