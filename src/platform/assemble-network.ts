/**
 * Network part of partition assembly: the synthetic adapters of a HardwareConfig, offered on the VM's
 * VMBus, and the legacy ones (emulated DEC 21140s on the Gen 1 PCI bus), each plugged into the virtual
 * switch it names. Switches are Hyper-V's kinds: 'NAT' (an uplink
 * through passt: DHCP, DNS, outbound NAT, host port mappings) and 'Private' (VMs of this host only).
 */
import type { VmbusHost, VmbusDevice } from '../vmbus/host.js';
import type { HardwareConfig, NetworkAdapterConfig } from './hardware.js';
import { NetvspAdapter, type NetvspState } from '../vsp/netvsp/netvsp.js';
import { VirtualSwitch, type SwitchPort } from '../net/switch.js';
import { PasstBackend, type PortForward } from '../net/passt.js';
import { parseMac } from '../net/mac.js';
import { Tulip, LEGACY_NIC_PCI_DEVICE, type TulipState } from '../devices/tulip.js';
import type { PciFunction } from '../devices/pci/function.js';
import type { GuestMemory } from './memory.js';
import type { VirtualClock } from './clock.js';

/** Hyper-V allows 4 legacy network adapters per VM. */
export const MAX_LEGACY_ADAPTERS = 4;

/** What legacy adapters need from the partition: guest memory for DMA, the clock, and a PCI slot. */
export interface LegacyNicHost {
  memory: GuestMemory;
  clock: VirtualClock;
  /** Plug a function in as PCI device `dev` (function 0) with INTA# routed by the _PRT. */
  addPciFunction(fn: PciFunction, dev: number): void;
}

export interface SwitchConfig {
  name: string;
  /**
   * 'NAT': through passt to the host's network; 'Private': a layer-2 segment without an uplink; 'Internal' /
   * 'External': a host bridge (with a host interface enslaved for External) that VMs join through TAP devices
   * the management service owns (root only).
   */
  type: 'NAT' | 'Private' | 'Internal' | 'External';
  /** Internal/External: the host bridge of the switch. */
  bridge?: string;
  /** Host->guest port mappings (NAT only), like Add-NetNatStaticMapping. */
  forwards?: PortForward[];
  /**
   * The switch lives outside this process (the management service runs passt and joins VMs; a sandboxed
   * worker may not): frames go through the `relay` and the link state comes from `setLink`.
   */
  relayed?: boolean;
}

/** The switches a partition can reach: its own (from SwitchConfig) or shared ones a service hands in. */
export interface SwitchProvider {
  get(name: string): VirtualSwitch | undefined;
}

export interface NetworkAssembly {
  adapters: Array<{ config: NetworkAdapterConfig; adapter: NetvspAdapter; device: VmbusDevice; port: SwitchPort | null }>;
  /** Legacy adapters (DEC 21140 on the PCI bus). */
  legacyAdapters: Array<{ config: NetworkAdapterConfig; nic: Tulip; port: SwitchPort | null }>;
  switches: Map<string, VirtualSwitch>;
  backends: PasstBackend[];
  /**
   * Connect-VMNetworkAdapter / Disconnect-VMNetworkAdapter while running: the guest sees link up/down.
   * `config` describes a switch this VM did not know at start.
   */
  connect(adapterName: string, switchName: string | null, config?: SwitchConfig): void;
  /** Add-VMNetworkAdapter while running: a new netvsp channel is offered and the guest gets a new interface. */
  add(adapter: NetworkAdapterConfig, config?: SwitchConfig): NetworkAssembly['adapters'][number];
  /** Remove-VMNetworkAdapter while running: the channel is rescinded and the guest loses the interface. */
  remove(adapterName: string): void;
  /** A frame relayed from another VM on a Private switch (the management service carries them). */
  inject(switchName: string, frame: Uint8Array): void;
  /** Link state of a relayed switch's uplink (its passt runs in the management service). */
  setLink(switchName: string, up: boolean): void;
  /** Stop backends (passt processes) and unplug every adapter. */
  stop(): void;
  /** Saved state: each adapter's protocol state, by MAC (null: no adapters). */
  saveState(): NetworkState | null;
  /** After the VMBus host was restored (channels reopened). */
  restoreState(s: NetworkState | null): void;
}

export class NetworkConfigError extends Error {}

export interface NetworkState {
  adapters: Array<{ mac: string; state: NetvspState }>;
  /** Present when the VM has legacy adapters. */
  legacy?: Array<{ mac: string; state: TulipState }>;
}

