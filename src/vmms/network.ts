/**
 * Virtual switches of the management service (New-VMSwitch, Get-VMSwitch, Remove-VMSwitch) and the
 * validation of network-adapter settings (Add-VMNetworkAdapter, Connect-VMNetworkAdapter). Switches are
 * kept in <data directory>/switches.json, replaced atomically.
 *
 * Kinds: 'NAT' gives each connected VM user-mode NAT through its own passt (DHCP, DNS, outbound TCP/UDP,
 * optional host port mappings); 'Private' joins the adapters of every running VM on it at layer 2 (the
 * service relays frames between the VMs' workers). "Default Switch" (NAT) always exists, as on Hyper-V.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { badRequest, conflict, VmmsError } from './errors.js';
import { parseForward, type PortForward } from '../net/passt.js';
import { formatMac, parseMac, randomHyperVMac } from '../net/mac.js';
import type { NetworkAdapterConfig } from '../platform/hardware.js';
import { MAX_LEGACY_ADAPTERS, type SwitchConfig } from '../platform/assemble-network.js';
import { VirtualSwitch, type SwitchPort } from '../net/switch.js';
import { PasstBackend } from '../net/passt.js';
import { TapBackend } from '../net/tap.js';
import { bridgeName, checkExternalInterface, HostNetworkError, isRoot, tapName } from '../net/host-bridge.js';

export const DEFAULT_SWITCH = 'Default Switch';
/** Hyper-V allows 12 synthetic adapters per VM (8 on Generation 1); we keep Generation 2's limit. */
export const MAX_ADAPTERS = 12;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;

export interface SwitchRecord extends SwitchConfig {
  created: number; notes: string;
  /** External: the host interface the switch's bridge enslaves (Hyper-V's NetAdapterName). */
  netAdapterName?: string;
}

export const switchNotFound = (name: string): VmmsError =>
  new VmmsError(404, 'SwitchNotFound', `no virtual switch named '${name}' (list them with 'hyperts get-vmswitch', create one with 'hyperts new-vmswitch')`);

export class SwitchStore {
  private readonly file: string;
  private switches: SwitchRecord[];

