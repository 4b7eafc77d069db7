/**
 * A VM's configuration as the service stores it, and the validation of user input (CLI flags and API
 * bodies) into it. Every rejection names the field and the accepted form.
 */
import { IC_NAMES, type IcName } from '../vsp/ic/integration-services.js';
import { badRequest } from './errors.js';
import { IDE_CONTROLLERS, IDE_LOCATIONS, MAX_SCSI_CONTROLLERS, SCSI_LOCATIONS, type HardwareConfig } from '../platform/hardware.js';

export type ProcessorKind = 'auto' | 'kvm' | 'emulated';

export interface VmConfig {
  name: string;
  processor: ProcessorKind;
  cpus: number;
  memoryBytes: number;
  /** Expose Hyper-V (CPUID leaves, SynIC, VMBus, integration services). */
  enlightened: boolean;
  /** kernel null = the default guest image (hyperts image build); cmdline is appended to its own. */
  boot: { kernel: string | null; initrd: string | null; cmdline: string };
  /** COM1 wired to the service's console (connect-vm, the web console) or left unconnected. */
  com1: 'console' | 'none';
  integrationServices: Record<IcName, boolean>;
  notes: string;
  /** Controllers, drives and network adapters (src/platform/hardware.ts); changed only through the drive commands. */
  hardware: HardwareConfig;
  /** Set-VM -CheckpointType (absent in configurations stored before it existed: Production, Hyper-V's default). */
  checkpointType?: CheckpointType;
}

export const CHECKPOINT_TYPES = ['Production', 'ProductionOnly', 'Standard', 'Disabled'] as const;
export type CheckpointType = typeof CHECKPOINT_TYPES[number];

export const MIN_MEMORY = 64 * 1024 * 1024;
export const MAX_MEMORY = 16 * 1024 ** 3;
export const MAX_CPUS = 64;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function defaultConfig(name: string): VmConfig {
  return {
    name, processor: 'auto', cpus: 1, memoryBytes: 512 * 1024 * 1024, enlightened: true,
    boot: { kernel: null, initrd: null, cmdline: '' }, com1: 'console',
    integrationServices: Object.fromEntries(IC_NAMES.map((n) => [n, true])) as Record<IcName, boolean>,
    notes: '',
    // As Hyper-V's New-VM (Generation 2): one synthetic SCSI controller, no drives.
    hardware: { scsiControllers: 1, drives: [], networkAdapters: [] },
    checkpointType: 'Production',
  };
}

/**
 * A configuration read back from the inventory: ones stored before VMs had hardware get an empty machine
 * (no SCSI controller, so a saved state taken without one restores onto the same device set).
 */
export function migrateConfig(raw: unknown): VmConfig {
  const c = raw as VmConfig & { hardware?: unknown };
  if (c.hardware === undefined || c.hardware === null) return { ...c, hardware: { scsiControllers: 0, drives: [], networkAdapters: [] } };
  validateHardware(c.hardware, c.name);
  return c as VmConfig;
}

