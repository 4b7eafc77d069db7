/** RNDIS and NVSP layouts and the guest-input parser (fast-check: arbitrary bytes never escape as a crash). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as R from '../../../src/vsp/netvsp/rndis.js';
import * as N from '../../../src/vsp/netvsp/nvsp.js';

const le = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

test('INIT_C, QUERY_C, SET_C, KEEPALIVE_C and INDICATE_STATUS have the layouts Linux reads', () => {
  const i = le(R.initComplete(7, 0));
  assert.deepEqual([i.getUint32(0, true), i.getUint32(4, true), i.getUint32(8, true), i.getUint32(12, true), i.getUint32(16, true), i.getUint32(28, true)], [0x80000002, 52, 7, 0, 1, 0]);
  const q = R.queryComplete(9, 0, Uint8Array.from([1, 2, 3, 4, 5, 6]));
  const qv = le(q);
  assert.equal(qv.getUint32(4, true), q.length);
  assert.equal(qv.getUint32(16, true), 6);
  assert.equal(qv.getUint32(20, true), 16, 'info offset relative to byte 8');
  assert.deepEqual([...q.subarray(24)], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...new Uint32Array(R.setComplete(3, 0xc00000bb).buffer)], [0x80000005, 16, 3, 0xc00000bb]);
  assert.deepEqual([...new Uint32Array(R.keepaliveComplete(4, 0).buffer)], [0x80000008, 16, 4, 0]);
  assert.equal(le(R.indicateStatus(R.RNDIS_STATUS_MEDIA_CONNECT)).getUint32(8, true), 0x4001000b);
});

test('a host data packet round-trips through the guest parser', () => {
  const frame = Uint8Array.from({ length: 60 }, (_, i) => i);
  const m = R.parseRndis(R.dataPacket(frame), 1514);
  assert.equal(m.type, R.RndisType.PACKET);
  assert.deepEqual([...(m as { frame: Uint8Array }).frame], [...frame]);
});

test('batched messages are split at their aligned lengths; lengths past the stream are refused', () => {
  const a = R.dataPacket(new Uint8Array(15)), b = R.dataPacket(new Uint8Array(20));
  const stream = new Uint8Array(((a.length + 7) & ~7) + b.length);
  stream.set(a, 0); stream.set(b, (a.length + 7) & ~7);
  assert.deepEqual(R.splitRndis(stream, 4).map((x) => x.length), [a.length, b.length]);
  assert.throws(() => R.splitRndis(stream, 1), R.RndisError);
  le(stream).setUint32(4, 1 << 20, true);
  assert.throws(() => R.splitRndis(stream, 4), R.RndisError);
});

test('offload capabilities: type 0xA7, revision and size as the guest asks, within 112..156', () => {
  const ask = new Uint8Array(156); ask[0] = 0xa7; ask[1] = 3; le(ask).setUint16(2, 156, true);
  const r = R.noOffloads(ask);
  assert.deepEqual([r[0], r[1], le(r).getUint16(2, true), r.length], [0xa7, 3, 156, 156]);
  const r1 = R.noOffloads(new Uint8Array(0));
  assert.deepEqual([r1[0], r1[1], le(r1).getUint16(2, true)], [0xa7, 1, 112]);
});

test('NVSP completions are 40 bytes with the fields at the offsets Linux reads', () => {
  const r = le(N.recvBufComplete(N.NvspStatus.SUCCESS, 1728, 100));
  assert.equal(r.byteLength, 40);
  assert.deepEqual([0, 4, 8, 12, 16, 20, 24].map((o) => r.getUint32(o, true)), [102, 1, 1, 0, 1728, 100, 172800]);
  const ext = le(N.transferPageExtension([{ offset: 3456, length: 100 }]));
  assert.deepEqual([ext.getUint16(0, true), ext.getUint32(4, true), ext.getUint32(8, true), ext.getUint32(12, true)], [0xcafe, 1, 100, 3456]);
});

test('property: arbitrary guest bytes parse or fail with RndisError, and parsed frames lie inside the input', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 14, max: 2000 }), (bytes, maxFrame) => {
    try {
      for (const m of R.splitRndis(bytes, 8)) {
        const p = R.parseRndis(m, maxFrame);
        if (p.type === R.RndisType.PACKET) {
          assert.ok(p.frame.length >= 14 && p.frame.length <= maxFrame);
          assert.ok(p.frame.byteOffset >= bytes.byteOffset && p.frame.byteOffset + p.frame.length <= bytes.byteOffset + bytes.length);
        }
      }
    } catch (e) {
      if (!(e instanceof R.RndisError)) throw e;
    }
  }), { numRuns: 5000 });
});

test('property: mutated valid messages never escape the parser as anything but RndisError', () => {
  const base = [R.dataPacket(new Uint8Array(64)), R.queryComplete(1, 0, new Uint8Array(6))];
  const query = new Uint8Array(34); le(query).setUint32(0, 4, true); le(query).setUint32(4, 34, true); le(query).setUint32(16, 6, true); le(query).setUint32(20, 20, true);
  base.push(query);
  fc.assert(fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.array(fc.tuple(fc.nat(40), fc.nat(0xffffffff)), { maxLength: 4 }), (k, muts) => {
    const m = base[k].slice();
    for (const [off, val] of muts) if (off + 4 <= m.length) le(m).setUint32(off, val, true);
    try { for (const x of R.splitRndis(m, 4)) R.parseRndis(x, 1514); } catch (e) { if (!(e instanceof R.RndisError)) throw e; }
  }), { numRuns: 5000 });
});
