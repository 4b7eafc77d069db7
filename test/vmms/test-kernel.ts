/**
 * A tiny multiboot guest assembled at test time, so service tests never boot Linux: it prints a banner on
 * COM1, echoes what it receives (interrupt-driven, so an idle guest sleeps in HLT instead of spinning),
 * powers off through isa-debug-exit on Ctrl-Q (0x11) and resets through port 0xcf9 on Ctrl-R (0x12).
 */
import { assembleMultiboot32, haveBinutils } from '../platform/multiboot-kernel.js';

export const TEST_KERNEL_BANNER = 'hyperts test kernel ready';

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
  mov $isr, %eax
1:
  mov %ax, (%edi)
  mov %cs, %dx
  mov %dx, 2(%edi)
  movw $0x8E00, 4(%edi)
  mov %eax, %edx
  shr $16, %edx
  mov %dx, 6(%edi)
  add $8, %edi
  loop 1b
  lidt idt_desc
  # 8259s: vectors 0x20/0x28, only IRQ4 (COM1) unmasked
  mov $0x11, %al; out %al, $0x20; out %al, $0xA0
  mov $0x20, %al; out %al, $0x21
  mov $0x28, %al; out %al, $0xA1
  mov $4, %al; out %al, $0x21
  mov $2, %al; out %al, $0xA1
  mov $1, %al; out %al, $0x21; out %al, $0xA1
  mov $0xEF, %al; out %al, $0x21
  mov $0xFF, %al; out %al, $0xA1
  # local APIC: software-enable, LINT0 = ExtINT (virtual wire to the 8259)
  movl $0x1FF, 0xFEE000F0
  movl $0x700, 0xFEE00350
  # COM1: receive interrupt, OUT2 gates the IRQ line
  mov $0x3F9, %dx; mov $1, %al; out %al, %dx
  mov $0x3FC, %dx; mov $0x0B, %al; out %al, %dx
  mov $banner, %esi
  call puts
idle:
  cli
  mov $0x3FD, %dx
  in %dx, %al
  test $1, %al
  jnz got
  sti
  hlt
  jmp idle
got:
  mov $0x3F8, %dx
  in %dx, %al
  cmp $0x11, %al
  je poweroff
  cmp $0x12, %al
  je reset
  call putc
  cmp $13, %al
  jne idle
  mov $10, %al
  call putc
  jmp idle
poweroff:
  mov $0x10, %al
  out %al, $0xF4
  jmp idle
reset:
  mov $0xCF9, %dx
  mov $6, %al
  out %al, %dx
  jmp idle
puts:
  lodsb
  test %al, %al
  jz 2f
  call putc
  jmp puts
2: ret
putc:
  push %eax
  mov %al, %ah
  mov $0x3FD, %dx
3: in %dx, %al
  test $0x20, %al
  jz 3b
  mov $0x3F8, %dx
  mov %ah, %al
  out %al, %dx
  pop %eax
  ret
isr:
  push %eax
  mov $0x20, %al
  out %al, $0x20
  pop %eax
  iret
.data
banner: .asciz "${TEST_KERNEL_BANNER}\\r\\n"
.align 8
idt_desc: .word 256*8-1
  .long idt
.bss
.align 16
idt: .skip 256*8
.skip 4096
stack_top:
`;

export { haveBinutils };

/** Assembles the kernel into dir (once) and returns the ELF's path. */
export function buildTestKernel(dir: string): string {
  return assembleMultiboot32(dir, 'test-kernel.elf', SOURCE);
}
