/** Seeded random source and operand pickers for the generators (deterministic per seed). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) ^ 0x6d2b79f5; }
  /** mulberry32 */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number { return n <= 1 ? 0 : this.u32() % n; }
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  bool(p = 0.5): boolean { return this.u32() / 4294967296 < p; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
  u64(): bigint { return (BigInt(this.u32()) << 32n) | BigInt(this.u32()); }
  u128(): bigint { return (this.u64() << 64n) | this.u64(); }
  bytes(n: number): Uint8Array { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff; return b; }

  /** A value of `bits` width biased towards edge cases: 0, 1, -1, sign boundaries, small, random. */
  operand(bits: number): bigint {
    const m = (1n << BigInt(bits)) - 1n;
    const sign = 1n << BigInt(bits - 1);
    switch (this.int(12)) {
      case 0: return 0n;
      case 1: return 1n;
      case 2: return m; // -1
      case 3: return sign - 1n; // 0x7f..
      case 4: return sign; // 0x80..
      case 5: return sign + 1n;
      case 6: return BigInt(this.int(64)); // small
      case 7: return (m - BigInt(this.int(64))) & m; // small negative
      case 8: return (1n << BigInt(this.int(bits))) & m; // single bit
      case 9: return (this.u64() | (this.u64() << 64n)) & (m >> BigInt(this.int(bits))); // random, fewer bits
      default: return (this.u64() | (this.u64() << 64n)) & m;
    }
  }
  /** A 64-bit register value whose low `bits` are `operand(bits)` and whose upper part is random or zero/ones. */
  regValue(bits: number): bigint {
    const low = this.operand(bits);
    if (bits >= 64) return low;
    const up = this.pick([0n, -1n, this.u64(), this.u64()]);
    return BigInt.asUintN(64, (up << BigInt(bits)) | low);
  }
}
