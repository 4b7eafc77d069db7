/**
 * SMEP, SMAP (STAC/CLAC, RFLAGS.AC, TLB entries dropped when AC clears) and protection keys (PKU with
 * PKRU/RDPKRU/WRPKRU, PKS with IA32_PKRS): exact #PF error codes, CPUID bits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine } from '../../../src/processor/emulated/testing.js';
import { REG, type TestRunResult } from '../../../src/processor/emulated/testing-contract.js';
import { setRflags } from '../../../src/processor/emulated/flags.js';
import { cpuidValue } from '../../../src/processor/emulated/cpuid.js';
import { flushTlb } from '../../../src/processor/emulated/mmu.js';

const CODE = 0x400000, UDATA = 0x600000, KDATA = 0x700000, UCODE = 0x800000;
const SMEP = 1 << 20, SMAP = 1 << 21, PKE = 1 << 22, PKS = 1 << 24, AC = 1 << 18, WP = 1 << 16;
const PF_P = 1, PF_W = 2, PF_U = 4, PF_ID = 16, PF_PK = 32;

const LOAD = [0x8b, 0x03], STORE = [0x89, 0x03], HLT = [0xf4], NOP = [0x90];
const STAC = [0x0f, 0x01, 0xcb], CLAC = [0x0f, 0x01, 0xca], RDPKRU = [0x0f, 0x01, 0xee], WRPKRU = [0x0f, 0x01, 0xef];

type M = ReturnType<typeof createTestMachine>;

function machine(cr4Extra: number): M {
  const m = createTestMachine({ cpl: 0 });
  m.map(CODE, 0x1000, { user: false });
  m.map(UDATA, 0x1000, { user: true });
  m.map(KDATA, 0x1000, { user: false });
  m.map(UCODE, 0x1000, { user: true });
  m.map(0x900000, 0x1000, { user: true }); // stack, usable from both levels
  m.setReg(REG.rsp, 0x900f00n);
  m.cpu.cr4 |= cr4Extra;
  m.cpu.rip = CODE;
  setRflags(m.cpu, 0x2);
  return m;
}

function program(m: M, at: number, ...parts: number[][]): void {
  m.writeVirt(at, Uint8Array.from(parts.flat()));
  m.cpu.rip = at;
  m.cpu.halted = false;
}

/** Physical address of the 4K leaf entry of `virt` (walks the machine's tables like the hardware). */
function pteAddr(m: M, virt: number): number {
  const v = m.platform.memory.view;
  let table = m.cpu.cr3;
  for (const shift of [39, 30, 21]) {
    const e = v.getUint32(table + (Math.floor(virt / 2 ** shift) & 511) * 8, true);
    table = (e & 0xfffff000) >>> 0;
  }
  return table + ((virt >>> 12) & 511) * 8;
}
function setKey(m: M, virt: number, key: number): void {
  const v = m.platform.memory.view;
  const a = pteAddr(m, virt) + 4;
  v.setUint32(a, ((v.getUint32(a, true) & ~(0xf << 27)) | (key << 27)) >>> 0, true);
}

// Direct register writes (as WRPKRU / WRMSR would, including their TLB flush).
function setPkru(m: M, v: number): void { m.cpu.pkru = v; flushTlb(m.cpu, true); }
function setPkrs(m: M, v: number): void { m.cpu.pkrs = v; flushTlb(m.cpu, true); }

function expectPf(r: TestRunResult, err: number, cr2: number, what: string): void {
  assert.equal(r.kind, 'exception', `${what}: ${r.kind}`);
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 14, what);
  assert.equal(r.errorCode, err, `${what}: error code`);
  assert.equal(r.cr2, BigInt(cr2), `${what}: CR2`);
}

