/**
 * Debug facilities of the emulated processor: single-step (TF) with its SYSCALL/SYSRET, MOV SS and software
 * interrupt rules, ICEBP/INT1, instruction/data/I-O breakpoints with RF, DR6 status bits, DR7.GD, MOV DRn rules.
 * Programs are hand-assembled bytes run on the test machine at CPL 0 (or 3 where stated).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestMachine, SEL } from '../../../src/processor/emulated/testing.js';
import { REG, type TestRunResult } from '../../../src/processor/emulated/testing-contract.js';
import { getRflags, setRflags } from '../../../src/processor/emulated/flags.js';
import { updateDebugArm } from '../../../src/processor/emulated/debug.js';

const CODE = 0x400000, HANDLER = 0x401000, DATA = 0x402000, STACK_TOP = 0x404000, UCODE = 0x500000;
const TF = 0x100, RF = 0x10000;
const DR6_FIXED = 0xffff0ff0, BS = 0x4000, BD = 0x2000;

const PUSHF = [0x9c], POP_RAX = [0x58], PUSH_RAX = [0x50], POPF = [0x9d], NOP = [0x90], HLT = [0xf4];
const OR_RAX_TF = [0x48, 0x0d, 0x00, 0x01, 0x00, 0x00];
const AND_RAX_NOT_TF = [0x48, 0x25, 0xff, 0xfe, 0xff, 0xff];
const MOV_DR6_RAX = [0x0f, 0x23, 0xf0], MOV_RAX_DR6 = [0x0f, 0x21, 0xf0];
const MOV_DR4_RAX = [0x0f, 0x23, 0xe0], MOV_RAX_DR4 = [0x0f, 0x21, 0xe0];
const MOV_DR7_RAX = [0x0f, 0x23, 0xf8];
const IRETQ = [0x48, 0xcf];

function machine(): ReturnType<typeof createTestMachine> {
  const m = createTestMachine({ cpl: 0 });
  m.map(CODE, 0x1000, { user: false });
  m.map(HANDLER, 0x1000, { user: false });
  m.map(DATA, 0x1000, { user: false });
  m.map(STACK_TOP - 0x2000, 0x2000, { user: false });
  m.cpu.rip = CODE;
  m.setReg(REG.rsp, BigInt(STACK_TOP - 0x100));
  setRflags(m.cpu, 0x2);
  return m;
}

function load(m: ReturnType<typeof createTestMachine>, at: number, ...parts: number[][]): number[] {
  const bytes = parts.flat();
  m.writeVirt(at, Uint8Array.from(bytes));
  // Offsets of each part's end (the address after each instruction).
  const ends: number[] = [];
  let p = at;
  for (const x of parts) { p += x.length; ends.push(p); }
  return ends;
}

// DR6 values compare as signed int32 (DR6_FIXED | BS is negative in JS).
const dr6 = (m: ReturnType<typeof createTestMachine>): number => m.cpu.dr[6] | 0;
function expectDb(r: TestRunResult, rip: number, what: string): void {
  assert.equal(r.kind, 'exception', `${what}: ${JSON.stringify(r, (_k, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
  if (r.kind !== 'exception') return;
  assert.equal(r.vector, 1, what);
  assert.equal(r.rip, BigInt(rip), `${what}: RIP`);
}

/**
 * A #DB handler at HANDLER that logs (DR6, return RIP) pairs at DATA+16.. (count at DATA+8) and clears TF in
 * its frame when `clearTf`: mov rax,dr6; mov rdx,[DATA+8]; shl rdx,4; mov [rdx+DATA+16],rax;
 * mov rax,[rsp]; mov [rdx+DATA+24],rax; inc qword [DATA+8]; iretq.
 */
