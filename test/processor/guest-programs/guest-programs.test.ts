/**
 * Guest programs, assembled at test time, run on every processor backend: the emulated processor always,
 * KVM where /dev/kvm opens with the capabilities hyperts needs (otherwise each KVM case is skipped with
 * the reason). The same expectations hold for both.
 */
import { test } from 'node:test';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { EmulatedBackend } from '../../../src/processor/emulated/processor.js';
import type { BootCpuState } from '../../../src/processor/backend.js';
import type { GuestMemory } from '../../../src/platform/memory.js';
import {
  assemble, assemblerSkipReason, buildLongModeTables, emulatedMemory, runProgram, HV_LEAVES, HYPERCALL_STATUS, MSR_VALUES,
  type BackendUnderTest, type ProgramSpec,
} from './runner.js';

const asmSkip = assemblerSkipReason();

async function kvmUnderTest(): Promise<BackendUnderTest> {
  let skip: string | false = false;
  let mod: typeof import('../../../src/processor/kvm/processor.js') | null = null;
  let tripleFaultSkip: string | false = false;
  try {
    mod = await import('../../../src/processor/kvm/processor.js');
    new mod.KvmBackend({ irqchip: 'user' }).destroy();
  } catch (e) {
    skip = `KVM not usable on this host: ${(e as Error).message.split('\n')[0]}`;
  }
  if (!skip) {
    // Only a host whose KVM is shown (by a probe guest) not to report real-mode triple faults skips that case.
    const { KvmSystem } = await import('../../../src/processor/kvm/kvm.js');
    const { probeRealModeTripleFault } = await import('../../../src/processor/kvm/fault-probe.js');
    const sys = KvmSystem.open();
    try {
      const p = probeRealModeTripleFault(sys);
      const mods = ['kvm_intel', 'kvm_amd', 'kvm_pvm'].filter((m) => existsSync(`/sys/module/${m}`)).join(', ');
      if (p.kind !== 'shutdown') tripleFaultSkip = `host KVM (${mods || 'module unknown'}) differs from VT-x/AMD-V: ${p.detail}`;
    } finally {
      sys.close();
    }
  }
  return {
    name: 'kvm', skip,
    // The user-space irqchip keeps interrupt delivery and HLT in the partition's hands, as on the emulated processor.
    create: () => new mod!.KvmBackend({ irqchip: 'user' }),
    allocateMemory: (n) => mod!.allocateGuestMemory(n),
    hostSkips: { realModeTripleFault: tripleFaultSkip },
  };
}

const backends: BackendUnderTest[] = [
  { name: 'emulated', skip: false, create: () => new EmulatedBackend(), allocateMemory: emulatedMemory },
  await kvmUnderTest(),
];

const REAL_ORG = 0x1000;
const LONG_ORG = 0x8000;
const STACK = 0x7000;

const DONE = `
  mov $0x514, %dx
  out %al, %dx
9: hlt
  jmp 9b
`;

function realProgram(body: string): ProgramSpec {
  let code: Uint8Array | null = null;
  return {
    boot: { mode: 'real', rip: REAL_ORG, cs: 0, ds: 0, gpr: { 4: STACK } } satisfies BootCpuState,
    load(mem: GuestMemory) {
      code ??= assemble(`.code16\n.text\n${body}`, REAL_ORG);
      mem.write(REAL_ORG, code);
    },
  };
}

function longProgram(body: string): ProgramSpec {
  const spec: ProgramSpec = {
    boot: { mode: 'long64', rip: LONG_ORG, gpr: { 4: STACK } },
    load(mem: GuestMemory) {
      Object.assign(spec.boot, buildLongModeTables(mem));
      mem.write(LONG_ORG, assemble(`.code64\n.text\n${body}`, LONG_ORG));
    },
  };
  return spec;
}

const pio = realProgram(`
  mov $0x500, %dx
  mov $0x1234, %ax
  out %ax, %dx
  in %dx, %ax
  movzwl %ax, %eax
  mov $0x510, %dx
  outl %eax, %dx
  movl $0xdeadbeef, %eax
  mov $0x500, %dx
  outl %eax, %dx
  inl %dx, %eax
  mov $0x510, %dx
  outl %eax, %dx
  mov $msg, %si
  mov $3, %cx
  cld
  rep outsb
  ${DONE}
msg: .byte 7, 8, 9
`);

const report4 = `
  mov %edx, %esi
  mov $0x510, %dx
  outl %eax, %dx
  mov %ebx, %eax
  outl %eax, %dx
  mov %ecx, %eax
  outl %eax, %dx
  mov %esi, %eax
  outl %eax, %dx
`;
const cpuid = realProgram(`
  mov $0x40000000, %eax
  xor %ecx, %ecx
  cpuid
  ${report4}
  mov $0x40000001, %eax
  xor %ecx, %ecx
  cpuid
  ${report4}
  ${DONE}
`);

const msr = realProgram(`
  mov $0x40000020, %ecx
  rdmsr
  mov %edx, %esi
  mov $0x510, %dx
  outl %eax, %dx
  mov %esi, %eax
  outl %eax, %dx
  mov $0x40000080, %ecx
  mov $0x11223344, %eax
  mov $0x55667788, %edx
  wrmsr
  ${DONE}
`);

