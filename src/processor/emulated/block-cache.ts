/**
 * Decoded-block cache. A block is a straight run of decoded instructions inside one physical page, keyed by
 * physical address and processor mode; pages holding blocks are marked in cpu.codePages so the MMU reports
 * stores to them (self-modifying code: alternatives, static keys, text_poke) and the blocks are dropped.
 */
import type { Cpu } from './cpu.js';
import { Insn, decode, IF } from './decoder.js';
import { translateFetch, physRead } from './mmu.js';
import type { TranslatedBlock } from './jit.js';

/** Most instructions per block (also bounds the work between interrupt checks). */
export const MAX_BLOCK = 64;

export class Block {
  readonly insns: Insn[] = [];
  count = 0;
  valid = true;
  /** Executions so far (translation trigger) and the translated form once made (jit.ts). */
  hits = 0;
  jit: TranslatedBlock | null = null;
  /** Instructions retired by earlier passes of a translated self-loop now running (fault accounting). */
  loopDone = 0;
  /** The last instruction may change what interrupt is deliverable (IF.SYS). */
  sys = false;
  constructor(readonly key: number, readonly phys: number, readonly mode: number) {}
}

const FRONT = 8192;

export class BlockCache {
  private readonly map = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  /** Direct-mapped front table over the map (most lookups hit here). */
  private readonly front: (Block | null)[] = new Array(FRONT).fill(null);
  private readonly scratch = new Uint8Array(16);
  /** The one-instruction block of code that is not cached (page-crossing or outside RAM). */
  readonly uncached = new Block(-1, -1, -1);
  /** Blocks decoded so far (statistics). */
  built = 0;

  constructor(private readonly cpu: Cpu) {
    this.uncached.insns.push(new Insn());
  }

  /** Block starting at linear address `lin` (faults on fetch are raised from here). */
  lookup(lin: number): Block {
    const cpu = this.cpu;
    const phys = translateFetch(cpu, lin);
    const mode = cpu.mode;
    const key = phys * 4 + mode;
    const fi = (phys ^ (phys >>> 13) ^ mode) & (FRONT - 1);
    const f = this.front[fi];
    if (f !== null && f.key === key && f.valid) return f;
    let b = this.map.get(key);
    if (b === undefined) {
      b = this.build(lin, phys, mode, key);
      if (b === this.uncached) return b;
    }
    this.front[fi] = b;
    return b;
  }

  private build(lin: number, phys: number, mode: number, key: number): Block {
    const cpu = this.cpu;
    const mem = cpu.platform.memory;
    const off = mem.offsetOf(phys);
    const inPage = 4096 - (phys & 0xfff);
    if (off < 0 || mem.offsetOf(phys + inPage - 1) !== off + inPage - 1) return this.buildSingle(lin, phys, mode);
    const bytes = mem.bytes;
    const b = new Block(key, phys, mode);
    let p = 0;
    while (b.count < MAX_BLOCK && p < inPage) {
      const i = new Insn();
      const len = decode(i, bytes, off + p, inPage - p, mode);
      if (len === 0) break; // crosses into the next page: it starts its own (uncached) block
      b.insns.push(i);
      b.count++;
      p += len;
      if ((i.flags & IF.END) !== 0) break;
    }
    if (b.count === 0) return this.buildSingle(lin, phys, mode);
    b.sys = (b.insns[b.count - 1].flags & IF.SYS) !== 0;
    this.built++;
    if (this.map.size > 262144) this.clear();
    this.map.set(key, b);
    const ppn = Math.floor(phys / 4096);
    let list = this.byPage.get(ppn);
    if (list === undefined) { list = []; this.byPage.set(ppn, list); }
    list.push(b);
    if (ppn < cpu.codePages.length && cpu.codePages[ppn] === 0) {
      cpu.codePages[ppn] = 1;
      cpu.onCodeCached(ppn);
    }
    return b;
  }

  /** One instruction fetched byte by byte (page-crossing or outside RAM); decoded every time, never cached. */
  private buildSingle(lin: number, phys: number, mode: number): Block {
    const cpu = this.cpu;
    const s = this.scratch;
    const inPage = 4096 - (phys & 0xfff);
    let n = 0;
    for (; n < 15 && n < inPage; n++) s[n] = physRead(cpu, phys + n, 1);
    const i = this.uncached.insns[0];
    let len = decode(i, s, 0, n, mode);
    if (len === 0) {
      // Fetch the rest from the next page (its translation may fault, as on hardware).
      const phys2 = translateFetch(cpu, lin + inPage);
      for (let k = 0; n < 15; n++, k++) s[n] = physRead(cpu, phys2 + k, 1);
      len = decode(i, s, 0, 15, mode);
    }
    this.uncached.count = 1;
    return this.uncached;
  }

  invalidatePage(ppn: number): void {
    const cpu = this.cpu;
    const list = this.byPage.get(ppn);
    if (list !== undefined) {
      const w = cpu.wasmJit;
      for (const b of list) { b.valid = false; this.map.delete(b.key); if (w !== null) w.drop(b); }
      this.byPage.delete(ppn);
    }
    if (ppn < cpu.codePages.length) cpu.codePages[ppn] = 0;
    cpu.codeDirty = true;
  }

  /** Drop everything (mode-independent reset, or the cache grew too large). */
  clear(): void {
    const cpu = this.cpu;
    const w = cpu.wasmJit;
    for (const [ppn, list] of this.byPage) {
      for (const b of list) { b.valid = false; if (w !== null) w.drop(b); }
      // A shared flag may also cover other vCPUs' blocks; it stays until a store drops them all.
      if (!cpu.codePagesShared && ppn < cpu.codePages.length) cpu.codePages[ppn] = 0;
    }
    this.map.clear();
    this.byPage.clear();
    this.front.fill(null);
    cpu.codeDirty = true; // a running translated block stops after the store or handler that got here
  }

  get size(): number { return this.map.size; }
}
