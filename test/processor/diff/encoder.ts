/**
 * A small x86-64 instruction encoder for the generators: legacy prefixes, REX (optionally forced), opcode,
 * ModRM/SIB with every addressing form, displacement and immediate. It encodes numbers only; what the bytes
 * mean is for the two CPUs under comparison to decide.
 */
export interface Mem {
  base?: number; // 0..15; absent = no base (SIB base=101 disp32, or RIP-relative when `rip`)
  index?: number; // 0..15 except 4 (rsp cannot be an index)
  scale?: 1 | 2 | 4 | 8;
  disp: number; // signed 32-bit
  rip?: boolean;
  /** Force a wider displacement than needed (1 or 4 bytes) to vary the encoding. */
  dispSize?: 1 | 4;
  /** Use a SIB byte even when not needed (base only, index=100). */
  forceSib?: boolean;
}
export type Operand = { reg: number } | { mem: Mem };

export interface InsnSpec {
  prefixes?: number[]; // legacy prefixes, emitted in this order before REX
  rexW?: boolean;
  forceRex?: boolean;
  opcode: number[];
  /** ModRM.reg: a register number or an opcode extension (/digit). */
  reg?: number;
  rm?: Operand;
  /** Register in the low 3 bits of the last opcode byte (BSWAP, XCHG rAX, MOV r, imm). */
  opreg?: number;
  imm?: { value: bigint | number; size: number };
  /** Compatibility-mode encoding: no REX, register numbers must be < 8. */
  mode32?: boolean;
}

export function encode(s: InsnSpec): Uint8Array {
  const out: number[] = [...(s.prefixes ?? [])];
  let rex = s.rexW ? 8 : 0;
  const body: number[] = [];
  const op = [...s.opcode];
  if (s.opreg !== undefined) {
    op[op.length - 1] |= s.opreg & 7;
    if (s.opreg & 8) rex |= 1;
  }
  body.push(...op);
  if (s.rm !== undefined) {
    const reg = s.reg ?? 0;
    if (reg & 8) rex |= 4;
    if ('reg' in s.rm) {
      if (s.rm.reg & 8) rex |= 1;
      body.push(0xc0 | ((reg & 7) << 3) | (s.rm.reg & 7));
    } else {
      const m = s.rm.mem;
      const regBits = (reg & 7) << 3;
      if (m.rip) {
        body.push(regBits | 5);
        pushLe(body, m.disp, 4);
      } else {
        const needSib = m.base === undefined || m.index !== undefined || (m.base & 7) === 4 || m.forceSib;
        let dsize = 0;
        if (m.base === undefined) dsize = 4;
        else if (m.disp !== 0 || (m.base & 7) === 5) dsize = m.disp >= -128 && m.disp <= 127 ? 1 : 4;
        if (m.dispSize && m.base !== undefined && m.dispSize > dsize) dsize = m.dispSize;
        const mod = m.base === undefined ? 0 : dsize === 0 ? 0 : dsize === 1 ? 1 : 2;
        if (needSib) {
          body.push((mod << 6) | regBits | 4);
          if (m.index === 4) throw new Error('encoder: rsp cannot be an index register');
          const idx = m.index ?? 4; // 100 without REX.X: no index
          if (idx & 8) rex |= 2;
          const ss = { 1: 0, 2: 1, 4: 2, 8: 3 }[m.scale ?? 1]!;
          const base = m.base ?? 5;
          if (m.base !== undefined && m.base & 8) rex |= 1;
          body.push((ss << 6) | ((idx & 7) << 3) | (base & 7));
        } else {
          if (m.base! & 8) rex |= 1;
          body.push((mod << 6) | regBits | (m.base! & 7));
        }
        if (dsize) pushLe(body, m.disp, dsize);
      }
    }
  }
  if (s.imm) pushLe(body, s.imm.value, s.imm.size);
  if (s.mode32 && rex) throw new Error('encoder: REX in compatibility mode');
  if (rex || s.forceRex) out.push(0x40 | rex);
  out.push(...body);
  return Uint8Array.from(out);
}

function pushLe(out: number[], v: bigint | number, size: number): void {
  let x = BigInt.asUintN(size * 8, BigInt(v));
  for (let i = 0; i < size; i++) { out.push(Number(x & 0xffn)); x >>= 8n; }
}

export function le(v: bigint | number, size: number): number[] {
  const a: number[] = [];
  pushLe(a, v, size);
  return a;
}