function installLoggingDbHandler(m: ReturnType<typeof createTestMachine>, clearTf: boolean): void {
  const d32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  load(m, HANDLER,
    MOV_RAX_DR6,
    [0x48, 0x8b, 0x14, 0x25, ...d32(DATA + 8)], // mov rdx, [DATA+8]
    [0x48, 0xc1, 0xe2, 0x04], // shl rdx, 4
    [0x48, 0x89, 0x82, ...d32(DATA + 16)], // mov [rdx+DATA+16], rax
    [0x48, 0x8b, 0x04, 0x24], // mov rax, [rsp]
    [0x48, 0x89, 0x82, ...d32(DATA + 24)], // mov [rdx+DATA+24], rax
    [0x48, 0xff, 0x04, 0x25, ...d32(DATA + 8)], // inc qword [DATA+8]
    clearTf ? [0x48, 0x81, 0x64, 0x24, 0x10, 0xff, 0xfe, 0xff, 0xff] : NOP, // and qword [rsp+16], ~TF
    IRETQ);
  m.installIdt!({ 1: BigInt(HANDLER) });
}
function dbLog(m: ReturnType<typeof createTestMachine>): Array<[number, number]> {
  const v = new DataView(m.readVirt(DATA, 0x200).buffer);
  const n = Number(v.getBigUint64(8, true));
  const out: Array<[number, number]> = [];
  for (let k = 0; k < n && k < 30; k++) out.push([Number(v.getBigUint64(16 + 16 * k, true)) | 0, Number(v.getBigUint64(24 + 16 * k, true))]);
  return out;
}

test('single-step: POPF setting TF traps after the next instruction, POPF clearing TF still traps, DR6.BS', () => {
  const m = machine();
  // pushf; pop rax; or rax,TF; push rax; popf; and rax,~TF; push rax; popf; nop; hlt
  const e = load(m, CODE, PUSHF, POP_RAX, OR_RAX_TF, PUSH_RAX, POPF, AND_RAX_NOT_TF, PUSH_RAX, POPF, NOP, HLT);
  m.cpu.dr[6] = DR6_FIXED >>> 0;
  expectDb(m.run({}), e[5], 'after the AND (first instruction with TF at its start)');
  assert.equal(dr6(m), DR6_FIXED | BS);
  expectDb(m.run({}), e[6], 'after the PUSH');
  expectDb(m.run({}), e[7], 'after the POPF that clears TF');
  const r = m.run({});
  assert.equal(r.kind, 'halt', 'no trap once TF is clear');
  assert.equal(m.cpu.rip, e[9]);
});

test('single-step through the IDT: each trap is delivered with TF clear in the handler and RIP of the next instruction', () => {
  const m = machine();
  installLoggingDbHandler(m, false);
  const e = load(m, CODE, PUSHF, POP_RAX, OR_RAX_TF, PUSH_RAX, POPF, AND_RAX_NOT_TF, PUSH_RAX, POPF, NOP, HLT);
  m.cpu.dr[6] = DR6_FIXED >>> 0;
  const r = m.run({ maxInsns: 500 });
  assert.equal(r.kind, 'halt');
  assert.deepEqual(dbLog(m), [[DR6_FIXED | BS, e[5]], [DR6_FIXED | BS, e[6]], [DR6_FIXED | BS, e[7]]]);
});

test('MOV SS suppresses the single-step trap of the MOV SS itself (the next instruction traps)', () => {
  const m = machine();
  // mov eax, ss; (TF set by the test) mov ss, ax; nop; nop
  m.writeVirt(CODE - 0, Uint8Array.from([0x8c, 0xd0]));
  m.run({ maxInsns: 1 });
  const e = load(m, m.cpu.rip, [0x8e, 0xd0], NOP, NOP, HLT);
  setRflags(m.cpu, 0x2 | TF);
  expectDb(m.run({}), e[1], 'first trap after the instruction following MOV SS');
  assert.equal(dr6(m) & BS, BS);
  expectDb(m.run({}), e[2], 'then after every instruction');
});

test('SYSRET to a TF=1 context traps at once at the user instruction; SYSCALL whose FMASK clears TF does not trap', () => {
  const m = machine();
  const cpu = m.cpu;
  m.map(UCODE, 0x1000, { user: true });
  load(m, UCODE, NOP, [0x0f, 0x05]); // nop; syscall
  load(m, CODE, [0x48, 0x0f, 0x07]); // sysretq
  load(m, HANDLER, NOP, HLT);
  cpu.lstar = HANDLER;
  cpu.sfmask = TF;
  m.setReg(REG.rcx, BigInt(UCODE));
  m.setReg(REG.r11, BigInt(0x2 | TF));
  cpu.dr[6] = DR6_FIXED >>> 0;
  expectDb(m.run({}), UCODE, 'trap right after SYSRET');
  assert.equal(cpu.cpl, 3);
  assert.equal(cpu.segSel[1], SEL.userCode);
  assert.equal(dr6(m), DR6_FIXED | BS);
  expectDb(m.run({}), UCODE + 1, 'user instructions single-step');
  const r = m.run({});
  assert.equal(r.kind, 'halt', 'SYSCALL cleared TF through FMASK: no trap in the kernel');
  assert.equal(cpu.rip, HANDLER + 2);
  assert.equal(cpu.cpl, 0);
});

