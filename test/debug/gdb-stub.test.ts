import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GdbSession, GDB_REGS, type DebugTarget, type GdbRegName, type StopReason } from '../../src/debug/gdb-stub.js';

function checksum(s: string): string {
  let sum = 0;
  for (const c of s) sum = (sum + c.charCodeAt(0)) & 0xff;
  return sum.toString(16).padStart(2, '0');
}
const pkt = (s: string): string => `$${s}#${checksum(s)}`;

class FakeTarget implements DebugTarget {
  regs = new Map<GdbRegName, bigint>(GDB_REGS.map((r) => [r, 0n]));
  mem = new Uint8Array(0x1000);
  bps = new Set<bigint>();
  pc = 0x100n;
  readRegister(n: GdbRegName): bigint { return n === 'rip' ? this.pc : this.regs.get(n)!; }
  writeRegister(n: GdbRegName, v: bigint): void { if (n === 'rip') this.pc = v; else this.regs.set(n, v); }
  readMemory(a: bigint, l: number): Uint8Array | null { return a + BigInt(l) <= 0x1000n ? this.mem.slice(Number(a), Number(a) + l) : null; }
  writeMemory(a: bigint, d: Uint8Array): boolean { if (a + BigInt(d.length) > 0x1000n) return false; this.mem.set(d, Number(a)); return true; }
  insertBreakpoint(a: bigint): boolean { this.bps.add(a); return true; }
  removeBreakpoint(a: bigint): boolean { return this.bps.delete(a); }
  async step(): Promise<StopReason> { this.pc += 1n; return { signal: 5 }; }
  async resume(): Promise<StopReason> {
    for (let i = 0; i < 100; i++) { this.pc += 1n; if (this.bps.has(this.pc)) return { signal: 5, breakpoint: true }; }
    return { exited: 0 };
  }
  interrupt(): void {}
}

async function session(t: FakeTarget): Promise<{ s: GdbSession; out: string[]; ask: (p: string) => Promise<string> }> {
  const out: string[] = [];
  const s = new GdbSession(t, (d) => out.push(d));
  const ask = async (p: string): Promise<string> => {
    out.length = 0;
    s.feed(pkt(p));
    await new Promise((r) => setImmediate(r));
    const reply = out.find((o) => o.startsWith('$'));
    assert.ok(reply, `no reply to ${p}`);
    const body = reply.slice(1, reply.indexOf('#'));
    assert.equal(reply.slice(reply.indexOf('#') + 1), checksum(body), 'reply checksum');
    return body;
  };
  return { s, out, ask };
}

test('gdb stub: acks, registers, memory, breakpoints, continue and step', async () => {
  const t = new FakeTarget();
  t.regs.set('rax', 0x1122334455667788n);
  t.regs.set('eflags', 0x246n);
  const { ask, out, s } = await session(t);
  assert.match(await ask('qSupported:multiprocess+'), /PacketSize=/);
  assert.ok(out.includes('+'), 'packet acknowledged');
  const g = await ask('g');
  assert.equal(g.length, (17 * 8 + 7 * 4) * 2);
  assert.equal(g.slice(0, 16), '8877665544332211', 'rax little-endian');
  assert.equal(await ask('p10'), '0001000000000000', 'rip via p');
  assert.equal(await ask('P0=efbeadde00000000'), 'OK');
  assert.equal(t.regs.get('rax'), 0xdeadbeefn);
  assert.equal(await ask('M10,4:01020304'), 'OK');
  assert.equal(await ask('m10,4'), '01020304');
  assert.equal(await ask('m2000,4'), 'E14', 'unmapped memory is an error, not a crash');
  assert.equal(await ask('Z0,110,1'), 'OK');
  assert.match(await ask('c'), /^T05swbreak/);
  assert.equal(t.pc, 0x110n);
  assert.equal(await ask('z0,110,1'), 'OK');
  assert.match(await ask('s'), /^T05/);
  assert.equal(t.pc, 0x111n);
  assert.equal(await ask('c'), 'W00');
  // Corrupt checksum gets a NAK.
  out.length = 0;
  s.feed('$g#00');
  assert.deepEqual(out, ['-']);
});

