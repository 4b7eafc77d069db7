/**
 * Multiboot (version 1) loader: finds the header in the first 8 KiB, loads ELF PT_LOAD segments (or the
 * a.out-kludge addresses), builds the multiboot information structure and returns the 32-bit protected-mode
 * entry state (EAX = 0x2BADB002, EBX = info address, paging off).
 */
import type { GuestMemory } from '../platform/memory.js';
import type { BootCpuState } from '../processor/backend.js';
import { BOOT_PARAMS_ADDR, BOOT_CMDLINE_ADDR, BOOT_GDT_ADDR, EBDA_START, KERNEL_LOAD_ADDR } from '../platform/layout.js';
import { BootError, e820Map, writeBootGdt, BOOT_GDT_LIMIT, SEL_CODE32, SEL_DATA, CR0_PE, CR0_ET, alignUp, type E820Entry } from './boot-common.js';
import { isElf, parseElf, PT_LOAD, checkRange } from './elf.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
const SEARCH_LIMIT = 8192;
const MBH_PAGE_ALIGN = 1 << 0, MBH_MEMORY_INFO = 1 << 1, MBH_VIDEO_MODE = 1 << 2, MBH_AOUT_KLUDGE = 1 << 16;
/** multiboot_info flags we fill. */
export const MBI_MEM = 1 << 0, MBI_CMDLINE = 1 << 2, MBI_MODS = 1 << 3, MBI_MMAP = 1 << 6, MBI_LOADER_NAME = 1 << 9;

/** Where the information structure and its tables go (the Linux zero page is unused on this path). */
export const MBI_ADDR = BOOT_PARAMS_ADDR;
const MBI_MMAP_ADDR = MBI_ADDR + 0x80;
const MBI_MODS_ADDR = MBI_ADDR + 0x400;
const MBI_NAME_ADDR = MBI_ADDR + 0x600;
const MBI_STRINGS_ADDR = MBI_ADDR + 0x700;
const MBI_END = MBI_ADDR + 0x1000;
export const BOOT_LOADER_NAME = 'hyperts';

export interface MultibootHeader {
  offset: number;
  flags: number;
  /** a.out kludge fields (flag 16). */
  headerAddr?: number; loadAddr?: number; loadEndAddr?: number; bssEndAddr?: number; entryAddr?: number;
}

/** Locate and validate the multiboot header; null when there is none. */
export function findMultibootHeader(img: Uint8Array): MultibootHeader | null {
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const end = Math.min(img.length, SEARCH_LIMIT) - 12;
  for (let o = 0; o <= end; o += 4) {
    if (v.getUint32(o, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = v.getUint32(o + 4, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + v.getUint32(o + 8, true)) >>> 0) !== 0) continue; // not a header: keep looking
    const h: MultibootHeader = { offset: o, flags };
    if (flags & MBH_AOUT_KLUDGE) {
      if (o + 32 > img.length) throw new BootError('multiboot header truncated (address fields missing)');
      h.headerAddr = v.getUint32(o + 12, true); h.loadAddr = v.getUint32(o + 16, true);
      h.loadEndAddr = v.getUint32(o + 20, true); h.bssEndAddr = v.getUint32(o + 24, true); h.entryAddr = v.getUint32(o + 28, true);
    }
    return h;
  }
  return null;
}

export interface MultibootModule { data: Uint8Array; string?: string }
export interface MultibootOptions {
  kernel: Uint8Array;
  cmdline?: string;
  /**
   * The kernel's name (path) as the boot loader knows it: GRUB and QEMU put it first on the command line,
   * and kernels such as kvm-unit-tests' take that first word as argv[0]. Omitted: `cmdline` is passed as is.
   */
  kernelName?: string;
  /** Loaded as module 0 (with the string "initrd"), before `modules`. */
  initrd?: Uint8Array;
  modules?: MultibootModule[];
}
export interface MultibootResult {
  cpu: BootCpuState;
  infoAddr: number;
  entry: number;
  loadStart: number;
  loadEnd: number;
  modules: Array<{ start: number; end: number; string: string }>;
  e820: E820Entry[];
}

