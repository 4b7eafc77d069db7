/**
 * RNDIS over VMBus (contract §10.4): message layouts, the OIDs Linux 6.1's hv_netvsc asks for, and a
 * parser that turns guest bytes into checked messages. Offsets inside message bodies are relative to byte 8.
 * Everything here is guest input: a malformed message comes back as an RndisError, never as an exception
 * from an out-of-range read.
 */

export const enum RndisType {
  PACKET = 1, INIT = 2, HALT = 3, QUERY = 4, SET = 5, RESET = 6, INDICATE_STATUS = 7, KEEPALIVE = 8,
  INIT_C = 0x80000002, QUERY_C = 0x80000004, SET_C = 0x80000005, RESET_C = 0x80000006, KEEPALIVE_C = 0x80000008,
}

export const RNDIS_STATUS_SUCCESS = 0;
export const RNDIS_STATUS_FAILURE = 0xc0000001;
export const RNDIS_STATUS_NOT_SUPPORTED = 0xc00000bb;
export const RNDIS_STATUS_INVALID_DATA = 0xc0010015;
export const RNDIS_STATUS_MEDIA_CONNECT = 0x4001000b;
export const RNDIS_STATUS_MEDIA_DISCONNECT = 0x4001000c;

export const enum Oid {
  GEN_MAXIMUM_FRAME_SIZE = 0x00010106, GEN_LINK_SPEED = 0x00010107, GEN_CURRENT_PACKET_FILTER = 0x0001010e,
  GEN_MAXIMUM_TOTAL_SIZE = 0x00010111, GEN_MEDIA_CONNECT_STATUS = 0x00010114, GEN_RECEIVE_SCALE_CAPABILITIES = 0x00010203,
  GEN_RECEIVE_SCALE_PARAMETERS = 0x00010204, GEN_FRIENDLY_NAME = 0x00020216, GEN_RNDIS_CONFIG_PARAMETER = 0x0001021b,
  PERMANENT_ADDRESS = 0x01010101, CURRENT_ADDRESS = 0x01010102, MULTICAST_LIST = 0x01010103,
  TCP_OFFLOAD_PARAMETERS = 0xfc01020c, TCP_OFFLOAD_HARDWARE_CAPABILITIES = 0xfc01020d,
}

/** NDIS object type of the offload capabilities Linux checks (must be 0xA7, revision >= 1). */
const NDIS_OBJECT_TYPE_OFFLOAD = 0xa7;
/** offsetof(struct ndis_offload, ipsecv2) and sizeof(struct ndis_offload) in Linux 6.1. */
export const NDIS_OFFLOAD_SIZE_6_0 = 112;
export const NDIS_OFFLOAD_SIZE = 156;

/** RNDIS INIT_C: batching limit 1 keeps each guest send to one message; alignment 2^3. */
export const MAX_PACKETS_PER_MESSAGE = 1;
export const PACKET_ALIGNMENT_FACTOR = 3;
export const MAX_TRANSFER_SIZE = 0x4000 * 4;

/** RNDIS header (8) + struct rndis_packet (36): where a host->guest frame starts. */
export const RNDIS_PACKET_HEADER = 44;

export class RndisError extends Error {}

export type RndisMessage =
  | { type: RndisType.PACKET; frame: Uint8Array }
  | { type: RndisType.INIT; requestId: number; major: number; minor: number; maxTransfer: number }
  | { type: RndisType.HALT; requestId: number }
  | { type: RndisType.QUERY; requestId: number; oid: number; info: Uint8Array }
  | { type: RndisType.SET; requestId: number; oid: number; info: Uint8Array }
  | { type: RndisType.RESET }
  | { type: RndisType.KEEPALIVE; requestId: number };

/**
 * Split a guest RNDIS stream (a send-buffer section and/or page buffers, read as one) into its messages.
 * Each message is `msg_len` long; several may be batched, each padded to the alignment. At most `maxMessages`.
 */