export function assembleNetwork(vmbus: VmbusHost | null, hardware: HardwareConfig | undefined, switchConfigs: SwitchConfig[] = [],
  o: { log?: (m: string) => void; shared?: SwitchProvider; relay?: (switchName: string, frame: Uint8Array) => void; legacyHost?: LegacyNicHost } = {}): NetworkAssembly {
  const log = o.log ?? (() => {});
  const switches = new Map<string, VirtualSwitch>();
  const backends: PasstBackend[] = [];
  const relays = new Map<string, SwitchPort>();
  const adapters: NetworkAssembly['adapters'] = [];
  const legacyAdapters: NetworkAssembly['legacyAdapters'] = [];
  const synthetic = (hardware?.networkAdapters ?? []).filter((a) => !a.legacy);
  const legacy = (hardware?.networkAdapters ?? []).filter((a) => a.legacy);
  if (legacy.length > MAX_LEGACY_ADAPTERS) throw new NetworkConfigError(`a VM has at most ${MAX_LEGACY_ADAPTERS} legacy network adapters; remove ${legacy.length - MAX_LEGACY_ADAPTERS}`);
  if (legacy.length > 0 && !o.legacyHost) throw new NetworkConfigError('legacy network adapters need the Gen 1 PCI bus, which this partition does not offer');
  if (synthetic.length > 0 && !vmbus) throw new NetworkConfigError('synthetic network adapters need an enlightened VM (VMBus); turn enlightenments on');
  const names = new Set<string>();
  for (const s of switchConfigs) {
    if (names.has(s.name.toLowerCase())) throw new NetworkConfigError(`virtual switch '${s.name}' is defined twice`);
    names.add(s.name.toLowerCase());
  }
  const switchNamed = (name: string): VirtualSwitch => {
    const key = name.toLowerCase();
    let sw = switches.get(key) ?? o.shared?.get(name);
    if (sw) return sw;
    const cfg = switchConfigs.find((s) => s.name.toLowerCase() === key);
    if (!cfg) throw new NetworkConfigError(`virtual switch '${name}' does not exist; create it (new-vmswitch) or connect the adapter to an existing switch`);
    if ((cfg.type === 'Internal' || cfg.type === 'External') && !(cfg.relayed && o.relay)) {
      throw new NetworkConfigError(`virtual switch '${cfg.name}' is ${cfg.type}: its TAP devices are run by the management service (hyperts serve, as root); connect the adapter there, or use a NAT switch here`);
    }
    sw = new VirtualSwitch(cfg.name);
    switches.set(key, sw);
    if (cfg.type === 'NAT' && !(cfg.relayed && o.relay)) {
      const b = new PasstBackend(sw, { forwards: cfg.forwards, log: (m) => log(`network: switch '${cfg.name}': ${m}`) });
      backends.push(b);
      b.start();
    } else if (o.relay) {
      const relay = o.relay;
      relays.set(key, sw.attach({ deliver: (f) => relay(cfg.name, f) }, 'relay', { uplink: true }));
    }
    return sw;
  };
  const plug = (adapter: NetvspAdapter | Tulip, sw: VirtualSwitch, name: string): SwitchPort => {
    const port = sw.attach(adapter, name);
    adapter.plug((f) => port.transmit(f), () => port.resume());
    adapter.linkChanged(sw.linkUp);
    return port;
  };
  const build = (cfg: NetworkAdapterConfig): NetworkAssembly['adapters'][number] => {
    let mac: Uint8Array;
    try { mac = parseMac(cfg.macAddress); } catch (e) { throw new NetworkConfigError(`network adapter '${cfg.name}': ${(e as Error).message}`); }
    const adapter = new NetvspAdapter({ mac, name: cfg.name, instance: instanceFor(mac), log: (m) => log(`network: ${m}`) });
    const port = cfg.switchName ? plug(adapter, switchNamed(cfg.switchName), cfg.name) : null;
    let device: VmbusDevice;
    try { device = vmbus!.addDevice(adapter); } catch (e) {
      port?.detach();
      // Same MAC, same instance GUID: an adapter removed moments ago that the guest has not let go of yet.
      throw new NetworkConfigError(`network adapter '${cfg.name}' (${cfg.macAddress}): the guest still holds a removed adapter with this MAC; try again in a few seconds (${(e as Error).message})`);
    }
    return { config: { ...cfg }, adapter, device, port };
  };
  const seen = new Set<string>();
  try {
    for (const cfg of synthetic) {
      if (seen.has(cfg.name)) throw new NetworkConfigError(`two network adapters are named '${cfg.name}'; give each a unique name`);
      seen.add(cfg.name);
      adapters.push(build(cfg));
    }
    for (const cfg of legacy) {
      if (seen.has(cfg.name)) throw new NetworkConfigError(`two network adapters are named '${cfg.name}'; give each a unique name`);
      seen.add(cfg.name);
      let mac: Uint8Array;
      try { mac = parseMac(cfg.macAddress); } catch (e) { throw new NetworkConfigError(`network adapter '${cfg.name}': ${(e as Error).message}`); }
      const h = o.legacyHost!;
      const nic = new Tulip({ mac, memory: h.memory, clock: h.clock, name: `tulip${legacyAdapters.length}`, log: (m) => log(`network: ${cfg.name}: ${m}`) });
      const port = cfg.switchName ? plug(nic, switchNamed(cfg.switchName), cfg.name) : null;
      h.addPciFunction(nic, LEGACY_NIC_PCI_DEVICE + legacyAdapters.length);
      legacyAdapters.push({ config: cfg, nic, port });
    }
  } catch (e) {
    // Nothing half-built stays behind: no passt process outlives a failed assembly.
    for (const b of backends) b.stop();
    for (const a of adapters) vmbus?.removeDevice(a.device);
    throw e;
  }
  const learn = (config?: SwitchConfig): void => {
    if (config && !switchConfigs.some((x) => x.name.toLowerCase() === config.name.toLowerCase())) switchConfigs = [...switchConfigs, config];
  };
  const named = (adapterName: string): NetworkAssembly['adapters'][number] => {
    const a = adapters.find((x) => x.config.name.toLowerCase() === adapterName.toLowerCase());
    if (!a) throw new NetworkConfigError(`the VM has no network adapter named '${adapterName}'`);
    return a;
  };
  return {
    adapters, legacyAdapters, switches, backends,
    connect(adapterName, switchName, config) {
      learn(config);
      const a = adapters.find((x) => x.config.name.toLowerCase() === adapterName.toLowerCase()) ??
        legacyAdapters.find((x) => x.config.name.toLowerCase() === adapterName.toLowerCase()) ?? named(adapterName);
      const target = switchName ? switchNamed(switchName) : null;
      const endpoint = 'adapter' in a ? a.adapter : a.nic;
      a.port?.detach();
      a.port = null;
      endpoint.plug(null);
      if (target) a.port = plug(endpoint, target, a.config.name);
      a.config = { ...a.config, switchName: target ? switchName : null };
    },
    add(cfg, config) {
      if (cfg.legacy) throw new NetworkConfigError(`network adapter '${cfg.name}': a legacy network adapter cannot be added while the VM runs`);
      if (!vmbus) throw new NetworkConfigError('synthetic network adapters need an enlightened VM (VMBus)');
      if (adapters.some((x) => x.config.name.toLowerCase() === cfg.name.toLowerCase())) throw new NetworkConfigError(`the VM already has a network adapter named '${cfg.name}'`);
      const macKey = (m: string): string => m.toLowerCase().replace(/-/g, ':');
      if (adapters.some((x) => macKey(x.config.macAddress) === macKey(cfg.macAddress))) throw new NetworkConfigError(`the VM already has an adapter with MAC ${cfg.macAddress}`);
      learn(config);
      const a = build(cfg);
      adapters.push(a);
      return a;
    },
    remove(adapterName) {
      const a = named(adapterName);
      a.port?.detach();
      a.port = null;
      a.adapter.plug(null);
      // The guest is told (rescind) and lets go of the channel; the device is forgotten after that.
      vmbus!.removeDevice(a.device);
      adapters.splice(adapters.indexOf(a), 1);
    },
    saveState() {
      if (!adapters.length && !legacyAdapters.length) return null;
      const s: NetworkState = { adapters: adapters.map((a) => ({ mac: a.config.macAddress, state: a.adapter.saveState() })) };
      if (legacyAdapters.length) s.legacy = legacyAdapters.map((a) => ({ mac: a.config.macAddress, state: a.nic.saveState() }));
      return s;
    },
    restoreState(s) {
      for (const x of s?.adapters ?? []) {
        const a = adapters.find((y) => y.config.macAddress.toLowerCase() === String(x.mac).toLowerCase());
        if (!a) throw new NetworkConfigError(`the saved network adapter ${x.mac} is not configured in this VM`);
        a.adapter.restoreState(x.state, vmbus!.channelOf(a.device));
      }
      for (const x of s?.legacy ?? []) {
        const a = legacyAdapters.find((y) => y.config.macAddress.toLowerCase() === String(x.mac).toLowerCase());
        if (!a) throw new NetworkConfigError(`the saved legacy network adapter ${x.mac} is not configured in this VM`);
        a.nic.restoreState(x.state);
      }
    },
    setLink(switchName, up) {
      switches.get(switchName.toLowerCase())?.setUplinkState(up);
    },
    inject(switchName, frame) {
      relays.get(switchName.toLowerCase())?.transmit(frame);
    },
    stop() {
      for (const b of backends) b.stop();
      for (const a of adapters) { a.port?.detach(); a.adapter.plug(null); }
      for (const a of legacyAdapters) { a.port?.detach(); a.nic.plug(null); }
    },
  };
}

/** A stable instance GUID per adapter, derived from its MAC (the guest names the device after it). */
function instanceFor(mac: Uint8Array): string {
  const h = [...mac].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `f8615163-0000-1000-8000-${h}`;
}

/** The usual one-adapter setup (`hyperts run --nic`): a synthetic (or legacy) adapter on a NAT switch named "Default Switch". */
export function natNetwork(macAddress: string, forwards: PortForward[] = [], legacy = false): { hardware: HardwareConfig; switches: SwitchConfig[] } {
  return {
    hardware: { scsiControllers: 0, drives: [], networkAdapters: [{ name: legacy ? 'Legacy Network Adapter' : 'Network Adapter', legacy, macAddress, switchName: 'Default Switch' }] },
    switches: [{ name: 'Default Switch', type: 'NAT', forwards }],
  };
}
