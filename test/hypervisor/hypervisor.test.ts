import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeLinuxGuest, baseCpuid, GUEST_OS_ID_LINUX_6_1_192, PAGE } from '../vmbus/fake-guest.js';
import { portIoPage } from '../../src/hypervisor/hypercall-page.js';
import { decodeGuestOsId } from '../../src/hypervisor/guest-os-id.js';
import { decodeControl } from '../../src/hypervisor/hypercall.js';

test('CPUID: Linux detects Hyper-V with the contract values and no KVM signature', () => {
  const g = new FakeLinuxGuest();
  assert.equal(g.detect(), true);
  const c = (l: number) => g.cpuid.cpuid(l, 0);
  assert.equal(c(0x40000000).eax, 0x4000000a);
  assert.deepEqual(c(0x40000003), { eax: 0xa66, ebx: 0x30, ecx: 0, edx: 0x100 });
  // Deprecating AEOI (bit 9); with two VPs also remote TLB flush (bit 2) and cluster IPI (bit 10) by hypercall.
  assert.equal(c(0x40000004).eax, 0x604);
  assert.equal(new FakeLinuxGuest(1).cpuid.cpuid(0x40000004, 0).eax, 0x200);
  assert.equal(c(0x40000005).eax, 2);
  assert.equal(c(0x40000001).eax, 0x31237648);
  assert.deepEqual(c(0x40000100), { eax: 0, ebx: 0, ecx: 0, edx: 0 }, 'base KVM leaf must be hidden');
  assert.equal(c(0).ebx, 0x756e6547, 'base leaves pass through');
  assert.equal(c(1).edx & 0x200, 0x200);
});

test('unenlightened partition: no hypervisor bit, no leaves, synthetic MSRs #GP, no hypercalls or VMBus', () => {
  const g = new FakeLinuxGuest(1, { enlightened: false });
  assert.equal(g.detect(), false);
  assert.equal(g.cpuid.cpuid(1, 0).ecx & 0x80000000, 0);
  assert.equal(g.cpuid.cpuid(0x40000000, 0).ebx, 0);
  assert.equal(g.rdmsr(0, 0x40000002), null);
  assert.equal(g.wrmsr(0, 0x40000000, 1n), false);
  assert.equal(g.stack.hypercall, null);
  assert.equal(g.stack.vmbus, null);
  void baseCpuid;
});

test('GUEST_OS_ID is decoded as the partition OS identification', () => {
  const g = new FakeLinuxGuest();
  g.hypervInit();
  const id = g.hv.guestOsIdentity!;
  assert.equal(id.osType, 'Linux');
  assert.equal(id.version, '6.1.192');
  assert.equal(id.openSource, true);
  assert.equal(id.raw, GUEST_OS_ID_LINUX_6_1_192.toString(16));
  const win = decodeGuestOsId(0x0a003839, 0x00010400)!;
  assert.equal(win.osType, 'Windows');
  assert.equal(win.version, '0.10');
  assert.equal(decodeGuestOsId(0, 0), null);
});

test('hypercall page: VMCALL;RET written on enable, only after the OS id; KVM stub writer', () => {
  const g = new FakeLinuxGuest();
  const page = g.allocPages(1);
  g.memory.bytes.fill(0x5a, page, page + PAGE);
  g.wrmsr(0, 0x40000001, BigInt(page) | 1n);
  assert.equal(g.rdmsr(0, 0x40000001), 0n, 'ignored before GUEST_OS_ID');
  g.wrmsr(0, 0x40000000, GUEST_OS_ID_LINUX_6_1_192);
  g.wrmsr(0, 0x40000001, BigInt(page) | 1n);
  assert.equal(g.rdmsr(0, 0x40000001), BigInt(page) | 1n);
  assert.deepEqual([...g.memory.bytes.subarray(page, page + 5)], [0x0f, 0x01, 0xc1, 0xc3, 0xcc]);
  const p = new Uint8Array(PAGE);
  portIoPage(0xe0)(p);
  assert.deepEqual([...p.subarray(0, 8)], [0xf3, 0x0f, 0x1e, 0xfa, 0xe6, 0xe0, 0xc3, 0xcc]);
  assert.throws(() => portIoPage(0x100));
});