test('SMAP: supervisor reads/writes of user pages fault with AC=0, pass after STAC, fault again after CLAC (cached entry dropped)', () => {
  const m = machine(SMAP);
  m.setReg(REG.rbx, BigInt(UDATA));
  program(m, CODE, LOAD, HLT);
  expectPf(m.run({}), PF_P, UDATA, 'read with AC=0');
  program(m, CODE, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W, UDATA, 'write with AC=0');
  // stac; load; store; clac; load -> the last load faults although the page was just cached.
  program(m, CODE, STAC, LOAD, STORE, CLAC, LOAD, HLT);
  expectPf(m.run({}), PF_P, UDATA, 'read after CLAC');
  assert.equal(m.cpu.rip, CODE + 3 + 2 + 2 + 3, 'the fault is on the load after CLAC');
  // popf clearing AC also ends the permission: stac; load; push 0x2; popf; load
  program(m, CODE, STAC, LOAD, [0x6a, 0x02], [0x9d], LOAD, HLT);
  expectPf(m.run({}), PF_P, UDATA, 'read after POPF cleared AC');
  // Supervisor pages are unaffected; without SMAP nothing faults.
  m.setReg(REG.rbx, BigInt(KDATA));
  program(m, CODE, LOAD, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt');
  m.cpu.cr4 &= ~SMAP;
  m.setReg(REG.rbx, BigInt(UDATA));
  program(m, CODE, LOAD, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt', 'SMAP off');
});

test('SMAP: with CR0.WP=0 a supervisor write to a read-only user page needs AC like a read', () => {
  const m = machine(SMAP);
  m.cpu.cr0 &= ~WP;
  m.setPteFlags(UDATA, 0x5, true); // present, user, read-only
  m.setReg(REG.rbx, BigInt(UDATA));
  program(m, CODE, STAC, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt', 'WP=0 lets the supervisor write a read-only page');
  program(m, CODE, CLAC, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W, UDATA, 'SMAP still applies');
});

test('STAC/CLAC are #UD at CPL 3; user accesses ignore SMAP', () => {
  const m = machine(SMAP);
  m.setCpl(3);
  m.setReg(REG.rbx, BigInt(UDATA));
  program(m, UCODE, LOAD, STORE, STAC);
  const r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 6 && r.rip === BigInt(UCODE + 4), JSON.stringify(r, (_k, v) => typeof v === 'bigint' ? String(v) : v));
});

test('SMEP: a supervisor fetch from a user page faults with P|I/D; user pages still run at CPL 3', () => {
  const m = machine(SMEP);
  m.writeVirt(UCODE, Uint8Array.from(HLT));
  m.setReg(REG.rbx, BigInt(UCODE));
  program(m, CODE, [0xff, 0xe3]); // jmp rbx
  expectPf(m.run({}), PF_P | PF_ID, UCODE, 'kernel jumps into a user page');
  m.cpu.efer &= ~0x800; // I/D is reported whenever SMEP is on, even without NX
  flushTlb(m.cpu, true);
  program(m, CODE, [0xff, 0xe3]);
  expectPf(m.run({}), PF_P | PF_ID, UCODE, 'without EFER.NXE');
  m.cpu.cr4 &= ~SMEP;
  program(m, CODE, [0xff, 0xe3]);
  assert.equal(m.run({}).kind, 'halt', 'without SMEP');
});

test('PKU: PKRU AD/WD on user pages, CR0.WP for supervisor writes, PK error bit; WRPKRU drops cached rights', () => {
  const m = machine(PKE);
  setKey(m, UDATA, 2);
  const AD2 = 1 << 4, WD2 = 1 << 5;
  m.setReg(REG.rbx, BigInt(UDATA));
  m.setReg(REG.rcx, 0n); m.setReg(REG.rdx, 0n);
  // Read while PKRU = 0 caches the translation; WRPKRU(AD) must make the same read fault.
  program(m, CODE, LOAD, [0x48, 0x89, 0xf0] /* mov rax, rsi (the load overwrote eax) */, WRPKRU, LOAD, HLT);
  m.setReg(REG.rsi, BigInt(AD2));
  expectPf(m.run({}), PF_P | PF_PK, UDATA, 'supervisor read with AD');
  assert.equal(m.cpu.pkru, AD2);
  // WD: reads pass, supervisor writes fault only with WP=1.
  setPkru(m, WD2); m.cpu.cr0 |= WP;
  program(m, CODE, LOAD, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W | PF_PK, UDATA, 'supervisor write with WD and WP=1');
  m.cpu.cr0 &= ~WP;
  program(m, CODE, LOAD, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt', 'WD does not stop supervisor writes with WP=0');
  // User mode: WD faults writes regardless of WP.
  m.cpu.cr0 |= WP;
  m.setCpl(3);
  program(m, UCODE, LOAD, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W | PF_U | PF_PK, UDATA, 'user write with WD');
  m.setPteFlags(UDATA, 0x5, true); // read-only: the write is denied twice over, the error code says both
  setKey(m, UDATA, 2); // setPteFlags rewrote the high half
  program(m, UCODE, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W | PF_U | PF_PK, UDATA, 'user write to a read-only page with WD');
  m.setPteFlags(UDATA, 0x7, true);
  setKey(m, UDATA, 2);
  flushTlb(m.cpu, true);
  setPkru(m, AD2);
  program(m, UCODE, LOAD);
  expectPf(m.run({}), PF_P | PF_U | PF_PK, UDATA, 'user read with AD');
  // Other keys are not affected; supervisor pages ignore PKRU.
  setPkru(m, ~(3 << 4) >>> 0);
  program(m, UCODE, LOAD, STORE, HLT);
  const r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13, 'reached HLT at CPL 3 (#GP)');
});

test('RDPKRU/WRPKRU: #UD without CR4.PKE, #GP(0) with ECX (or EDX) nonzero, values round-trip', () => {
  const m = machine(0);
  m.setReg(REG.rcx, 0n); m.setReg(REG.rdx, 0n);
  program(m, CODE, RDPKRU);
  let r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 6, 'RDPKRU without PKE');
  m.cpu.cr4 |= PKE;
  m.setReg(REG.rax, 0x12345678n);
  program(m, CODE, WRPKRU, [0x31, 0xc0] /* xor eax,eax */, RDPKRU, HLT);
  assert.equal(m.run({}).kind, 'halt');
  assert.equal(m.getReg(REG.rax), 0x12345678n);
  assert.equal(m.getReg(REG.rdx), 0n);
  m.setReg(REG.rcx, 1n);
  program(m, CODE, RDPKRU);
  r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13 && r.errorCode === 0, 'ECX != 0');
  m.setReg(REG.rcx, 0n); m.setReg(REG.rdx, 1n);
  program(m, CODE, WRPKRU);
  r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13, 'EDX != 0');
});