  constructor(dataDir: string) {
    this.file = join(dataDir, 'switches.json');
    this.switches = existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as SwitchRecord[]) : [];
    if (!this.switches.some((s) => s.name === DEFAULT_SWITCH)) {
      this.switches.unshift({ name: DEFAULT_SWITCH, type: 'NAT', forwards: [], created: 0, notes: 'user-mode NAT through passt (DHCP, DNS, outbound TCP/UDP)' });
    }
  }

  list(): SwitchRecord[] { return this.switches.map((s) => structuredClone(s)); }

  find(name: string): SwitchRecord | undefined { return this.switches.find((s) => s.name.toLowerCase() === name.toLowerCase()); }

  get(name: string): SwitchRecord {
    const s = this.find(name);
    if (!s) throw switchNotFound(name);
    return structuredClone(s);
  }

  /**
   * New-VMSwitch body: {name, switchType: 'NAT'|'Private'|'Internal'|'External', natForwards?: ['8080:80', ...],
   * netAdapterName? (External), notes?}. `prepare` makes the host side (bridge) before the switch is kept.
   */
  create(input: unknown, prepare?: (rec: SwitchRecord) => void): SwitchRecord {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw badRequest('the request body must be a JSON object like {"name": "lab", "switchType": "Private"}');
    const b = input as Record<string, unknown>;
    for (const k of Object.keys(b)) if (!['name', 'switchType', 'natForwards', 'netAdapterName', 'notes'].includes(k)) throw badRequest(`unknown switch setting '${k}'; known: name, switchType, natForwards, netAdapterName, notes`);
    const name = switchName(b.name);
    if (this.find(name)) throw new VmmsError(409, 'DuplicateName', `a virtual switch named '${name}' already exists`);
    const type = b.switchType ?? 'Private';
    if (type !== 'NAT' && type !== 'Private' && type !== 'Internal' && type !== 'External') throw badRequest(`switchType must be NAT, Private, Internal or External, not ${JSON.stringify(type)}`);
    let forwards: PortForward[] = [];
    if (b.natForwards !== undefined) {
      if (type !== 'NAT') throw badRequest('natForwards apply to NAT switches only');
      if (!Array.isArray(b.natForwards) || b.natForwards.some((x) => typeof x !== 'string')) throw badRequest('natForwards must be a list of "HOSTPORT:GUESTPORT" strings');
      try { forwards = (b.natForwards as string[]).map((x) => parseForward(x)); } catch (e) { throw badRequest((e as Error).message); }
    }
    if (b.notes !== undefined && (typeof b.notes !== 'string' || b.notes.length > 1024)) throw badRequest('notes must be a string of at most 1024 characters');
    const rec: SwitchRecord = { name, type, forwards, created: Date.now(), notes: (b.notes as string | undefined) ?? '' };
    if (type === 'External') {
      if (typeof b.netAdapterName !== 'string' || !b.netAdapterName) throw badRequest('an External switch is bridged to a host interface: give netAdapterName (--net-adapter-name IF; see \'ip link\')');
      rec.netAdapterName = b.netAdapterName;
    } else if (b.netAdapterName !== undefined) throw badRequest('netAdapterName applies to External switches only');
    if (type === 'Internal' || type === 'External') {
      if (!isRoot()) {
        throw new VmmsError(403, 'RootRequired', `an ${type} switch needs root: the service creates a Linux bridge and TAP devices on the host. ` +
          'Run the management service as root (sudo hyperts serve), or use a NAT or Private switch, which need no root');
      }
      rec.bridge = bridgeName(name);
      if (this.switches.some((s) => s.bridge === rec.bridge)) throw new VmmsError(409, 'DuplicateName', `switch name '${name}' maps to the same host bridge as another switch; pick another name`);
      if (rec.netAdapterName) {
        if (this.switches.some((s) => s.netAdapterName === rec.netAdapterName)) throw conflict(`host interface '${rec.netAdapterName}' is already bridged by another External switch`);
        try { checkExternalInterface(rec.netAdapterName, rec.bridge); } catch (e) { throw badRequest((e as Error).message); }
      }
    }
    if (prepare) {
      try { prepare(rec); } catch (e) { throw e instanceof HostNetworkError ? conflict(`cannot set up switch '${name}' on the host: ${e.message}`) : e; }
    }
    this.switches.push(rec);
    this.persist();
    return structuredClone(rec);
  }

  remove(name: string): void {
    const s = this.get(name);
    if (s.name === DEFAULT_SWITCH) throw conflict(`'${DEFAULT_SWITCH}' cannot be removed`);
    this.switches = this.switches.filter((x) => x.name !== s.name);
    this.persist();
  }

  /** Temp file, fsync, rename, fsync the directory: a crash leaves the old or the new list, never half. */
  private persist(): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    try { writeFileSync(fd, JSON.stringify(this.switches.filter((s) => s.created !== 0 || s.name !== DEFAULT_SWITCH), null, 2) + '\n'); fsyncSync(fd); } finally { closeSync(fd); }
    renameSync(tmp, this.file);
    const d = openSync(dirname(this.file), 'r');
    try { fsyncSync(d); } finally { closeSync(d); }
  }
}

function switchName(v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) throw badRequest(`invalid switch name ${JSON.stringify(v)}: use 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit`);
  return v;
}

/** Add-VMNetworkAdapter body: {name?, switchName?, staticMacAddress?, isLegacy?}. */
export function newAdapter(input: unknown, existing: NetworkAdapterConfig[], switches: SwitchStore): NetworkAdapterConfig {
  const b = (input ?? {}) as Record<string, unknown>;
  if (typeof b !== 'object' || Array.isArray(b)) throw badRequest('the request body must be a JSON object');
  for (const k of Object.keys(b)) if (!['name', 'switchName', 'staticMacAddress', 'isLegacy'].includes(k)) throw badRequest(`unknown adapter setting '${k}'; known: name, switchName, staticMacAddress, isLegacy`);
  if (b.isLegacy !== undefined && typeof b.isLegacy !== 'boolean') throw badRequest('isLegacy must be true or false');
  const legacy = b.isLegacy === true;
  if (legacy && existing.filter((a) => a.legacy).length >= MAX_LEGACY_ADAPTERS) throw conflict(`a VM has at most ${MAX_LEGACY_ADAPTERS} legacy network adapters`);
  if (existing.length >= MAX_ADAPTERS) throw conflict(`a VM has at most ${MAX_ADAPTERS} network adapters`);
  const base = legacy ? 'Legacy Network Adapter' : 'Network Adapter';
  const taken = (n: string): boolean => existing.some((a) => a.name.toLowerCase() === n.toLowerCase());
  let name: string;
  if (b.name !== undefined) name = switchName(b.name);
  else { name = base; for (let i = 2; taken(name); i++) name = `${base} ${i}`; }
  if (existing.some((a) => a.name.toLowerCase() === name.toLowerCase())) throw new VmmsError(409, 'DuplicateName', `the VM already has a network adapter named '${name}' (use --name to pick another)`);
  let sw: string | null = null;
  if (b.switchName !== undefined && b.switchName !== null) sw = switches.get(String(b.switchName)).name;
  let mac = randomHyperVMac();
  if (b.staticMacAddress !== undefined) {
    try { mac = formatMac(parseMac(String(b.staticMacAddress))); } catch (e) { throw badRequest((e as Error).message); }
  }
  if (existing.some((a) => a.macAddress === mac)) throw new VmmsError(409, 'DuplicateMac', `the VM already has an adapter with MAC ${mac}`);
  return { name, legacy, macAddress: mac, switchName: sw };
}

