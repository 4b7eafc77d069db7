/**
 * End to end: a small 64-bit test kernel runs on the emulated processor with --gdb; GDB (Debian's gdb)
 * attaches, breaks on a symbol, prints a backtrace and registers, steps, and continues to the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { gdbBatch } from './gdb-batch.js';
import { Partition } from '../../src/platform/partition.js';

// Multiboot entry in 32-bit mode, switch to long mode with 2 MiB identity pages, then a call chain.
const KERNEL_S = `
.text
.align 4
.long 0x1BADB002, 0, -(0x1BADB002)
.code32
.globl _start
_start:
  movl $pdpt + 3, pml4
  movl $pd + 3, pdpt
  movl $0x83, pd
  movl $pml4, %eax
  movl %eax, %cr3
  movl %cr4, %eax
  orl $0x20, %eax
  movl %eax, %cr4
  movl $0xC0000080, %ecx
  rdmsr
  orl $0x100, %eax
  wrmsr
  movl %cr0, %eax
  orl $0x80000001, %eax
  movl %eax, %cr0
  lgdt gdtr
  ljmp $0x08, $long_entry
.code64
long_entry:
  movq $stack_top, %rsp
  xorl %ebp, %ebp
  movq $0x1234, %rbx
  call outer
  movw $0xf4, %dx
  movb $0, %al
  outb %al, %dx
1: hlt
  jmp 1b
.globl outer
outer:
  pushq %rbp
  movq %rsp, %rbp
  call inner
  popq %rbp
  ret
.globl inner
inner:
  pushq %rbp
  movq %rsp, %rbp
  addq $1, %rbx
  popq %rbp
  ret
.data
.align 8
gdt: .quad 0, 0x00209a0000000000
gdtr: .word 15
  .long gdt
.bss
.align 4096
pml4: .skip 4096
pdpt: .skip 4096
pd: .skip 4096
stack: .skip 8192
stack_top:
`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

for (const cpus of [1, 2]) test(`gdb attaches to the emulated processor (vCPU 0 of ${cpus}), breaks on a symbol, backtraces, steps and continues`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-gdb-'));
  writeFileSync(join(dir, 'k.S'), KERNEL_S);
  execFileSync('as', ['--64', '-g', '-o', join(dir, 'k.o'), join(dir, 'k.S')]);
  execFileSync('ld', ['-m', 'elf_x86_64', '-N', '-e', '_start', '-Ttext', '0x100000', '-o', join(dir, 'k.elf'), join(dir, 'k.o')]);
  const port = await freePort();
  const vm = await Partition.create({
    processor: 'emulated', memoryBytes: 64 * 1024 * 1024, cpus, enlightened: false,
    kernel: join(dir, 'k.elf'), cmdline: '', clockMode: 'icount', gdbPort: port, gdbWait: true,
  });
  // gdbWait holds the processor at the multiboot entry until GDB continues (QEMU's -S). The breakpoint
  // address is in 64-bit code that is reachable only after the guest enables paging: the stub keeps it
  // pending and patches it in once it translates.
  const exited = vm.start();
  const { out, code } = await gdbBatch(join(dir, 'k.elf'), port, [
    'break inner',
    'continue',
    'bt',
    'info registers rbx',
    'stepi',
    'info registers rip',
    'delete',
    'continue',
  ]);
  const exit = await exited;
  assert.match(out, /Breakpoint 1, .*inner/, out);
  assert.match(out, /#0 .*inner/, out);
  assert.match(out, /#1 .*outer/, out);
  assert.match(out, /rbx\s+0x1234/, out);
  assert.match(out, /rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <inner\+1>/, out);
  assert.equal(exit.code, 1, `debug-exit 0 -> exit code 1 (${exit.reason})`);
  assert.equal(code, 0, out);
});