test('VP index, frequencies, SVERSION, VP assist and read-only MSRs', () => {
  const g = new FakeLinuxGuest(3);
  assert.equal(g.rdmsr(2, 0x40000002), 2n);
  assert.equal(g.rdmsr(0, 0x40000022), 2_500_000_000n);
  assert.equal(g.rdmsr(0, 0x40000023), 1_000_000_000n);
  assert.equal(g.rdmsr(0, 0x40000081), 1n);
  assert.equal(g.wrmsr(1, 0x40000073, 0x5000n | 1n), true);
  assert.equal(g.rdmsr(1, 0x40000073), 0x5001n);
  assert.equal(g.rdmsr(0, 0x40000073), 0n, 'per VP');
  assert.equal(g.wrmsr(0, 0x40000002, 5n), false);
  assert.equal(g.wrmsr(0, 0x40000022, 5n), false);
  assert.equal(g.rdmsr(0, 0x400000b0), null, 'stimers are not offered');
  assert.equal(g.rdmsr(5, 0x40000002), null, 'no such VP');
});

test('reference TSC page and TIME_REF_COUNT agree and follow the virtual clock', () => {
  const g = new FakeLinuxGuest();
  g.time.advance(1234.5678);
  const page = g.allocPages(1);
  g.wrmsr(0, 0x40000021, BigInt(page) | 1n);
  const v = g.memory.view;
  const seq = v.getUint32(page, true);
  assert.notEqual(seq, 0);
  const scale = v.getBigUint64(page + 8, true), offset = v.getBigInt64(page + 16, true);
  assert.equal(scale, (1n << 64n) * 10_000_000n / 2_500_000_000n);
  // The guest's formula on its TSC (ticks since start at 2.5 GHz) gives the MSR's value.
  const tsc = BigInt(Math.floor(g.time.clock.now() * 2.5));
  const fromPage = ((tsc * scale) >> 64n) + offset;
  const msr = g.rdmsr(0, 0x40000020)!;
  assert.equal(fromPage, msr);
  assert.ok(msr >= 12345677n && msr <= 12345678n, `ref count ${msr}`);
  g.time.advance(1000);
  assert.ok(g.rdmsr(0, 0x40000020)! - msr >= 9_999_999n);
  g.hv.updateTscPage();
  assert.notEqual(v.getUint32(page, true), seq, 'live update changes the sequence');
});

test('hypercall dispatcher: control word decoding and status codes', () => {
  const g = new FakeLinuxGuest();
  g.bootToOffers();
  assert.deepEqual(decodeControl(0x0001005d, 0x00020003), { code: 0x5d, fast: true, varHeaderSize: 0, repCount: 3, repStart: 2, reservedBitsSet: false });
  const st = (x: bigint) => Number(x & 0xffffn);
  assert.equal(st(g.hypercall(0, 0x0002n, 0n)), 2, 'flush VA space is not offered');
  assert.equal(st(g.hypercall(0, 0x8001n, 0n)), 2);
  assert.equal(st(g.hypercall(0, 0x1005cn, BigInt(g.inputPage))), 2, 'HvPostMessage has no fast form');
  assert.equal(st(g.hypercall(0, 0x5cn, BigInt(g.inputPage + 4))), 4, 'misaligned input');
  assert.equal(st(g.hypercall(0, 0x5cn, BigInt(g.inputPage + 3968))), 4, 'input crosses a page');
  assert.equal(st(g.hypercall(0, 0x5cn, 0x7fff_0000_0000n)), 5, 'input not RAM');
  assert.equal(st(g.hypercall(0, 0x5cn | (1n << 32n), BigInt(g.inputPage))), 3, 'rep count on a simple call');
  assert.equal(st(g.hypercall(0, 0x5cn | (1n << 28n), BigInt(g.inputPage))), 3, 'reserved bits');
  const req = new Uint8Array(8); new DataView(req.buffer).setUint32(0, 3, true);
  assert.equal(g.post(req, 7), 18, 'unknown connection id');
  g.memory.view.setUint32(g.inputPage + 12, 241, true);
  assert.equal(st(g.hypercall(0, 0x5cn, BigInt(g.inputPage))), 3, 'payload > 240');
  assert.equal(g.post(req, 1, 0, 0), 5, 'message type 0');
  assert.equal(g.signal(0x999), 18);
  assert.equal(st(g.hypercall(0, 0x1005dn, 17n | (1n << 32n))), 17, 'flag number must be 0');
  assert.equal(g.hv.hypercalls.stats.get(0x5c)! > 0, true);
});

