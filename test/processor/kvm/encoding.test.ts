/** Pure parts of the KVM backend: boot-state encoding, the CPUID table, the hypercall stub. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as abi from '../../../src/processor/kvm/abi.js';
import { encodeBootRegs, encodeBootSregs, decodeSnapshot, getU64 } from '../../../src/processor/kvm/vcpu-state.js';
import { buildCpuidTable, encodeCpuid2, MAX_CPUID_ENTRIES } from '../../../src/processor/kvm/cpuid.js';
import { hypercallStub, hypercallPageGpa, HYPERCALL_PORT } from '../../../src/processor/kvm/hypercall-stub.js';
import { runStubCode } from '../../../src/processor/kvm/run-stub.js';
import { assemble, assemblerSkipReason } from '../guest-programs/runner.js';

const seg = (v: DataView, base: number, f: keyof typeof abi.SEG): number => v.getUint8(base + abi.SEG[f]);

test('long-mode boot state: 64-bit CS, flat data, paging and EFER.LMA, GPRs in kvm_regs order', () => {
  const s = { mode: 'long64' as const, rip: 0x1000000, gpr: { 6: 0x7000, 4: 0x8ff0, 0: 2 ** 40 + 5 }, cr3: 0x9000, gdtBase: 0x500, gdtLimit: 0x27 };
  const regs = new DataView(encodeBootRegs(s).buffer);
  assert.equal(getU64(regs, abi.REGS.rsi), 0x7000);
  assert.equal(getU64(regs, abi.REGS.rsp), 0x8ff0);
  assert.equal(getU64(regs, abi.REGS.rax), 2 ** 40 + 5);
  assert.equal(getU64(regs, abi.REGS.rip), 0x1000000);
  assert.equal(getU64(regs, abi.REGS.rflags), 2);
  const cur = new Uint8Array(abi.KVM_SREGS_SIZE);
  new DataView(cur.buffer).setUint32(abi.SREGS.apic_base, 0xfee00900, true);
  const sr = new DataView(encodeBootSregs(s, cur).buffer);
  assert.equal(seg(sr, abi.SREGS.cs, 'l'), 1);
  assert.equal(seg(sr, abi.SREGS.cs, 'db'), 0);
  assert.equal(sr.getUint16(abi.SREGS.cs + abi.SEG.selector, true), 0x10);
  assert.equal(sr.getUint16(abi.SREGS.ss + abi.SEG.selector, true), 0x18);
  assert.equal(seg(sr, abi.SREGS.tr, 'type'), 0xb);
  assert.equal(getU64(sr, abi.SREGS.cr3), 0x9000);
  assert.equal((getU64(sr, abi.SREGS.cr0) & 0x80000001) >>> 0, 0x80000001);
  assert.equal(getU64(sr, abi.SREGS.cr4) & 0x20, 0x20);
  assert.equal(getU64(sr, abi.SREGS.efer) & 0x500, 0x500);
  assert.equal(getU64(sr, abi.SREGS.gdt + abi.DTABLE.base), 0x500);
  assert.equal(getU64(sr, abi.SREGS.apic_base), 0xfee00900, 'kernel-owned fields are kept');
});

test('real-mode boot state: segment bases are selector*16, no protection', () => {
  const s = { mode: 'real' as const, rip: 0x100, cs: 0x1000, ds: 0x2000, gpr: {} };
  const sr = new DataView(encodeBootSregs(s, new Uint8Array(abi.KVM_SREGS_SIZE)).buffer);
  assert.equal(getU64(sr, abi.SREGS.cs + abi.SEG.base), 0x10000);
  assert.equal(getU64(sr, abi.SREGS.es + abi.SEG.base), 0x20000);
  assert.equal(sr.getUint32(abi.SREGS.cs + abi.SEG.limit, true), 0xffff);
  assert.equal(getU64(sr, abi.SREGS.cr0) & 1, 0);
  assert.equal(getU64(sr, abi.SREGS.efer), 0);
  const snap = decodeSnapshot(encodeBootRegs(s), encodeBootSregs(s, new Uint8Array(abi.KVM_SREGS_SIZE)));
  assert.equal(snap.rip, 0x100);
  assert.equal(snap.cs, 0x1000);
});

test('protected-mode boot state: 32-bit flat code', () => {
  const sr = new DataView(encodeBootSregs({ mode: 'protected32', rip: 0x100000, gpr: {} }, new Uint8Array(abi.KVM_SREGS_SIZE)).buffer);
  assert.equal(seg(sr, abi.SREGS.cs, 'db'), 1);
  assert.equal(seg(sr, abi.SREGS.cs, 'l'), 0);
  assert.equal(getU64(sr, abi.SREGS.cr0) & 0x80000001, 1);
});

test('CPUID table: every leaf of each range, indexed sub-leaves, never a KVM signature', () => {
  const asked: string[] = [];
  const table = buildCpuidTable({
    cpuid(leaf, sub) {
      asked.push(`${leaf.toString(16)}.${sub}`);
      if (leaf === 0) return { eax: 0xd, ebx: 1, ecx: 2, edx: 3 };
      if (leaf === 4) return { eax: sub < 3 ? 0x121 : 0, ebx: 0, ecx: 0, edx: 0 };
      if (leaf === 7) return { eax: sub === 0 ? 1 : 0, ebx: 0, ecx: 0, edx: 0 };
      if (leaf === 0xd) return { eax: sub === 0 ? 0x7 : 0, ebx: 0, ecx: 0, edx: 0 };
      if (leaf === 0x4000_0000) return { eax: 0x4000_0005, ebx: 0x7263694d, ecx: 0x666f736f, edx: 0x76482074 };
      if (leaf === 0x8000_0000) return { eax: 0x8000_0008, ebx: 0, ecx: 0, edx: 0 };
      return { eax: leaf, ebx: 0, ecx: 0, edx: 0 };
    },
  });
  const keys = table.map((e) => `${e.leaf.toString(16)}.${e.subleaf}`);
  for (const k of ['0.0', 'd.0', 'd.1', 'd.2', '4.0', '4.2', '4.3', '7.0', '7.1', '40000000.0', '40000005.0', '80000008.0']) assert.ok(keys.includes(k), k);
  assert.ok(!keys.includes('4.4'), 'leaf 4 stops at the null cache type');
  assert.ok(!keys.includes('40000100.0'), 'no KVM paravirtual leaves');
  assert.ok(table.find((e) => e.leaf === 4)!.indexed);
  assert.ok(!table.find((e) => e.leaf === 1)!.indexed);
  const bytes = encodeCpuid2(table);
  const v = new DataView(bytes.buffer);
  assert.equal(v.getUint32(0, true), table.length);
  const hv = table.findIndex((e) => e.leaf === 0x4000_0000);
  assert.equal(v.getUint32(abi.KVM_CPUID2_HEADER_SIZE + hv * abi.KVM_CPUID_ENTRY2_SIZE + abi.CPUID_ENTRY.ebx, true), 0x7263694d);
  // A provider that claims absurd maxima cannot make the table unbounded.
  const huge = buildCpuidTable({ cpuid: (leaf) => ({ eax: leaf === 0 ? 0xff : leaf === 0x8000_0000 ? 0x8000_00ff : 0, ebx: 0, ecx: 0, edx: 0 }) });
  assert.ok(huge.length <= MAX_CPUID_ENTRIES);
});

test('hypercall page GPA from the MSR value', () => {
  assert.equal(hypercallPageGpa(0x3001, 0), 0x3000);
  assert.equal(hypercallPageGpa(0x3000, 0), -1);
  assert.equal(hypercallPageGpa(0xfffff001, 1), 0x1_ffff_f000);
});

test('hypercall stub encodes endbr64; out %al, $port; ret (checked with GNU as)', { skip: assemblerSkipReason() }, () => {
  const ref = assemble(`.code64\n.text\nendbr64\nout %al, $0x${HYPERCALL_PORT.toString(16)}\nret`, 0x1000);
  assert.deepEqual([...hypercallStub().subarray(0, ref.length)], [...ref]);
  assert.ok(hypercallStub().subarray(ref.length).every((b) => b === 0xcc));
});

test('KVM_RUN stub encodes endbr64; ioctl(fd, KVM_RUN, 0) as a raw syscall; ret (checked with GNU as)', { skip: assemblerSkipReason() }, () => {
  for (const fd of [0, 3, 1023, 0x7fff_ffff]) {
    const ref = assemble(`.code64\n.text\nendbr64\nmov $${fd}, %edi\nmov $0x${abi.KVM_RUN.toString(16)}, %esi\n` +
      'xor %edx, %edx\nmov $16, %eax\nsyscall\nret', 0x1000);
    assert.deepEqual([...runStubCode(fd)], [...ref], `fd ${fd}`);
  }
  for (const bad of [-1, 0x8000_0000, 1.5, Number.NaN]) assert.throws(() => runStubCode(bad), RangeError);
});
