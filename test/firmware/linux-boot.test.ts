import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../src/platform/memory.js';
import { BOOT_PARAMS_ADDR, BOOT_CMDLINE_ADDR, BOOT_GDT_ADDR, EBDA_START, IOAPIC_BASE, LAPIC_BASE, ACPI_TABLES_ADDR } from '../../src/platform/layout.js';
import { loadLinux, parseBzImageHeader, BP } from '../../src/firmware/linux-boot.js';
import { BootError, E820_RAM, E820_RESERVED } from '../../src/firmware/boot-common.js';
import { defaultImagePaths } from '../../src/image/builder.js';

const MiB = 1024 * 1024;

function fakeBzImage(over: Partial<Record<'version' | 'xloadflags' | 'magic' | 'initSize' | 'initrdMax' | 'cmdlineSize', number>> = {}): Buffer {
  const setupSects = 2;
  const b = Buffer.alloc((setupSects + 1) * 512 + 8192);
  b[BP.setupSects] = setupSects;
  b.writeUInt16LE(0xaa55, BP.bootFlag);
  b[0x200] = 0xeb; b[0x201] = 0x66; // jmp over the header, whose end it marks (0x268)
  b.writeUInt32LE(over.magic ?? 0x53726448, BP.header);
  b.writeUInt16LE(over.version ?? 0x020f, BP.version);
  b[BP.loadflags] = 0x01;
  b.writeUInt32LE(over.initrdMax ?? 0x7fffffff, BP.initrdAddrMax);
  b.writeUInt32LE(0x200000, BP.kernelAlignment);
  b[BP.relocatableKernel] = 1;
  b.writeUInt16LE(over.xloadflags ?? 0x7f, BP.xloadflags);
  b.writeUInt32LE(over.cmdlineSize ?? 2047, BP.cmdlineSize);
  b.writeUInt32LE(0x1000000, BP.prefAddress);
  b.writeUInt32LE(over.initSize ?? 0x400000, BP.initSize);
  for (let i = (setupSects + 1) * 512; i < b.length; i++) b[i] = (i * 13) & 0xff;
  return b;
}

test('linux-boot: bzImage header validation gives clear errors', () => {
  assert.throws(() => parseBzImageHeader(Buffer.alloc(100)), /too small/);
  assert.throws(() => parseBzImageHeader(fakeBzImage({ magic: 0 })), /HdrS/);
  assert.throws(() => parseBzImageHeader(fakeBzImage({ version: 0x020a })), /2\.10 is too old/);
  assert.throws(() => parseBzImageHeader(fakeBzImage({ xloadflags: 0 })), /64-bit/);
  const h = parseBzImageHeader(fakeBzImage());
  assert.equal(h.kernelOffset, 3 * 512);
  assert.equal(h.headerEnd, 0x268);
  assert.equal(h.prefAddress, 0x1000000);
});

test('linux-boot: kernel, zero page, command line and initrd placement', () => {
  const mem = new GuestMemory(64 * MiB);
  const img = fakeBzImage();
  const initrd = Buffer.alloc(3 * MiB + 123, 0xa5);
  const r = loadLinux(mem, { kernel: img, initrd, cmdline: 'console=ttyS0 nokaslr', acpiRsdpAddr: ACPI_TABLES_ADDR });
  assert.deepEqual(Buffer.from(mem.slice(0x100000, img.length - 1536)), img.subarray(1536));
  const v = mem.view, z = BOOT_PARAMS_ADDR;
  assert.equal(mem.bytes[z + BP.typeOfLoader], 0xff);
  assert.equal(mem.bytes[z + BP.loadflags] & 1, 1);
  assert.equal(v.getUint32(z + BP.header, true), 0x53726448, 'setup header copied');
  assert.equal(v.getUint32(z + BP.initSize, true), 0x400000);
  assert.equal(mem.bytes[z + BP.sentinel], 0);
  assert.equal(v.getUint32(z + BP.cmdLinePtr, true), BOOT_CMDLINE_ADDR);
  assert.equal(Buffer.from(mem.slice(BOOT_CMDLINE_ADDR, 22)).toString(), 'console=ttyS0 nokaslr\0');
  assert.equal(v.getUint32(z + BP.acpiRsdpAddr, true), ACPI_TABLES_ADDR);
  // initrd: page aligned, as high as possible below the top of RAM
  const ia = v.getUint32(z + BP.ramdiskImage, true);
  assert.equal(ia % 4096, 0);
  assert.equal(v.getUint32(z + BP.ramdiskSize, true), initrd.length);
  assert.ok(ia + initrd.length <= 64 * MiB && ia + initrd.length > 64 * MiB - 4096);
  assert.equal(mem.bytes[ia + initrd.length - 1], 0xa5);
  assert.ok(ia >= r.kernelEnd, 'initrd above the kernel');
  // entry state
  assert.equal(r.cpu.mode, 'long64');
  assert.equal(r.cpu.rip, 0x100200);
  assert.equal(r.cpu.gpr[6], BOOT_PARAMS_ADDR);
  assert.equal((r.cpu.rflags ?? 0) & 0x200, 0, 'interrupts off');
  assert.equal(r.cpu.cs, 0x10); assert.equal(r.cpu.ds, 0x18);
  assert.equal(r.cpu.efer! & 0x500, 0x500);
  assert.equal(r.cpu.cr0! >>> 31, 1); assert.equal(r.cpu.cr4! & 0x20, 0x20);
});

