/**
 * A multiboot guest for the SMP tests, assembled at test time. The boot processor starts the others with
 * INIT-SIPI-SIPI (trampoline at 0x8000, real mode -> protected mode); each application processor prints
 * "AP <index> apic=<LAPIC ID register> cpuid=<CPUID.1:EBX[31:24]>". Once all are up (the count comes from
 * CPUID.1:EBX[23:16]) the BSP runs three stress phases of `rounds` rounds each while the APs keep reading:
 *  1. ipi: it writes generation g into a fresh frame, remaps the page at 0x800000 to it and sends IPI 0x50;
 *     each AP's handler does INVLPG and acknowledges. An AP that reads a value older than the last round it
 *     acknowledged counts an error (stale TLB entry).
 *  2. hypercall: it waits until every AP has read the current frame (their TLBs hold it), remaps, and flushes
 *     the APs' TLBs with HvFlushVirtualAddressSpace (32-bit hypercall convention), then publishes g. An AP
 *     that reads the page after seeing g published and gets an older value counts an error.
 *  3. patch: it waits until every AP has run the current version of patch_fn (a page of its own; `mov $n,
 *     %eax; ret`), patches its immediate to the round number and sends IPI 0x51. The AP's handler runs the
 *     function and must get the new value; so must every later call.
 * The BSP prints "<phase> rounds=<r> errors=<e> reads=<ok>" per phase; the APs halt (cli; hlt), the BSP writes
 * POST 0x56 once all have, prints "done" and halts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleMultiboot32, COM1_PRINT, haveBinutils } from './multiboot-kernel.js';

/** Rounds per phase in the test suite (`npm run stress:smp` runs 100,000). */
export const SHOOTDOWN_ROUNDS = 200;
export const STRESS_PHASES = ['ipi', 'hypercall', 'patch'] as const;

/** Per-phase results the kernel printed: rounds, errors, reads (or runs of the patched code) by the APs. */
export function stressResults(out: string): Map<string, { rounds: number; errors: number; reads: number }> {
  const m = new Map<string, { rounds: number; errors: number; reads: number }>();
  for (const r of out.matchAll(/(ipi|hypercall|patch) rounds=(\d+) errors=(\d+) reads=(\d+)\n/g)) {
    m.set(r[1], { rounds: Number(r[2]), errors: Number(r[3]), reads: Number(r[4]) });
  }
  return m;
}

