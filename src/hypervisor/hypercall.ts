/**
 * Hypercall dispatcher (contract §3): decodes the control word, validates inputs and runs HvPostMessage,
 * HvSignalEvent and, with several VPs, HvFlushVirtualAddressSpace/List and HvCallSendSyntheticClusterIpi;
 * every other code gets HV_STATUS_INVALID_HYPERCALL_CODE.
 */
import type { HypercallHandler, HypercallRegs } from '../processor/backend.js';
import type { GuestMemory } from '../platform/memory.js';
import { u64, type FaultLogger } from './guest-memory-access.js';
import * as T from './tlfs.js';

/** Where guest messages and events go (the VMBus host). Results are HV_STATUS_* values. */
export interface HypervisorConnections {
  /** `payload` is a copy; the guest reuses its input page as soon as the call returns. */
  postMessage(vp: number, connectionId: number, messageType: number, payload: Uint8Array): number;
  signalEvent(vp: number, connectionId: number, flag: number): number;
}

/** The partition's virtual processors, for remote TLB flushes and IPIs. */
export interface HypervisorProcessors {
  readonly count: number;
  /** Drop `vp`'s cached translations (global ones too unless `nonGlobalOnly`). */
  flushTlb(vp: number, nonGlobalOnly: boolean): void;
  /** A fixed, edge-triggered interrupt to `vp`. */
  sendIpi(vp: number, vector: number): void;
}

export interface HypercallControl {
  code: number; fast: boolean; varHeaderSize: number; repCount: number; repStart: number; reservedBitsSet: boolean;
}

export function decodeControl(lo: number, hi: number): HypercallControl {
  return {
    code: lo & 0xffff,
    fast: ((lo >>> 16) & 1) === 1,
    varHeaderSize: (lo >>> 17) & 0x3ff,
    repCount: hi & 0xfff,
    repStart: (hi >>> 16) & 0xfff,
    // bits 27-31, 44-47 and 60-63 are reserved
    reservedBitsSet: (lo & 0xf8000000) !== 0 || (hi & 0xf000f000) !== 0,
  };
}

export class HypercallDispatcher implements HypercallHandler {
  connections: HypervisorConnections | null = null;
  /** Set by the partition; without it the flush and IPI calls are unknown (the guest falls back to IPIs). */
  processors: HypervisorProcessors | null = null;
  /** Counts per call code, for diagnostics. */
  readonly stats = new Map<number, number>();

  constructor(private readonly memory: GuestMemory, private readonly log: FaultLogger) {}

  hypercall(vp: number, regs: HypercallRegs): void {
    const rcx = regs.get(T.REG_RCX);
    const c = decodeControl(rcx.lo, rcx.hi);
    this.stats.set(c.code, (this.stats.get(c.code) ?? 0) + 1);
    if (c.code === T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST && this.processors) {
      const { status, reps } = this.flush(c, regs, true);
      regs.set(T.REG_RAX, status & 0xffff, reps & 0xfff); // reps completed in bits 32-43
      return;
    }
    const status = this.dispatch(vp, c, regs);
    // RAX = status | reps completed << 32; simple calls complete no reps.
    regs.set(T.REG_RAX, status & 0xffff, 0);
  }

  private dispatch(vp: number, c: HypercallControl, regs: HypercallRegs): number {
    switch (c.code) {
      case T.HVCALL_POST_MESSAGE: return this.postMessage(vp, c, regs);
      case T.HVCALL_SIGNAL_EVENT: return this.signalEvent(vp, c, regs);
      case T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE: return this.processors ? this.flush(c, regs, false).status : T.HV_STATUS_INVALID_HYPERCALL_CODE;
      case T.HVCALL_SEND_IPI: return this.processors ? this.sendIpi(c, regs) : T.HV_STATUS_INVALID_HYPERCALL_CODE;
      default: return T.HV_STATUS_INVALID_HYPERCALL_CODE;
    }
  }

  /** Simple (non-rep) call checks shared by both calls. */
  private simpleCallStatus(c: HypercallControl): number {
    if (c.reservedBitsSet || c.repCount !== 0 || c.repStart !== 0 || c.varHeaderSize !== 0) return T.HV_STATUS_INVALID_HYPERCALL_INPUT;
    return T.HV_STATUS_SUCCESS;
  }

  /** Input block of `len` bytes at the GPA in RDX: byte offset in guest RAM, or a negative HV status. */
  private inputOffset(regs: HypercallRegs, len: number): number {
    const r = regs.get(T.REG_RDX);
    const gpa = u64(r.lo, r.hi);
    if (gpa % 8 !== 0) return -T.HV_STATUS_INVALID_ALIGNMENT;
    if (Math.floor(gpa / 4096) !== Math.floor((gpa + len - 1) / 4096)) return -T.HV_STATUS_INVALID_ALIGNMENT;
    if (!this.memory.isRam(gpa, len)) return -T.HV_STATUS_INVALID_PARAMETER;
    return this.memory.offsetOf(gpa);
  }

