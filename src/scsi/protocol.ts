/**
 * SCSI protocol numbers (SPC-4, SBC-3, MMC-5) shared by every transport: storvsp's SRBs and ATAPI packets
 * under IDE. Only constants and byte layouts here; the command logic lives in disk-target.ts.
 */

export const enum Op {
  TEST_UNIT_READY = 0x00, REQUEST_SENSE = 0x03, READ_6 = 0x08, WRITE_6 = 0x0a, INQUIRY = 0x12,
  MODE_SELECT_6 = 0x15, MODE_SENSE_6 = 0x1a, START_STOP_UNIT = 0x1b, PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e,
  READ_CAPACITY_10 = 0x25, READ_10 = 0x28, WRITE_10 = 0x2a, VERIFY_10 = 0x2f, SYNCHRONIZE_CACHE_10 = 0x35,
  READ_TOC = 0x43, GET_CONFIGURATION = 0x46, GET_EVENT_STATUS_NOTIFICATION = 0x4a, READ_DISC_INFORMATION = 0x51,
  UNMAP = 0x42, MODE_SELECT_10 = 0x55, MODE_SENSE_10 = 0x5a,
  READ_16 = 0x88, WRITE_16 = 0x8a, VERIFY_16 = 0x8f, SYNCHRONIZE_CACHE_16 = 0x91, WRITE_SAME_16 = 0x93,
  SERVICE_ACTION_IN_16 = 0x9e, REPORT_LUNS = 0xa0, READ_12 = 0xa8, WRITE_12 = 0xaa,
}

/** SERVICE ACTION IN(16) service action of READ CAPACITY(16). */
export const SAI_READ_CAPACITY_16 = 0x10;

/** SAM status byte. */
export const enum ScsiStatus { GOOD = 0x00, CHECK_CONDITION = 0x02, BUSY = 0x08, RESERVATION_CONFLICT = 0x18, TASK_ABORTED = 0x40 }

export const enum SenseKey {
  NO_SENSE = 0x0, RECOVERED_ERROR = 0x1, NOT_READY = 0x2, MEDIUM_ERROR = 0x3, HARDWARE_ERROR = 0x4,
  ILLEGAL_REQUEST = 0x5, UNIT_ATTENTION = 0x6, DATA_PROTECT = 0x7, ABORTED_COMMAND = 0xb,
}

/** Additional sense code and qualifier, packed as (asc << 8) | ascq. */
export const enum Asc {
  NO_ADDITIONAL = 0x0000,
  WRITE_ERROR = 0x0c00,
  UNRECOVERED_READ_ERROR = 0x1100,
  PARAMETER_LIST_LENGTH_ERROR = 0x1a00,
  INVALID_COMMAND_OPCODE = 0x2000,
  LBA_OUT_OF_RANGE = 0x2100,
  INVALID_FIELD_IN_CDB = 0x2400,
  LUN_NOT_SUPPORTED = 0x2500,
  INVALID_FIELD_IN_PARAMETER_LIST = 0x2600,
  WRITE_PROTECTED = 0x2700,
  MEDIUM_MAY_HAVE_CHANGED = 0x2800,
  POWER_ON_RESET = 0x2900,
  CAPACITY_DATA_CHANGED = 0x2a09,
  SAVING_PARAMETERS_NOT_SUPPORTED = 0x3900,
  MEDIUM_NOT_PRESENT = 0x3a00,
  REPORTED_LUNS_DATA_CHANGED = 0x3f0e,
  INTERNAL_TARGET_FAILURE = 0x4400,
  INCOMPATIBLE_MEDIUM = 0x3000,
}

/** Fixed-format sense data is 18 bytes (response code 0x70, additional length 10). */
export const FIXED_SENSE_LENGTH = 18;

/** Fixed-format sense data (SPC-4 4.5.3). `info` goes in the INFORMATION field (VALID bit set) when given. */
export function fixedSense(key: SenseKey, asc: Asc, info?: number): Uint8Array {
  const s = new Uint8Array(FIXED_SENSE_LENGTH);
  s[0] = 0x70 | (info !== undefined ? 0x80 : 0);
  s[2] = key & 0x0f;
  if (info !== undefined) new DataView(s.buffer).setUint32(3, info >>> 0);
  s[7] = FIXED_SENSE_LENGTH - 8;
  s[12] = (asc >> 8) & 0xff;
  s[13] = asc & 0xff;
  return s;
}

/** Peripheral device types (INQUIRY byte 0, bits 0-4). */
export const enum DeviceType { DISK = 0x00, CDROM = 0x05, NO_DEVICE = 0x1f }
/** INQUIRY byte 0 for "target present, no logical unit here" (qualifier 3, type 0x1F). */
export const INQUIRY_NO_LUN = 0x7f;

/** VPD pages. */
export const enum Vpd {
  SUPPORTED_PAGES = 0x00, UNIT_SERIAL = 0x80, DEVICE_IDENTIFICATION = 0x83, BLOCK_LIMITS = 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS = 0xb1, LOGICAL_BLOCK_PROVISIONING = 0xb2,
}

/** Mode pages. */
export const enum ModePage { CACHING = 0x08, CONTROL = 0x0a, ALL = 0x3f }

/** Standard INQUIRY data length we return (SPC-4 minimum 36 + version descriptors). */
export const STANDARD_INQUIRY_LENGTH = 96;
/** INQUIRY version byte: SPC-4 (also makes Linux try READ CAPACITY(16) first). */
export const SPC_VERSION = 0x06;

/** Largest UNMAP/WRITE SAME count we advertise in VPD 0xB0 (blocks) and the most UNMAP descriptors. */
export const MAX_UNMAP_BLOCKS = 0x40000;
export const MAX_UNMAP_DESCRIPTORS = 256;
