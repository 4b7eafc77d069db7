/** The SIMD unit: SSE/SSE2, x87, FXSAVE/FXRSTOR. Entry points called by the emulated processor core. */
export { createFpuState, resetFpuState, FpuState, MXCSR_DEFAULT, MXCSR_MASK } from './state.js';
export { execSse } from './sse.js';
export { execX87, fwait } from './x87.js';
export { fxsave, fxrstor } from './fxsave.js';
