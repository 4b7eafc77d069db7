/** Assembles the small 32-bit multiboot guests the tests boot instead of Linux (GNU as and ld). */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const LINKER = 'ENTRY(_start)\nSECTIONS { . = 0x100000; .multiboot : { *(.multiboot) } .text : { *(.text) } .data : { *(.data) } .bss : { *(.bss) } }\n';

/**
 * COM1 console routines for the test guests (32-bit, polled 16550 at 0x3F8): `putc` prints %al, `puts` the
 * NUL-terminated string at %esi, `putdec` %eax in decimal. They keep every register but %esi (puts) and use
 * the local labels 1, 3, 4 and 5.
 */
export const COM1_PRINT = `
puts:
  lodsb
  test %al, %al
  jz 1f
  call putc
  jmp puts
1: ret
putdec:
  push %ebx; push %ecx; push %edx
  mov $10, %ebx
  xor %ecx, %ecx
3: xor %edx, %edx
  div %ebx
  push %edx
  inc %ecx
  test %eax, %eax
  jnz 3b
4: pop %eax
  add $'0', %al
  call putc
  loop 4b
  pop %edx; pop %ecx; pop %ebx
  ret
putc:
  push %edx
  push %eax
  mov %al, %ah
  mov $0x3FD, %dx
5: in %dx, %al
  test $0x20, %al
  jz 5b
  mov $0x3F8, %dx
  mov %ah, %al
  out %al, %dx
  pop %eax
  pop %edx
  ret
`;

export function haveBinutils(): boolean {
  return spawnSync('as', ['--version']).status === 0 && spawnSync('ld', ['--version']).status === 0;
}

/** Assembles `source` into dir/name (once: an existing ELF is reused) and returns the ELF's path. */
export function assembleMultiboot32(dir: string, name: string, source: string): string {
  const out = join(dir, name);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'k.s'), source);
  writeFileSync(join(dir, 'k.ld'), LINKER);
  const as = spawnSync('as', ['--32', '-o', join(dir, 'k.o'), join(dir, 'k.s')]);
  if (as.status !== 0) throw new Error(`as failed: ${as.stderr}`);
  const ld = spawnSync('ld', ['-m', 'elf_i386', '-T', join(dir, 'k.ld'), '-o', out, join(dir, 'k.o')]);
  if (ld.status !== 0) throw new Error(`ld failed: ${ld.stderr}`);
  return out;
}
