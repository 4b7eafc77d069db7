/**
 * Linux direct boot through the 64-bit boot protocol (Documentation/x86/boot.rst): load a bzImage (or an
 * uncompressed ELF vmlinux), build the zero page, GDT and identity page tables, and return the CPU state for
 * the 64-bit entry point.
 */
import type { GuestMemory } from '../platform/memory.js';
import type { BootCpuState } from '../processor/backend.js';
import { BOOT_CMDLINE_ADDR, BOOT_PARAMS_ADDR, BOOT_GDT_ADDR, BOOT_PAGE_TABLES_ADDR, KERNEL_LOAD_ADDR } from '../platform/layout.js';
import {
  BootError, e820Map, writeBootGdt, writeIdentityPageTables, BOOT_GDT_LIMIT, SEL_CODE64, SEL_DATA, type E820Entry,
  CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG, CR4_PAE, EFER_LME, EFER_LMA, alignUp, alignDown, E820_RAM,
} from './boot-common.js';
import { isElf, parseElf, PT_LOAD, checkRange, ElfError } from './elf.js';

/** Zero-page (struct boot_params) and setup-header offsets, arch/x86/include/uapi/asm/bootparam.h. */
export const BP = {
  acpiRsdpAddr: 0x070, extRamdiskImage: 0x0c0, extRamdiskSize: 0x0c4, extCmdLinePtr: 0x0c8,
  e820Entries: 0x1e8, sentinel: 0x1ef, hdr: 0x1f1, e820Table: 0x2d0,
  setupSects: 0x1f1, bootFlag: 0x1fe, jump: 0x200, header: 0x202, version: 0x206, typeOfLoader: 0x210,
  loadflags: 0x211, ramdiskImage: 0x218, ramdiskSize: 0x21c, cmdLinePtr: 0x228, initrdAddrMax: 0x22c,
  kernelAlignment: 0x230, relocatableKernel: 0x234, xloadflags: 0x236, cmdlineSize: 0x238, prefAddress: 0x258,
  initSize: 0x260,
} as const;
export const E820_MAX_ENTRIES = 128;
const HDRS_MAGIC = 0x53726448; // "HdrS"
const LOADED_HIGH = 0x01;
const XLF_KERNEL_64 = 0x01;
const MIN_PROTOCOL = 0x020c;

export interface SetupHeader {
  setupSects: number;
  version: number;
  loadflags: number;
  xloadflags: number;
  relocatable: boolean;
  kernelAlignment: number;
  prefAddress: number;
  initSize: number;
  initrdAddrMax: number;
  cmdlineSize: number;
  /** File offset and length of the protected-mode kernel. */
  kernelOffset: number;
  kernelSize: number;
  /** End (exclusive) of the setup header in the file, from the jump instruction at 0x200. */
  headerEnd: number;
}

/** Parse and validate a bzImage setup header; throws BootError with what is wrong. */
export function parseBzImageHeader(img: Uint8Array): SetupHeader {
  if (img.length < 0x270) throw new BootError(`kernel image is too small (${img.length} bytes) to be a bzImage`);
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (v.getUint16(BP.bootFlag, true) !== 0xaa55) throw new BootError('not a bzImage: boot sector signature 0xAA55 missing at 0x1FE');
  if (v.getUint32(BP.header, true) !== HDRS_MAGIC) throw new BootError('not a bzImage: setup header magic "HdrS" missing at 0x202 (kernel too old or not a Linux kernel)');
  const version = v.getUint16(BP.version, true);
  if (version < MIN_PROTOCOL) throw new BootError(`boot protocol ${version >> 8}.${version & 0xff} is too old: 2.12 or newer is needed`);
  const xloadflags = v.getUint16(BP.xloadflags, true);
  if (!(xloadflags & XLF_KERNEL_64)) throw new BootError('kernel has no 64-bit entry point (XLF_KERNEL_64 clear): a 64-bit x86 kernel is required');
  const loadflags = img[BP.loadflags];
  if (!(loadflags & LOADED_HIGH)) throw new BootError('kernel is not loadable high (zImage): use a bzImage');
  const setupSects = img[BP.setupSects] || 4;
  const kernelOffset = (setupSects + 1) * 512;
  if (kernelOffset >= img.length) throw new BootError(`bzImage truncated: setup (${setupSects} sectors) extends past the end of the file`);
  const headerEnd = Math.min(0x202 + img[0x201], 0x1000);
  const kernelAlignment = v.getUint32(BP.kernelAlignment, true);
  if (kernelAlignment & (kernelAlignment - 1)) throw new BootError(`bad kernel_alignment 0x${kernelAlignment.toString(16)}`);
  return {
    setupSects, version, loadflags, xloadflags,
    relocatable: img[BP.relocatableKernel] !== 0,
    kernelAlignment: kernelAlignment || 0x200000,
    prefAddress: v.getUint32(BP.prefAddress, true) + v.getUint32(BP.prefAddress + 4, true) * 0x1_0000_0000,
    initSize: v.getUint32(BP.initSize, true),
    initrdAddrMax: v.getUint32(BP.initrdAddrMax, true),
    cmdlineSize: v.getUint32(BP.cmdlineSize, true),
    kernelOffset, kernelSize: img.length - kernelOffset, headerEnd,
  };
}