export function splitRndis(bytes: Uint8Array, maxMessages: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + 8 <= bytes.length) {
    const len = v.getUint32(at + 4, true);
    if (len < 8 || len > bytes.length - at) throw new RndisError(`RNDIS message at ${at} claims ${len} bytes of ${bytes.length - at} left`);
    if (out.length >= maxMessages) throw new RndisError(`more than ${maxMessages} RNDIS messages in one send`);
    out.push(bytes.subarray(at, at + len));
    at += (len + 7) & ~7;
    // Trailing padding (zero type) ends the stream.
    if (at + 4 <= bytes.length && v.getUint32(at, true) === 0) break;
  }
  if (out.length === 0) throw new RndisError(`RNDIS stream of ${bytes.length} bytes holds no message`);
  return out;
}

/** Parse one guest RNDIS message (its bytes exactly `msg_len` long). */
export function parseRndis(m: Uint8Array, maxFrame: number): RndisMessage {
  const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const need = (n: number, what: string): void => { if (m.length < n) throw new RndisError(`${what} of ${m.length} bytes (need ${n})`); };
  need(8, 'RNDIS message');
  const type = v.getUint32(0, true);
  switch (type) {
    case RndisType.PACKET: {
      need(RNDIS_PACKET_HEADER, 'RNDIS_PACKET');
      const dataOffset = v.getUint32(8, true), dataLen = v.getUint32(12, true);
      const start = 8 + dataOffset;
      if (dataOffset < 36 || start > m.length || dataLen > m.length - start) throw new RndisError(`RNDIS_PACKET data ${dataOffset}+${dataLen} outside its ${m.length}-byte message`);
      if (dataLen < 14) throw new RndisError(`frame of ${dataLen} bytes is shorter than an Ethernet header`);
      if (dataLen > maxFrame) throw new RndisError(`frame of ${dataLen} bytes exceeds the ${maxFrame}-byte limit`);
      return { type, frame: m.subarray(start, start + dataLen) };
    }
    case RndisType.INIT:
      need(24, 'RNDIS INIT');
      return { type, requestId: v.getUint32(8, true), major: v.getUint32(12, true), minor: v.getUint32(16, true), maxTransfer: v.getUint32(20, true) };
    case RndisType.HALT:
      need(12, 'RNDIS HALT');
      return { type, requestId: v.getUint32(8, true) };
    case RndisType.QUERY:
    case RndisType.SET: {
      need(28, type === RndisType.QUERY ? 'RNDIS QUERY' : 'RNDIS SET');
      const oid = v.getUint32(12, true), len = v.getUint32(16, true), off = v.getUint32(20, true);
      let info: Uint8Array = new Uint8Array(0);
      if (len > 0) {
        if (off < 20 || 8 + off > m.length || len > m.length - 8 - off) throw new RndisError(`OID 0x${oid.toString(16)} buffer ${off}+${len} outside its ${m.length}-byte message`);
        info = m.subarray(8 + off, 8 + off + len);
      }
      return { type, requestId: v.getUint32(8, true), oid, info };
    }
    case RndisType.RESET:
      return { type };
    case RndisType.KEEPALIVE:
      need(12, 'RNDIS KEEPALIVE');
      return { type, requestId: v.getUint32(8, true) };
    default:
      throw new RndisError(`unknown RNDIS message type 0x${(type >>> 0).toString(16)}`);
  }
}

function message(type: RndisType, len: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(len);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  view.setUint32(4, len, true);
  return { bytes, view };
}

export function initComplete(requestId: number, status: number): Uint8Array {
  const m = message(RndisType.INIT_C, 52);
  m.view.setUint32(8, requestId, true);
  m.view.setUint32(12, status, true);
  m.view.setUint32(16, 1, true); // major
  m.view.setUint32(20, 0, true); // minor
  m.view.setUint32(24, 1, true); // connectionless
  m.view.setUint32(28, 0, true); // 802.3
  m.view.setUint32(32, MAX_PACKETS_PER_MESSAGE, true);
  m.view.setUint32(36, MAX_TRANSFER_SIZE, true);
  m.view.setUint32(40, PACKET_ALIGNMENT_FACTOR, true);
  return m.bytes;
}

