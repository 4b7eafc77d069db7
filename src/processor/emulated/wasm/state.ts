/**
 * Layout of the per-vCPU state page shared by the interpreter (typed-array views) and translated wasm code
 * (cpu.stateMem, see cpu-state.ts). Byte offsets; every field is little-endian.
 *
 * Every field is relative to the vCPU's area base (0 in a private one-page memory).
 *
 * The lazy-flag record here is a mailbox, not the architectural copy: the interpreter's cpu.cc* fields stay
 * authoritative outside wasm. Translated code writes a record and sets CC_VALID at its exits and before it
 * calls back into JS; `syncFlags` moves it into the fields.
 */
import type { CpuState } from '../cpu-state.js';

/** RAX..R15 as i64 (the halves cpu.gpr sees). */
export const GPR = 0;
export const CC_OP = 128;
export const CC_RES = 132; // i64: ccRes, ccResHi
export const CC_SRC1 = 140; // i64: ccSrc1, ccSrc1Hi
export const CC_SRC2 = 148; // i64: ccSrc2, ccSrc2Hi
export const CC_AUX = 156;
/** Nonzero: the record above is newer than cpu.cc*. */
export const CC_VALID = 160;
/** Nonzero: a self-loop must return to the run loop (irqCheck / exitRequested seen by a slow path). */
export const STOP = 164;
/** High half of the last 64-bit load done through a JS import. */
export const MEM_HI = 168;
/** Instructions retired in this call before the current pass of the running block (chained blocks, loop passes). */
export const LOOP_N = 172;
/** f64: RIP at the block's exit. */
export const RIP = 176;
/** f64: FS and GS bases (copied in before each call). */
export const FS_BASE = 184;
export const GS_BASE = 192;
/** i32: table slot of the block running now (-1: the one the run loop called), for fault accounting. */
export const CUR_SLOT = 204;
/** f64: RIP at the start of the block running now (the imports report faults relative to it). */
export const CUR_RIP = 208;
/** i32: byte offset of the current privilege's TLB half (0 supervisor, 8192 user = 1024 entries of f64). */
export const TLB_USER = 200;

/** cpu.tlbTag / cpu.tlbAddend (6 * 1024 f64 each) when the vCPU's area is in the guest-RAM memory. */
export const TLB_TAG = 1024;
export const TLB_ADD = TLB_TAG + 6 * 1024 * 8;
/** Bytes per vCPU area (state page + TLB), a multiple of the wasm page. */
export const AREA_SIZE = 131072;
/** Byte offsets of the write tables inside TLB_TAG / TLB_ADD (kind 1, see mmu.ts). */
export const TLB_WRITE = 2048 * 8;

/** Move a record written by wasm code into the cpu.cc* fields. */
export function syncFlags(cpu: CpuState, s: Int32Array): void {
  if (s[CC_VALID >> 2] === 0) return;
  s[CC_VALID >> 2] = 0;
  cpu.ccOp = s[CC_OP >> 2];
  cpu.ccRes = s[CC_RES >> 2]; cpu.ccResHi = s[(CC_RES >> 2) + 1];
  cpu.ccSrc1 = s[CC_SRC1 >> 2]; cpu.ccSrc1Hi = s[(CC_SRC1 >> 2) + 1];
  cpu.ccSrc2 = s[CC_SRC2 >> 2]; cpu.ccSrc2Hi = s[(CC_SRC2 >> 2) + 1];
  cpu.ccAux = s[CC_AUX >> 2];
}
