/**
 * A multiboot guest for the SMP tests, assembled at test time. The boot processor starts the others with
 * INIT-SIPI-SIPI (trampoline at 0x8000, real mode -> protected mode); each application processor prints
 * "AP <index> apic=<LAPIC ID register> cpuid=<CPUID.1:EBX[31:24]>". Once all are up (the count comes from
 * CPUID.1:EBX[23:16]) the BSP runs TLB-shootdown rounds: it writes round g into a fresh frame, remaps the
 * page at 0x800000 to it, and sends IPI 0x50 to the others, whose handler does INVLPG and acknowledges.
 * An AP that reads a value older than the last round it acknowledged counts an error (stale TLB entry).
 * The BSP prints "shootdown rounds=<r> errors=<e> reads=<ok>" and then "done", and everyone halts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleMultiboot32, COM1_PRINT, haveBinutils } from './multiboot-kernel.js';

export const SHOOTDOWN_ROUNDS = 200;

const SOURCE = `
.set ROUNDS, ${SHOOTDOWN_ROUNDS}
.set VPAGE, 0x800000
.set FRAME0, 0x300000
.section .multiboot, "a"
.align 4
.long 0x1BADB002, 0, -(0x1BADB002)
.text
.code32
.globl _start
_start:
  cli
  lgdt gdt_desc
  ljmp $0x08, $1f
1:
  mov $0x10, %ax; mov %ax, %ds; mov %ax, %es; mov %ax, %ss; mov %ax, %fs; mov %ax, %gs
  mov $bsp_stack_top, %esp
  call setup_idt
  mov $0xFF, %al; out %al, $0x21; out %al, $0xA1
  call paging_on
  movl $0x1FF, 0xFEE000F0
  mov $1, %eax
  cpuid
  shr $16, %ebx
  and $0xff, %ebx
  mov %ebx, ncpus
  movl $(FRAME0 | 3), pt
  # trampoline to 0x8000
  mov $tramp_start, %esi
  mov $0x8000, %edi
  mov $(tramp_end - tramp_start), %ecx
  rep movsb
  # INIT (assert, then de-assert), then two STARTUP IPIs, to all but self
  movl $0, 0xFEE00310
  movl $0x000C4500, 0xFEE00300
  movl $0x000C8500, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
  mov ncpus, %ebx
  dec %ebx
2: pause
  cmp ap_up, %ebx
  jne 2b
  call lock_print
  mov $msg_up, %esi; call puts
  mov ncpus, %eax; call putdec
  mov $10, %al; call putc
  call unlock_print
  mov $0x55, %al; out %al, $0x80   # POST 0x55: the rounds start (tests may stop the guest here)
  # shootdown rounds
  movl $1, round
3:
  mov round, %eax
  mov %eax, %edx
  and $3, %edx
  shl $12, %edx
  add $FRAME0, %edx
  mov %eax, (%edx)
  or $3, %edx
  mov %edx, pt
  invlpg VPAGE
  cmp VPAGE, %eax
  jne bsp_bad
  mov %eax, shoot_gen
  movl $0x000C4050, 0xFEE00300
  mov ncpus, %ecx
  dec %ecx
  imul %eax, %ecx
4: pause
  cmp acks, %ecx
  jne 4b
  incl round
  cmpl $ROUNDS, round
  jbe 3b
  movl $1, stop
  call lock_print
  mov $msg_rounds, %esi; call puts
  mov round, %eax; dec %eax; call putdec
  mov $msg_errors, %esi; call puts
  mov errors, %eax; call putdec
  mov $msg_reads, %esi; call puts
  mov reads_ok, %eax; call putdec
  mov $10, %al; call putc
  mov $msg_done, %esi; call puts
  call unlock_print
5: cli; hlt; jmp 5b
bsp_bad:
  incl errors
  jmp 5b

ap_entry32:
  mov $0x10, %ax; mov %ax, %ds; mov %ax, %es; mov %ax, %ss; mov %ax, %fs; mov %ax, %gs
  mov $1, %eax
  lock xadd %eax, ap_next
  mov %eax, %ebp
  inc %eax
  shl $12, %eax
  add $ap_stacks, %eax
  mov %eax, %esp
  lidt idt_desc
  call paging_on
  movl $0x1FF, 0xFEE000F0
  call lock_print
  mov $msg_ap, %esi; call puts
  mov %ebp, %eax; inc %eax; call putdec
  mov $msg_apic, %esi; call puts
  mov 0xFEE00020, %eax; shr $24, %eax; call putdec
  mov $msg_cpuid, %esi; call puts
  mov $1, %eax; cpuid; mov %ebx, %eax; shr $24, %eax; call putdec
  mov $10, %al; call putc
  call unlock_print
  lock incl ap_up
  xor %edi, %edi      # last round acknowledged by this AP
  sti
6:
  cmpl $0, stop
  jne 7f
  cli
  mov VPAGE, %eax
  cmp my_acked(,%ebp,4), %eax
  sti
  jb 8f
  lock incl reads_ok
  pause
  jmp 6b
8: lock incl errors
  jmp 6b
7: cli
9: hlt; jmp 9b

isr_shoot:
  push %eax
  invlpg VPAGE
  mov shoot_gen, %eax
  mov %eax, my_acked(,%ebp,4)
  cmp VPAGE, %eax
  je 1f
  lock incl errors
1:
  lock incl acks
  movl $0, 0xFEE000B0
  pop %eax
  iret
isr_default:
  iret

paging_on:
  mov %cr4, %eax; or $0x10, %eax; mov %eax, %cr4
  mov $pd, %eax; mov %eax, %cr3
  mov %cr0, %eax; or $0x80000000, %eax; mov %eax, %cr0
  ret

setup_idt:
  mov $idt, %edi
  mov $256, %ecx
1: mov $isr_default, %eax
  call gate
  loop 1b
  mov $idt + 0x50*8, %edi
  mov $isr_shoot, %eax
  call gate
  # page directory: 4 MiB identity pages for 0-8 MiB and 0xFEC00000 (APIC), one 4 KiB table at 8 MiB
  movl $0x83, pd
  movl $0x400083, pd+4
  mov $pt, %eax; or $3, %eax; mov %eax, pd+8
  movl $0xFEC00083, pd+0xFEC
  lidt idt_desc
  ret
gate:
  mov %ax, (%edi)
  movw $0x08, 2(%edi)
  movw $0x8E00, 4(%edi)
  push %eax
  shr $16, %eax
  mov %ax, 6(%edi)
  pop %eax
  add $8, %edi
  ret

lock_print:
  push %eax
1: mov $1, %eax
  xchg %eax, print_lock
  test %eax, %eax
  jz 2f
  pause
  jmp 1b
2: pop %eax
  ret
unlock_print:
  movl $0, print_lock
  ret
${COM1_PRINT}

.code16
tramp_start:
  cli
  xor %ax, %ax
  mov %ax, %ds
  lgdtl 0x8000 + (tramp_gdt - tramp_start)
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  ljmpl $0x08, $ap_entry32
tramp_gdt:
  .word gdt_end - gdt - 1
  .long gdt
tramp_end:
.code32

.data
.align 8
gdt:
  .quad 0
  .quad 0x00CF9A000000FFFF
  .quad 0x00CF92000000FFFF
gdt_end:
gdt_desc: .word gdt_end - gdt - 1
  .long gdt
idt_desc: .word 256*8-1
  .long idt
msg_up: .asciz "all up: cpus="
msg_ap: .asciz "AP "
msg_apic: .asciz " apic="
msg_cpuid: .asciz " cpuid="
msg_rounds: .asciz "shootdown rounds="
msg_errors: .asciz " errors="
msg_reads: .asciz " reads="
msg_done: .asciz "done\\n"
.align 4
ncpus: .long 0
ap_next: .long 0
ap_up: .long 0
print_lock: .long 0
round: .long 0
shoot_gen: .long 0
acks: .long 0
errors: .long 0
reads_ok: .long 0
stop: .long 0
.bss
.align 4096
pd: .skip 4096
pt: .skip 4096
idt: .skip 256*8
.align 16
my_acked: .skip 64*4
.skip 4096
bsp_stack_top:
ap_stacks: .skip 64*4096
`;

export { haveBinutils };

let dir: string | null = null;
process.on('exit', () => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Builds the SMP kernel once per process and returns the ELF's path. */
export function smpKernel(): string {
  dir ??= mkdtempSync(join(tmpdir(), 'hyperts-smp-'));
  return assembleMultiboot32(dir, 'smp.elf', SOURCE);
}
