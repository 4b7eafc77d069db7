/**
 * NVSP: the Network VSP protocol spoken over the netvsc VMBus channel (contract §10.1-§10.3). Every message
 * is a u32 type followed by a union; the host always answers with the full 40-byte message because Linux's
 * length checks want at least 28 bytes.
 */

export const NETVSC_CLASS_GUID = 'f8615163-df3e-46c5-913f-f2d2f965ed0e';

export const NVSP_MESSAGE_SIZE = 40;

export const enum NvspType {
  INIT = 1, INIT_COMPLETE = 2,
  SEND_NDIS_VER = 100, SEND_RECV_BUF = 101, SEND_RECV_BUF_COMPLETE = 102, REVOKE_RECV_BUF = 103,
  SEND_SEND_BUF = 104, SEND_SEND_BUF_COMPLETE = 105, REVOKE_SEND_BUF = 106,
  SEND_RNDIS_PKT = 107, SEND_RNDIS_PKT_COMPLETE = 108,
  SEND_NDIS_CONFIG = 125, SEND_VF_ASSOCIATION = 128, SWITCH_DATA_PATH = 129, SUBCHANNEL = 133,
  SEND_INDIRECTION_TABLE = 134,
}

export const enum NvspStatus { SUCCESS = 1, FAIL = 2, TOO_NEW = 3, TOO_OLD = 4, INVALID_RNDIS_PKT = 5, BUSY = 6, UNSUPPORTED = 7 }

/** Versions this host accepts; Linux 6.1 tries them newest first with min = max. */
export const NVSP_VERSIONS = [0x60001, 0x60000, 0x50000, 0x40000, 0x30002, 0x2] as const;

/** Linux's fixed ids for its two buffers. */
export const RECEIVE_BUFFER_ID = 0xcafe;
export const SEND_BUFFER_ID = 0;
/** send_buf_section_index meaning "no send-buffer section: the bytes are in page buffers". */
export const NO_SECTION = 0xffffffff;

/** Receive sub-allocation: one RNDIS message (header + PPIs + a 1514-byte frame) per slot, Hyper-V's default. */
export const RECV_SECTION_SIZE = 1728;
/** Send-buffer section size the host announces (Hyper-V's value). */
export const SEND_SECTION_SIZE = 6144;

/** A fresh 40-byte NVSP message of `type`. */
export function nvsp(type: NvspType): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(NVSP_MESSAGE_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  return { bytes, view };
}

export function initComplete(version: number, ok: boolean): Uint8Array {
  const m = nvsp(NvspType.INIT_COMPLETE);
  m.view.setUint32(4, ok ? version : 0, true);
  m.view.setUint32(8, 0, true); // max_mdl_chain_len
  m.view.setUint32(12, ok ? NvspStatus.SUCCESS : NvspStatus.FAIL, true);
  return m.bytes;
}

/** SEND_RECV_BUF_COMPLETE with one section covering `count` sub-allocations of `size` bytes. */
export function recvBufComplete(status: NvspStatus, size: number, count: number): Uint8Array {
  const m = nvsp(NvspType.SEND_RECV_BUF_COMPLETE);
  m.view.setUint32(4, status, true);
  if (status === NvspStatus.SUCCESS) {
    m.view.setUint32(8, 1, true); // num_sections
    m.view.setUint32(12, 0, true); // offset
    m.view.setUint32(16, size, true);
    m.view.setUint32(20, count, true);
    m.view.setUint32(24, size * count, true); // end_offset
  }
  return m.bytes;
}

export function sendBufComplete(status: NvspStatus, sectionSize: number): Uint8Array {
  const m = nvsp(NvspType.SEND_SEND_BUF_COMPLETE);
  m.view.setUint32(4, status, true);
  m.view.setUint32(8, status === NvspStatus.SUCCESS ? sectionSize : 0, true);
  return m.bytes;
}

export function rndisPacketComplete(status: NvspStatus): Uint8Array {
  const m = nvsp(NvspType.SEND_RNDIS_PKT_COMPLETE);
  m.view.setUint32(4, status, true);
  return m.bytes;
}

/** The NVSP header of a host->guest transfer-page packet (channel_type 0 = data). */
export function rndisPacketHeader(): Uint8Array {
  const m = nvsp(NvspType.SEND_RNDIS_PKT);
  m.view.setUint32(8, NO_SECTION, true);
  return m.bytes;
}

/**
 * The transfer-page extension of a host->guest packet (VM_PKT_DATA_USING_XFER_PAGES): pageset id 0xCAFE,
 * then one {byte_count, byte_offset} range per RNDIS message in the receive buffer.
 */
export function transferPageExtension(ranges: Array<{ offset: number; length: number }>): Uint8Array {
  const ext = new Uint8Array(8 + ranges.length * 8);
  const v = new DataView(ext.buffer);
  v.setUint16(0, RECEIVE_BUFFER_ID, true);
  v.setUint8(2, 0);
  v.setUint32(4, ranges.length, true);
  ranges.forEach((r, i) => { v.setUint32(8 + i * 8, r.length, true); v.setUint32(12 + i * 8, r.offset, true); });
  return ext;
}