test('linux-boot: initrd honours initrd_addr_max and rejects what does not fit', () => {
  const mem = new GuestMemory(64 * MiB);
  loadLinux(mem, { kernel: fakeBzImage({ initrdMax: 32 * MiB - 1 }), initrd: Buffer.alloc(MiB) });
  const ia = mem.view.getUint32(BOOT_PARAMS_ADDR + BP.ramdiskImage, true);
  assert.equal(ia, 31 * MiB);
  assert.throws(() => loadLinux(mem, { kernel: fakeBzImage(), initrd: Buffer.alloc(60 * MiB) }), /does not fit/);
  assert.throws(() => loadLinux(mem, { kernel: fakeBzImage({ initSize: 0x8000000 }) }), /more memory/);
  assert.throws(() => loadLinux(mem, { kernel: fakeBzImage({ cmdlineSize: 10 }), cmdline: 'x'.repeat(11) }), /at most 10/);
  assert.throws(() => loadLinux(new GuestMemory(4 * MiB), { kernel: fakeBzImage() }), BootError);
});

test('linux-boot: e820 map in the zero page', () => {
  const mem = new GuestMemory(64 * MiB);
  loadLinux(mem, { kernel: fakeBzImage() });
  const v = mem.view, z = BOOT_PARAMS_ADDR;
  const n = mem.bytes[z + BP.e820Entries];
  const map = Array.from({ length: n }, (_, i) => {
    const o = z + BP.e820Table + i * 20;
    return { addr: v.getUint32(o, true) + v.getUint32(o + 4, true) * 2 ** 32, size: v.getUint32(o + 8, true), type: v.getUint32(o + 16, true) };
  });
  const ramAt = (a: number): boolean => map.some((e) => e.type === E820_RAM && a >= e.addr && a < e.addr + e.size);
  const resAt = (a: number): boolean => map.some((e) => e.type === E820_RESERVED && a >= e.addr && a < e.addr + e.size);
  assert.ok(ramAt(0x1000) && ramAt(EBDA_START - 1));
  assert.ok(!ramAt(EBDA_START) && resAt(EBDA_START) && resAt(ACPI_TABLES_ADDR) && resAt(0xfffff));
  assert.ok(ramAt(0x100000) && ramAt(64 * MiB - 1) && !ramAt(64 * MiB));
  assert.ok(!ramAt(IOAPIC_BASE) && !ramAt(LAPIC_BASE));
  // no overlaps
  const s = [...map].sort((a, b) => a.addr - b.addr);
  for (let i = 1; i < s.length; i++) assert.ok(s[i].addr >= s[i - 1].addr + s[i - 1].size);
});

test('linux-boot: GDT and identity page tables translate like the CPU would', () => {
  const mem = new GuestMemory(64 * MiB);
  const { cpu } = loadLinux(mem, { kernel: fakeBzImage() });
  const v = mem.view;
  const desc = (sel: number): [number, number] => [v.getUint32(BOOT_GDT_ADDR + sel, true), v.getUint32(BOOT_GDT_ADDR + sel + 4, true)];
  const [, codeHi] = desc(cpu.cs!);
  assert.equal((codeHi >> 21) & 1, 1, 'L bit on the 64-bit code segment');
  assert.equal((codeHi >> 22) & 1, 0, 'D clear with L');
  assert.equal((codeHi >> 8) & 0x9a, 0x9a, 'present code segment');
  const [, dataHi] = desc(cpu.ds!);
  assert.equal((dataHi >> 8) & 0x92, 0x92, 'present writable data');
  assert.ok(cpu.gdtLimit! >= cpu.ds! + 7);
  const walk = (va: number): number => {
    const e4 = v.getUint32(cpu.cr3! + 8 * 0, true); // va < 512 GiB
    assert.equal(e4 & 1, 1);
    const pdpt = e4 & ~0xfff;
    const e3 = v.getUint32(pdpt + 8 * Math.floor(va / 2 ** 30), true);
    assert.equal(e3 & 1, 1);
    const pd = e3 & ~0xfff;
    const e2 = v.getUint32(pd + 8 * ((va >>> 21) & 511), true);
    assert.equal(e2 & 0x81, 0x81, 'present 2 MiB page');
    return ((e2 & 0xffe00000) >>> 0) + (va & 0x1fffff);
  };
  for (const va of [0, BOOT_PARAMS_ADDR, 0x100200, 0x1234567, 0xbfffffff, IOAPIC_BASE, LAPIC_BASE + 0x30, 0xffffffff]) assert.equal(walk(va), va);
});