test('PKS: IA32_PKRS AD/WD on supervisor pages (WD only with WP), user pages unaffected', () => {
  const m = machine(PKS);
  setKey(m, KDATA, 1);
  setKey(m, UDATA, 1);
  m.setReg(REG.rbx, BigInt(KDATA));
  // wrmsr 0x6e1 = AD1 (bit 2)
  m.setReg(REG.rcx, 0x6e1n); m.setReg(REG.rsi, 4n); m.setReg(REG.rdx, 0n);
  program(m, CODE, LOAD, [0x48, 0x89, 0xf0] /* mov rax, rsi */, [0x0f, 0x30], LOAD, HLT);
  expectPf(m.run({}), PF_P | PF_PK, KDATA, 'read with PKRS AD after a cached read');
  setPkrs(m, 8); // WD1
  program(m, CODE, LOAD, STORE, HLT);
  expectPf(m.run({}), PF_P | PF_W | PF_PK, KDATA, 'write with WD, WP=1');
  m.cpu.cr0 &= ~WP;
  program(m, CODE, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt', 'WP=0');
  setPkrs(m, 4);
  m.setReg(REG.rbx, BigInt(UDATA));
  program(m, CODE, LOAD, STORE, HLT);
  assert.equal(m.run({}).kind, 'halt', 'PKRS does not apply to user pages');
  // rdmsr reads it back; reserved upper half #GP.
  m.setReg(REG.rcx, 0x6e1n);
  program(m, CODE, [0x0f, 0x32], HLT);
  assert.equal(m.run({}).kind, 'halt');
  assert.equal(m.getReg(REG.rax), 4n);
  m.setReg(REG.rdx, 1n);
  program(m, CODE, [0x0f, 0x30]);
  const r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13);
});

test('CPUID leaf 7: SMEP, SMAP, PKU, PKS advertised; OSPKE follows CR4.PKE; CR4 accepts the bits', () => {
  const m = machine(0);
  const out = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  cpuidValue(m.cpu, 7, 0, out);
  assert.equal(out.ebx & (1 << 7), 1 << 7);
  assert.equal(out.ebx & (1 << 20), 1 << 20);
  assert.equal(out.ecx & (1 << 3), 1 << 3);
  assert.equal(out.ecx >>> 31, 1);
  assert.equal(out.ecx & (1 << 4), 0);
  // mov rax, cr4; or rax, PKE|SMAP|SMEP|PKS; mov cr4, rax
  m.setReg(REG.rbx, BigInt(PKE | SMAP | SMEP | PKS));
  program(m, CODE, [0x0f, 0x20, 0xe0], [0x48, 0x09, 0xd8], [0x0f, 0x22, 0xe0], HLT);
  assert.equal(m.run({}).kind, 'halt');
  assert.equal(m.cpu.cr4 & (PKE | SMAP | SMEP | PKS), PKE | SMAP | SMEP | PKS);
  cpuidValue(m.cpu, 7, 0, out);
  assert.equal(out.ecx & (1 << 4), 1 << 4, 'OSPKE');
  void AC; void NOP;
});
