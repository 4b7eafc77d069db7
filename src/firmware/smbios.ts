/**
 * SMBIOS 2.8 tables (DMTF DSP0134) in the BIOS area, where a firmware-less boot leaves them for Linux's DMI scan
 * (drivers/firmware/dmi_scan.c looks for the "_SM_" anchor on a 16-byte boundary in 0xF0000-0xFFFFF).
 *
 * Why it matters: guests identify the machine from it. An enlightened partition presents Hyper-V's identity
 * (system "Microsoft Corporation" / "Virtual Machine"), and Linux then acts as on Hyper-V: ata_piix ignores ATA
 * disks (they come through the IDE accelerator channel of hv_storvsc instead), tools such as dmidecode and
 * virt-what name Hyper-V. An unenlightened partition must NOT match that identity, or its IDE disks vanish.
 */
import { createHash } from 'node:crypto';
import type { GuestMemory } from '../platform/memory.js';
import { SMBIOS_ADDR, SMBIOS_SIZE } from '../platform/layout.js';
import { checksum } from './acpi/tables.js';

export interface SmbiosIdentity {
  biosVendor: string;
  biosVersion: string;
  /** mm/dd/yyyy, as SMBIOS asks. */
  biosDate: string;
  manufacturer: string;
  product: string;
  version: string;
  serial: string;
  /** The machine's UUID ("BIOS GUID"), canonical text form. */
  uuid: string;
  family: string;
  sku: string;
  chassisAssetTag: string;
}

/** This firmware's version and release date (BIOS information). */
export const FIRMWARE_VERSION = '1.0';
const FIRMWARE_DATE = '12/03/2026';

/** What a partition shows: Hyper-V's identity when enlightened, hyperts' own otherwise. */
export function partitionIdentity(o: { enlightened: boolean; uuid: string }): SmbiosIdentity {
  const serial = serialFromUuid(o.uuid);
  const common = { biosVendor: 'hyperts', biosVersion: FIRMWARE_VERSION, biosDate: FIRMWARE_DATE, serial, uuid: o.uuid, chassisAssetTag: serial, family: 'Virtual Machine', sku: 'None' };
  return o.enlightened
    ? { ...common, manufacturer: 'Microsoft Corporation', product: 'Virtual Machine', version: '7.0' }
    : { ...common, manufacturer: 'hyperts', product: 'Emulated PC', version: FIRMWARE_VERSION };
}

/**
 * A stable UUID (version 5 layout, SHA-1 of the name) for a VM without an id of its own: the same VM shows the same
 * UUID on every run, and icount boots repeat exactly (Linux mixes DMI data into its random pool).
 */
export function stableVmUuid(name: string): string {
  const h = createHash('sha1').update(`hyperts-vm:${name}`).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** Hyper-V's serial number shape (digit groups), derived from the UUID so it is stable per VM. */
export function serialFromUuid(uuid: string): string {
  const hex = uuid.replace(/-/g, '');
  let digits = '';
  for (let i = 0; i < hex.length && digits.length < 26; i++) digits += String(Number.parseInt(hex[i], 16) % 10);
  digits = digits.padEnd(26, '0');
  const groups: string[] = [];
  for (let i = 0; i < 24; i += 4) groups.push(digits.slice(i, i + 4));
  return `${groups.join('-')}-${digits.slice(24, 26)}`;
}

const ENTRY_LENGTH = 0x1f;
const TABLE_OFFSET = 0x20;

/** Builds the entry point (at offset 0) and the structure table (at 0x20) for `base`. */
export function buildSmbios(id: SmbiosIdentity, base = SMBIOS_ADDR): Uint8Array {
  const structs: Uint8Array[] = [];
  let handle = 0;
  const add = (type: number, formatted: number[], strings: string[]): void => {
    const enc = strings.map((s) => Buffer.from(sanitize(s), 'latin1'));
    const size = 4 + formatted.length + (enc.length ? enc.reduce((a, s) => a + s.length + 1, 0) + 1 : 2);
    const b = new Uint8Array(size);
    b[0] = type; b[1] = 4 + formatted.length; b[2] = handle & 0xff; b[3] = handle >> 8;
    handle++;
    b.set(formatted, 4);
    let o = 4 + formatted.length;
    for (const s of enc) { b.set(s, o); o += s.length + 1; }
    structs.push(b);
  };
  const u16 = (x: number): number[] => [x & 0xff, (x >> 8) & 0xff];
  const u32 = (x: number): number[] => [...u16(x & 0xffff), ...u16(x >>> 16)];
  const [major, minor] = releaseOf(id.biosVersion);
  // Type 0, BIOS information: characteristics "not supported" (bit 3); extension byte 2 bit 4: a virtual machine.
  add(0, [1, 2, ...u16(0xf000), 3, 0, ...u32(0x08), ...u32(0), 0x01, 0x10, major, minor, 0xff, 0xff],
    [id.biosVendor, id.biosVersion, id.biosDate]);
  // Type 1, system information. Wake-up type 6 = power switch.
  add(1, [1, 2, 3, 4, ...uuidBytes(id.uuid), 6, 5, 6], [id.manufacturer, id.product, id.version, id.serial, id.sku, id.family]);
  // Type 2, baseboard (Hyper-V has one): board type 0x0a = motherboard, feature flag 0x01 = hosting board.
  add(2, [1, 2, 3, 4, 0, 0x01, 0, ...u16(3), 0x0a, 0], [id.manufacturer, id.product, id.version, id.serial]);
  // Type 3, chassis: desktop (3); boot-up, power supply and thermal states safe (3); security none (3).
  add(3, [1, 3, 2, 3, 4, 3, 3, 3, 3, ...u32(0), 0, 0, 0, 0, 5], [id.manufacturer, id.version, id.serial, id.chassisAssetTag, id.sku]);
  add(127, [], []);
  const tableLen = structs.reduce((a, s) => a + s.length, 0);
  const out = new Uint8Array(TABLE_OFFSET + tableLen);
  if (out.length > SMBIOS_SIZE) throw new RangeError('SMBIOS tables exceed their area');
  let o = TABLE_OFFSET;
  for (const s of structs) { out.set(s, o); o += s.length; }
  const v = new DataView(out.buffer);
  out.set(Buffer.from('_SM_'), 0);
  out[5] = ENTRY_LENGTH;
  out[6] = 2; out[7] = 8;
  v.setUint16(8, Math.max(...structs.map((s) => s.length)), true);
  out.set(Buffer.from('_DMI_'), 16);
  v.setUint16(22, tableLen, true);
  v.setUint32(24, base + TABLE_OFFSET, true);
  v.setUint16(28, structs.length, true);
  out[30] = 0x28;
  out[21] = (256 - checksum(out, 16, 15)) & 0xff;
  out[4] = (256 - checksum(out, 0, ENTRY_LENGTH)) & 0xff;
  return out;
}

export function writeSmbios(mem: GuestMemory, id: SmbiosIdentity): void {
  mem.write(SMBIOS_ADDR, buildSmbios(id));
}

/** Strings are NUL-terminated and a table cannot hold an empty one: printable Latin-1, at most 64 bytes. */
function sanitize(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
  return t.length ? t : ' ';
}

/** SMBIOS stores the UUID's first three fields little-endian (2.6 and later). */
function uuidBytes(uuid: string): number[] {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new RangeError(`not a UUID: ${uuid}`);
  const b = Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
  return [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.slice(8)];
}

function releaseOf(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return m ? [Math.min(254, Number(m[1])), Math.min(254, Number(m[2]))] : [0xff, 0xff];
}
