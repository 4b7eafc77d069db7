/**
 * storvsc/storvsp wire format (Linux drivers/scsi/storvsc_drv.c; contract §9): every message in either
 * direction is a 64-byte vstor_packet; EXECUTE_SRB carries a vmscsi_request at offset 12.
 */

/** Hyper-V's synthetic SCSI controller class. */
export const SCSI_CONTROLLER_CLASS = 'ba6163d9-04a1-4d29-b605-72e2ffb1dc7f';
/**
 * Hyper-V's IDE accelerator: one disk of the emulated IDE controller offered over storvsc as well. Linux does not
 * scan it; it adds the device at target = bytes 4-5 of the instance GUID, LUN 0 (storvsc_drv.c, storvsc_probe).
 */
export const IDE_ACCELERATOR_CLASS = '32412632-86cb-44a2-9b5c-50d1417354f5';
/** Channel property flag of an IDE accelerator channel (vmstorage_channel_properties.flags). */
export const STORAGE_CHANNEL_EMULATED_IDE_FLAG = 0x2;

export const enum VstorOp {
  COMPLETE_IO = 1, REMOVE_DEVICE = 2, EXECUTE_SRB = 3, RESET_LUN = 4, RESET_ADAPTER = 5, RESET_BUS = 6,
  BEGIN_INITIALIZATION = 7, END_INITIALIZATION = 8, QUERY_PROTOCOL_VERSION = 9, QUERY_PROPERTIES = 10,
  ENUMERATE_BUS = 11, FCHBA_DATA = 12, CREATE_SUB_CHANNELS = 13,
}

export const VSTOR_PACKET_SIZE = 64;
/** Pre-WIN8 guests send a vmscsi_request without the 12-byte win8 extension (52 bytes of packet). */
export const VSTOR_PACKET_SIZE_PRE_WIN8 = 52;
export const REQUEST_COMPLETION_FLAG = 1;

/** Protocol versions (major << 8 | minor) Linux 6.1 tries, newest first: WIN10, WIN8.1, WIN8. */
export const PROTOCOL_WIN10 = 0x0602;
export const PROTOCOL_WIN8_1 = 0x0600;
export const PROTOCOL_WIN8 = 0x0501;
export const SUPPORTED_PROTOCOLS: readonly number[] = [PROTOCOL_WIN10, PROTOCOL_WIN8_1, PROTOCOL_WIN8];

/** vstor_packet.status values the guest checks (0 = success; anything else refuses). */
export const VSTOR_STATUS_SUCCESS = 0;
export const VSTOR_STATUS_INVALID_DEVICE_STATE = 0xc0000184;
export const VSTOR_STATUS_REVISION_MISMATCH = 0xc0000059;

/** SRB status (srb_status byte). */
export const enum SrbStatus {
  SUCCESS = 0x01, ABORTED = 0x02, ERROR = 0x04, INVALID_REQUEST = 0x06, NO_DEVICE = 0x08,
  SELECTION_TIMEOUT = 0x0a, DATA_OVERRUN = 0x12, INVALID_LUN = 0x20,
}
export const SRB_STATUS_AUTOSENSE_VALID = 0x80;

/** vm_srb.data_in. */
export const enum SrbDirection { WRITE = 0, READ = 1, UNKNOWN = 2 }

/** Offsets inside the 64-byte vstor_packet. */
export const Off = {
  operation: 0, flags: 4, status: 8,
  // QUERY_PROTOCOL_VERSION
  majorMinor: 12, revision: 14,
  // QUERY_PROPERTIES reply (vmstorage_channel_properties)
  maxChannelCount: 16, propFlags: 20, maxTransferBytes: 24,
  // EXECUTE_SRB (vmscsi_request)
  srbLength: 12, srbStatus: 14, scsiStatus: 15, portNumber: 16, pathId: 17, targetId: 18, lun: 19,
  cdbLength: 20, senseInfoLength: 21, dataIn: 22, dataTransferLength: 24, cdb: 28, senseData: 28,
  srbFlags: 52,
  // CREATE_SUB_CHANNELS
  subChannelCount: 12,
} as const;

export const MAX_CDB_LENGTH = 16;
/** The sense area of vm_srb (STORVSC_SENSE_BUFFER_SIZE). */
export const MAX_SENSE_LENGTH = 20;

/**
 * Largest transfer per request we advertise: Linux derives max_sectors and its scatter list size from it.
 * 1 MiB (contract range 512 KiB-2 MiB): the guest's own per-request work dominates on the emulated processor,
 * so a 1 MiB request going out as one SRB instead of two cut dd's guest time per MiB by about a quarter.
 */
export const MAX_TRANSFER_BYTES = 0x100000;

/**
 * Largest guest packet: descriptor (16) + GPA-direct header (8) + one range header (8) + a PFN per page of
 * the largest transfer plus one for a misaligned start + the 64-byte vstor_packet, rounded up.
 */
export const MAX_GUEST_PACKET = 16 + 8 + 8 + 8 * (MAX_TRANSFER_BYTES / 4096 + 1) + VSTOR_PACKET_SIZE + 64;

/** Addressing Linux uses for Hyper-V's SCSI locations: channel (path) 0, target 0, LUN = location. */
export const LOCATION_PATH = 0;
export const LOCATION_TARGET = 0;

export function vstorPacket(op: VstorOp, status = 0): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(VSTOR_PACKET_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(Off.operation, op, true);
  view.setUint32(Off.status, status, true);
  return { bytes, view };
}
