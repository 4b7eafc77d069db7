/**
 * Hypercall dispatcher (contract §3): decodes the control word, validates inputs and runs HvPostMessage and
 * HvSignalEvent; every other code gets HV_STATUS_INVALID_HYPERCALL_CODE.
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
  /** Counts per call code, for diagnostics. */
  readonly stats = new Map<number, number>();

  constructor(private readonly memory: GuestMemory, private readonly log: FaultLogger) {}

  hypercall(vp: number, regs: HypercallRegs): void {
    const rcx = regs.get(T.REG_RCX);
    const c = decodeControl(rcx.lo, rcx.hi);
    this.stats.set(c.code, (this.stats.get(c.code) ?? 0) + 1);
    const status = this.dispatch(vp, c, regs);
    // RAX = status | reps completed << 32; simple calls complete no reps.
    regs.set(T.REG_RAX, status & 0xffff, 0);
  }

  private dispatch(vp: number, c: HypercallControl, regs: HypercallRegs): number {
    switch (c.code) {
      case T.HVCALL_POST_MESSAGE: return this.postMessage(vp, c, regs);
      case T.HVCALL_SIGNAL_EVENT: return this.signalEvent(vp, c, regs);
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
