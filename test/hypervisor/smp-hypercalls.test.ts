/** Remote TLB flush and synthetic cluster IPI hypercalls (several VPs). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../../src/platform/memory.js';
import { HypercallDispatcher, type HypervisorProcessors } from '../../src/hypervisor/hypercall.js';
import { HyperVCpuid } from '../../src/hypervisor/cpuid.js';
import * as T from '../../src/hypervisor/tlfs.js';
import type { HypercallRegs } from '../../src/processor/backend.js';

const INPUT = 0x3000;

function setup(count = 4) {
  const memory = new GuestMemory(1 << 20);
  const d = new HypercallDispatcher(memory, () => {});
  const flushes: Array<[number, boolean]> = [];
  const ipis: Array<[number, number]> = [];
  const procs: HypervisorProcessors = { count, flushTlb: (vp, ng) => flushes.push([vp, ng]), sendIpi: (vp, v) => ipis.push([vp, v]) };
  d.processors = procs;
  const regs = new Map<number, { lo: number; hi: number }>();
  const r: HypercallRegs = { get: (n) => regs.get(n) ?? { lo: 0, hi: 0 }, set: (n, lo, hi) => { regs.set(n, { lo: lo >>> 0, hi: hi >>> 0 }); } };
  const call = (code: number, opts: { fast?: boolean; reps?: number; rdx?: [number, number]; r8?: [number, number] } = {}) => {
    regs.set(T.REG_RCX, { lo: code | (opts.fast ? 1 << 16 : 0), hi: opts.reps ?? 0 });
    regs.set(T.REG_RDX, { lo: opts.rdx?.[0] ?? INPUT, hi: opts.rdx?.[1] ?? 0 });
    regs.set(T.REG_R8, { lo: opts.r8?.[0] ?? 0, hi: opts.r8?.[1] ?? 0 });
    d.hypercall(0, r);
    const rax = regs.get(T.REG_RAX)!;
    return { status: rax.lo & 0xffff, reps: rax.hi & 0xfff };
  };
  const header = (flags: number, maskLo: number, maskHi = 0) => {
    const v = memory.view;
    v.setUint32(INPUT, 0x1000, true); v.setUint32(INPUT + 4, 0, true);
    v.setUint32(INPUT + 8, flags, true); v.setUint32(INPUT + 12, 0, true);
    v.setUint32(INPUT + 16, maskLo, true); v.setUint32(INPUT + 20, maskHi, true);
  };
  return { d, memory, flushes, ipis, call, header };
}

test('HvFlushVirtualAddressSpace flushes the VPs in the mask (non-global only when asked), all with HV_FLUSH_ALL_PROCESSORS', () => {
  const t = setup(4);
  t.header(T.HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY, 0b1010);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE).status, T.HV_STATUS_SUCCESS);
  assert.deepEqual(t.flushes, [[1, true], [3, true]]);
  t.flushes.length = 0;
  t.header(T.HV_FLUSH_ALL_PROCESSORS | T.HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES, 0);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE).status, T.HV_STATUS_SUCCESS);
  assert.deepEqual(t.flushes, [[0, false], [1, false], [2, false], [3, false]]);
  // Unknown flag bits, a rep count on the simple call, a misaligned or out-of-RAM input: nothing flushed.
  t.flushes.length = 0;
  t.header(1 << 5, 1);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE).status, T.HV_STATUS_INVALID_PARAMETER);
  t.header(0, 1);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, { reps: 1 }).status, T.HV_STATUS_INVALID_HYPERCALL_INPUT);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, { rdx: [INPUT + 4, 0] }).status, T.HV_STATUS_INVALID_ALIGNMENT);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE, { rdx: [0, 1] }).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.deepEqual(t.flushes, []);
});

test('HvFlushVirtualAddressList is a rep call: RAX reports the reps completed; the list must fit the input page', () => {
  const t = setup(2);
  t.header(0, 0b10);
  for (let i = 0; i < 5; i++) t.memory.view.setUint32(INPUT + 24 + i * 8, 0x400000 + i * 0x1000, true);
  assert.deepEqual(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, { reps: 5 }), { status: T.HV_STATUS_SUCCESS, reps: 5 });
  assert.deepEqual(t.flushes, [[1, false]]);
  t.flushes.length = 0;
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, { reps: 0 }).status, T.HV_STATUS_INVALID_HYPERCALL_INPUT);
  // 24 + 600 * 8 bytes cross the page at INPUT: rejected, nothing flushed, no reps done.
  assert.deepEqual(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, { reps: 600 }), { status: T.HV_STATUS_INVALID_ALIGNMENT, reps: 0 });
  assert.deepEqual(t.flushes, []);
});

test('HvCallSendSyntheticClusterIpi (fast and memory forms) interrupts each VP in the mask; bad vectors and absent VPs are refused', () => {
  const t = setup(3);
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0xf3, 0], r8: [0b101, 0] }).status, T.HV_STATUS_SUCCESS);
  assert.deepEqual(t.ipis, [[0, 0xf3], [2, 0xf3]]);
  t.ipis.length = 0;
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0x0f, 0], r8: [1, 0] }).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0x100, 0], r8: [1, 0] }).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0x30, 0], r8: [0b1001, 0] }).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0x30, 0], r8: [0, 1] }).status, T.HV_STATUS_INVALID_PARAMETER);
  assert.deepEqual(t.ipis, []);
  const v = t.memory.view;
  v.setUint32(INPUT, 0x40, true); v.setUint32(INPUT + 4, 0, true); v.setUint32(INPUT + 8, 0b10, true); v.setUint32(INPUT + 12, 0, true);
  assert.equal(t.call(T.HVCALL_SEND_IPI).status, T.HV_STATUS_SUCCESS);
  assert.deepEqual(t.ipis, [[1, 0x40]]);
});

test('without the partition\'s processors (one VP) the calls are unknown and not advertised', () => {
  const t = setup(1);
  t.d.processors = null;
  assert.equal(t.call(T.HVCALL_SEND_IPI, { fast: true, rdx: [0x40, 0], r8: [1, 0] }).status, T.HV_STATUS_INVALID_HYPERCALL_CODE);
  assert.equal(t.call(T.HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST, { reps: 1 }).status, T.HV_STATUS_INVALID_HYPERCALL_CODE);
  const hints = (n: number) => new HyperVCpuid({ vpCount: n, tscInvariant: true, crashMsrs: true }).cpuid(T.HV_CPUID_ENLIGHTENMENT_INFO, 0).eax;
  assert.equal(hints(1) & (T.HV_REMOTE_TLB_FLUSH_RECOMMENDED | T.HV_CLUSTER_IPI_RECOMMENDED), 0);
  assert.equal(hints(2) & (T.HV_REMOTE_TLB_FLUSH_RECOMMENDED | T.HV_CLUSTER_IPI_RECOMMENDED), T.HV_REMOTE_TLB_FLUSH_RECOMMENDED | T.HV_CLUSTER_IPI_RECOMMENDED);
});
