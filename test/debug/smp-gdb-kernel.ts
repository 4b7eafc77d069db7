/**
 * The GDB stub with two vCPUs: a 64-bit multiboot kernel whose BSP starts the AP with INIT-SIPI-SIPI (as the
 * SMP test kernel does) and gives each vCPU its own page tables, so that virtual 0x40000000 is a different
 * frame per vCPU (0x11111111 on the BSP, 0x22222222 on the AP). The AP waits for the BSP to reach long mode,
 * calls `ap_only` (code no other vCPU runs), counts `ap_count` up to LIMIT and halts; the BSP counts
 * `bsp_count` until the AP's count reaches LIMIT (or forever, while a debugger keeps `forever` set), then
 * passes `bsp_done` and ends the VM through the debug-exit port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

export const AP_COUNT_LIMIT = 20000;

const SOURCE = `
.set LIMIT, ${AP_COUNT_LIMIT}
.text
.align 4
.long 0x1BADB002, 0, -(0x1BADB002)
.code32
.globl _start
_start:
  cli
  movl $bsp_stack_top, %esp
  # the page at virtual 0x40000000 is a different frame for each vCPU (0x600000 / 0x800000)
  movl $0x11111111, 0x600000
  movl $0x22222222, 0x800000
  movl $pdpt + 3, pml4
  movl $pd + 3, pdpt
  movl $pd_bsp + 3, pdpt + 8
  movl $0x83, pd
  movl $0x600083, pd_bsp
  movl $ap_pdpt + 3, ap_pml4
  movl $pd + 3, ap_pdpt
  movl $pd_ap + 3, ap_pdpt + 8
  movl $0x800083, pd_ap
  # AP trampoline at 0x8000, then INIT-SIPI-SIPI to all but self (paging is still off: the LAPIC is at its physical address)
  movl $tramp_start, %esi
  movl $0x8000, %edi
  movl $(tramp_end - tramp_start), %ecx
  rep movsb
  movl $0x1FF, 0xFEE000F0
  movl $0, 0xFEE00310
  movl $0x000C4500, 0xFEE00300
  movl $0x000C8500, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
  movl $pml4, %eax
  call long_mode
  lgdt gdtr
  ljmp $0x08, $bsp64

# enter long mode with CR3 = %eax (the caller far-jumps to 64-bit code)
long_mode:
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
  ret

ap32:
  movw $0x10, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %ss
  movl $ap_stack_top, %esp
  movl $ap_pml4, %eax
  call long_mode
  ljmp $0x08, $ap64

.code64
bsp64:
  movq $bsp_stack_top, %rsp
  movq $0xb5b5, %r12
  movq $1, bsp_ready
bsp_loop:
  incq bsp_count
  pause
  cmpq $0, forever
  jne bsp_loop
  cmpq $LIMIT, ap_count
  jb bsp_loop
  movw $0xf4, %dx
.globl bsp_done
bsp_done:
  movb $0, %al
  outb %al, %dx
1: hlt
  jmp 1b

ap64:
  movq $ap_stack_top, %rsp
  movq $0xa9a9, %r12
  # wait until the BSP runs in long mode, so both vCPUs have their own page tables when the AP stops
2: pause
  cmpq $0, bsp_ready
  je 2b
  call ap_only
ap_loop:
  incq ap_count
  cmpq $LIMIT, ap_count
  jae ap_halt
  pause
  jmp ap_loop
ap_halt:
  cli
2: hlt
  jmp 2b
.globl ap_only
ap_only:
  addq $1, %r12
  addq $2, %r12
  addq $3, %r12
  ret

.code16
tramp_start:
  cli
  xorw %ax, %ax
  movw %ax, %ds
  lgdtl 0x8000 + (tramp_gdtr - tramp_start)
  movl %cr0, %eax
  orl $1, %eax
  movl %eax, %cr0
  ljmpl $0x18, $ap32
tramp_gdtr:
  .word gdt_end - gdt - 1
  .long gdt
tramp_end:

.data
.align 8
gdt: .quad 0, 0x00209a0000000000, 0x00CF92000000FFFF, 0x00CF9A000000FFFF
gdt_end:
gdtr: .word gdt_end - gdt - 1
  .long gdt
# counters on a page of their own: stores next to code would drop the decoded blocks on every count
.align 4096
bsp_count: .quad 0
ap_count: .quad 0
bsp_ready: .quad 0
.globl forever
forever: .quad 0
.bss
.align 4096
pml4: .skip 4096
pdpt: .skip 4096
pd: .skip 4096
pd_bsp: .skip 4096
ap_pml4: .skip 4096
ap_pdpt: .skip 4096
pd_ap: .skip 4096
.skip 8192
bsp_stack_top:
.skip 8192
ap_stack_top:
`;

/** Assembles and links the kernel (x86-64 ELF with debug info, so GDB knows its symbols); returns its path. */
export function smpGdbKernel(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-gdb-smp-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'k.S'), SOURCE);
  execFileSync('as', ['--64', '-g', '-o', join(dir, 'k.o'), join(dir, 'k.S')]);
  execFileSync('ld', ['-m', 'elf_x86_64', '-N', '-e', '_start', '-Ttext', '0x100000', '-o', join(dir, 'k.elf'), join(dir, 'k.o')], { stdio: ['ignore', 'ignore', 'ignore'] });
  return join(dir, 'k.elf');
}
