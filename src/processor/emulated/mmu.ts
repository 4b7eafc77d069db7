/**
 * MMU: linear -> physical translation (4-level paging, legacy 32-bit and PAE paging, paging off), software
 * TLB and the memory access helpers every instruction uses. OWNER: core-system.
 *
 * TLB: six direct-mapped tables (read/write/fetch x supervisor/user) of 1024 entries in typed arrays on the
 * CPU (see cpu-state.ts). A hit costs one tag compare and one add into guest RAM. Entries are only created
 * for accesses that passed every permission check at that privilege, after A (and for writes D) bits were
 * set, so a hit needs no further checks. MMIO pages never enter the read/write tables; pages holding cached
 * code (cpu.codePages) never enter the write table, so every store to them reaches `cpu.onCodeWrite`.
 *
 * Value conventions: read8/read16 return unsigned values; read32 and the low half of read64 return unsigned
 * 32-bit values (0 .. 2^32-1); read64 leaves the high half in cpu.memHi as a *signed* int32 (like gpr[]).
 * Writers accept signed or unsigned 32-bit values.
 */
import type { CpuState } from './cpu-state.js';
import { raise } from './exceptions.js';
import { watchAccess, watchedPage } from './debug.js';

const MASK = 1023;
const S_READ = 0, U_READ = 1024, S_WRITE = 2048, U_WRITE = 3072, S_FETCH = 4096, U_FETCH = 5120;
const K_READ = 0, K_WRITE = 1, K_FETCH = 2;
const FL_GLOBAL = 1, FL_LARGE = 2, FL_RAM = 4;

const CR0_WP = 1 << 16, CR0_PG = 1 << 31;
const CR4_PSE = 1 << 4, CR4_PAE = 1 << 5, CR4_PGE = 1 << 7;
const CR4_SMEP = 1 << 20, CR4_SMAP = 1 << 21, CR4_PKE = 1 << 22, CR4_PKS = 1 << 24;
const CR4_PROT = CR4_SMEP | CR4_SMAP | CR4_PKE | CR4_PKS;
const EFLAGS_AC = 1 << 18;
const EFER_LMA = 1 << 10, EFER_NXE = 1 << 11;

const TWO32 = 4294967296;
/** Physical address width we advertise (CPUID 0x80000008): bits 40..51 of entries are reserved. */
export const PHYS_ADDR_BITS = 40;
const RSVD_HI_PHYS = 0x000fff00; // entry bits 40..51

// PF error code bits.
const PF_P = 1, PF_W = 2, PF_U = 4, PF_RSVD = 8, PF_ID = 16, PF_PK = 32;

// Results of the last walk (module scratch: single-threaded, no allocation).
let wPhysPage = 0; // physical base of the 4K granule containing the address
let wFlags = 0; // FL_GLOBAL | FL_LARGE
let wLargeBase = 0;
let wLargeSize = 0;
let pteHi = 0;
/** The last walk allowed a supervisor data access to a user page under CR4.SMAP (thanks to RFLAGS.AC). */
let wSmapUser = false;
/** debugTranslate: walk without SMEP/SMAP/protection-key checks (a debugger reads any mapped page). */
let rawWalk = false;
// Entries visited by the walk, for A/D updates after the permission check passes.
const entAddr = new Float64Array(4);
const entLo = new Int32Array(4);
let entCount = 0;

// ---------------------------------------------------------------- physical access

/** Read a 64-bit paging entry at physical `pa`: low half returned, high half in pteHi. Non-RAM reads as 0. */
function readPte(cpu: CpuState, pa: number): number {
  const mem = cpu.platform.memory;
  const o = mem.offsetOf(pa);
  if (o < 0 || o + 8 > mem.size) { pteHi = 0; return 0; }
  pteHi = mem.view.getInt32(o + 4, true);
  return mem.view.getInt32(o, true);
}

function readPte32(cpu: CpuState, pa: number): number {
  const mem = cpu.platform.memory;
  const o = mem.offsetOf(pa);
  if (o < 0 || o + 4 > mem.size) return 0;
  return mem.view.getInt32(o, true);
}