test('SynIC: msg_pending/EOM handshake, masking, atomic event flags, vector and auto-EOI', () => {
  const g = new FakeLinuxGuest(2);
  g.hypervInit();
  g.synicInit();
  const syn = g.hv.synic;
  const slot = g.simp[1] + 2 * 256;
  const p = (n: number) => new Uint8Array([n, 0, 0, 0, 0, 0, 0, 0]);
  syn.postMessage(1, 2, 1, p(10));
  syn.postMessage(1, 2, 1, p(11));
  syn.postMessage(1, 2, 1, p(12));
  assert.deepEqual(g.injected, [{ vp: 1, vector: 0xf3, autoEoi: false }]);
  const v = g.memory.view;
  assert.equal(v.getUint32(slot, true), 1);
  assert.equal(g.memory.bytes[slot + 16], 10);
  assert.equal(g.memory.bytes[slot + 5] & 1, 1, 'msg_pending set while more are queued');
  assert.equal(syn.queued(1, 2), 2);
  // Guest frees the slot; only EOM brings the next message.
  v.setUint32(slot, 0, true);
  assert.equal(syn.queued(1, 2), 2);
  g.wrmsr(1, 0x40000084, 0n);
  assert.equal(g.memory.bytes[slot + 16], 11);
  v.setUint32(slot, 0, true);
  g.wrmsr(1, 0x40000084, 0n);
  assert.equal(g.memory.bytes[slot + 16], 12);
  assert.equal(g.memory.bytes[slot + 5] & 1, 0, 'last message has no pending flag');
  assert.equal(g.injected.length, 3);
  // Masked SINT: queued, delivered on unmask.
  v.setUint32(slot, 0, true);
  g.wrmsr(1, 0x40000092, 0x100f3n | 0n);
  syn.postMessage(1, 2, 1, p(13));
  assert.equal(v.getUint32(slot, true), 0);
  g.wrmsr(1, 0x40000092, 0xf3n);
  assert.equal(g.memory.bytes[slot + 16], 13);
  // Event flags: interrupt only on 0 -> 1.
  const n = g.injected.length;
  assert.equal(syn.signalEvent(0, 2, 5), true);
  assert.equal(syn.signalEvent(0, 2, 5), true);
  assert.equal(g.injected.length, n + 1);
  assert.equal(g.memory.bytes[g.siefp[0] + 512] & 0x20, 0x20);
  assert.equal(syn.signalEvent(0, 2, 2048), false);
  // Auto-EOI requested by the guest is passed to the LAPIC; vectors < 16 are refused.
  g.wrmsr(0, 0x40000093, 0x200e0n);
  g.memory.bytes[g.siefp[0] + 3 * 256] = 0;
  syn.signalEvent(0, 3, 1);
  assert.deepEqual(g.injected.at(-1), { vp: 0, vector: 0xe0, autoEoi: true });
  assert.equal(g.wrmsr(0, 0x40000094, 0x5n), false);
  assert.equal(g.rdmsr(0, 0x40000095), 0x10000n, 'reset value is masked');
});