test('SYSCALL keeping TF (FMASK without TF) traps at the first kernel instruction', () => {
  const m = machine();
  const cpu = m.cpu;
  load(m, CODE, [0x0f, 0x05]);
  load(m, HANDLER, NOP, HLT);
  cpu.lstar = HANDLER;
  cpu.sfmask = 0;
  setRflags(cpu, 0x2 | TF);
  expectDb(m.run({}), HANDLER, 'trap at the SYSCALL target');
});

test('ICEBP and INT 1 deliver #DB after the instruction without touching DR6, and without a single-step trap when TF is set', () => {
  const m = machine();
  installLoggingDbHandler(m, true);
  const e = load(m, CODE, [0xf1], NOP, [0xcd, 0x01], NOP, HLT);
  m.cpu.dr[6] = (DR6_FIXED | 0x2) >>> 0; // B1 left over: ICEBP does not rewrite B0-B3
  setRflags(m.cpu, 0x2 | TF);
  const r = m.run({ maxInsns: 500 });
  assert.equal(r.kind, 'halt');
  // ICEBP entered the handler with no BS (TF cleared there, then in the frame), INT 1 likewise.
  assert.deepEqual(dbLog(m), [[DR6_FIXED | 0x2, e[0]], [DR6_FIXED | 0x2, e[2]]]);
});

test('instruction breakpoint: #DB fault before the instruction, DR6.B0-B3 rewritten, RF suppresses it once', () => {
  const m = machine();
  const cpu = m.cpu;
  const e = load(m, CODE, NOP, NOP, NOP, HLT);
  cpu.dr[2] = e[0]; // the second NOP
  cpu.dr[6] = (DR6_FIXED | BS | 0x2) >>> 0;
  cpu.dr[7] = 0x420; // G2, RW2=00 LEN2=00: instruction breakpoint
  updateDebugArm(cpu);
  expectDb(m.run({}), e[0], 'fault at the breakpoint address');
  assert.equal(dr6(m), DR6_FIXED | BS | 0x4, 'B2 set, B1 cleared, BS kept');
  expectDb(m.run({}), e[0], 'without RF it faults again');
  setRflags(cpu, getRflags(cpu) | RF);
  const r = m.run({ stopAt: BigInt(e[1]) });
  assert.equal(r.kind, 'stopped', 'RF let the instruction run');
  assert.equal(getRflags(cpu) & RF, 0, 'RF cleared once the instruction completed');
});

test('instruction breakpoint through the IDT: the handler sets RF in its frame and IRETQ resumes past the breakpoint', () => {
  const m = machine();
  const cpu = m.cpu;
  // #DB handler: inc qword [DATA]; or qword [rsp+16], RF; iretq
  load(m, HANDLER, [0x48, 0xff, 0x04, 0x25, DATA & 0xff, (DATA >>> 8) & 0xff, DATA >>> 16, 0], [0x48, 0x81, 0x4c, 0x24, 0x10, 0x00, 0x00, 0x01, 0x00], IRETQ);
  m.installIdt!({ 1: BigInt(HANDLER) });
  // mov dr0, rbx; mov dr7, rax; nop(bp); nop; hlt
  const e = load(m, CODE, [0x0f, 0x23, 0xc3], MOV_DR7_RAX, NOP, NOP, HLT);
  m.setReg(REG.rbx, BigInt(e[1]));
  m.setReg(REG.rax, 0x401n); // L0
  const r = m.run({ maxInsns: 200 });
  assert.equal(r.kind, 'halt');
  assert.equal(m.readVirt(DATA, 1)[0], 1, 'one #DB');
  assert.equal(dr6(m) & 0xf, 1);
  assert.equal(cpu.rip, e[4]);
  assert.equal(getRflags(cpu) & RF, 0);
});