export interface LinuxBootOptions {
  /** bzImage or uncompressed ELF vmlinux. */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline?: string;
  /** RSDP address for boot_params.acpi_rsdp_addr (0 = let the kernel scan). */
  acpiRsdpAddr?: number;
}

export interface LinuxBootResult {
  cpu: BootCpuState;
  format: 'bzImage' | 'elf';
  kernelAddr: number;
  /** End of the memory the kernel may use while starting (load address + init_size, or ELF extent). */
  kernelEnd: number;
  initrdAddr: number;
  initrdSize: number;
  e820: E820Entry[];
}

/** Load a Linux kernel (+ initrd, command line) into guest memory and return the 64-bit entry state. */
export function loadLinux(mem: GuestMemory, opts: LinuxBootOptions): LinuxBootResult {
  const e820 = e820Map(mem);
  const zp = mem.slice(BOOT_PARAMS_ADDR, 4096);
  zp.fill(0);
  const zv = new DataView(zp.buffer, zp.byteOffset, 4096);

  let kernelAddr: number, kernelEnd: number, entry: number, format: LinuxBootResult['format'];
  let initrdMax: number, cmdlineMax: number;
  if (isElf(opts.kernel)) {
    format = 'elf';
    const r = loadVmlinux(mem, opts.kernel);
    kernelAddr = r.start; kernelEnd = r.end; entry = r.entry;
    // Synthesize the header fields the kernel reads from a bootloader.
    zv.setUint16(BP.bootFlag, 0xaa55, true);
    zv.setUint32(BP.header, HDRS_MAGIC, true);
    zv.setUint16(BP.version, 0x020f, true);
    zv.setUint32(BP.kernelAlignment, 0x1000000, true);
    zp[BP.loadflags] = LOADED_HIGH;
    initrdMax = 0x7fff_ffff;
    cmdlineMax = 2047;
  } else {
    format = 'bzImage';
    const h = parseBzImageHeader(opts.kernel);
    zp.set(opts.kernel.subarray(BP.hdr, h.headerEnd), BP.hdr);
    // Relocatable kernels move themselves to an aligned address; others must sit at pref_address.
    kernelAddr = h.relocatable ? KERNEL_LOAD_ADDR : h.prefAddress;
    const runAddr = h.relocatable ? Math.max(alignUp(kernelAddr, h.kernelAlignment), h.prefAddress || 0) : kernelAddr;
    kernelEnd = Math.max(kernelAddr + h.kernelSize, runAddr + h.initSize);
    if (!mem.isRam(kernelAddr, kernelEnd - kernelAddr)) {
      throw new BootError(`kernel needs RAM up to 0x${kernelEnd.toString(16)} (init_size ${h.initSize}); give the VM more memory`);
    }
    mem.write(kernelAddr, opts.kernel.subarray(h.kernelOffset));
    entry = kernelAddr + 0x200;
    initrdMax = h.initrdAddrMax || 0x37ff_ffff;
    cmdlineMax = h.cmdlineSize || 255;
  }
  zp[BP.typeOfLoader] = 0xff;
  zp[BP.loadflags] |= LOADED_HIGH;
  zp[BP.sentinel] = 0;

  // Command line.
  const cmd = Buffer.from(opts.cmdline ?? '', 'utf8');
  if (cmd.length > cmdlineMax) throw new BootError(`kernel command line is ${cmd.length} bytes; this kernel accepts at most ${cmdlineMax}`);
  if (cmd.includes(0)) throw new BootError('kernel command line must not contain NUL characters');
  const cl = mem.slice(BOOT_CMDLINE_ADDR, cmd.length + 1);
  cl.set(cmd); cl[cmd.length] = 0;
  zv.setUint32(BP.cmdLinePtr, BOOT_CMDLINE_ADDR, true);
  zv.setUint32(BP.extCmdLinePtr, 0, true);

  // Initrd: as high as allowed, page aligned, above the kernel.
  let initrdAddr = 0, initrdSize = 0;
  if (opts.initrd && opts.initrd.length) {
    initrdSize = opts.initrd.length;
    const top = Math.min(initrdMax + 1, mem.lowRamEnd);
    initrdAddr = alignDown(top - initrdSize, 4096);
    if (initrdAddr < alignUp(kernelEnd, 4096)) {
      throw new BootError(`initrd (${(initrdSize / 1048576).toFixed(1)} MiB) does not fit between the kernel and 0x${top.toString(16)}; give the VM more memory`);
    }
    mem.write(initrdAddr, opts.initrd);
    zv.setUint32(BP.ramdiskImage, initrdAddr, true);
    zv.setUint32(BP.ramdiskSize, initrdSize, true);
    zv.setUint32(BP.extRamdiskImage, 0, true);
    zv.setUint32(BP.extRamdiskSize, 0, true);
  }

  const rsdp = opts.acpiRsdpAddr ?? 0;
  zv.setUint32(BP.acpiRsdpAddr, rsdp >>> 0, true);
  zv.setUint32(BP.acpiRsdpAddr + 4, Math.floor(rsdp / 0x1_0000_0000), true);

  writeE820(zp, e820);
  writeBootGdt(mem);
  writeIdentityPageTables(mem);

  const cpu: BootCpuState = {
    mode: 'long64',
    rip: entry,
    gpr: { 6: BOOT_PARAMS_ADDR }, // RSI
    rflags: 0x2,
    cr0: (CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG) >>> 0,
    cr3: BOOT_PAGE_TABLES_ADDR,
    cr4: CR4_PAE,
    efer: EFER_LME | EFER_LMA,
    gdtBase: BOOT_GDT_ADDR,
    gdtLimit: BOOT_GDT_LIMIT,
    cs: SEL_CODE64,
    ds: SEL_DATA,
  };
  return { cpu, format, kernelAddr, kernelEnd, initrdAddr, initrdSize, e820 };
}