/** Several vCPUs; every access records its vCPU argument so the tests can check the stub never passes a bad one. */
class MultiTarget extends FakeTarget {
  readonly seen: number[] = [];
  readonly pcs: bigint[];
  stepped: number[] = [];
  constructor(readonly vcpuCount: number) { super(); this.pcs = Array.from({ length: vcpuCount }, (_, i) => 0x100n * BigInt(i + 1)); }
  private use(v: number): number { this.seen.push(v); if (!(Number.isInteger(v) && v >= 0 && v < this.vcpuCount)) throw new Error(`bad vCPU ${v}`); return v; }
  describeVcpu(v: number): string { return `CPU#${this.use(v)} [running]`; }
  override readRegister(n: GdbRegName, v = 0): bigint { return n === 'rip' ? this.pcs[this.use(v)] : super.readRegister(n); }
  override writeRegister(n: GdbRegName, x: bigint, v = 0): void { if (n === 'rip') this.pcs[this.use(v)] = x; else super.writeRegister(n, x); }
  override readMemory(a: bigint, l: number, v = 0): Uint8Array | null { this.use(v); return super.readMemory(a, l); }
  override writeMemory(a: bigint, d: Uint8Array, v = 0): boolean { this.use(v); return super.writeMemory(a, d); }
  override insertBreakpoint(a: bigint, v = 0): boolean { this.use(v); return super.insertBreakpoint(a); }
  override async step(v = 0): Promise<StopReason> { this.pcs[this.use(v)] += 1n; this.stepped.push(v); return { signal: 5, vcpu: v }; }
  override async resume(): Promise<StopReason> { return { signal: 5, breakpoint: true, vcpu: this.vcpuCount - 1 }; }
}

test('gdb stub with 3 vCPUs: thread list, Hg/Hc routing, vCont steps one vCPU, stop replies name the vCPU', async () => {
  const t = new MultiTarget(3);
  const { ask } = await session(t);
  assert.equal(await ask('qfThreadInfo'), 'm01,02,03');
  assert.equal(await ask('qsThreadInfo'), 'l');
  assert.equal(await ask('?'), 'T05thread:01;');
  assert.equal(await ask('qThreadExtraInfo,3'), Buffer.from('CPU#2 [running]').toString('hex'));
  assert.equal(await ask('Hg2'), 'OK');
  assert.equal(await ask('p10'), '0002000000000000', 'rip of vCPU 1');
  assert.equal(await ask('Hgp1.3'), 'OK', 'multiprocess form');
  assert.equal(await ask('p10'), '0003000000000000');
  assert.equal(await ask('vCont;s:2;c'), 'T05thread:02;');
  assert.deepEqual(t.stepped, [1]);
  assert.deepEqual(t.pcs, [0x100n, 0x201n, 0x300n], 'only vCPU 1 moved');
  assert.equal(await ask('qC'), 'QC02', 'the stepped vCPU is current');
  assert.equal(await ask('vCont;s'), 'T05thread:02;', 'a step for all threads steps the current one');
  assert.equal(await ask('Hc3'), 'OK');
  assert.equal(await ask('s'), 'T05thread:03;');
  assert.deepEqual(t.stepped, [1, 1, 2]);
  assert.equal(await ask('c'), 'T05swbreak:;thread:03;');
  assert.equal(await ask('Hc-1'), 'OK');
  assert.equal(await ask('Hg0'), 'OK', 'any thread: the one that stopped');
  assert.equal(await ask('p10'), '0103000000000000');
  for (const bad of ['Hg4', 'Hc4', 'Hg-2', 'Hgp1.', 'T4', 'T0', 'qThreadExtraInfo,0', 'qThreadExtraInfo,4', 'vCont;s:4', 'vCont;c:ffffffffff', 'p-1', 'pzz', 'P18=00', 'P0=zz', 'm,4', 'mzz,4', 'M0,4:0102', 'G0g']) {
    assert.match(await ask(bad), /^E[0-9a-f]{2}$/, bad);
  }
  assert.ok(t.seen.every((v) => v >= 0 && v < 3));
});

test('gdb stub: any packet gets an answer and never reaches the target with a vCPU that does not exist (fast-check)', async () => {
  const fc = (await import('fast-check')).default;
  const threadId = fc.oneof(fc.constantFrom('0', '-1', '1', '2', '3', 'ff', 'p1.2', 'p1.-1', '', 'zz', '100000000'), fc.stringMatching(/^[0-9a-f]{0,10}$/));
  const packet = fc.oneof(
    fc.tuple(fc.constantFrom('Hg', 'Hc', 'T', 'qThreadExtraInfo,', 'vCont;s:', 'vCont;c:', 'vCont;S05:', 'vCont;s:1;c:'), threadId).map(([a, b]) => a + b),
    fc.constantFrom('g', 's', 'c', '?', 'qC', 'qfThreadInfo', 'vCont;s', 'vCont;c', 'vCont;t', 'vCont;', 'p10', 'm100,10', 'Z0,100,1', 'z0,100,1'),
    fc.string({ maxLength: 24 }).filter((s) => !s.includes('$') && !s.includes('#') && !s.includes('\x03') && s[0] !== 'k' && !s.startsWith('vKill')),
  );
  await fc.assert(fc.asyncProperty(fc.array(packet, { maxLength: 20 }), async (packets) => {
    const t = new MultiTarget(2);
    const { ask } = await session(t);
    for (const p of packets) await ask(p);
    assert.ok(t.seen.every((v) => v === 0 || v === 1), `vCPUs seen: ${t.seen}`);
    const pc = await ask('?');
    assert.match(pc, /^T05thread:0[12];$/);
  }), { numRuns: 300 });
});
