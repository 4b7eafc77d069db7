import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/platform/memory.js';
import { BOOT_GDT_ADDR } from '../../src/platform/layout.js';
import { loadMultiboot, findMultibootHeader, MBI_MEM, MBI_MMAP, MBI_MODS, MBI_CMDLINE, MBI_LOADER_NAME } from '../../src/firmware/multiboot.js';

const MiB = 1024 * 1024;
const haveBinutils = spawnSync('as', ['--version']).status === 0;

/** Assemble a tiny multiboot kernel: header (with `flags`), code at _start, data and bss. */
function build(dir: string, opts: { bits: 32 | 64; flags?: number; aout?: boolean }): Buffer {
  const flags = (opts.flags ?? 3) | (opts.aout ? 0x10000 : 0);
  const aoutFields = opts.aout ? '.long mbh, _load_start, _load_end, _bss_end, _start\n' : '';
  const src = `.section .multiboot, "a"\n.align 4\nmbh: .long 0x1BADB002\n.long ${flags}\n.long -(0x1BADB002 + ${flags})\n${aoutFields}` +
    `.text\n.globl _start\n_start: cli\nhlt\njmp _start\n.data\nmsg: .ascii "multiboot-data"\n.bss\n.skip 4096\n`;
  const ld = `ENTRY(_start)\nSECTIONS { . = 0x100000; _load_start = .; .multiboot : { *(.multiboot) } .text : { *(.text) } .data : { *(.data) } _load_end = .; .bss : { *(.bss) } _bss_end = .; }\n`;
  writeFileSync(join(dir, 'k.s'), src);
  writeFileSync(join(dir, 'k.ld'), ld);
  const as = spawnSync('as', [opts.bits === 32 ? '--32' : '--64', '-o', join(dir, 'k.o'), join(dir, 'k.s')]);
  assert.equal(as.status, 0, as.stderr.toString());
  const out = join(dir, 'k.elf');
  const l = spawnSync('ld', ['-m', opts.bits === 32 ? 'elf_i386' : 'elf_x86_64', '-T', join(dir, 'k.ld'), '-o', out, join(dir, 'k.o')]);
  assert.equal(l.status, 0, l.stderr.toString());
  if (!opts.aout) return readFileSync(out);
  const bin = join(dir, 'k.bin');
  assert.equal(spawnSync('objcopy', ['-O', 'binary', out, bin]).status, 0);
  return readFileSync(bin);
}

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'mb-'));
  try { return fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

const cstr = (m: GuestMemory, a: number): string => { let e = a; while (m.bytes[e]) e++; return Buffer.from(m.bytes.subarray(a, e)).toString(); };

for (const variant of [{ bits: 32 as const }, { bits: 64 as const }, { bits: 32 as const, aout: true }]) {
  const label = variant.aout ? 'a.out kludge' : `ELF${variant.bits}`;
  test(`multiboot: ${label} kernel loads and gets a complete information structure`, { skip: !haveBinutils && 'binutils not installed' }, () => withDir((dir) => {
    const img = build(dir, variant);
    const h = findMultibootHeader(img)!;
    assert.ok(h && h.offset % 4 === 0 && h.offset < 8192);
    const mem = new GuestMemory(64 * MiB);
    mem.bytes.fill(0xcc, 0x100000, 0x110000);
    const initrd = Buffer.from('initrd-bytes');
    const r = loadMultiboot(mem, { kernel: img, cmdline: 'kernel arg=1', initrd, modules: [{ data: Buffer.from('second'), string: 'mod2 x' }] });
    // code and data at their addresses, bss zeroed
    assert.deepEqual([...mem.slice(r.entry, 2)], [0xfa, 0xf4], 'cli; hlt at the entry');
    assert.ok(Buffer.from(mem.slice(0x100000, 0x1000)).includes(Buffer.from('multiboot-data')));
    assert.ok(mem.slice(r.loadEnd - 4096, 4096).every((b) => b === 0), 'bss zeroed');
    // CPU state
    assert.equal(r.cpu.mode, 'protected32');
    assert.equal(r.cpu.gpr[0], 0x2badb002);
    assert.equal(r.cpu.gpr[3], r.infoAddr);
    assert.equal(r.cpu.rip, r.entry);
    assert.equal(r.cpu.cr0! & 0x80000001, 1, 'protected mode, paging off');
    const hi = mem.view.getUint32(BOOT_GDT_ADDR + r.cpu.cs! + 4, true);
    assert.equal((hi >> 22) & 1, 1, '32-bit code segment');
    // info structure
    const v = mem.view, i = r.infoAddr;
    const flags = v.getUint32(i, true);
    for (const f of [MBI_MEM, MBI_MMAP, MBI_MODS, MBI_CMDLINE, MBI_LOADER_NAME]) assert.ok(flags & f);
    assert.equal(v.getUint32(i + 4, true), 639);
    assert.equal(v.getUint32(i + 8, true), 63 * 1024);
    assert.equal(cstr(mem, v.getUint32(i + 16, true)), 'kernel arg=1');
    assert.equal(cstr(mem, v.getUint32(i + 64, true)), 'hyperts');
    assert.equal(v.getUint32(i + 20, true), 2);
    const mods = v.getUint32(i + 24, true);
    const m0s = v.getUint32(mods, true), m0e = v.getUint32(mods + 4, true);
    assert.equal(m0s % 4096, 0);
    assert.ok(m0s >= r.loadEnd);
    assert.equal(Buffer.from(mem.slice(m0s, m0e - m0s)).toString(), 'initrd-bytes');
    assert.equal(cstr(mem, v.getUint32(mods + 8, true)), 'initrd');
    assert.equal(Buffer.from(mem.slice(v.getUint32(mods + 16, true), 6)).toString(), 'second');
    assert.equal(cstr(mem, v.getUint32(mods + 24, true)), 'mod2 x');
    // memory map: size field 20, RAM from 1 MiB up to the end of guest memory
    const len = v.getUint32(i + 44, true), addr = v.getUint32(i + 48, true);
    const entries: Array<[number, number, number]> = [];
    for (let o = addr; o < addr + len; o += v.getUint32(o, true) + 4) entries.push([v.getUint32(o + 4, true), v.getUint32(o + 12, true), v.getUint32(o + 20, true)]);
    assert.ok(entries.some(([a, l, t]) => a === 0x100000 && l === 63 * MiB && t === 1));
    assert.ok(entries.some(([a, , t]) => a === 0 && t === 1));
  }));
}

test('multiboot: missing or malformed headers are rejected clearly', () => {
  const mem = new GuestMemory(64 * MiB);
  assert.throws(() => loadMultiboot(mem, { kernel: Buffer.alloc(16384) }), /no valid multiboot header/);
  const bad = Buffer.alloc(8192);
  bad.writeUInt32LE(0x1badb002, 64); bad.writeUInt32LE(0, 68); bad.writeUInt32LE(1, 72); // checksum wrong
  assert.equal(findMultibootHeader(bad), null);
  const late = Buffer.alloc(16384);
  late.writeUInt32LE(0x1badb002, 8192); late.writeUInt32LE(0, 8196); late.writeUInt32LE(-0x1badb002 >>> 0, 8200);
  assert.equal(findMultibootHeader(late), null, 'header beyond 8 KiB ignored');
  const video = Buffer.alloc(8192);
  video.writeUInt32LE(0x1badb002, 0); video.writeUInt32LE(4, 4); video.writeUInt32LE((-(0x1badb002 + 4)) >>> 0, 8);
  assert.throws(() => loadMultiboot(mem, { kernel: video }), /video mode/);
  const aout = Buffer.alloc(8192);
  aout.writeUInt32LE(0x1badb002, 0); aout.writeUInt32LE(0x10000, 4); aout.writeUInt32LE((-(0x1badb002 + 0x10000)) >>> 0, 8);
  aout.writeUInt32LE(0x100000, 12); aout.writeUInt32LE(0x100000, 16); aout.writeUInt32LE(0x200000, 20); aout.writeUInt32LE(0, 24); aout.writeUInt32LE(0x100000, 28);
  assert.throws(() => loadMultiboot(mem, { kernel: aout }), /beyond the end of the file/);
  aout.writeUInt32LE(0, 20); aout.writeUInt32LE(0x7fff0000, 16); aout.writeUInt32LE(0x7fff0000, 12);
  assert.throws(() => loadMultiboot(mem, { kernel: aout }), /outside guest RAM/);
});
