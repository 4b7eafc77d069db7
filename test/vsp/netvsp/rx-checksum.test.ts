/**
 * Receive checksum offload: the host claims "checksum succeeded" only for frames whose checksums it verified,
 * and the RNDIS per-packet info carrying the claim is laid out the way Linux's rndis_get_ppi() walks it.
 * Frames are built here with checksums computed by a straightforward reference (RFC 1071), independent of
 * the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as R from '../../../src/vsp/netvsp/rndis.js';
import { receiveChecksumInfo, RX_IP_CHECKSUM_SUCCEEDED, RX_TCP_CHECKSUM_SUCCEEDED, RX_UDP_CHECKSUM_SUCCEEDED } from '../../../src/vsp/netvsp/rx-checksum.js';

/** RFC 1071 checksum of the concatenation of `parts`. */
function checksum(...parts: Uint8Array[]): number {
  const all = Buffer.concat(parts.map((p) => Buffer.from(p)));
  let s = 0;
  for (let i = 0; i < all.length; i += 2) s += (all[i] << 8) | (i + 1 < all.length ? all[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const ETH = (type: number): number[] => [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, ...be16(type)];

/** An Ethernet + IPv4 + TCP or UDP frame with correct checksums (`pad` bytes of Ethernet padding after it). */
function ipv4Frame(proto: 6 | 17, payload: Uint8Array, pad = 0): Uint8Array {
  const l4 = new Uint8Array((proto === 6 ? 20 : 8) + payload.length);
  l4.set([0x30, 0x39, 0x00, 0x50]);
  if (proto === 6) { l4.set([0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18, 0x01, 0x00], 4); } else l4.set(be16(l4.length), 4);
  l4.set(payload, proto === 6 ? 20 : 8);
  const src = Uint8Array.from([192, 0, 2, 1]), dst = Uint8Array.from([192, 0, 2, 2]);
  const pseudo = Uint8Array.from([...src, ...dst, 0, proto, ...be16(l4.length)]);
  let c = checksum(pseudo, l4);
  if (proto === 17 && c === 0) c = 0xffff;
  l4.set(be16(c), proto === 6 ? 16 : 6);
  const ip = Uint8Array.from([0x45, 0, ...be16(20 + l4.length), 0x12, 0x34, 0x40, 0, 64, proto, 0, 0, ...src, ...dst]);
  ip.set(be16(checksum(ip)), 10);
  return Uint8Array.from([...ETH(0x0800), ...ip, ...l4, ...new Array(pad).fill(0)]);
}

function ipv6TcpFrame(payload: Uint8Array): Uint8Array {
  const l4 = new Uint8Array(20 + payload.length);
  l4.set([0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0x01, 0x00]);
  l4.set(payload, 20);
  const src = Uint8Array.from([0xfd, ...new Array(14).fill(0), 2]), dst = Uint8Array.from([0xfd, ...new Array(14).fill(0), 1]);
  l4.set(be16(checksum(src, dst, Uint8Array.from([0, 0, ...be16(l4.length), 0, 0, 0, 6]), l4)), 16);
  return Uint8Array.from([...ETH(0x86dd), 0x60, 0, 0, 0, ...be16(l4.length), 6, 64, ...src, ...dst, ...l4]);
}

test('correct IPv4 TCP and UDP, and IPv6 TCP, are vouched for', () => {
  const p = Uint8Array.from({ length: 1001 }, (_, i) => (i * 7) & 0xff);
  assert.equal(receiveChecksumInfo(ipv4Frame(6, p)), RX_IP_CHECKSUM_SUCCEEDED | RX_TCP_CHECKSUM_SUCCEEDED);
  assert.equal(receiveChecksumInfo(ipv4Frame(17, p)), RX_IP_CHECKSUM_SUCCEEDED | RX_UDP_CHECKSUM_SUCCEEDED);
  assert.equal(receiveChecksumInfo(ipv4Frame(6, new Uint8Array(0), 6)), RX_IP_CHECKSUM_SUCCEEDED | RX_TCP_CHECKSUM_SUCCEEDED, 'Ethernet padding is not part of the segment');
  assert.equal(receiveChecksumInfo(ipv6TcpFrame(p)), RX_TCP_CHECKSUM_SUCCEEDED);
});

test('no claim for what was not verified: ARP, fragments, UDP without checksum, truncated datagrams', () => {
  const arp = Uint8Array.from([...ETH(0x0806), ...new Array(28).fill(1)]);
  assert.equal(receiveChecksumInfo(arp), 0);
  const frag = ipv4Frame(6, new Uint8Array(100));
  frag[14 + 6] |= 0x20; // more fragments
  frag.set([0, 0], 14 + 10);
  frag.set(be16(checksum(frag.subarray(14, 34))), 14 + 10);
  assert.equal(receiveChecksumInfo(frag), RX_IP_CHECKSUM_SUCCEEDED, 'IP header checked, L4 not');
  const noSum = ipv4Frame(17, new Uint8Array(30));
  noSum.set([0, 0], 14 + 20 + 6);
  assert.equal(receiveChecksumInfo(noSum), RX_IP_CHECKSUM_SUCCEEDED);
  const full = ipv4Frame(6, new Uint8Array(200));
  assert.equal(receiveChecksumInfo(full.subarray(0, full.length - 1)), 0, 'IP total length past the frame');
  assert.equal(receiveChecksumInfo(new Uint8Array(0)), 0);
});

test('any single corrupted byte in the IP header or segment loses the claim for that checksum', () => {
  fc.assert(fc.property(
    fc.constantFrom<6 | 17>(6, 17), fc.uint8Array({ minLength: 0, maxLength: 1472 }), fc.nat(), fc.integer({ min: 1, max: 255 }),
    (proto, payload, at, delta) => {
      const f = ipv4Frame(proto, payload);
      const i = 14 + (at % (f.length - 14));
      f[i] = (f[i] + delta) & 0xff;
      const flags = receiveChecksumInfo(f);
      const l4Flag = proto === 6 ? RX_TCP_CHECKSUM_SUCCEEDED : RX_UDP_CHECKSUM_SUCCEEDED;
      assert.equal(flags & l4Flag, 0, `byte ${i} changed, still claimed ${flags}`);
    }), { numRuns: 300 });
});

test('arbitrary bytes never throw and never claim a checksum the reference disagrees with', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 1600 }), (b) => {
    const flags = receiveChecksumInfo(b);
    if (flags & RX_IP_CHECKSUM_SUCCEEDED) assert.equal(checksum(b.subarray(14, 14 + (b[14] & 15) * 4)), 0);
  }), { numRuns: 500 });
});

