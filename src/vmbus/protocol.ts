/** VMBus channel-management protocol numbers and layouts (contract §6, include/linux/hyperv.h). */

export const VMBUS_MESSAGE_CONNECTION_ID = 1;
export const VMBUS_MESSAGE_CONNECTION_ID_4 = 4;
/** HvPostMessage message type of VMBus channel messages (and of the host's SynIC messages). */
export const HV_MESSAGE_TYPE_VMBUS = 1;
/** First channel connection id: 16 + relid keeps clear of the fixed ids 1-4. */
export const CHANNEL_CONNECTION_ID_BASE = 16;
export const MAX_CHANNEL_RELIDS = 2048;

export const enum Msg {
  OFFERCHANNEL = 1, RESCIND_CHANNELOFFER = 2, REQUESTOFFERS = 3, ALLOFFERS_DELIVERED = 4,
  OPENCHANNEL = 5, OPENCHANNEL_RESULT = 6, CLOSECHANNEL = 7, GPADL_HEADER = 8, GPADL_BODY = 9,
  GPADL_CREATED = 10, GPADL_TEARDOWN = 11, GPADL_TORNDOWN = 12, RELID_RELEASED = 13,
  INITIATE_CONTACT = 14, VERSION_RESPONSE = 15, UNLOAD = 16, UNLOAD_RESPONSE = 17,
  TL_CONNECT_REQUEST = 21, MODIFYCHANNEL = 22, TL_CONNECT_RESULT = 23, MODIFYCHANNEL_RESPONSE = 24,
}

export const MSG_NAMES: Record<number, string> = {
  1: 'OFFERCHANNEL', 2: 'RESCIND_CHANNELOFFER', 3: 'REQUESTOFFERS', 4: 'ALLOFFERS_DELIVERED', 5: 'OPENCHANNEL',
  6: 'OPENCHANNEL_RESULT', 7: 'CLOSECHANNEL', 8: 'GPADL_HEADER', 9: 'GPADL_BODY', 10: 'GPADL_CREATED',
  11: 'GPADL_TEARDOWN', 12: 'GPADL_TORNDOWN', 13: 'RELID_RELEASED', 14: 'INITIATE_CONTACT', 15: 'VERSION_RESPONSE',
  16: 'UNLOAD', 17: 'UNLOAD_RESPONSE', 21: 'TL_CONNECT_REQUEST', 22: 'MODIFYCHANNEL', 23: 'TL_CONNECT_RESULT',
  24: 'MODIFYCHANNEL_RESPONSE',
};

/** Minimum sizes of guest->host messages. */
export const GUEST_MESSAGE_MIN_SIZE: Record<number, number> = {
  3: 8, 5: 28, 7: 12, 8: 28, 9: 16, 11: 16, 13: 12, 14: 40, 16: 8, 21: 40, 22: 16,
};

/** Host->guest message sizes. */
export const OFFER_SIZE = 196;

export const VERSION_WS2012 = 0x20004; // WIN8
export const VERSION_WS2012R2 = 0x30000; // WIN8_1
export const VERSION_WS2016 = 0x40000; // WIN10
export const VERSION_WIN10_V4_1 = 0x40001;
export const VERSION_WIN10_V5 = 0x50000;
export const VERSION_WIN10_V5_1 = 0x50001;
export const VERSION_WIN10_V5_2 = 0x50002;
export const VERSION_WIN10_V5_3 = 0x50003;
/** Every version Linux 6.1 offers, newest first (its own order). */
export const SUPPORTED_VERSIONS = [
  VERSION_WIN10_V5_3, VERSION_WIN10_V5_2, VERSION_WIN10_V5_1, VERSION_WIN10_V5,
  VERSION_WIN10_V4_1, VERSION_WS2016, VERSION_WS2012R2, VERSION_WS2012,
] as const;

export function versionString(v: number): string { return `${v >>> 16}.${v & 0xffff}`; }

/** Ring packet types (vmpacket_descriptor.type). */
export const enum PacketType {
  DATA_INBAND = 0x6, DATA_USING_XFER_PAGES = 0x7, DATA_USING_GPA_DIRECT = 0x9, COMP = 0xb,
}
export const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1;
export const PACKET_DESCRIPTOR_SIZE = 16;

/** NTSTATUS-style failure put in GPADL_CREATED / OPENCHANNEL_RESULT (any non-zero fails the guest's call). */
export const STATUS_UNSUCCESSFUL = 0xc0000001;

/** Builds a host->guest channel message of `size` bytes. */
export function message(type: Msg, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  return { bytes, view };
}
