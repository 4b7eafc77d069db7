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
