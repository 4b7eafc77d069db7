/** Assembles the small 32-bit multiboot guests the tests boot instead of Linux (GNU as and ld). */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const LINKER = 'ENTRY(_start)\nSECTIONS { . = 0x100000; .multiboot : { *(.multiboot) } .text : { *(.text) } .data : { *(.data) } .bss : { *(.bss) } }\n';

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
