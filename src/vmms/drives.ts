/**
 * The drive slots of a VM's hardware (Add-/Remove-/Get-VMHardDiskDrive, Add-VMScsiController, Set-VMDvdDrive)
 * as pure functions over a HardwareConfig, and the validation of user input for them. Every rejection names
 * the slot or field and the accepted form.
 */
import { isAbsolute, normalize, resolve } from 'node:path';
import { IDE_CONTROLLERS, IDE_LOCATIONS, MAX_SCSI_CONTROLLERS, SCSI_LOCATIONS, type DriveConfig, type HardwareConfig } from '../platform/hardware.js';
import { VmmsError, badRequest } from './errors.js';

export type ControllerType = DriveConfig['controllerType'];

/** Get-VMHardDiskDrive / Get-VMDvdDrive's view of one drive. */
export interface DriveView {
  vmName: string;
  controllerType: 'SCSI' | 'IDE';
  controllerNumber: number;
  controllerLocation: number;
  kind: 'disk' | 'dvd';
  path: string | null;
  /** Virtual size and size on the host of the file (null when unknown, e.g. the file is missing). */
  sizeBytes?: number | null;
  fileSizeBytes?: number | null;
}

export const slotName = (d: Pick<DriveConfig, 'controllerType' | 'controllerNumber' | 'controllerLocation'>): string =>
  `${d.controllerType.toUpperCase()} ${d.controllerNumber}:${d.controllerLocation}`;

export function controllerType(v: unknown): ControllerType {
  if (typeof v === 'string' && /^(scsi|ide)$/i.test(v)) return v.toLowerCase() as ControllerType;
  throw badRequest(`controllerType must be SCSI or IDE, not ${JSON.stringify(v)}`);
}

/** An integer field given as a number or a decimal string (CLI and JSON bodies alike). */
export function intField(v: unknown, field: string, below: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= below) throw badRequest(`${field} must be an integer from 0 to ${below - 1}, not ${JSON.stringify(v)}`);
  return n;
}

/** Sizes as Hyper-V writes them (10GB, 512MB, 1TB; binary multiples) or plain byte counts. */
export function parseSizeBytes(v: unknown, field: string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw badRequest(`${field} must be a positive number of bytes or a size like 10GB, not ${v}`);
    return v;
  }
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(v.trim()) : null;
  if (!m) throw badRequest(`invalid ${field} ${JSON.stringify(v)}: give bytes or a size like 512MB, 10GB or 1TB`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const n = Math.round(parseFloat(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0) throw badRequest(`invalid ${field} ${JSON.stringify(v)}: it must be more than 0 bytes`);
  return n;
}

/**
 * A file path an API client gave. Relative paths are taken inside `base` (the default virtual hard disk
 * folder, as Hyper-V does); the result is absolute and normalized.
 */
export function clientPath(v: unknown, field: string, base: string): string {
  if (typeof v !== 'string' || !v || v.includes('\0') || v.length > 4096) throw badRequest(`${field} must be a file path`);
  return normalize(isAbsolute(v) ? v : resolve(base, v));
}

function limits(hw: HardwareConfig, t: ControllerType): { controllers: number; locations: number } {
  return t === 'scsi' ? { controllers: hw.scsiControllers, locations: SCSI_LOCATIONS } : { controllers: IDE_CONTROLLERS, locations: IDE_LOCATIONS };
}

export interface SlotRequest { controllerType: ControllerType; controllerNumber?: number; controllerLocation?: number }

/** The slot a new drive goes to: the one asked for (checked free), else the first free one (controller 0 first). */
export function chooseSlot(vm: string, hw: HardwareConfig, req: SlotRequest): { controllerNumber: number; controllerLocation: number } {
  const t = req.controllerType;
  const { controllers, locations } = limits(hw, t);
  if (t === 'scsi' && controllers === 0) throw new VmmsError(409, 'NoController', `VM '${vm}' has no SCSI controller (add one with 'hyperts add-vmscsicontroller ${vm}' while it is off)`);
  if (req.controllerNumber !== undefined && req.controllerNumber >= controllers) {
    throw badRequest(`VM '${vm}' has ${controllers} ${t.toUpperCase()} controller(s), numbered 0 to ${controllers - 1}; there is no controller ${req.controllerNumber}` +
      (t === 'scsi' && controllers < MAX_SCSI_CONTROLLERS ? ` (add-vmscsicontroller ${vm} adds one)` : ''));
  }
  const used = (n: number, l: number): DriveConfig | undefined => hw.drives.find((d) => d.controllerType === t && d.controllerNumber === n && d.controllerLocation === l);
  if (req.controllerLocation !== undefined) {
    if (req.controllerLocation >= locations) throw badRequest(`controllerLocation must be below ${locations} on an ${t.toUpperCase()} controller`);
    const n = req.controllerNumber ?? 0;
    const d = used(n, req.controllerLocation);
    if (d) throw new VmmsError(409, 'SlotInUse', `${slotName(d)} of VM '${vm}' is already in use by ${d.kind === 'dvd' ? 'a DVD drive' : `'${d.path}'`} (remove that drive first, or pick another --controller-location)`);
    return { controllerNumber: n, controllerLocation: req.controllerLocation };
  }
  const numbers = req.controllerNumber !== undefined ? [req.controllerNumber] : [...Array(controllers).keys()];
  for (const n of numbers) for (let l = 0; l < locations; l++) if (!used(n, l)) return { controllerNumber: n, controllerLocation: l };
  throw new VmmsError(409, 'NoFreeSlot', `every ${t.toUpperCase()} location of VM '${vm}'${req.controllerNumber !== undefined ? ` on controller ${req.controllerNumber}` : ''} is in use` +
    (t === 'scsi' && controllers < MAX_SCSI_CONTROLLERS ? ` (add-vmscsicontroller ${vm} adds a controller)` : ''));
}

/** A copy of `hw` with `drive` added (its slot already chosen). */
export function withDrive(hw: HardwareConfig, drive: DriveConfig): HardwareConfig {
  const drives = [...hw.drives, drive].sort((a, b) => a.controllerType.localeCompare(b.controllerType) || a.controllerNumber - b.controllerNumber || a.controllerLocation - b.controllerLocation);
  return { ...structuredClone(hw), drives };
}

export function driveAt(hw: HardwareConfig, t: ControllerType, n: number, l: number): DriveConfig | undefined {
  return hw.drives.find((d) => d.controllerType === t && d.controllerNumber === n && d.controllerLocation === l);
}

export function withoutDrive(hw: HardwareConfig, drive: DriveConfig): HardwareConfig {
  return { ...structuredClone(hw), drives: hw.drives.filter((d) => !(d.controllerType === drive.controllerType && d.controllerNumber === drive.controllerNumber && d.controllerLocation === drive.controllerLocation)) };
}

export function withScsiController(vm: string, hw: HardwareConfig): HardwareConfig {
  if (hw.scsiControllers >= MAX_SCSI_CONTROLLERS) throw new VmmsError(409, 'TooManyControllers', `VM '${vm}' already has ${MAX_SCSI_CONTROLLERS} SCSI controllers, the most a VM can have`);
  return { ...structuredClone(hw), scsiControllers: hw.scsiControllers + 1 };
}

export const hasDisks = (hw: HardwareConfig): boolean => hw.drives.some((d) => d.kind === 'disk');

export function driveView(vmName: string, d: DriveConfig): DriveView {
  return { vmName, controllerType: d.controllerType === 'scsi' ? 'SCSI' : 'IDE', controllerNumber: d.controllerNumber, controllerLocation: d.controllerLocation, kind: d.kind, path: d.path };
}
