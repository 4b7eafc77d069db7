/**
 * Minimal ELF reader (32- and 64-bit little-endian): program headers for the boot loaders, sections for the
 * image builder (kernel module .modinfo, DT_NEEDED of the guest's dynamic binaries). Every offset read from
 * the file is bounds-checked; malformed files raise ElfError.
 */
export class ElfError extends Error {}

export interface ElfSegment { type: number; flags: number; offset: number; vaddr: number; paddr: number; filesz: number; memsz: number; align: number }
export interface ElfSection { name: string; type: number; offset: number; size: number; addr: number; link: number }

export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const SHT_DYNAMIC = 6;
const DT_NEEDED = 1;

export interface ElfFile {
  bits: 32 | 64;
  type: number;
  machine: number;
  entry: number;
  segments: ElfSegment[];
  sections: ElfSection[];
}

export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

export function parseElf(b: Uint8Array): ElfFile {
  if (!isElf(b)) throw new ElfError('not an ELF file (bad magic)');
  if (b.length < 52) throw new ElfError('ELF header truncated');
  const cls = b[4];
  if (cls !== 1 && cls !== 2) throw new ElfError(`unsupported ELF class ${cls}`);
  if (b[5] !== 1) throw new ElfError('only little-endian ELF files are supported');
  const bits = cls === 1 ? 32 : 64;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (bits === 64 && b.length < 64) throw new ElfError('ELF64 header truncated');
  // Sizes and offsets must be exact; virtual addresses (kernel 0xffffffff8...) may round, callers prefer paddr.
  const u64 = (o: number, exact = true): number => {
    const lo = v.getUint32(o, true), hi = v.getUint32(o + 4, true);
    if (exact && hi >= 0x200000) throw new ElfError('ELF value too large');
    return hi * 0x1_0000_0000 + lo;
  };
  const word = (o: number): number => (bits === 64 ? u64(o) : v.getUint32(o, true));
  const ws = bits === 64 ? 8 : 4;
  const type = v.getUint16(16, true), machine = v.getUint16(18, true);
  const entry = bits === 64 ? u64(24, false) : v.getUint32(24, true);
  const phoff = word(24 + ws), shoff = word(24 + 2 * ws);
  const base = 24 + 3 * ws + 4; // after e_flags
  const phentsize = v.getUint16(base + 2, true), phnum = v.getUint16(base + 4, true);
  const shentsize = v.getUint16(base + 6, true), shnum = v.getUint16(base + 8, true), shstrndx = v.getUint16(base + 10, true);

  const segments: ElfSegment[] = [];
  if (phnum) {
    if (phentsize < (bits === 64 ? 56 : 32)) throw new ElfError('bad program header size');
    checkRange(b, phoff, phentsize * phnum, 'program headers');
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      segments.push(bits === 64
        ? { type: v.getUint32(o, true), flags: v.getUint32(o + 4, true), offset: u64(o + 8), vaddr: u64(o + 16, false), paddr: u64(o + 24), filesz: u64(o + 32), memsz: u64(o + 40), align: u64(o + 48) }
        : { type: v.getUint32(o, true), offset: v.getUint32(o + 4, true), vaddr: v.getUint32(o + 8, true), paddr: v.getUint32(o + 12, true), filesz: v.getUint32(o + 16, true), memsz: v.getUint32(o + 20, true), flags: v.getUint32(o + 24, true), align: v.getUint32(o + 28, true) });
    }
  }

  const sections: ElfSection[] = [];
  if (shnum && shoff) {
    if (shentsize < (bits === 64 ? 64 : 40)) throw new ElfError('bad section header size');
    checkRange(b, shoff, shentsize * shnum, 'section headers');
    const raw: Array<ElfSection & { nameOff: number }> = [];
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * shentsize;
      raw.push({
        nameOff: v.getUint32(o, true), name: '', type: v.getUint32(o + 4, true),
        addr: bits === 64 ? u64(o + 16, false) : v.getUint32(o + 12, true), offset: word(o + 8 + 2 * ws), size: word(o + 8 + 3 * ws), link: v.getUint32(o + 8 + 4 * ws, true),
      });
    }
    const strtab = shstrndx < raw.length ? raw[shstrndx] : undefined;
    for (const s of raw) {
      const name = strtab ? readCString(b, strtab.offset + s.nameOff, strtab.offset + strtab.size) : '';
      sections.push({ name, type: s.type, offset: s.offset, size: s.size, addr: s.addr, link: s.link });
    }
  }
  return { bits, type, machine, entry, segments, sections };
}

export function sectionData(b: Uint8Array, s: ElfSection): Uint8Array {
  checkRange(b, s.offset, s.size, `section ${s.name}`);
  return b.subarray(s.offset, s.offset + s.size);
}

/** DT_NEEDED library names of a dynamic ELF (empty for static binaries). */
export function neededLibraries(b: Uint8Array): string[] {
  const elf = parseElf(b);
  const dyn = elf.sections.find((s) => s.type === SHT_DYNAMIC);
  if (!dyn) return [];
  const str = elf.sections[dyn.link];
  if (!str) throw new ElfError('dynamic section has no string table');
  const d = sectionData(b, dyn);
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const es = elf.bits === 64 ? 16 : 8;
  const out: string[] = [];
  for (let o = 0; o + es <= d.length; o += es) {
    const tag = elf.bits === 64 ? v.getUint32(o, true) : v.getUint32(o, true);
    if (tag === 0) break;
    if (tag === DT_NEEDED) {
      const val = elf.bits === 64 ? v.getUint32(o + 8, true) : v.getUint32(o + 4, true);
      out.push(readCString(b, str.offset + val, str.offset + str.size));
    }
  }
  return out;
}

export function checkRange(b: Uint8Array, off: number, len: number, what: string): void {
  if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > b.length) {
    throw new ElfError(`${what} lie outside the file (offset ${off}, length ${len}, file ${b.length} bytes)`);
  }
}

function readCString(b: Uint8Array, start: number, end: number): string {
  end = Math.min(end, b.length);
  if (start < 0 || start >= end) return '';
  let i = start;
  while (i < end && b[i] !== 0) i++;
  return Buffer.from(b.subarray(start, i)).toString('utf8');
}