/** Throws when a stored hardware description is inconsistent (a hand-edited or damaged inventory). */
export function validateHardware(h: unknown, vm: string): asserts h is HardwareConfig {
  const bad = (why: string): never => { throw new Error(`VM '${vm}': stored hardware configuration is invalid: ${why}`); };
  if (typeof h !== 'object' || h === null) bad('not an object');
  const hw = h as HardwareConfig;
  if (!Number.isInteger(hw.scsiControllers) || hw.scsiControllers < 0 || hw.scsiControllers > MAX_SCSI_CONTROLLERS) bad(`scsiControllers ${hw.scsiControllers}`);
  if (!Array.isArray(hw.drives) || !Array.isArray(hw.networkAdapters)) bad('drives and networkAdapters must be arrays');
  const slots = new Set<string>();
  for (const d of hw.drives) {
    const [ctrls, locs] = d.controllerType === 'scsi' ? [hw.scsiControllers, SCSI_LOCATIONS] : d.controllerType === 'ide' ? [IDE_CONTROLLERS, IDE_LOCATIONS] : [0, 0];
    if (!Number.isInteger(d.controllerNumber) || d.controllerNumber < 0 || d.controllerNumber >= ctrls ||
        !Number.isInteger(d.controllerLocation) || d.controllerLocation < 0 || d.controllerLocation >= locs) bad(`drive at ${d.controllerType} ${d.controllerNumber}:${d.controllerLocation}`);
    if (d.kind !== 'disk' && d.kind !== 'dvd') bad(`drive kind ${String(d.kind)}`);
    if (d.path !== null && typeof d.path !== 'string') bad('drive path');
    const slot = `${d.controllerType}${d.controllerNumber}:${d.controllerLocation}`;
    if (slots.has(slot)) bad(`two drives at ${slot}`);
    slots.add(slot);
  }
}

/** Parses 512M, 1G, 1536MiB or a byte count. */
export function parseMemory(v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw badRequest(`invalid memory size ${v}: give bytes as a positive integer or a size like 512M`);
    return checkMemory(v, String(v));
  }
  if (typeof v !== 'string') throw badRequest('memory must be a size like 512M or 1G');
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(v.trim());
  if (!m) throw badRequest(`invalid memory size '${v}': use a number with an optional K, M or G suffix, e.g. 512M`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return checkMemory(Math.round(parseFloat(m[1]) * mult), v);
}

function checkMemory(bytes: number, shown: string): number {
  if (bytes < MIN_MEMORY) throw badRequest(`memory size ${shown} is too small: a VM needs at least 64M`);
  if (bytes > MAX_MEMORY) throw badRequest(`memory size ${shown} is too large: at most 16G is supported`);
  if (bytes % 4096 !== 0) throw badRequest(`memory size ${shown} must be a multiple of 4K`);
  return bytes;
}