test('linux-boot: ELF vmlinux loads at physical addresses and enters through the physical entry', (t) => {
  if (spawnSync('as', ['--version']).status !== 0) { t.skip('binutils not installed'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'vmlinux-'));
  try {
    writeFileSync(join(dir, 'k.s'), '.text\n.globl _start\n_start: hlt\n.fill 100, 1, 0x90\n.data\nvalue: .quad 0x1122334455667788\n.bss\n.skip 8192\n');
    writeFileSync(join(dir, 'k.ld'), 'ENTRY(_start)\nSECTIONS { . = 0xffffffff81000000; .text : AT(0x1000000) { *(.text) } .data : AT(0x1200000 + (ADDR(.data) - 0xffffffff81000000 - 0x200000)) { *(.data) } .bss : { *(.bss) } }\n');
    assert.equal(spawnSync('as', ['--64', '-o', join(dir, 'k.o'), join(dir, 'k.s')]).status, 0);
    const ld = spawnSync('ld', ['-T', join(dir, 'k.ld'), '-o', join(dir, 'vmlinux'), join(dir, 'k.o')]);
    assert.equal(ld.status, 0, ld.stderr.toString());
    const mem = new GuestMemory(64 * MiB);
    mem.bytes.fill(0xee, 0x1000000, 0x1400000);
    const r = loadLinux(mem, { kernel: readFileSync(join(dir, 'vmlinux')), cmdline: 'x' });
    assert.equal(r.format, 'elf');
    assert.equal(r.cpu.rip, 0x1000000);
    assert.equal(mem.bytes[0x1000000], 0xf4);
    assert.equal(mem.view.getUint16(BOOT_PARAMS_ADDR + BP.bootFlag, true), 0xaa55);
    assert.equal(mem.bytes[BOOT_PARAMS_ADDR + BP.typeOfLoader], 0xff);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => loadLinux(new GuestMemory(64 * MiB), { kernel: Buffer.from('\x7fELF\x02\x01\x01') }), /bad ELF kernel/);
});

test('linux-boot: the Debian cloud kernel from the default image loads', (t) => {
  const { kernel, initrd } = defaultImagePaths();
  if (!existsSync(kernel)) { t.skip('no default image (run: hyperts image build)'); return; }
  const img = readFileSync(kernel);
  const h = parseBzImageHeader(img);
  assert.ok(h.version >= 0x020c);
  assert.ok(h.relocatable);
  const mem = new GuestMemory(256 * MiB);
  const r = loadLinux(mem, { kernel: img, initrd: readFileSync(initrd), cmdline: 'console=ttyS0' });
  assert.equal(r.cpu.rip, 0x100200);
  assert.ok(r.initrdAddr > r.kernelEnd);
  assert.ok(r.kernelEnd >= 0x1000000 + h.initSize, 'room for the kernel at pref_address');
});

test('linux-boot: prepareLinuxBoot points boot_params at the ACPI tables it wrote', async () => {
  const { prepareLinuxBoot } = await import('../../src/firmware/index.js');
  const mem = new GuestMemory(64 * MiB);
  const r = prepareLinuxBoot(mem, { kernel: fakeBzImage(), vcpus: 2, vmbus: true, cmdline: 'console=ttyS0' });
  const rsdp = mem.view.getUint32(BOOT_PARAMS_ADDR + BP.acpiRsdpAddr, true);
  assert.equal(rsdp, r.acpi.rsdpAddr);
  assert.equal(Buffer.from(mem.slice(rsdp, 8)).toString('latin1'), 'RSD PTR ');
  assert.ok(r.e820.some((e) => e.type === 2 && rsdp >= e.addr && rsdp < e.addr + e.size), 'RSDP in reserved memory');
});