test('data breakpoints: write-only and read/write kinds, lengths 1/2/4/8 with alignment, trap after the access', () => {
  const cases: Array<{ rw: number; len: number; addr: number; op: number[]; at: number; hit: boolean; what: string }> = [
    // mov [rbx+disp8], eax (89 43 d) / mov eax, [rbx+disp8] (8b 43 d) / mov [rbx+d], rax (48 89 43 d) / mov [rbx+d], al (88 43 d)
    { rw: 1, len: 4, addr: 0x10, op: [0x89, 0x43, 0x10], at: 0x10, hit: true, what: '4-byte write on a 4-byte write breakpoint' },
    { rw: 1, len: 4, addr: 0x10, op: [0x8b, 0x43, 0x10], at: 0x10, hit: false, what: 'a read does not hit a write breakpoint' },
    { rw: 3, len: 4, addr: 0x10, op: [0x8b, 0x43, 0x10], at: 0x10, hit: true, what: 'a read hits a read/write breakpoint' },
    { rw: 1, len: 4, addr: 0x12, op: [0x88, 0x43, 0x10], at: 0x10, hit: true, what: 'the address is aligned down to the length' },
    { rw: 1, len: 1, addr: 0x13, op: [0x89, 0x43, 0x10], at: 0x10, hit: true, what: 'a wide access covering the byte' },
    { rw: 1, len: 1, addr: 0x14, op: [0x89, 0x43, 0x10], at: 0x10, hit: false, what: 'an access ending just before the byte' },
    { rw: 1, len: 2, addr: 0x0f, op: [0x88, 0x43, 0x0e], at: 0x0e, hit: true, what: '2-byte breakpoint aligned down' },
    { rw: 1, len: 8, addr: 0x1c, op: [0x88, 0x43, 0x18], at: 0x18, hit: true, what: '8-byte breakpoint aligned down' },
    { rw: 1, len: 8, addr: 0x18, op: [0x48, 0x89, 0x43, 0x20], at: 0x20, hit: false, what: 'the next quadword' },
  ];
  const LEN = new Map([[1, 0], [2, 1], [8, 2], [4, 3]]);
  for (const c of cases) {
    const m = machine();
    const cpu = m.cpu;
    // Touch the page first so a stale TLB entry would bypass the check if arming did not flush it.
    const e = load(m, CODE, [0x8b, 0x0b], MOV_DR7_RAX, c.op, NOP, HLT); // mov ecx,[rbx]; mov dr7,rax; op
    m.setReg(REG.rbx, BigInt(DATA));
    cpu.dr[1] = DATA + c.addr;
    m.setReg(REG.rax, BigInt(0x400 | 0x8 | (c.rw << 20) | (LEN.get(c.len)! << 22)));
    cpu.dr[6] = (DR6_FIXED | BS) >>> 0;
    const r = m.run({ maxInsns: 10 });
    if (c.hit) {
      expectDb(r, e[2], c.what);
      assert.equal(dr6(m), DR6_FIXED | BS | 0x2, `${c.what}: B1 set, BS left as software wrote it`);
    } else assert.equal(r.kind, 'halt', c.what);
  }
});

