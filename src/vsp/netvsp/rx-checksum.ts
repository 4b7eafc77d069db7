/**
 * Receive checksum offload for netvsp: before a frame goes to the guest, the host checks its IPv4 header and
 * TCP/UDP checksums and tells the guest which ones it found correct, in the RNDIS per-packet info
 * NDIS_TCP_IP_CHECKSUM_PACKET_INFO (receive half). Linux 6.1's hv_netvsc always enables NETIF_F_RXCSUM and
 * marks a packet CHECKSUM_UNNECESSARY when "TCP/UDP checksum succeeded" is set, so the guest (slow on the
 * emulated processor) skips checksumming every byte it receives.
 *
 * Only successes are ever claimed, and only after the checksum was computed here over the bytes the guest
 * will see, whatever switch port the frame came from (passt, another VM, a TAP). Anything not understood
 * (VLAN tags, IPv4 fragments or options past the frame, IPv6 extension headers, UDP without a checksum, a
 * wrong checksum) gets no claim and the guest checks it itself, as before.
 */

/** Receive bits of ndis_tcp_ip_checksum_info (Linux hyperv_net.h). */
export const RX_TCP_CHECKSUM_SUCCEEDED = 1 << 3;
export const RX_UDP_CHECKSUM_SUCCEEDED = 1 << 4;
export const RX_IP_CHECKSUM_SUCCEEDED = 1 << 5;

const ETH_HEADER = 14;
const PROTO_TCP = 6, PROTO_UDP = 17;

/** Ones'-complement sum (not yet folded) of b[start, end), big-endian 16-bit words, odd byte padded. */
function sum16(b: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  // Fold every 4096 words so the accumulator stays an exact small integer.
  while (end - i >= 2) {
    const stop = Math.min(end - 1, i + 8192);
    for (; i < stop; i += 2) acc += (b[i] << 8) | b[i + 1];
    acc = (acc & 0xffff) + (acc >>> 16);
  }
  if (i < end) acc += b[i] << 8;
  return acc;
}

function folded(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/** True when the L4 segment b[start, end) plus its pseudo-header sums to 0xffff (checksum correct). */
function l4ChecksumOk(b: Uint8Array, addrStart: number, addrEnd: number, proto: number, start: number, end: number): boolean {
  const len = end - start;
  let acc = sum16(b, addrStart, addrEnd, 0);
  acc += proto + (len & 0xffff) + (len >>> 16);
  acc = sum16(b, start, end, acc);
  return folded(acc) === 0xffff;
}

/**
 * The NDIS receive checksum flags the host can vouch for in `frame` (an Ethernet frame), or 0 for none.
 * Never throws: the frame may be anything a guest or the outside world sent.
 */
export function receiveChecksumInfo(frame: Uint8Array): number {
  if (frame.length < ETH_HEADER + 20) return 0;
  const type = (frame[12] << 8) | frame[13];
  if (type === 0x0800) return ipv4(frame);
  if (type === 0x86dd) return ipv6(frame);
  return 0;
}

function ipv4(b: Uint8Array): number {
  const ip = ETH_HEADER;
  if (b[ip] >> 4 !== 4) return 0;
  const ihl = (b[ip] & 15) * 4;
  const total = (b[ip + 2] << 8) | b[ip + 3];
  if (ihl < 20 || total < ihl || ip + total > b.length) return 0;
  if (folded(sum16(b, ip, ip + ihl, 0)) !== 0xffff) return 0;
  let flags = RX_IP_CHECKSUM_SUCCEEDED;
  const fragment = ((b[ip + 6] & 0x3f) << 8) | b[ip + 7]; // MF flag and offset: not a whole datagram
  if (fragment !== 0) return flags;
  const proto = b[ip + 9], l4 = ip + ihl, end = ip + total;
  if (proto === PROTO_TCP && end - l4 >= 20 && l4ChecksumOk(b, ip + 12, ip + 20, PROTO_TCP, l4, end)) flags |= RX_TCP_CHECKSUM_SUCCEEDED;
  if (proto === PROTO_UDP && end - l4 >= 8 && ((b[l4 + 6] << 8) | b[l4 + 7]) !== 0 &&
      ((b[l4 + 4] << 8) | b[l4 + 5]) === end - l4 && l4ChecksumOk(b, ip + 12, ip + 20, PROTO_UDP, l4, end)) flags |= RX_UDP_CHECKSUM_SUCCEEDED;
  return flags;
}

function ipv6(b: Uint8Array): number {
  const ip = ETH_HEADER;
  if (b.length < ip + 40 || b[ip] >> 4 !== 6) return 0;
  const payload = (b[ip + 4] << 8) | b[ip + 5];
  const next = b[ip + 6], l4 = ip + 40, end = l4 + payload;
  if (end > b.length) return 0;
  if (next === PROTO_TCP && payload >= 20 && l4ChecksumOk(b, ip + 8, ip + 40, PROTO_TCP, l4, end)) return RX_TCP_CHECKSUM_SUCCEEDED;
  if (next === PROTO_UDP && payload >= 8 && ((b[l4 + 4] << 8) | b[l4 + 5]) === payload &&
      l4ChecksumOk(b, ip + 8, ip + 40, PROTO_UDP, l4, end)) return RX_UDP_CHECKSUM_SUCCEEDED;
  return 0;
}