/** Physical read of 1, 2 or 4 bytes (unsigned result); MMIO for addresses outside RAM. */
export function physRead(cpu: CpuState, pa: number, size: 1 | 2 | 4): number {
  const mem = cpu.platform.memory;
  const o = mem.offsetOf(pa);
  if (o >= 0 && (size === 1 || mem.offsetOf(pa + size - 1) === o + size - 1)) {
    if (size === 1) return mem.bytes[o];
    if (size === 2) return mem.view.getUint16(o, true);
    return mem.view.getUint32(o, true);
  }
  if (o >= 0) { // straddles the end of a RAM block
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + physRead(cpu, pa + i, 1);
    return v;
  }
  cpu.irqCheck = true; // MMIO (LAPIC EOI/TPR, IOAPIC...) may change what is deliverable
  return cpu.platform.mmio.read(pa, size) >>> 0;
}

/** Physical write of 1, 2 or 4 bytes; MMIO outside RAM; notifies the core when a code page changes. */
export function physWrite(cpu: CpuState, pa: number, size: 1 | 2 | 4, v: number): void {
  const mem = cpu.platform.memory;
  const o = mem.offsetOf(pa);
  if (o >= 0 && (size === 1 || mem.offsetOf(pa + size - 1) === o + size - 1)) {
    if (size === 1) mem.bytes[o] = v;
    else if (size === 2) mem.view.setUint16(o, v, true);
    else mem.view.setUint32(o, v >>> 0, true);
    const ppn = Math.floor(pa / 4096);
    const cp = cpu.codePages;
    if (ppn < cp.length && cp[ppn] !== 0) cpu.onCodeWrite(ppn);
    if (size > 1 && ((pa & 0xfff) + size > 4096) && ppn + 1 < cp.length && cp[ppn + 1] !== 0) cpu.onCodeWrite(ppn + 1);
    return;
  }
  if (o >= 0) {
    for (let i = 0; i < size; i++) physWrite(cpu, pa + i, 1, (v >>> (8 * i)) & 0xff);
    return;
  }
  cpu.irqCheck = true;
  cpu.platform.mmio.write(pa, size, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
}

// ---------------------------------------------------------------- page walk

function pageFault(cpu: CpuState, lin: number, kind: number, user: boolean, bits: number): never {
  let err = bits;
  if (kind === K_WRITE) err |= PF_W;
  if (user) err |= PF_U;
  if (kind === K_FETCH && ((cpu.efer & EFER_NXE) !== 0 || (cpu.cr4 & CR4_SMEP) !== 0)) err |= PF_ID; // SDM 4.7: NX or SMEP in use
  cpu.cr2 = lin;
  return raise(cpu, 14, err);
}

/**
 * Translate `lin` for an access of `kind` at privilege `user`; on success sets wPhysPage/wFlags/... and the
 * A/D bits. Raises #PF (or #GP for a non-canonical address in long mode).
 */
function walk(cpu: CpuState, lin: number, kind: number, user: boolean): void {
  wFlags = 0;
  wSmapUser = false;
  if ((cpu.cr0 & CR0_PG) === 0) {
    const u = lin >>> 0;
    wPhysPage = u - (u & 0xfff);
    return;
  }
  entCount = 0;
  let uAnd = 4, wAnd = 2, nx = 0;
  let leafLo = 0, leafHi = 0;
  const nxe = (cpu.efer & EFER_NXE) !== 0;
  const rsvdHi = RSVD_HI_PHYS | (nxe ? 0 : 0x80000000);
  if ((cpu.efer & EFER_LMA) !== 0) {
    if (lin < -0x800000000000 || lin >= 0x800000000000) raise(cpu, 13, 0);
    const u = lin < 0 ? lin + 0x1000000000000 : lin;
    let table = cpu.cr3 - (cpu.cr3 % 4096);
    table = table % (2 ** PHYS_ADDR_BITS);
    const idx4 = Math.floor(u / 2 ** 39) & 511;
    const idx3 = Math.floor(u / 2 ** 30) & 511;
    const idx2 = (u >>> 21) & 511;
    const idx1 = (u >>> 12) & 511;
    for (let level = 4; level >= 1; level--) {
      const index = level === 4 ? idx4 : level === 3 ? idx3 : level === 2 ? idx2 : idx1;
      const ea = table + index * 8;
      const lo = readPte(cpu, ea);
      const hi = pteHi;
      if ((lo & 1) === 0) pageFault(cpu, lin, kind, user, 0);
      if ((hi & rsvdHi) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
      entAddr[entCount] = ea; entLo[entCount] = lo; entCount++;
      uAnd &= lo; wAnd &= lo; nx |= hi;
      const base = (lo & 0xfffff000) >>> 0;
      const hiPart = (hi & 0xff) * TWO32;
      const ps = (lo & 0x80) !== 0;
      if (level === 4 && ps) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
      if (level === 3 && ps) {
        if ((lo & 0x3fffe000) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
        const pageBase = hiPart + ((lo & 0xc0000000) >>> 0);
        wPhysPage = pageBase + ((u % 0x40000000) - (u % 4096));
        wFlags = FL_LARGE; wLargeBase = lin - (u % 0x40000000); wLargeSize = 0x40000000;
        leafLo = lo; leafHi = hi;
        break;
      }
      if (level === 2 && ps) {
        if ((lo & 0x1fe000) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
        const pageBase = hiPart + ((lo & 0xffe00000) >>> 0);
        wPhysPage = pageBase + ((u & 0x1fffff) - (u & 0xfff));
        wFlags = FL_LARGE; wLargeBase = lin - (u & 0x1fffff); wLargeSize = 0x200000;
        leafLo = lo; leafHi = hi;
        break;
      }
      if (level === 1) { wPhysPage = hiPart + base; leafLo = lo; leafHi = hi; break; }
      table = hiPart + base;
    }
  } else if ((cpu.cr4 & CR4_PAE) !== 0) {
    const u = lin >>> 0;
    const pdpteAddr = ((cpu.cr3 >>> 0) & 0xffffffe0) + (u >>> 30) * 8;
    const plo = readPte(cpu, pdpteAddr);
    const phi = pteHi;
    if ((plo & 1) === 0) pageFault(cpu, lin, kind, user, 0);
    if ((plo & 0x1e6) !== 0 || (phi & (RSVD_HI_PHYS | 0x80000000)) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
    let table = (phi & 0xff) * TWO32 + ((plo & 0xfffff000) >>> 0);
    for (let level = 2; level >= 1; level--) {
      const ea = table + (level === 2 ? (u >>> 21) & 511 : (u >>> 12) & 511) * 8;
      const lo = readPte(cpu, ea);
      const hi = pteHi;
      if ((lo & 1) === 0) pageFault(cpu, lin, kind, user, 0);
      if ((hi & rsvdHi) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
      entAddr[entCount] = ea; entLo[entCount] = lo; entCount++;
      uAnd &= lo; wAnd &= lo; nx |= hi;
      const hiPart = (hi & 0xff) * TWO32;
      if (level === 2 && (lo & 0x80) !== 0) {
        if ((lo & 0x1fe000) !== 0) pageFault(cpu, lin, kind, user, PF_P | PF_RSVD);
        wPhysPage = hiPart + ((lo & 0xffe00000) >>> 0) + ((u & 0x1fffff) - (u & 0xfff));
        wFlags = FL_LARGE; wLargeBase = u - (u & 0x1fffff); wLargeSize = 0x200000;
        leafLo = lo;
        break;
      }
      if (level === 1) { wPhysPage = hiPart + ((lo & 0xfffff000) >>> 0); leafLo = lo; break; }
      table = hiPart + ((lo & 0xfffff000) >>> 0);
    }
  } else {
    // Legacy 32-bit paging: no NX, 4M pages with CR4.PSE (PSE-36 high bits ignored).
    const u = lin >>> 0;
    const pdeAddr = ((cpu.cr3 >>> 0) & 0xfffff000) + (u >>> 22) * 4;
    const pde = readPte32(cpu, pdeAddr);
    if ((pde & 1) === 0) pageFault(cpu, lin, kind, user, 0);
    entAddr[0] = pdeAddr; entLo[0] = pde; entCount = 1;
    uAnd &= pde; wAnd &= pde;
    if ((pde & 0x80) !== 0 && (cpu.cr4 & CR4_PSE) !== 0) {
      wPhysPage = ((pde & 0xffc00000) >>> 0) + ((u & 0x3fffff) - (u & 0xfff));
      wFlags = FL_LARGE; wLargeBase = u - (u & 0x3fffff); wLargeSize = 0x400000;
      leafLo = pde;
    } else {
      const pteAddr = ((pde & 0xfffff000) >>> 0) + ((u >>> 12) & 1023) * 4;
      const pte = readPte32(cpu, pteAddr);
      if ((pte & 1) === 0) pageFault(cpu, lin, kind, user, 0);
      entAddr[1] = pteAddr; entLo[1] = pte; entCount = 2;
      uAnd &= pte; wAnd &= pte;
      wPhysPage = (pte & 0xfffff000) >>> 0;
      leafLo = pte;
    }
  }

  // Permission check on the combined rights of all levels.
  const nxSet = nxe && nx < 0;
  let denied: boolean;
  if (kind === K_FETCH) denied = nxSet || (user && uAnd === 0);
  else if (kind === K_WRITE) denied = user ? (uAnd === 0 || wAnd === 0) : (wAnd === 0 && (cpu.cr0 & CR0_WP) !== 0);
  else denied = user && uAnd === 0;
  // SMEP/SMAP/keys: their result carries PF_PK, which is reported even when the access is also denied above.
  const prot = (cpu.cr4 & CR4_PROT) !== 0 && !rawWalk ? protectionChecks(cpu, kind, user, uAnd !== 0, leafHi) : 0;
  if (denied || prot !== 0) { wSmapUser = false; pageFault(cpu, lin, kind, user, PF_P | (prot & PF_PK)); }
  if ((leafLo & 0x100) !== 0 && (cpu.cr4 & CR4_PGE) !== 0) wFlags |= FL_GLOBAL;

  // Accessed bits on every level, dirty on the leaf for writes (low byte only: no torn 64-bit updates).
  const mem = cpu.platform.memory;
  for (let i = 0; i < entCount; i++) {
    const want = i === entCount - 1 && kind === K_WRITE ? 0x60 : 0x20;
    if ((entLo[i] & want) !== want) {
      const o = mem.offsetOf(entAddr[i]);
      if (o >= 0) mem.bytes[o] |= want;
    }
  }
}

/**
 * SMEP, SMAP and protection keys, after the U/S, R/W and NX checks passed. Supervisor fetches from user
 * pages fault under SMEP; supervisor data accesses to user pages fault under SMAP unless RFLAGS.AC=1 at
 * CPL < 3 (CPL 3 supervisor accesses are implicit ones). Protection keys (PTE bits 62:59, 4-level paging
 * only) restrict data accesses through PKRU for user pages (CR4.PKE) and IA32_PKRS for supervisor pages
 * (CR4.PKS): AD denies every access, WD denies user writes and supervisor writes with CR0.WP.
 */
function protectionChecks(cpu: CpuState, kind: number, user: boolean, userPage: boolean, leafHi: number): number {
  const cr4 = cpu.cr4;
  let deny = 0;
  if (userPage && !user) {
    if (kind === K_FETCH) { if ((cr4 & CR4_SMEP) !== 0) deny = PF_P; }
    else if ((cr4 & CR4_SMAP) !== 0) {
      if ((cpu.flagsRest & EFLAGS_AC) === 0 || cpu.cpl === 3) deny = PF_P;
      else wSmapUser = true;
    }
  }
  if (kind === K_FETCH || (cpu.efer & EFER_LMA) === 0) return deny;
  const key = (leafHi >>> 27) & 0xf;
  let rights = 0;
  if (userPage) { if ((cr4 & CR4_PKE) !== 0) rights = (cpu.pkru >>> (2 * key)) & 3; }
  else if (!user && (cr4 & CR4_PKS) !== 0) rights = (cpu.pkrs >>> (2 * key)) & 3;
  if (rights === 0) return deny;
  if ((rights & 1) !== 0 || (kind === K_WRITE && (user || (cpu.cr0 & CR0_WP) !== 0))) deny = PF_P | PF_PK;
  return deny;
}

/**
 * Supervisor TLB entries of user pages exist only while SMAP let them through (RFLAGS.AC = 1): when AC may
 * have been cleared (CLAC, POPF, IRET, SYSCALL...), drop them. They are few (the pages of one copy to or
 * from user memory), so this costs nothing when no copy ran.
 */
export function smapAcChanged(cpu: CpuState): void {
  if (cpu.tlbSmapCount === 0 || (cpu.flagsRest & EFLAGS_AC) !== 0) return;
  dropSmapEntries(cpu);
}
function dropSmapEntries(cpu: CpuState): void {
  const n = cpu.tlbSmapCount;
  cpu.tlbSmapCount = 0;
  if (n > cpu.tlbSmapIdx.length) { flushTlb(cpu, true); return; }
  const tag = cpu.tlbTag, idx = cpu.tlbSmapIdx;
  for (let k = 0; k < n; k++) tag[idx[k]] = NaN;
}

// ---------------------------------------------------------------- TLB fill and slow paths

/** Translate and (when allowed) cache; returns the physical address of `lin`. */
function translate(cpu: CpuState, lin: number, kind: number, user: boolean): number {
  const off = lin & 0xfff;
  const page = lin - off;
  walk(cpu, lin, kind, user);
  const physPage = wPhysPage;
  const mem = cpu.platform.memory;
  const ro = mem.offsetOf(physPage);
  let cacheable = kind === K_FETCH || ro >= 0;
  if (kind === K_WRITE && ro >= 0) {
    const ppn = physPage / 4096;
    if (ppn < cpu.codePages.length && cpu.codePages[ppn] !== 0) cacheable = false;
  }
  // Pages watched by a data breakpoint stay out of the TLB: their accesses take the slow path, which checks.
  if (cpu.dbgWatch !== 0 && kind !== K_FETCH && watchedPage(cpu, page)) cacheable = false;
  if (cacheable) {
    if (cpu.ram === undefined || cpu.ram !== mem.bytes) { cpu.ram = mem.bytes; cpu.ramView = mem.view; }
    const i = ((kind << 1) | (user ? 1 : 0)) * 1024 + ((lin >>> 12) & MASK);
    cpu.tlbTag[i] = page;
    cpu.tlbAddend[i] = ro >= 0 ? ro - page : NaN;
    cpu.tlbPhys[i] = physPage - page;
    cpu.tlbFlags[i] = wFlags | (ro >= 0 ? FL_RAM : 0);
    if (wSmapUser) {
      if (cpu.tlbSmapCount < cpu.tlbSmapIdx.length) cpu.tlbSmapIdx[cpu.tlbSmapCount] = i;
      cpu.tlbSmapCount++;
    }
    if ((wFlags & FL_GLOBAL) !== 0) cpu.tlbGlobalCount++;
    if ((wFlags & FL_LARGE) !== 0) {
      cpu.tlbLargeCount++;
      noteLargeRange(cpu, wLargeBase, wLargeSize);
      cpu.tlbLargeBase[i] = wLargeBase;
      cpu.tlbLargeSize[i] = wLargeSize;
    }
  }
  return physPage + off;
}

function slowRead(cpu: CpuState, lin: number, size: 1 | 2 | 4, user: boolean): number {
  if (cpu.dbgWatch !== 0) watchAccess(cpu, lin, size, false);
  const off = lin & 0xfff;
  if (off + size <= 4096) return physRead(cpu, translate(cpu, lin, K_READ, user), size);
  const n1 = 4096 - off;
  const p1 = translate(cpu, lin, K_READ, user);
  const p2 = translate(cpu, lin + n1, K_READ, user) - n1;
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + physRead(cpu, (i < n1 ? p1 : p2) + i, 1);
  return v;
}

function slowWrite(cpu: CpuState, lin: number, size: 1 | 2 | 4, v: number, user: boolean): void {
  if (cpu.dbgWatch !== 0) watchAccess(cpu, lin, size, true);
  const off = lin & 0xfff;
  if (off + size <= 4096) { physWrite(cpu, translate(cpu, lin, K_WRITE, user), size, v); return; }
  const n1 = 4096 - off;
  // Both pages are checked before any byte is written, so a fault leaves memory unchanged.
  const p1 = translate(cpu, lin, K_WRITE, user);
  const p2 = translate(cpu, lin + n1, K_WRITE, user) - n1;
  for (let i = 0; i < size; i++) physWrite(cpu, (i < n1 ? p1 : p2) + i, 1, (v >>> (8 * i)) & 0xff);
}

// ---------------------------------------------------------------- public access helpers (hot path)

export function read8(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  if (cpu.tlbTag[i] === lin - (lin & 0xfff)) return cpu.ram[lin + cpu.tlbAddend[i]];
  return slowRead(cpu, lin, 1, cpu.cpl === 3);
}

export function read16(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffe) return cpu.ramView.getUint16(lin + cpu.tlbAddend[i], true);
  return slowRead(cpu, lin, 2, cpu.cpl === 3);
}

export function read32(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffc) return cpu.ramView.getUint32(lin + cpu.tlbAddend[i], true);
  return slowRead(cpu, lin, 4, cpu.cpl === 3);
}

/** Returns the low 32 bits (unsigned); the high 32 bits are left in cpu.memHi (signed int32). */
export function read64(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xff8) {
    const o = lin + cpu.tlbAddend[i];
    cpu.memHi = cpu.ramView.getInt32(o + 4, true);
    return cpu.ramView.getUint32(o, true);
  }
  const user = cpu.cpl === 3;
  const lo = slowRead(cpu, lin, 4, user);
  cpu.memHi = slowRead(cpu, lin + 4, 4, user) | 0;
  return lo;
}

export function write8(cpu: CpuState, lin: number, v: number): void {
  const i = (cpu.cpl === 3 ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  if (cpu.tlbTag[i] === lin - (lin & 0xfff)) { cpu.ram[lin + cpu.tlbAddend[i]] = v; return; }
  slowWrite(cpu, lin, 1, v, cpu.cpl === 3);
}

export function write16(cpu: CpuState, lin: number, v: number): void {
  const i = (cpu.cpl === 3 ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffe) { cpu.ramView.setUint16(lin + cpu.tlbAddend[i], v, true); return; }
  slowWrite(cpu, lin, 2, v, cpu.cpl === 3);
}

export function write32(cpu: CpuState, lin: number, v: number): void {
  const i = (cpu.cpl === 3 ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffc) { cpu.ramView.setInt32(lin + cpu.tlbAddend[i], v, true); return; }
  slowWrite(cpu, lin, 4, v, cpu.cpl === 3);
}

export function write64(cpu: CpuState, lin: number, lo: number, hi: number): void {
  const i = (cpu.cpl === 3 ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xff8) {
    const o = lin + cpu.tlbAddend[i];
    cpu.ramView.setInt32(o, lo, true);
    cpu.ramView.setInt32(o + 4, hi, true);
    return;
  }
  const user = cpu.cpl === 3;
  if (off > 0xff8) probeAccess(cpu, lin, 8, K_WRITE, user);
  slowWrite(cpu, lin, 4, lo, user);
  slowWrite(cpu, lin + 4, 4, hi, user);
}

function probeAccess(cpu: CpuState, lin: number, len: number, kind: number, user: boolean): void {
  if (len <= 0) return;
  const base = (kind << 1 | (user ? 1 : 0)) * 1024;
  let page = lin - (lin & 0xfff);
  const last = lin + len - 1;
  const lastPage = last - (last & 0xfff);
  for (;;) {
    const i = base + ((page >>> 12) & MASK);
    if (cpu.tlbTag[i] !== page) translate(cpu, page === lin - (lin & 0xfff) ? lin : page, kind, user);
    if (page === lastPage) break;
    page += 4096;
  }
}

/** Raise #PF now (without writing) if [lin, lin+len) is not writable at the current privilege. */
export function probeWrite(cpu: CpuState, lin: number, len: number): void {
  probeAccess(cpu, lin, len, K_WRITE, cpu.cpl === 3);
}

/** Raise #PF now if [lin, lin+len) is not readable at the current privilege. */
export function probeRead(cpu: CpuState, lin: number, len: number): void {
  probeAccess(cpu, lin, len, K_READ, cpu.cpl === 3);
}

/** Physical address for an instruction fetch at `lin` (checks NX/U), raising #PF. */
export function translateFetch(cpu: CpuState, lin: number): number {
  const user = cpu.cpl === 3;
  const i = (user ? U_FETCH : S_FETCH) + ((lin >>> 12) & MASK);
  if (cpu.tlbTag[i] === lin - (lin & 0xfff)) return lin + cpu.tlbPhys[i];
  return translate(cpu, lin, K_FETCH, user);
}

/**
 * Offset into cpu.platform.memory.bytes of the instruction byte at `lin` (after translateFetch checks),
 * or -1 when the page is not RAM (the core then fetches through physRead).
 */
export function fetchOffset(cpu: CpuState, lin: number): number {
  const pa = translateFetch(cpu, lin);
  return cpu.platform.memory.offsetOf(pa);
}

/** Translate without caching or faulting side effects beyond A/D bits; for debuggers. Returns -1 on fault. */
export function debugTranslate(cpu: CpuState, lin: number): number {
  rawWalk = true;
  try {
    walk(cpu, lin, K_READ, false);
    return wPhysPage + (lin & 0xfff);
  } catch (e) {
    if (e === cpu.fault) return -1;
    throw e;
  } finally {
    rawWalk = false;
  }
}

// Supervisor-implicit accesses (descriptor tables, TSS, IDT, interrupt stack frames at CPL 0 are ordinary).
/** Supervisor-implicit accesses (descriptor tables, TSS, IDT) ignore CPL for the U/S check. */
export function readSys32(cpu: CpuState, lin: number): number {
  const i = S_READ + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffc) return cpu.ramView.getUint32(lin + cpu.tlbAddend[i], true);
  return slowRead(cpu, lin, 4, false);
}
export function readSys16(cpu: CpuState, lin: number): number {
  return slowRead(cpu, lin, 2, false);
}
export function readSys8(cpu: CpuState, lin: number): number {
  return slowRead(cpu, lin, 1, false);
}
/** 64-bit supervisor read: low half returned (unsigned), high half in cpu.memHi (signed). */
export function readSys64(cpu: CpuState, lin: number): number {
  const lo = readSys32(cpu, lin);
  cpu.memHi = readSys32(cpu, lin + 4) | 0;
  return lo;
}
export function writeSys32(cpu: CpuState, lin: number, v: number): void {
  slowWrite(cpu, lin, 4, v, false);
}
export function writeSys8(cpu: CpuState, lin: number, v: number): void {
  slowWrite(cpu, lin, 1, v, false);
}

/**
 * Bulk-access fast paths (rep movs/stos): offset into cpu.ram of `lin` when the TLB already holds a read
 * (resp. write) translation for its page at the current privilege, else -1 (the caller then does one
 * element through the ordinary accessors, which fill the TLB or fault). Write entries never exist for MMIO
 * pages or pages holding cached code, so a hit may be written in bulk without notifying anyone.
 */
export function ramOffsetRead(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  return cpu.tlbTag[i] === lin - (lin & 0xfff) ? lin + cpu.tlbAddend[i] : -1;
}
export function ramOffsetWrite(cpu: CpuState, lin: number): number {
  const i = (cpu.cpl === 3 ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  return cpu.tlbTag[i] === lin - (lin & 0xfff) ? lin + cpu.tlbAddend[i] : -1;
}

// ---------------------------------------------------------------- invalidation

export function flushTlb(cpu: CpuState, includingGlobal: boolean): void {
  const tag = cpu.tlbTag;
  if (cpu.tlbSmapCount !== 0 && !includingGlobal) dropSmapEntries(cpu); // they may be global
  cpu.tlbSmapCount = 0;
  cpu.tlbRangeCount = 0;
  if (includingGlobal || cpu.tlbGlobalCount === 0) {
    tag.fill(NaN);
    cpu.tlbGlobalCount = 0;
    cpu.tlbLargeCount = 0;
    return;
  }
  const fl = cpu.tlbFlags, lb = cpu.tlbLargeBase, ls = cpu.tlbLargeSize;
  let g = 0, large = 0;
  for (let i = 0; i < tag.length; i++) {
    if (tag[i] !== tag[i]) continue; // empty
    if ((fl[i] & FL_GLOBAL) === 0) tag[i] = NaN;
    else { g++; if ((fl[i] & FL_LARGE) !== 0) { large++; noteLargeRange(cpu, lb[i], ls[i]); } }
  }
  cpu.tlbGlobalCount = g;
  cpu.tlbLargeCount = large;
}

/**
 * Distinct large pages with TLB entries (up to 8; more = unknown), so INVLPG of an address outside all of
 * them skips the scan for entries of a large page (Linux maps its kernel with 2M pages: without this, every
 * INVLPG of a user page scanned the whole TLB).
 */
function noteLargeRange(cpu: CpuState, base: number, size: number): void {
  const r = cpu.tlbRanges, n = cpu.tlbRangeCount;
  if (n > 8) return;
  for (let k = 0; k < n; k++) if (r[2 * k] === base && r[2 * k + 1] === base + size) return;
  if (n < 8) { r[2 * n] = base; r[2 * n + 1] = base + size; }
  cpu.tlbRangeCount = n + 1;
}
function inLargeRange(cpu: CpuState, lin: number): boolean {
  const r = cpu.tlbRanges, n = cpu.tlbRangeCount;
  if (n > 8) return true;
  for (let k = 0; k < n; k++) if (lin >= r[2 * k] && lin < r[2 * k + 1]) return true;
  return false;
}

/** Drop every translation of the page containing `lin` (the whole large page when it came from one). */
export function invlpg(cpu: CpuState, lin: number): void {
  const page = lin - (lin & 0xfff);
  const idx = (lin >>> 12) & MASK;
  const tag = cpu.tlbTag;
  for (let t = 0; t < 6; t++) if (tag[t * 1024 + idx] === page) tag[t * 1024 + idx] = NaN;
  if (cpu.tlbLargeCount > 0 && inLargeRange(cpu, lin)) {
    const fl = cpu.tlbFlags, lb = cpu.tlbLargeBase, ls = cpu.tlbLargeSize;
    cpu.tlbRangeCount = 0; // rebuilt from the large entries that stay
    for (let i = 0; i < tag.length; i++) {
      if ((fl[i] & FL_LARGE) === 0 || tag[i] !== tag[i]) continue;
      if (lin >= lb[i] && lin < lb[i] + ls[i]) tag[i] = NaN;
      else noteLargeRange(cpu, lb[i], ls[i]);
    }
  }
}

/**
 * The core calls this when it starts caching code from physical page `ppn` (after setting codePages[ppn]):
 * existing write-TLB entries for that page are dropped so later stores take the slow path and notify it.
 */
export function dropWriteMappings(cpu: CpuState, ppn: number): void {
  const tag = cpu.tlbTag, ph = cpu.tlbPhys;
  const target = ppn * 4096;
  for (let i = S_WRITE; i < S_FETCH; i++) {
    if (tag[i] === tag[i] && tag[i] + ph[i] === target) tag[i] = NaN;
  }
}

// ---------------------------------------------------------------- explicit-privilege accesses

/**
 * Accesses at an explicit privilege (`user` = CPL 3 rules) instead of the current CPL: interrupt frames
 * pushed on the new stack before CS changes, IRET/far-return pops after the privilege check.
 */
export function readAs32(cpu: CpuState, lin: number, user: boolean): number {
  const i = (user ? U_READ : S_READ) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffc) return cpu.ramView.getUint32(lin + cpu.tlbAddend[i], true);
  return slowRead(cpu, lin, 4, user);
}
export function readAs16(cpu: CpuState, lin: number, user: boolean): number {
  return slowRead(cpu, lin, 2, user);
}
export function writeAs32(cpu: CpuState, lin: number, v: number, user: boolean): void {
  const i = (user ? U_WRITE : S_WRITE) + ((lin >>> 12) & MASK);
  const off = lin & 0xfff;
  if (cpu.tlbTag[i] === lin - off && off <= 0xffc) { cpu.ramView.setInt32(lin + cpu.tlbAddend[i], v, true); return; }
  slowWrite(cpu, lin, 4, v, user);
}
export function writeAs16(cpu: CpuState, lin: number, v: number, user: boolean): void {
  slowWrite(cpu, lin, 2, v, user);
}
/** Check that [lin, lin+len) is writable at the given privilege (frames are checked before anything is written). */
export function probeWriteAs(cpu: CpuState, lin: number, len: number, user: boolean): void {
  probeAccess(cpu, lin, len, K_WRITE, user);
}