export function validateName(v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) {
    throw badRequest(`invalid VM name ${JSON.stringify(v)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return v;
}

const IC_ALIASES: Record<string, IcName> = { kvp: 'Key-Value Pair Exchange', timesync: 'Time Synchronization', heartbeat: 'Heartbeat', shutdown: 'Shutdown', vss: 'VSS' };

export function icName(v: string): IcName {
  const alias = IC_ALIASES[v.replace(/[^a-z]/gi, '').toLowerCase()];
  if (alias) return alias;
  const n = IC_NAMES.find((x) => x.toLowerCase() === v.toLowerCase() || x.replace(/[^a-z]/gi, '').toLowerCase() === v.replace(/[^a-z]/gi, '').toLowerCase());
  if (!n) throw badRequest(`unknown integration service '${v}'; known: ${IC_NAMES.join(', ')}`);
  return n;
}

/** The settable fields (API body of POST /vms and PATCH /vms/{name}). */
export interface VmSettings {
  name?: string;
  processor?: string;
  cpus?: number;
  memory?: string | number;
  enlightened?: boolean;
  kernel?: string | null;
  initrd?: string | null;
  cmdline?: string;
  com1?: string;
  integrationServices?: Record<string, boolean>;
  notes?: string;
  checkpointType?: string;
}

const FIELDS = new Set(['name', 'processor', 'cpus', 'memory', 'enlightened', 'kernel', 'initrd', 'cmdline', 'com1', 'integrationServices', 'notes', 'checkpointType']);

/** Applies user settings to a configuration; returns the new one and the names of fields that changed. */
export function applySettings(base: VmConfig, input: unknown): { config: VmConfig; changed: string[] } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw badRequest('the request body must be a JSON object of VM settings');
  const s = input as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!FIELDS.has(k)) throw badRequest(`unknown VM setting '${k}'; known: ${[...FIELDS].join(', ')}`);
  const c: VmConfig = structuredClone(base);
  const changed: string[] = [];
  const set = <K extends keyof VmConfig>(field: string, key: K, v: VmConfig[K]): void => {
    if (JSON.stringify(c[key]) !== JSON.stringify(v)) changed.push(field);
    c[key] = v;
  };
  if (s.name !== undefined) set('name', 'name', validateName(s.name));
  if (s.processor !== undefined) {
    if (s.processor !== 'auto' && s.processor !== 'kvm' && s.processor !== 'emulated') throw badRequest(`processor must be auto, kvm or emulated, not ${JSON.stringify(s.processor)}`);
    set('processor', 'processor', s.processor);
  }
  if (s.cpus !== undefined) {
    const n = typeof s.cpus === 'string' ? Number(s.cpus) : s.cpus;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw badRequest(`cpus must be a positive integer, not ${JSON.stringify(s.cpus)}`);
    if (n > MAX_CPUS) throw badRequest(`cpus ${n}: at most ${MAX_CPUS} virtual processors are supported`);
    set('cpus', 'cpus', n);
  }
  if (s.memory !== undefined) set('memory', 'memoryBytes', parseMemory(s.memory));
  if (s.enlightened !== undefined) {
    if (typeof s.enlightened !== 'boolean') throw badRequest('enlightened must be true or false');
    set('enlightened', 'enlightened', s.enlightened);
  }
  const boot = { ...c.boot };
  for (const k of ['kernel', 'initrd'] as const) {
    const v = s[k];
    if (v === undefined) continue;
    if (v !== null && (typeof v !== 'string' || v.length === 0 || v.includes('\0'))) throw badRequest(`${k} must be a file path (or null for the default image)`);
    boot[k] = (v as string | null) || null;
  }
  if (s.cmdline !== undefined) {
    if (typeof s.cmdline !== 'string' || s.cmdline.length > 2048 || s.cmdline.includes('\0')) throw badRequest('cmdline must be a string of at most 2048 characters');
    boot.cmdline = s.cmdline;
  }
  if (c.cpus > 1 && c.processor === 'kvm') throw badRequest(`${c.cpus} processors need the emulated processor for now; set processor to emulated or auto (or cpus to 1)`);
  if (boot.initrd && !boot.kernel) throw badRequest('an initrd needs a kernel too (or set neither to boot the default image)');
  set('boot', 'boot', boot);
  if (s.com1 !== undefined) {
    if (s.com1 !== 'console' && s.com1 !== 'none') throw badRequest(`com1 must be console or none, not ${JSON.stringify(s.com1)}`);
    set('com1', 'com1', s.com1);
  }
  if (s.integrationServices !== undefined) {
    const ics = s.integrationServices;
    if (typeof ics !== 'object' || ics === null || Array.isArray(ics)) throw badRequest('integrationServices must be an object like {"Heartbeat": true}');
    const next = { ...c.integrationServices };
    for (const [k, v] of Object.entries(ics)) {
      if (typeof v !== 'boolean') throw badRequest(`integrationServices.${k} must be true or false`);
      next[icName(k)] = v;
    }
    set('integrationServices', 'integrationServices', next);
  }
  if (s.notes !== undefined) {
    if (typeof s.notes !== 'string' || s.notes.length > 4096) throw badRequest('notes must be a string of at most 4096 characters');
    set('notes', 'notes', s.notes);
  }
  if (s.checkpointType !== undefined) {
    const t = CHECKPOINT_TYPES.find((x) => typeof s.checkpointType === 'string' && x.toLowerCase() === s.checkpointType.toLowerCase());
    if (!t) throw badRequest(`checkpointType must be ${CHECKPOINT_TYPES.join(', ')}, not ${JSON.stringify(s.checkpointType)}`);
    if ((c.checkpointType ?? 'Production') !== t) changed.push('checkpointType');
    c.checkpointType = t;
  }
  return { config: c, changed };
}
