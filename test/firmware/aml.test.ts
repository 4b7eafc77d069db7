import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/firmware/acpi/aml.js';

/** Decode a PkgLength at the start of `b`: [value, bytes used]. */
function readPkg(b: number[]): [number, number] {
  const n = b[0] >> 6;
  if (n === 0) return [b[0] & 0x3f, 1];
  let v = b[0] & 0xf;
  for (let i = 1; i <= n; i++) v |= b[i] << (4 + 8 * (i - 1));
  return [v, n + 1];
}

test('aml: PkgLength uses the shortest encoding and counts itself', () => {
  for (const len of [0, 1, 62, 63, 64, 200, 4093, 4094, 5000, 70000, 1 << 20]) {
    const body = new Array<number>(len).fill(0xaa);
    const p = A.pkg(body);
    const [v, used] = readPkg(p);
    assert.equal(v, p.length, `len ${len}`);
    assert.equal(used, len + 1 <= 63 ? 1 : len + 2 < 4096 ? 2 : len + 3 < 1 << 20 ? 3 : 4);
    if (used > 1) assert.equal(p[0] & 0x30, 0, 'bits 4-5 reserved');
  }
});

test('aml: integers pick Zero/One/Byte/Word/DWord/QWord', () => {
  assert.deepEqual(A.integer(0), [0x00]);
  assert.deepEqual(A.integer(1), [0x01]);
  assert.deepEqual(A.integer(5), [0x0a, 5]);
  assert.deepEqual(A.integer(0x3f8), [0x0b, 0xf8, 0x03]);
  assert.deepEqual(A.integer(0xfec00000), [0x0c, 0, 0, 0xc0, 0xfe]);
  assert.deepEqual(A.integer(0x1_0000_0000), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => A.integer(-1));
});

test('aml: name strings, strings, EISA ids', () => {
  assert.deepEqual(A.nameString('_HID'), [0x5f, 0x48, 0x49, 0x44]);
  assert.deepEqual(A.nameString('\\_SB'), [0x5c, 0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(A.nameString('\\_SB.COM1').slice(0, 2), [0x5c, 0x2e]);
  assert.deepEqual(A.nameString('A.B.C').slice(0, 2), [0x2f, 3]);
  assert.throws(() => A.nameString('toolong'));
  assert.deepEqual(A.string('AB'), [0x0d, 0x41, 0x42, 0]);
  assert.deepEqual(A.eisaId('PNP0501'), [0x0c, 0x41, 0xd0, 0x05, 0x01]);
  assert.deepEqual(A.eisaId('PNP0B00'), [0x0c, 0x41, 0xd0, 0x0b, 0x00]);
});

test('aml: resource descriptors have the right tags and lengths', () => {
  assert.deepEqual(A.io(0x3f8, 0x3f8, 1, 8), [0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8]);
  assert.deepEqual(A.irq([4]), [0x22, 0x10, 0]);
  assert.deepEqual(A.irq([9], { level: true, activeLow: false, shared: true }), [0x23, 0, 2, 0x10]);
  const m = A.memory32Fixed(0xfec00000, 0x1000);
  assert.equal(m[0], 0x86); assert.equal(m[1] | (m[2] << 8), m.length - 3);
  const q = A.qwordMemory(0x1_0000_0000, 0x4000_0000);
  assert.equal(q[0], 0x8a); assert.equal(q[1], 43); assert.equal(q.length, 46);
  const it = A.interrupt([5, 7], { level: true, activeLow: true, shared: false });
  assert.deepEqual(it.slice(0, 5), [0x89, 10, 0, 0x05, 2]);
  const rt = A.resourceTemplate([A.irq([1])]);
  assert.deepEqual(rt.slice(-2), [0x79, 0]);
});
