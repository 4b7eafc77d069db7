/**
 * Decoded-block cache. A block is a straight run of decoded instructions inside one physical page, keyed by
 * physical address and processor mode; pages holding blocks are marked in cpu.codePages so the MMU reports
 * stores to them (self-modifying code: alternatives, static keys, text_poke) and the blocks are dropped.
 * The cache is bounded by sweeps (see `sweep`): a Linux boot decodes ~75k blocks (~2 KB each with their
 * instructions), most of them run once (init code), and keeping them all cost ~150 MB per vCPU.
 */
import type { Cpu } from './cpu.js';
import { Insn, decode, IF } from './decoder.js';
import { translateFetch, physRead } from './mmu.js';
import type { TranslatedBlock } from './jit.js';

/** Most instructions per block (also bounds the work between interrupt checks). */
export const MAX_BLOCK = 64;

export class Block {
  insns: Insn[] = [];
  count = 0;
  valid = true;
  /** Executions so far (translation trigger) and the translated form once made (jit.ts). */
  hits = 0;
  jit: TranslatedBlock | null = null;
  /** Instructions retired by earlier passes of a translated self-loop now running (fault accounting). */
  loopDone = 0;
  /** The last instruction may change what interrupt is deliverable (IF.SYS). */
  sys = false;
  /** Looked up since the last sweep (set on front-table misses; sweeps empty the front table). */
  used = true;
  /** Sweeps in a row this block was not used in (translated blocks get more before they go). */
  idle = 0;
  constructor(readonly key: number, readonly phys: number, readonly mode: number) {}
}

const FRONT = 8192;
/**
 * A sweep runs when the cache holds SWEEP_AT blocks, or MIN_NEW more than the last sweep kept. A boot's working
 * set is large at times (16k/4k re-decoded 260k blocks and cost ~8% CPU); 32k/16k re-decodes ~40k and costs nothing.
 */
export const SWEEP_AT = 32768;
export const MIN_NEW = 16384;
/** Sweeps a translated block may sit unused before it goes (translating again costs far more than decoding). */
const JIT_IDLE_SWEEPS = 4;

export class BlockCache {
  private readonly map = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  /** Direct-mapped front table over the map (most lookups hit here). */
  private readonly front: (Block | null)[] = new Array(FRONT).fill(null);
  private readonly scratch = new Uint8Array(16);
  /** The one-instruction block of code that is not cached (page-crossing or outside RAM). */
  readonly uncached = new Block(-1, -1, -1);
  /** Blocks decoded so far, sweeps and blocks they dropped (statistics). */
  built = 0;
  sweeps = 0;
  evicted = 0;
  /** The map size that triggers the next sweep. */
  private sweepAt = SWEEP_AT;
  /** Reused while decoding a block (its instructions are copied into an exactly-sized array). */
  private readonly building: Insn[] = [];
  /**
   * Decoded instructions by mode and bytes, shared by every block that holds the same instruction. A decoded
   * Insn depends on nothing else, and execution writes only scratch fields used within one instruction (ea,
   * a saved seg). Blocks overlap (a jump into the middle of another block's run starts a new block) and code
   * repeats: a boot holds ~450k instructions in its blocks but only ~85k distinct ones. Emptied by sweeps.
   */
  private readonly interned = new Map<string, Insn>();
  private readonly probe = new Insn();

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
    } else b.used = true;
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
    const got = this.building;
    got.length = 0;
    let p = 0;
    while (got.length < MAX_BLOCK && p < inPage) {
      let i = this.probe;
      const len = decode(i, bytes, off + p, inPage - p, mode);
      if (len === 0) break; // crosses into the next page: it starts its own (uncached) block
      let k = String.fromCharCode(mode);
      for (let q = off + p, e = q + len; q < e; q++) k += String.fromCharCode(bytes[q]);
      const seen = this.interned.get(k);
      if (seen !== undefined) i = seen;
      else { i = new Insn(); decode(i, bytes, off + p, inPage - p, mode); this.interned.set(k, i); }
      got.push(i);
      p += len;
      if ((i.flags & IF.END) !== 0) break;
    }
    if (got.length === 0) return this.buildSingle(lin, phys, mode);
    const b = new Block(key, phys, mode);
    b.insns = got.slice(); // exact size: a pushed-to array keeps spare capacity (~100 bytes a block)
    b.count = got.length;
    got.length = 0;
    b.sys = (b.insns[b.count - 1].flags & IF.SYS) !== 0;
    this.built++;
    if (this.map.size >= this.sweepAt) this.sweep();
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

  /**
   * Drops the blocks not looked up since the last sweep (translated ones after JIT_IDLE_SWEEPS such sweeps) and
   * empties the front table, so the first lookup of each block after a sweep reaches the map and marks it used.
   * Runs from `build`, between blocks: no block is executing. A dropped block is marked invalid like an
   * overwritten one, for anything still holding it.
   */
  private sweep(): void {
    const cpu = this.cpu;
    const w = cpu.wasmJit;
    for (const [ppn, list] of this.byPage) {
      let kept = 0;
      for (let k = 0; k < list.length; k++) {
        const b = list[k];
        if (b.used) b.idle = 0;
        else b.idle++;
        b.used = false;
        if (b.idle === 0 || (b.jit !== null && b.idle < JIT_IDLE_SWEEPS)) list[kept++] = b;
        else {
          // Its chain slot goes back to the stub too: once the page is no longer watched, a store to it would
          // not reach a translated copy still linked from other blocks.
          b.valid = false; this.map.delete(b.key); this.evicted++;
          if (w !== null) w.drop(b);
        }
      }
      list.length = kept;
      if (kept === 0) {
        this.byPage.delete(ppn);
        if (!cpu.codePagesShared && ppn < cpu.codePages.length) cpu.codePages[ppn] = 0;
      }
    }
    this.front.fill(null);
    // Survivors keep their instructions; new blocks decode theirs afresh until they are interned again.
    this.interned.clear();
    this.sweeps++;
    this.sweepAt = Math.max(SWEEP_AT, this.map.size + MIN_NEW);
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
    this.interned.clear();
    this.sweepAt = SWEEP_AT;
  }

  get size(): number { return this.map.size; }
}
