/**
 * Contract between the emulated processor core (decoder, integer execution, MMU) and the SIMD/x87 unit
 * (simd/: SSE, SSE2, MMX, x87, FXSAVE/FXRSTOR). The core decodes instruction length, prefixes, ModRM and the
 * effective address; the SIMD unit executes. Neither side allocates per instruction.
 */

/** What the SIMD unit may use of the processor. Implemented by the core's CPU class. */
export interface SimdCpu {
  /** General-purpose registers as 32-bit halves: gpr[2*i] = low, gpr[2*i+1] = high (RAX=0 ... R15=15). */
  readonly gpr: Int32Array;
  /** 16 XMM registers as 32-bit lanes: xmm[4*i + lane], lane 0 least significant. Also viewable as bytes/doubles. */
  readonly xmm: Int32Array;
  /** x87 and MXCSR state; owned by the SIMD unit, stored on the CPU so save/restore can reach it. */
  readonly fpu: FpuStateLike;
  /** Control registers (low 32 bits), for CR0.TS/EM/MP and CR4.OSFXSR/OSXMMEXCPT checks. */
  readonly cr0: number;
  readonly cr4: number;
  /** Linear-address memory access (segment base already added). May throw the core's fault object (#PF, #GP). */
  read8(lin: number): number;
  read16(lin: number): number;
  read32(lin: number): number;
  write8(lin: number, v: number): void;
  write16(lin: number, v: number): void;
  write32(lin: number, v: number): void;
  /** Check that [lin, lin+len) is writable before a multi-part store, so a fault leaves memory unchanged. */
  probeWrite(lin: number, len: number): void;
  /** Raise an exception (#UD=6, #NM=7, #GP=13, #MF=16, #XM=19, ...). Never returns (throws the core's fault object). */
  raise(vector: number, errorCode?: number): never;
}

/** Opaque to the core: created by `createFpuState()` of the SIMD unit. */
export interface FpuStateLike {
  mxcsr: number;
}

/** The decoded fields of one SIMD/x87 instruction, filled by the core's decoder (reused object, never retained). */
export interface SimdInsn {
  /** Opcode: (map << 8) | byte, map 1 = 0F, 2 = 0F 38, 3 = 0F 3A; x87 escapes use map 0 (0xD8..0xDF); 0F AE group too. */
  op: number;
  /** Mandatory prefix in effect: 0, 0x66, 0xF3 or 0xF2 (last of F2/F3 wins; else 66 if present). */
  mandatory: number;
  /** REX.W present. */
  rexW: boolean;
  /** ModRM fields: reg and rm include REX.R / REX.B (0..15); mod 0..3. */
  mod: number;
  reg: number;
  rm: number;
  /**
   * Linear address of the memory operand when mod !== 3 (segment and RIP-relative already applied).
   * MASKMOVDQU (66 0F F7) and MASKMOVQ (0F F7), register forms, store to DS:rDI: the core sets `ea` to that
   * linear address (segment override and address size applied) before calling execSse.
   */
  ea: number;
  /** Immediate byte for instructions that have one (pshufd, psrldq group, cmpps, shufps, pinsrw, ...). */
  imm8: number;
  /** Operand size (16/32/64) for GPR operands (movd/movq, cvtsi2sd, pextrw, x87 fist/fild sizes come from the opcode). */
  opsize: number;
  /** 64-bit mode (CS.L) is active. */
  long: boolean;
}

/**
 * Entry points the SIMD unit exports from simd/index.ts and the core calls:
 *   createFpuState(): FpuStateLike
 *   resetFpuState(s): void                       (power-on / INIT values: FCW=0x37F (FNINIT 0x37F), MXCSR=0x1F80)
 *   execSse(cpu, insn): boolean                  (false: not an SSE instruction, core raises #UD)
 *   execX87(cpu, insn): boolean                  (escape opcodes D8..DF, plus FWAIT handling via fwait(cpu))
 *   fxsave(cpu, lin, rexW, long?) / fxrstor(cpu, lin, rexW, long?)  (long === false: outside 64-bit mode, XMM0-7 only)
 *   ldmxcsr/stmxcsr are handled in execSse (0F AE /2, /3).
 * Table of which 0F-map opcodes carry an imm8 (the core's decoder needs it for lengths):
 *   0F 70, 0F 71, 0F 72, 0F 73, 0F C2, 0F C4, 0F C5, 0F C6, all of 0F 3A.
 */
export const SIMD_IMM8_OPCODES_0F: readonly number[] = [0x70, 0x71, 0x72, 0x73, 0xc2, 0xc4, 0xc5, 0xc6];