const source = (rounds: number, leaveOne: boolean): string => `
.set ROUNDS, ${rounds}
.set LEAVE_ONE, ${leaveOne ? 1 : 0}
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
  # Hyper-V: identify, then enable the hypercall page
  mov $0x40000000, %ecx; mov $1, %eax; mov $0x81000000, %edx; wrmsr
  mov $0x40000001, %ecx; mov $(hcpage + 1), %eax; xor %edx, %edx; wrmsr
  # trampoline to 0x8000
  mov $tramp_start, %esi
  mov $0x8000, %edi
  mov $(tramp_end - tramp_start), %ecx
  rep movsb
  # INIT (assert, then de-assert), then two STARTUP IPIs, to all but self; or, with LEAVE_ONE, to APIC IDs
  # 1..n-2 one by one, leaving the last processor waiting for its SIPI (and out of the rounds).
.if LEAVE_ONE
  decl ncpus
  mov $1, %ecx
1: cmp ncpus, %ecx
  jae 3f
  mov %ecx, %eax; shl $24, %eax
  mov %eax, 0xFEE00310; movl $0x00004500, 0xFEE00300
  mov %eax, 0xFEE00310; movl $0x00008500, 0xFEE00300
  mov %eax, 0xFEE00310; movl $0x00004608, 0xFEE00300
  mov %eax, 0xFEE00310; movl $0x00004608, 0xFEE00300
  inc %ecx
  jmp 1b
3:
.else
  movl $0, 0xFEE00310
  movl $0x000C4500, 0xFEE00300
  movl $0x000C8500, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
  movl $0x000C4608, 0xFEE00300
.endif
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

  # ---- phase 1: INVLPG + IPI 0x50
  movl $1, phase
  movl $1, round
3:
  mov round, %eax
  call remap
  mov %eax, shoot_gen
  movl $0x000C4050, 0xFEE00300
  mov ncpus, %ecx
  dec %ecx
  imul %eax, %ecx
4: pause
  cmp acks_ipi, %ecx
  jne 4b
  incl round
  cmpl $ROUNDS, round
  jbe 3b
  mov $msg_ipi, %esi; mov err_ipi, %ebx; mov reads_ipi, %edx; call report

  # ---- phase 2: HvFlushVirtualAddressSpace for the APs (no IPI)
  mov ncpus, %ecx
  mov $1, %eax; shl %cl, %eax; dec %eax; and $~1, %eax
  mov %eax, hc_in+16               # processor mask: every AP
  mov %cr3, %eax; mov %eax, hc_in  # address space; flags 0
  movl $2, phase
  movl $1, round
3:
  mov round, %eax
  add $ROUNDS, %eax                # generations go on from phase 1
  lea -1(%eax), %edx
  mov $seen_hc, %esi
  call wait_seen
  call remap
  push %eax
  mov $2, %eax; xor %edx, %edx     # HvFlushVirtualAddressSpace, simple call
  xor %ebx, %ebx; mov $hc_in, %ecx # input GPA
  xor %edi, %edi; xor %esi, %esi   # no output
  call hcpage
  test %ax, %ax
  jz 5f
  incl err_hc                      # the call failed
5: pop %eax
  mov %eax, flush_gen
  incl round
  cmpl $ROUNDS, round
  jbe 3b
  mov $msg_hc, %esi; mov err_hc, %ebx; mov reads_hc, %edx; call report

  # ---- phase 3: patch code another CPU has cached, then IPI 0x51
  movl $3, phase
  movl $1, round
3:
  mov round, %eax
  lea -1(%eax), %edx
  mov $seen_patch, %esi
  call wait_seen
  mov %eax, patch_fn + 1           # mov $imm32, %eax: the immediate
  mov %eax, patch_gen
  movl $0x000C4051, 0xFEE00300
  mov ncpus, %ecx
  dec %ecx
  imul %eax, %ecx
4: pause
  cmp acks_patch, %ecx
  jne 4b
  incl round
  cmpl $ROUNDS, round
  jbe 3b
  mov $msg_patch, %esi; mov err_patch, %ebx; mov runs_patch, %edx; call report

  movl $4, phase
  mov ncpus, %ebx
  dec %ebx
6: pause
  cmp ap_stopped, %ebx
  jne 6b
  mov $0x56, %al; out %al, $0x80   # POST 0x56: every AP it started has halted (tests may stop the guest here)
  call lock_print
  mov $msg_done, %esi; call puts
  call unlock_print
5: cli; hlt; jmp 5b

# Generation %eax into frame (%eax mod 4), VPAGE remapped to it; the BSP's own entry flushed and checked.
remap:
  mov %eax, %edx
  and $3, %edx
  shl $12, %edx
  add $FRAME0, %edx
  mov %eax, (%edx)
  or $3, %edx
  mov %edx, pt
  invlpg VPAGE
  cmp VPAGE, %eax
  je 1f
  incl err_bsp
1: ret

# Wait until every AP's entry in the array at %esi is at least %edx. An AP that never gets there (it keeps
# seeing an old frame or old code) counts an error after 65536 polls instead of hanging the rounds.
wait_seen:
  push %ecx
  push %edi
  xor %ecx, %ecx
1: mov ncpus, %ebx
  dec %ebx
  cmp %ebx, %ecx
  je 3f
  mov $0x10000, %edi
2: cmp (%esi,%ecx,4), %edx
  jbe 4f
  pause
  dec %edi
  jnz 2b
  incl err_bsp
4: inc %ecx
  jmp 1b
3: pop %edi
  pop %ecx
  ret

# "<name %esi> rounds=<ROUNDS> errors=<%ebx + err_bsp> reads=<%edx>" (err_bsp: the BSP's own checks in this phase)
report:
  call lock_print
  call puts
  mov $msg_rounds, %esi; call puts
  mov round, %eax; dec %eax; call putdec
  mov $msg_errors, %esi; call puts
  mov %ebx, %eax; add err_bsp, %eax; call putdec
  movl $0, err_bsp
  mov $msg_reads, %esi; call puts
  mov %edx, %eax; call putdec
  mov $10, %al; call putc
  call unlock_print
  ret

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
  sti
ap_loop:
  mov phase, %eax
  cmp $1, %eax; je ap_ipi
  cmp $2, %eax; je ap_hc
  cmp $3, %eax; je ap_patch
  cmp $4, %eax; je ap_stop
  pause
  jmp ap_loop
ap_ipi:
  cli
  mov VPAGE, %eax
  cmp my_acked(,%ebp,4), %eax
  sti
  jb 8f
  lock incl reads_ipi
  pause
  jmp ap_loop
8: lock incl err_ipi
  pause
  jmp ap_loop
ap_hc:
  mov flush_gen, %edx
  mov VPAGE, %eax
  mov %eax, seen_hc(,%ebp,4)
  cmp %edx, %eax
  jb 8f
  lock incl reads_hc
  pause
  jmp ap_loop
8: lock incl err_hc
  pause
  jmp ap_loop
ap_patch:
  cli
  call patch_fn
  cmp my_patched(,%ebp,4), %eax
  sti
  jb 8f
  mov %eax, seen_patch(,%ebp,4)
  lock incl runs_patch
  pause
  jmp ap_loop
8: lock incl err_patch
  pause
  jmp ap_loop
ap_stop:
  cli
  lock incl ap_stopped
9: hlt; jmp 9b

isr_shoot:
  push %eax
  invlpg VPAGE
  mov shoot_gen, %eax
  mov %eax, my_acked(,%ebp,4)
  cmp VPAGE, %eax
  je 1f
  lock incl err_ipi
1:
  lock incl acks_ipi
  movl $0, 0xFEE000B0
  pop %eax
  iret
isr_patch:
  push %eax
  mov patch_gen, %eax
  mov %eax, my_patched(,%ebp,4)
  call patch_fn
  cmp my_patched(,%ebp,4), %eax
  je 1f
  lock incl err_patch
1:
  lock incl acks_patch
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
  mov $isr_patch, %eax
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

# The patched function, alone in its page: the APs cache its block, the BSP stores into it.
.align 4096
patch_fn:
  mov $0, %eax
  ret
.align 4096

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
msg_ipi: .asciz "ipi"
msg_hc: .asciz "hypercall"
msg_patch: .asciz "patch"
msg_rounds: .asciz " rounds="
msg_errors: .asciz " errors="
msg_reads: .asciz " reads="
msg_done: .asciz "done\\n"
.align 32                          # 24 bytes, never across a page
hc_in: .quad 0, 0, 0               # address space, flags, processor mask
.align 4
ncpus: .long 0
ap_stopped: .long 0
ap_next: .long 0
ap_up: .long 0
print_lock: .long 0
phase: .long 0
round: .long 0
shoot_gen: .long 0
flush_gen: .long 0
patch_gen: .long 0
acks_ipi: .long 0
acks_patch: .long 0
err_bsp: .long 0
err_ipi: .long 0
err_hc: .long 0
err_patch: .long 0
reads_ipi: .long 0
reads_hc: .long 0
runs_patch: .long 0
.bss
.align 4096
pd: .skip 4096
pt: .skip 4096
hcpage: .skip 4096
idt: .skip 256*8
.align 16
my_acked: .skip 64*4
my_patched: .skip 64*4
seen_hc: .skip 64*4
seen_patch: .skip 64*4
.skip 4096
bsp_stack_top:
ap_stacks: .skip 64*4096
`;

export { haveBinutils };

let dir: string | null = null;
process.on('exit', () => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/**
 * Builds the SMP kernel with `rounds` rounds per phase (once per process and variant); returns the ELF's path.
 * `leaveOneWaiting`: the last processor is never started (it stays waiting for its SIPI) and the rounds run on
 * the others.
 */
export function smpKernel(rounds = SHOOTDOWN_ROUNDS, o: { leaveOneWaiting?: boolean } = {}): string {
  dir ??= mkdtempSync(join(tmpdir(), 'hyperts-smp-'));
  const leave = o.leaveOneWaiting === true;
  return assembleMultiboot32(dir, `smp-${rounds}${leave ? '-leave1' : ''}.elf`, source(rounds, leave));
}