/** The switch configurations a VM's adapters need in its worker. */
export function switchesFor(adapters: NetworkAdapterConfig[], store: SwitchStore): SwitchConfig[] {
  const out: SwitchConfig[] = [];
  for (const a of adapters) {
    if (!a.switchName || out.some((s) => s.name === a.switchName)) continue;
    const s = store.find(a.switchName);
    if (s) out.push({ name: s.name, type: s.type, forwards: s.forwards, ...(s.bridge ? { bridge: s.bridge } : {}) });
  }
  return out;
}

/**
 * Switches live in the service, not in the VMs' workers (which run sandboxed, without a network): one
 * switch per Private switch with a port per running VM, and one per VM per NAT switch with its passt. The
 * service carries frames between those ports and the workers' local switches.
 */
export class PrivateRelay {
  private readonly switches = new Map<string, VirtualSwitch>();
  private readonly ports = new Map<string, Map<string, SwitchPort>>();

  private readonly backends = new Map<string, Array<{ stop(): void }>>();

  /**
   * Plug VM `vmId`'s worker into switch `cfg`; `send` hands frames to that worker, `link` its uplink state.
   * A Private switch is shared by every VM on it; a NAT switch gets a passt of its own per VM (passt serves
   * one guest), run here because a sandboxed worker has no network.
   */
  attach(vmId: string, cfg: SwitchConfig, send: (frame: Uint8Array) => void, link: (up: boolean) => void, log: (m: string) => void, event?: (m: string) => void): void {
    const nat = cfg.type === 'NAT';
    const tap = cfg.type === 'Internal' || cfg.type === 'External';
    // NAT and TAP switches get a switch of their own per VM (one passt / one TAP per VM); the host joins them.
    const key = nat || tap ? `${vmId}\0${cfg.name.toLowerCase()}` : cfg.name.toLowerCase();
    let mine = this.ports.get(vmId);
    if (!mine) { mine = new Map(); this.ports.set(vmId, mine); }
    if (mine.has(cfg.name.toLowerCase())) return;
    let sw = this.switches.get(key);
    if (!sw) { sw = new VirtualSwitch(cfg.name); this.switches.set(key, sw); }
    mine.set(cfg.name.toLowerCase(), sw.attach({ deliver: send, linkChanged: link }, vmId));
    if (nat || tap) {
      const b = nat ? new PasstBackend(sw, { forwards: cfg.forwards, log, event })
        : new TapBackend(sw, { bridge: cfg.bridge ?? bridgeName(cfg.name), tap: tapName(vmId, cfg.name), log, event });
      b.start();
      this.backends.set(vmId, [...(this.backends.get(vmId) ?? []), b]);
    }
  }

  /** A frame a VM's worker sent towards Private switch `name`. */
  fromWorker(vmId: string, name: string, frame: Uint8Array): void {
    this.ports.get(vmId)?.get(name.toLowerCase())?.transmit(frame);
  }

  /** The VM stopped: unplug it everywhere. */
  detachVm(vmId: string): void {
    for (const b of this.backends.get(vmId) ?? []) b.stop();
    this.backends.delete(vmId);
    for (const k of [...this.switches.keys()]) if (k.startsWith(`${vmId}\0`)) this.switches.delete(k);
    for (const p of this.ports.get(vmId)?.values() ?? []) p.detach();
    this.ports.delete(vmId);
  }
}