test('the checksum per-packet info sits where Linux rndis_get_ppi() finds it, and the frame after it', () => {
  const frame = ipv4Frame(6, Uint8Array.from([1, 2, 3]));
  const pkt = R.dataPacket(frame, RX_IP_CHECKSUM_SUCCEEDED | RX_TCP_CHECKSUM_SUCCEEDED);
  const v = new DataView(pkt.buffer);
  const rpkt = 8; // struct rndis_packet
  const ppiOffset = v.getUint32(rpkt + 20, true), ppiLen = v.getUint32(rpkt + 24, true);
  assert.ok(ppiOffset >= 36 && ppiOffset + ppiLen <= pkt.length - 8, 'validated by rndis_get_ppi');
  const ppi = rpkt + ppiOffset;
  assert.equal(v.getUint32(ppi, true), 16, 'size: NDIS_CSUM_PPI_SIZE');
  assert.equal(v.getUint32(ppi + 4, true), 0, 'type TCPIP_CHKSUM_PKTINFO, not internal');
  assert.equal(v.getUint32(ppi + 8, true), 12, 'ppi_offset: after struct rndis_per_packet_info');
  assert.equal(v.getUint32(ppi + v.getUint32(ppi + 8, true), true), 0b101000, 'tcp_checksum_succeeded | ip_checksum_succeeded');
  const m = R.parseRndis(pkt, 1514);
  assert.deepEqual([...(m as { frame: Uint8Array }).frame], [...frame]);
  assert.equal(v.getUint32(4, true), pkt.length);
  assert.equal(R.dataPacket(frame, 0).length, 44 + frame.length, 'no claim, no per-packet info');
});