  private postMessage(vp: number, c: HypercallControl, regs: HypercallRegs): number {
    if (c.fast) return T.HV_STATUS_INVALID_HYPERCALL_CODE; // no fast form (QEMU answers the same)
    const st = this.simpleCallStatus(c);
    if (st) return st;
    const off = this.inputOffset(regs, T.HV_MESSAGE_SIZE);
    if (off < 0) return -off;
    const v = this.memory.view;
    const connectionId = v.getUint32(off, true) & 0xffffff;
    const messageType = v.getUint32(off + 8, true);
    const size = v.getUint32(off + 12, true);
    if (size > T.HV_MESSAGE_PAYLOAD_MAX) return T.HV_STATUS_INVALID_HYPERCALL_INPUT;
    if (messageType === 0 || messageType & 0x80000000) return T.HV_STATUS_INVALID_PARAMETER; // 0 = none; high range = hypervisor's
    if (!this.connections) return T.HV_STATUS_INVALID_CONNECTION_ID;
    const payload = this.memory.bytes.slice(off + 16, off + 16 + size);
    return this.guarded(() => this.connections!.postMessage(vp, connectionId, messageType, payload));
  }

  private signalEvent(vp: number, c: HypercallControl, regs: HypercallRegs): number {
    const st = this.simpleCallStatus(c);
    if (st) return st;
    let lo: number, hi: number;
    if (c.fast) {
      const r = regs.get(T.REG_RDX);
      lo = r.lo; hi = r.hi;
    } else {
      const off = this.inputOffset(regs, 8);
      if (off < 0) return -off;
      lo = this.memory.view.getUint32(off, true); hi = this.memory.view.getUint32(off + 4, true);
    }
    if (hi >>> 16) return T.HV_STATUS_INVALID_HYPERCALL_INPUT; // reserved bits 48-63
    if (!this.connections) return T.HV_STATUS_INVALID_CONNECTION_ID;
    const connectionId = lo & 0xffffff, flag = hi & 0xffff;
    return this.guarded(() => this.connections!.signalEvent(vp, connectionId, flag));
  }

  /**
   * HvFlushVirtualAddressSpace (simple) and HvFlushVirtualAddressList (rep: one GVA range per rep). Input:
   * address space, flags, processor mask (3 x u64), then the list. Flushing a VP's whole TLB is always a
   * correct (over-)flush, so the list only has to be valid; every rep counts as done.
   */
  private flush(c: HypercallControl, regs: HypercallRegs, list: boolean): { status: number; reps: number } {
    const fail = (status: number): { status: number; reps: number } => ({ status, reps: 0 });
    if (c.reservedBitsSet || c.varHeaderSize !== 0) return fail(T.HV_STATUS_INVALID_HYPERCALL_INPUT);
    if (list ? c.repCount === 0 || c.repStart >= c.repCount : c.repCount !== 0 || c.repStart !== 0) return fail(T.HV_STATUS_INVALID_HYPERCALL_INPUT);
    if (c.fast) return fail(T.HV_STATUS_INVALID_HYPERCALL_INPUT); // 24 bytes of header do not fit two registers
    const off = this.inputOffset(regs, 24 + (list ? c.repCount * 8 : 0));
    if (off < 0) return fail(-off);
    const v = this.memory.view;
    const flags = v.getUint32(off + 8, true);
    if (v.getUint32(off + 12, true) !== 0 || (flags & ~7) !== 0) return fail(T.HV_STATUS_INVALID_PARAMETER);
    const maskLo = v.getUint32(off + 16, true), maskHi = v.getUint32(off + 20, true);
    const p = this.processors!;
    const nonGlobalOnly = (flags & T.HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY) !== 0;
    for (let vp = 0; vp < p.count && vp < 64; vp++) {
      const hit = (flags & T.HV_FLUSH_ALL_PROCESSORS) !== 0 || ((vp < 32 ? maskLo >>> vp : maskHi >>> (vp - 32)) & 1) === 1;
      if (hit) p.flushTlb(vp, nonGlobalOnly);
    }
    return { status: T.HV_STATUS_SUCCESS, reps: list ? c.repCount : 0 };
  }

  /** HvCallSendSyntheticClusterIpi: vector (u32), reserved (u32), VP mask (u64); fast in RDX/R8. */
  private sendIpi(c: HypercallControl, regs: HypercallRegs): number {
    const st = this.simpleCallStatus(c);
    if (st) return st;
    let vector: number, reserved: number, maskLo: number, maskHi: number;
    if (c.fast) {
      const a = regs.get(T.REG_RDX), b = regs.get(T.REG_R8);
      vector = a.lo; reserved = a.hi; maskLo = b.lo; maskHi = b.hi;
    } else {
      const off = this.inputOffset(regs, 16);
      if (off < 0) return -off;
      const v = this.memory.view;
      vector = v.getUint32(off, true); reserved = v.getUint32(off + 4, true);
      maskLo = v.getUint32(off + 8, true); maskHi = v.getUint32(off + 12, true);
    }
    if (vector < 0x10 || vector > 0xff || reserved !== 0) return T.HV_STATUS_INVALID_PARAMETER;
    const p = this.processors!;
    // Every VP named must exist; nothing is sent otherwise.
    for (let vp = p.count; vp < 64; vp++) if (((vp < 32 ? maskLo >>> vp : maskHi >>> (vp - 32)) & 1) === 1) return T.HV_STATUS_INVALID_PARAMETER;
    for (let vp = 0; vp < p.count; vp++) {
      if (((vp < 32 ? maskLo >>> vp : maskHi >>> (vp - 32)) & 1) === 1) p.sendIpi(vp, vector);
    }
    return T.HV_STATUS_SUCCESS;
  }

  /** A bug in the host behind a hypercall must not take the VM down with it. */
  private guarded(f: () => number): number {
    try {
      return f();
    } catch (e) {
      this.log('hypercall', `host error: ${(e as Error).stack ?? e}`);
      return T.HV_STATUS_INSUFFICIENT_MEMORY;
    }
  }
}