function writeE820(zp: Uint8Array, map: E820Entry[]): void {
  if (map.length > E820_MAX_ENTRIES) throw new BootError('too many e820 entries');
  const v = new DataView(zp.buffer, zp.byteOffset, zp.byteLength);
  map.forEach((e, i) => {
    const o = BP.e820Table + i * 20;
    v.setUint32(o, e.addr >>> 0, true); v.setUint32(o + 4, Math.floor(e.addr / 0x1_0000_0000), true);
    v.setUint32(o + 8, e.size >>> 0, true); v.setUint32(o + 12, Math.floor(e.size / 0x1_0000_0000), true);
    v.setUint32(o + 16, e.type, true);
  });
  zp[BP.e820Entries] = map.length;
}

/** Load an ELF vmlinux's PT_LOAD segments at their physical addresses; entry translated to physical. */
function loadVmlinux(mem: GuestMemory, img: Uint8Array): { start: number; end: number; entry: number } {
  let elf;
  try { elf = parseElf(img); } catch (e) { throw new BootError(`bad ELF kernel: ${(e as Error).message}`); }
  if (elf.bits !== 64 || elf.machine !== 62) throw new BootError('ELF kernel is not x86-64 (EM_X86_64, ELFCLASS64)');
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  if (!loads.length) throw new BootError('ELF kernel has no loadable segments');
  let start = Infinity, end = 0, entry = -1;
  for (const s of loads) {
    if (s.filesz > s.memsz) throw new BootError('ELF segment file size exceeds its memory size');
    try { checkRange(img, s.offset, s.filesz, 'ELF segment'); } catch (e) { throw new BootError((e as ElfError).message); }
    if (s.paddr < KERNEL_LOAD_ADDR || !mem.isRam(s.paddr, s.memsz)) {
      throw new BootError(`ELF segment at physical 0x${s.paddr.toString(16)}+0x${s.memsz.toString(16)} is not in guest RAM above 1 MiB; give the VM more memory`);
    }
    const dst = mem.slice(s.paddr, s.memsz);
    dst.set(img.subarray(s.offset, s.offset + s.filesz));
    dst.fill(0, s.filesz);
    start = Math.min(start, s.paddr); end = Math.max(end, s.paddr + s.memsz);
    if (elf.entry >= s.paddr && elf.entry < s.paddr + s.memsz) entry = elf.entry;
    else if (entry < 0 && elf.entry >= s.vaddr && elf.entry < s.vaddr + s.memsz) entry = elf.entry - s.vaddr + s.paddr;
  }
  if (entry < 0) throw new BootError(`ELF entry 0x${elf.entry.toString(16)} is outside every loadable segment`);
  return { start, end, entry };
}

/** True when the e820 map marks [addr, addr+len) as usable RAM. */
export function e820IsRam(map: E820Entry[], addr: number, len: number): boolean {
  return map.some((e) => e.type === E820_RAM && addr >= e.addr && addr + len <= e.addr + e.size);
}