const interrupt = realProgram(`
  cli
  movw $handler, 0x100
  movw $0, 0x102
  mov $0x518, %dx
  out %al, %dx
  mov $0x510, %dx
  mov $1, %eax
  outl %eax, %dx
  sti
  hlt
  mov $3, %eax
  outl %eax, %dx
  ${DONE}
handler:
  mov $2, %eax
  mov $0x510, %dx
  outl %eax, %dx
  iret
`);

// IVT entry 3 leads to a handler that reports 0xbad: a processor that vectors past the zero IDT limit is caught at once.
const tripleFault = realProgram(`
  movw $handler, 0x0c
  movw $0, 0x0e
  lidt idt0
  int $3
  ${DONE}
handler:
  mov $0xbad, %eax
  mov $0x510, %dx
  outl %eax, %dx
  ${DONE}
idt0: .word 0
  .long 0
`);
// What runs after the reset (loaded over the old program, as firmware would be): the vCPU must run again.
tripleFault.afterReset = realProgram(`
  mov $0x600d, %eax
  mov $0x510, %dx
  outl %eax, %dx
  ${DONE}
`);

const halt = realProgram(`
  cli
  mov $0x510, %dx
  mov $5, %eax
  outl %eax, %dx
  hlt
  mov $6, %eax
  outl %eax, %dx
  ${DONE}
`);

const mmioAndHypercall = longProgram(`
  mov $0xd0000010, %rbx
  movl $0xcafe, (%rbx)
  movl (%rbx), %eax
  mov $0x510, %dx
  out %eax, %dx
  movabs $0x1122334455667788, %rax
  mov %rax, 0x10(%rbx)
  mov 0x10(%rbx), %rax
  out %eax, %dx
  shr $32, %rax
  out %eax, %dx
  mov $0x40000001, %ecx
  mov $0x3001, %eax
  xor %edx, %edx
  wrmsr
  mov $0x1005d, %rcx
  movabs $0x123456789a, %rdx
  mov $0x42, %r8
  mov $0x3000, %rax
  call *%rax
  mov %rdx, %rsi
  mov %rcx, %rdi
  mov $0x510, %edx
  out %eax, %dx
  mov %edi, %eax
  out %eax, %dx
  mov %esi, %eax
  out %eax, %dx
  shr $32, %rsi
  mov %esi, %eax
  out %eax, %dx
  mov %r8d, %eax
  out %eax, %dx
  ${DONE}
`);

for (const b of backends) {
  const skip = b.skip || asmSkip;
  const t = (name: string, fn: () => Promise<void>, hostSkip: string | false = false): void => {
    test(`${b.name}: ${name}`, { skip: skip || hostSkip }, fn);
  };

  t('real mode: port I/O round trips (byte, word, dword, rep outsb)', async () => {
    const r = await runProgram(b, pio);
    assert.equal(r.done, true);
    assert.deepEqual(r.results, [0xedcb, 0x21524110, 7, 8, 9]);
  });

  t('real mode: CPUID answers the Hyper-V leaves from PlatformServices.cpuid', async () => {
    const r = await runProgram(b, cpuid);
    assert.equal(r.done, true);
    const l0 = HV_LEAVES[0x4000_0000], l1 = HV_LEAVES[0x4000_0001];
    assert.deepEqual(r.results, [l0.eax, l0.ebx, l0.ecx, l0.edx, l1.eax, l1.ebx, l1.ecx, l1.edx]);
  });

  t('real mode: synthetic MSR read and write reach PlatformServices.msr', async () => {
    const r = await runProgram(b, msr);
    assert.equal(r.done, true);
    assert.deepEqual(r.results, MSR_VALUES[0x4000_0020]);
    assert.ok(r.msrReads.includes(0x4000_0020));
    assert.deepEqual(r.msrWrites.find((w) => w[0] === 0x4000_0080), [0x4000_0080, 0x11223344, 0x55667788]);
  });

  t('real mode: interrupt injected after STI, handler runs once, HLT resumes', async () => {
    const r = await runProgram(b, interrupt);
    assert.equal(r.done, true);
    assert.deepEqual(r.results, [1, 2, 3]);
    assert.equal(r.interruptsDelivered, 1);
  });

  t('real mode: HLT with interrupts off reports halted', async () => {
    const r = await runProgram(b, halt);
    assert.deepEqual(r.results, [5]);
    assert.equal(r.done, false);
    assert.equal(r.outcomes.at(-1), 'halted');
  });

  t('real mode: triple fault resets the machine, which then boots again', async () => {
    const r = await runProgram(b, tripleFault);
    assert.deepEqual(r.resets, ['triple fault']);
    assert.deepEqual(r.results, [0x600d], 'the INT3 handler must not run (the IDT limit is 0); the program loaded after the reset must');
    assert.equal(r.done, true);
  }, b.hostSkips?.realModeTripleFault ?? false);

  t('long mode: MMIO round trips (dword, qword split) and a hypercall through the hypercall page', async () => {
    const r = await runProgram(b, mmioAndHypercall);
    assert.equal(r.done, true);
    assert.deepEqual(r.results, [0xcaff, 0x55667789, 0x11223345, HYPERCALL_STATUS, 0x1005d, 0x3456789a, 0x12, 0x42]);
    assert.equal(r.hypercalls.length, 1);
    assert.deepEqual(r.hypercalls[0], { rcx: [0x1005d, 0], rdx: [0x3456789a, 0x12], r8: [0x42, 0] });
  });
}
