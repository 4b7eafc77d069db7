/** One differential test case and the deterministic data-page image both sides start from. */
import { DATA_SIZE } from './layout.js';

export interface DiffCase {
  /** Short description of the instruction form and operands (printed on a divergence). */
  name: string;
  /** Bytes placed at CODE_ADDR; they must end in int3 at `endOffset`. */
  code: Uint8Array;
  /** Offset of the terminating int3 inside `code` (the emulator runs until RIP reaches it). */
  endOffset: number;
  /** Offset and length of the instruction under test (for disassembly in reports). */
  insnOffset: number;
  insnLength: number;
  /** 32-bit compatibility-mode body (entered and left through far jumps); disassembled as i386. */
  mode32?: boolean;
  gpr: bigint[]; // 16 values, RAX..R15
  rflags: number; // only CF PF AF ZF SF DF OF are used
  mxcsr: number;
  fcw: number;
  xmm: bigint[]; // 16 x 128-bit
  dataSeed: number;
  patches: { offset: number; bytes: Uint8Array }[];
  /** RFLAGS bits the architecture leaves undefined for this case (not compared). */
  undefFlags?: number;
  /** GPRs (bit i = register i) whose value is undefined for this case (not compared). */
  undefGprs?: number;
  /** Compare only the low 32 bits of GPRs (after compatibility-mode code the high halves are undefined). */
  gprLow32Only?: boolean;
  /** XMM registers (bit i) not compared. */
  undefXmm?: number;
  /** MXCSR bits not compared. */
  undefMxcsr?: number;
}

/** xorshift32 fill, identical to fill_pattern() in native/runner.c. */
export function fillData(seed: number): Uint8Array {
  const out = new Uint8Array(DATA_SIZE);
  const dv = new DataView(out.buffer);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i + 4 <= DATA_SIZE; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    dv.setUint32(i, x, true);
  }
  return out;
}

export function initialData(c: DiffCase): Uint8Array {
  const d = fillData(c.dataSeed);
  for (const p of c.patches) d.set(p.bytes, p.offset);
  return d;
}

/** Outcome of one case on either side. */
export interface CaseResult {
  /**
   * 'stop': reached the end marker; 'fault': exception vector at `rip`; 'timeout'/'limit': ran away;
   * 'unsupported': the host cannot run this case (compatibility mode unavailable, e.g. under PVM).
   */
  kind: 'stop' | 'fault' | 'timeout' | 'limit' | 'error' | 'unsupported';
  vector?: number;
  errorCode?: number;
  /** Faulting linear address for #PF. */
  cr2?: bigint;
  message?: string;
  gpr: bigint[];
  rip: bigint;
  rflags: number;
  mxcsr: number;
  fcw: number;
  xmm: bigint[];
  data: Uint8Array;
}
