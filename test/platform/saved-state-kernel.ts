/**
 * A tiny multiboot guest for the saved-state tests, assembled at test time: it counts forever, printing
 * "n=<count> t=<ticks>" on COM1 per step, where ticks counts LAPIC timer interrupts (periodic, vector 0x40),
 * and stores each count in a 4096-entry table (table[count % 4096] = count) so tests can check its memory.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleMultiboot32, COM1_PRINT, haveBinutils } from './multiboot-kernel.js';

const SOURCE = `
.section .multiboot, "a"
.align 4
.long 0x1BADB002, 0, -(0x1BADB002)
.text
.code32
.globl _start
_start:
  cli
  mov $stack_top, %esp
  mov $idt, %edi
  mov $256, %ecx
1:
  mov $isr_default, %eax
  call gate
  loop 1b
  mov $idt + 0x40*8, %edi
  mov $isr_timer, %eax
  call gate
  lidt idt_desc
  mov $0xFF, %al; out %al, $0x21; out %al, $0xA1
  movl $0x1FF, 0xFEE000F0
  movl $0xB, 0xFEE003E0
  movl $0x20040, 0xFEE00320
  movl $20000, 0xFEE00380
  sti
main:
  incl count
  mov count, %eax
  mov %eax, %ebx
  and $4095, %ebx
  mov %eax, table(,%ebx,4)
  mov $'n', %al; call putc
  mov $'=', %al; call putc
  mov count, %eax; call putdec
  mov $' ', %al; call putc
  mov $'t', %al; call putc
  mov $'=', %al; call putc
  mov ticks, %eax; call putdec
  mov $10, %al; call putc
  mov $3000, %ecx
2: loop 2b
  jmp main
gate:
  mov %ax, (%edi)
  movw %cs, 2(%edi)
  movw $0x8E00, 4(%edi)
  push %eax
  shr $16, %eax
  mov %ax, 6(%edi)
  pop %eax
  add $8, %edi
  ret
${COM1_PRINT}
isr_timer:
  incl ticks
  movl $0, 0xFEE000B0
  iret
isr_default:
  iret
.data
.align 8
idt_desc: .word 256*8-1
  .long idt
count: .long 0
ticks: .long 0
.bss
.align 16
idt: .skip 256*8
.globl table
table: .skip 4096*4
.skip 4096
stack_top:
`;

export { haveBinutils };

let dir: string | null = null;
process.on('exit', () => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Builds the counter kernel once per process; returns the ELF path and the guest address of `table`. */
export function counterKernel(): { path: string; table: number } {
  dir ??= mkdtempSync(join(tmpdir(), 'hyperts-saved-'));
  const out = assembleMultiboot32(dir, 'counter.elf', SOURCE);
  const nm = spawnSync('nm', [out], { encoding: 'utf8' });
  const m = /^([0-9a-f]+) [bB] table$/m.exec(nm.stdout);
  if (!m) throw new Error('table symbol not found');
  return { path: out, table: parseInt(m[1], 16) };
}

/** The counter kernel's console lines, in order. */
export const counterSteps = (s: string): Array<{ n: number; t: number }> =>
  [...s.matchAll(/n=(\d+) t=(\d+)\n/g)].map((m) => ({ n: Number(m[1]), t: Number(m[2]) }));
/** Just the counts of those lines. */
export const counterCounts = (s: string): number[] => counterSteps(s).map((x) => x.n);