/** QUERY_C: data right after the 24-byte header (info_buf_offset 16 relative to byte 8). */
export function queryComplete(requestId: number, status: number, data: Uint8Array): Uint8Array {
  const m = message(RndisType.QUERY_C, 24 + data.length);
  m.view.setUint32(8, requestId, true);
  m.view.setUint32(12, status, true);
  m.view.setUint32(16, data.length, true);
  m.view.setUint32(20, 16, true);
  m.bytes.set(data, 24);
  return m.bytes;
}

export function setComplete(requestId: number, status: number): Uint8Array {
  const m = message(RndisType.SET_C, 16);
  m.view.setUint32(8, requestId, true);
  m.view.setUint32(12, status, true);
  return m.bytes;
}

export function resetComplete(status: number): Uint8Array {
  const m = message(RndisType.RESET_C, 16);
  m.view.setUint32(8, status, true);
  m.view.setUint32(12, 0, true); // addressing reset: no
  return m.bytes;
}

export function keepaliveComplete(requestId: number, status: number): Uint8Array {
  const m = message(RndisType.KEEPALIVE_C, 16);
  m.view.setUint32(8, requestId, true);
  m.view.setUint32(12, status, true);
  return m.bytes;
}

export function indicateStatus(status: number): Uint8Array {
  const m = message(RndisType.INDICATE_STATUS, 20);
  m.view.setUint32(8, status, true);
  m.view.setUint32(12, 0, true); // status_buflen
  m.view.setUint32(16, 0, true); // status_buf_offset
  return m.bytes;
}

/** One per-packet info entry: rndis_per_packet_info (size, type, offset: 12 bytes) + a u32 value. */
export const PPI_U32_SIZE = 16;
/** Per-packet info type of NDIS_TCP_IP_CHECKSUM_PACKET_INFO. */
export const TCPIP_CHKSUM_PKTINFO = 0;

/**
 * RNDIS_PACKET carrying `frame`; with `checksumInfo` (receive flags of NDIS_TCP_IP_CHECKSUM_PACKET_INFO, see
 * rx-checksum.ts) non-zero, one checksum per-packet info goes between the header and the frame.
 */
export function dataPacket(frame: Uint8Array, checksumInfo = 0): Uint8Array {
  const ppi = checksumInfo ? PPI_U32_SIZE : 0;
  const m = message(RndisType.PACKET, RNDIS_PACKET_HEADER + ppi + frame.length);
  m.view.setUint32(8, 36 + ppi, true); // data_offset
  m.view.setUint32(12, frame.length, true);
  if (ppi) {
    m.view.setUint32(28, 36, true); // per_pkt_info_offset
    m.view.setUint32(32, ppi, true); // per_pkt_info_len
    m.view.setUint32(44, PPI_U32_SIZE, true); // size
    m.view.setUint32(48, TCPIP_CHKSUM_PKTINFO, true); // type, internal 0
    m.view.setUint32(52, 12, true); // ppi_offset: the value follows the 12-byte entry header
    m.view.setUint32(56, checksumInfo >>> 0, true);
  }
  m.bytes.set(frame, RNDIS_PACKET_HEADER + ppi);
  return m.bytes;
}

/** A u32 OID value. */
export function u32(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x >>> 0, true);
  return b;
}

/**
 * The offload capabilities object Linux insists on: type 0xA7, revision >= 1, size between 112 and the
 * returned length; all capability fields zero = no transmit offloads (the guest checksums and segments what
 * it sends). Receive checksum results are reported per packet without a capability (rx-checksum.ts).
 * The length follows what the guest asked for (its request carries the header it expects).
 */
export function noOffloads(request: Uint8Array): Uint8Array {
  const asked = request.length >= 4 ? new DataView(request.buffer, request.byteOffset).getUint16(2, true) : 0;
  const size = Math.min(NDIS_OFFLOAD_SIZE, Math.max(NDIS_OFFLOAD_SIZE_6_0, asked));
  const rev = request.length >= 2 && request[1] >= 1 && request[1] <= 3 ? request[1] : 1;
  const b = new Uint8Array(size);
  b[0] = NDIS_OBJECT_TYPE_OFFLOAD; b[1] = rev;
  new DataView(b.buffer).setUint16(2, size, true);
  return b;
}