export function loadMultiboot(mem: GuestMemory, opts: MultibootOptions): MultibootResult {
  const img = opts.kernel;
  const h = findMultibootHeader(img);
  if (!h) throw new BootError('not a multiboot kernel: no valid multiboot header (magic 0x1BADB002 with checksum) in the first 8 KiB');
  const required = h.flags & 0xffff;
  if (required & MBH_VIDEO_MODE) throw new BootError('multiboot kernel requires video mode information, which hyperts does not provide');
  if (required & ~(MBH_PAGE_ALIGN | MBH_MEMORY_INFO | MBH_VIDEO_MODE)) {
    throw new BootError(`multiboot kernel requires unknown features (flags 0x${required.toString(16)})`);
  }
  const e820 = e820Map(mem);
  const below4g = Math.min(mem.lowRamEnd, 0x1_0000_0000);
  const place = (addr: number, len: number, what: string): Uint8Array => {
    if (addr < KERNEL_LOAD_ADDR || addr + len > below4g || !mem.isRam(addr, len)) {
      throw new BootError(`${what} at 0x${addr.toString(16)}+0x${len.toString(16)} is outside guest RAM between 1 MiB and 0x${below4g.toString(16)}`);
    }
    return mem.slice(addr, len);
  };

  let entry: number, loadStart = Infinity, loadEnd = 0;
  if (h.flags & MBH_AOUT_KLUDGE) {
    const { headerAddr = 0, loadAddr = 0, loadEndAddr = 0, bssEndAddr = 0, entryAddr = 0 } = h;
    if (headerAddr < loadAddr || headerAddr - loadAddr > h.offset) throw new BootError('multiboot header_addr/load_addr are inconsistent with the header position');
    const fileOff = h.offset - (headerAddr - loadAddr);
    const len = loadEndAddr ? loadEndAddr - loadAddr : img.length - fileOff;
    if (len <= 0 || fileOff + len > img.length) throw new BootError('multiboot load_end_addr lies beyond the end of the file');
    place(loadAddr, len, 'multiboot image').set(img.subarray(fileOff, fileOff + len));
    loadStart = loadAddr; loadEnd = loadAddr + len;
    if (bssEndAddr) {
      if (bssEndAddr < loadEnd) throw new BootError('multiboot bss_end_addr is below load_end_addr');
      place(loadEnd, bssEndAddr - loadEnd, 'multiboot bss').fill(0);
      loadEnd = bssEndAddr;
    }
    entry = entryAddr;
  } else {
    if (!isElf(img)) throw new BootError('multiboot kernel is neither ELF nor uses the a.out kludge (header flag 16)');
    let elf;
    try { elf = parseElf(img); } catch (e) { throw new BootError(`bad multiboot ELF: ${(e as Error).message}`); }
    entry = -1;
    for (const s of elf.segments) {
      if (s.type !== PT_LOAD || s.memsz === 0) continue;
      if (s.filesz > s.memsz) throw new BootError('ELF segment file size exceeds its memory size');
      try { checkRange(img, s.offset, s.filesz, 'ELF segment'); } catch (e) { throw new BootError((e as Error).message); }
      const dst = place(s.paddr, s.memsz, 'ELF segment');
      dst.set(img.subarray(s.offset, s.offset + s.filesz));
      dst.fill(0, s.filesz);
      loadStart = Math.min(loadStart, s.paddr); loadEnd = Math.max(loadEnd, s.paddr + s.memsz);
      if (elf.entry >= s.paddr && elf.entry < s.paddr + s.memsz) entry = elf.entry;
      else if (entry < 0 && elf.entry >= s.vaddr && elf.entry < s.vaddr + s.memsz) entry = elf.entry - s.vaddr + s.paddr;
    }
    if (loadEnd === 0) throw new BootError('multiboot ELF has no loadable segments');
    if (entry < 0) throw new BootError(`multiboot ELF entry 0x${elf.entry.toString(16)} is outside every loadable segment`);
  }
  if (entry < loadStart || entry >= loadEnd) throw new BootError(`multiboot entry 0x${entry.toString(16)} is outside the loaded image`);

  // Information structure.
  const info = mem.slice(MBI_ADDR, MBI_END - MBI_ADDR);
  info.fill(0);
  const v = mem.view;
  const flags = MBI_MEM | MBI_MMAP | MBI_LOADER_NAME | MBI_CMDLINE | MBI_MODS;
  v.setUint32(MBI_ADDR + 4, Math.floor(EBDA_START / 1024), true);
  v.setUint32(MBI_ADDR + 8, Math.floor((below4g - KERNEL_LOAD_ADDR) / 1024), true);

  const maxMmap = Math.floor((MBI_MODS_ADDR - MBI_MMAP_ADDR) / 24);
  if (e820.length > maxMmap) throw new BootError('memory map too large');
  e820.forEach((e, i) => {
    const o = MBI_MMAP_ADDR + i * 24;
    v.setUint32(o, 20, true);
    v.setUint32(o + 4, e.addr >>> 0, true); v.setUint32(o + 8, Math.floor(e.addr / 2 ** 32), true);
    v.setUint32(o + 12, e.size >>> 0, true); v.setUint32(o + 16, Math.floor(e.size / 2 ** 32), true);
    v.setUint32(o + 20, e.type, true);
  });
  v.setUint32(MBI_ADDR + 44, e820.length * 24, true);
  v.setUint32(MBI_ADDR + 48, MBI_MMAP_ADDR, true);

  let strPtr = MBI_STRINGS_ADDR;
  const putString = (s: string, at?: number): number => {
    const b = Buffer.from(s, 'utf8');
    if (b.includes(0)) throw new BootError('multiboot strings must not contain NUL characters');
    const addr = at ?? strPtr;
    const limit = at === BOOT_CMDLINE_ADDR ? BOOT_CMDLINE_ADDR + 0x10000 : MBI_END;
    if (addr + b.length + 1 > limit) throw new BootError('multiboot command line or module strings are too long');
    mem.slice(addr, b.length + 1).set([...b, 0]);
    if (at === undefined) strPtr += b.length + 1;
    return addr;
  };
  const cmdline = opts.kernelName !== undefined ? `${opts.kernelName}${opts.cmdline ? ` ${opts.cmdline}` : ''}` : (opts.cmdline ?? '');
  v.setUint32(MBI_ADDR + 16, putString(cmdline, BOOT_CMDLINE_ADDR), true);
  v.setUint32(MBI_ADDR + 64, putString(BOOT_LOADER_NAME, MBI_NAME_ADDR), true);

  const mods: MultibootModule[] = [...(opts.initrd ? [{ data: opts.initrd, string: 'initrd' }] : []), ...(opts.modules ?? [])];
  if (mods.length * 16 > MBI_NAME_ADDR - MBI_MODS_ADDR) throw new BootError('too many multiboot modules');
  const placed: MultibootResult['modules'] = [];
  let next = alignUp(loadEnd, 4096);
  mods.forEach((m, i) => {
    const start = next;
    place(start, Math.max(1, m.data.length), `multiboot module ${i}`).set(m.data);
    const end = start + m.data.length;
    const str = m.string ?? '';
    const o = MBI_MODS_ADDR + i * 16;
    v.setUint32(o, start, true); v.setUint32(o + 4, end, true); v.setUint32(o + 8, putString(str), true); v.setUint32(o + 12, 0, true);
    placed.push({ start, end, string: str });
    next = alignUp(end, 4096);
  });
  v.setUint32(MBI_ADDR + 20, mods.length, true);
  v.setUint32(MBI_ADDR + 24, MBI_MODS_ADDR, true);
  v.setUint32(MBI_ADDR, flags, true);

  writeBootGdt(mem);
  const cpu: BootCpuState = {
    mode: 'protected32',
    rip: entry,
    gpr: { 0: MULTIBOOT_BOOTLOADER_MAGIC, 3: MBI_ADDR }, // EAX, EBX
    rflags: 0x2,
    cr0: CR0_PE | CR0_ET,
    cr4: 0,
    efer: 0,
    gdtBase: BOOT_GDT_ADDR,
    gdtLimit: BOOT_GDT_LIMIT,
    cs: SEL_CODE32,
    ds: SEL_DATA,
  };
  return { cpu, infoAddr: MBI_ADDR, entry, loadStart, loadEnd, modules: placed, e820 };
}
