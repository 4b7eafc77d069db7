/**
 * The emulated processor object: architectural state (CpuState) plus the execution core's scratch fields and
 * the memory/raise methods the SIMD unit uses (SimdCpu). Memory accesses delegate to mmu.ts, faults to
 * exceptions.ts.
 */
import { CpuState } from './cpu-state.js';
import type { PlatformServices } from '../backend.js';
import type { SimdCpu } from './simd/contract.js';
import * as mmu from './mmu.js';
import { raise } from './exceptions.js';
import { BlockCache } from './block-cache.js';
import type { WasmJit } from './wasm/runtime.js';

export class Cpu extends CpuState implements SimdCpu {
  /** Address of the next instruction; handlers of control transfers overwrite it. */
  nextRip = 0;
  /** Scratch: high half of the last 64-bit operand read by the execution helpers. */
  opHi = 0;
  /** Scratch: linear address of the memory operand of the current read-modify-write instruction. */
  opAddr = 0;
  /** Set when a store hit a page holding cached code: the current block must stop. */
  codeDirty = false;
  readonly blocks: BlockCache;
  /** This vCPU starts caching code from page `ppn`: write mappings to it go (every vCPU's, when shared). */
  onCodeCached: (ppn: number) => void;
  /** codePages is shared with the partition's other vCPUs: a page's flag may stand for their blocks too. */
  codePagesShared = false;
  /** The WebAssembly translator's per-vCPU state (HYPERTS_JIT=wasm), made on first use. */
  wasmJit: WasmJit | null = null;

  constructor(vp: number, platform: PlatformServices) {
    super(vp, platform);
    if (this.codePages.length === 0) {
      const mem = platform.memory;
      // Page numbers cover RAM below 4 GiB, the hole, and RAM above 4 GiB.
      const pages = Math.ceil((mem.highRamSize > 0 ? 0x1_0000_0000 + mem.highRamSize : mem.lowRamEnd) / 4096);
      this.codePages = new Uint8Array(pages);
    }
    this.blocks = new BlockCache(this);
    this.onCodeWrite = (ppn: number) => this.blocks.invalidatePage(ppn);
    this.onCodeCached = (ppn: number) => mmu.dropWriteMappings(this, ppn);
    // DMA is coherent with instruction fetch on x86: a device writing a page this processor decoded code from
    // (a disk read into a page cache page that held other code) must not leave the old instructions cached.
    // vCPUs sharing one code-page array (EmulatedBackend.shareCodePages) need only the first one's listener:
    // its onCodeWrite drops every vCPU's blocks.
    platform.memory.onDeviceWrite((first, last) => {
      if (this.codePagesShared && this.vp !== 0) return;
      const cp = this.codePages;
      for (let p = first; p <= last && p < cp.length; p++) if (cp[p] !== 0) this.onCodeWrite(p);
    });
  }

  read8(lin: number): number { return mmu.read8(this, lin); }
  read16(lin: number): number { return mmu.read16(this, lin); }
  read32(lin: number): number { return mmu.read32(this, lin); }
  write8(lin: number, v: number): void { mmu.write8(this, lin, v); }
  write16(lin: number, v: number): void { mmu.write16(this, lin, v); }
  write32(lin: number, v: number): void { mmu.write32(this, lin, v); }
  probeWrite(lin: number, len: number): void { mmu.probeWrite(this, lin, len); }
  raise(vector: number, errorCode?: number): never { return raise(this, vector, errorCode); }
}