test('MOV SS hitting a data breakpoint: the #DB waits for the next instruction; after INT3 it arrives at the #BP handler entry', () => {
  const m = machine();
  const cpu = m.cpu;
  const d32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  // #DB handler at HANDLER: inc dword [DATA+0x20]; mov rax,[rsp]; mov [DATA+0x28],rax; iretq
  load(m, HANDLER, [0xff, 0x04, 0x25, ...d32(DATA + 0x20)], [0x48, 0x8b, 0x04, 0x24], [0x48, 0x89, 0x04, 0x25, ...d32(DATA + 0x28)], IRETQ);
  // #BP handler at HANDLER+0x100: inc dword [DATA+0x30]; iretq
  load(m, HANDLER + 0x100, [0xff, 0x04, 0x25, ...d32(DATA + 0x30)], IRETQ);
  m.installIdt!({ 1: BigInt(HANDLER), 3: BigInt(HANDLER + 0x100) });
  m.writeVirt(DATA, Uint8Array.from([SEL.kernelData, 0]));
  // mov dr7, rax; mov ss, [rbx]; int3; hlt
  const e = load(m, CODE, MOV_DR7_RAX, [0x8e, 0x13], [0xcc], HLT);
  m.setReg(REG.rbx, BigInt(DATA));
  cpu.dr[0] = DATA;
  m.setReg(REG.rax, BigInt(0x400 | 0x2 | (3 << 16) | (1 << 18))); // G0, RW0=11, LEN0=2
  const r = m.run({ maxInsns: 100 });
  assert.equal(r.kind, 'halt');
  assert.equal(cpu.rip, e[3]);
  const v = new DataView(m.readVirt(DATA, 0x40).buffer);
  assert.equal(v.getUint32(0x20, true), 1, 'one #DB');
  assert.equal(v.getUint32(0x30, true), 1, 'one #BP');
  assert.equal(Number(v.getBigUint64(0x28, true)), HANDLER + 0x100, '#DB at the #BP handler entry');
  assert.equal(dr6(m) & 0xf, 1);
});

test('DR7.GD: MOV DRn is a #DB fault with DR6.BD, GD cleared; the MOV then runs', () => {
  const m = machine();
  const cpu = m.cpu;
  const e = load(m, CODE, MOV_DR7_RAX, MOV_RAX_DR6, NOP, HLT);
  m.setReg(REG.rax, BigInt(0x2000));
  cpu.dr[6] = DR6_FIXED >>> 0;
  expectDb(m.run({}), e[0], 'fault at the second MOV DR');
  assert.equal(dr6(m), DR6_FIXED | BD);
  assert.equal(cpu.dr[7] & 0x2000, 0, 'GD cleared');
  const r = m.run({});
  assert.equal(r.kind, 'halt');
  assert.equal(Number(m.getReg(REG.rax)) | 0, DR6_FIXED | BD);
});

test('MOV DRn: DR4/DR5 alias DR6/DR7 without CR4.DE and are #UD with it; reserved upper bits #GP; CPL 3 #GP', () => {
  const m = machine();
  const cpu = m.cpu;
  load(m, CODE, MOV_DR4_RAX, MOV_RAX_DR4, HLT);
  m.setReg(REG.rax, BigInt(0x4001));
  cpu.cr4 &= ~8;
  assert.equal(m.run({}).kind, 'halt');
  assert.equal(dr6(m), DR6_FIXED | 0x4001);
  assert.equal(Number(m.getReg(REG.rax)) | 0, DR6_FIXED | 0x4001);
  cpu.cr4 |= 8;
  cpu.halted = false;
  cpu.rip = CODE;
  let r = m.run({});
  assert.equal(r.kind === 'exception' && r.vector, 6, 'DR4 with CR4.DE');
  load(m, CODE, MOV_DR6_RAX);
  m.setReg(REG.rax, 0x1_0000_0000n);
  r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13 && r.errorCode === 0, 'upper half of DR6');
  m.setReg(REG.rax, 0n);
  m.setCpl(3);
  m.map(UCODE, 0x1000, { user: true });
  load(m, UCODE, MOV_RAX_DR6);
  cpu.rip = UCODE;
  r = m.run({});
  assert.ok(r.kind === 'exception' && r.vector === 13, 'CPL 3');
});

test('I/O breakpoint (RW=10 with CR4.DE) traps after OUT to the port', () => {
  const m = machine();
  const cpu = m.cpu;
  cpu.cr4 |= 8;
  // mov dr7, rax; out 0x80, al; nop; hlt
  const e = load(m, CODE, MOV_DR7_RAX, [0xe6, 0x80], NOP, HLT);
  cpu.dr[3] = 0x80;
  m.setReg(REG.rax, BigInt(0x400 | 0x80 | (2 << 28)));
  expectDb(m.run({}), e[1], 'trap after OUT');
  assert.equal(dr6(m) & 0xf, 8);
});

test('nothing armed: RF from an IRET frame is not kept; TF off leaves the fast path untouched', () => {
  const m = machine();
  assert.equal(m.cpu.debugArmed, 0);
  const e = load(m, CODE, NOP, NOP, HLT);
  assert.equal(m.run({}).kind, 'halt');
  assert.equal(m.cpu.rip, e[2]);
});

