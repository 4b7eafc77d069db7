/**
 * A virtual switch (Hyper-V's vmswitch, reduced to layer 2): ports for adapters and uplinks, MAC learning,
 * flooding of broadcast/multicast/unknown destinations. Bounded: the learning table has a size limit and
 * entries age out, so a guest spraying source addresses cannot grow host memory.
 */
import { macKey } from './mac.js';

/** Something plugged into a switch port: a VM's adapter or an uplink backend (passt, TAP). */
export interface NetworkEndpoint {
  /** A frame the switch forwards to this endpoint. */
  deliver(frame: Uint8Array): void;
  /** The port's link came up or went down (uplink lost, switch removed). */
  linkChanged?(up: boolean): void;
}

export interface SwitchPort {
  readonly id: number;
  readonly name: string;
  /** Frames sent into the switch from this port. */
  transmit(frame: Uint8Array): void;
  /** Unplug; the endpoint sees its link go down. */
  detach(): void;
  readonly attached: boolean;
}

export interface SwitchStats { forwarded: number; flooded: number; dropped: number; learned: number }

const MAX_LEARNED = 4096;
const AGE_MS = 300_000;
const MIN_FRAME = 14;
const MAX_FRAME = 65535;

interface PortEntry { id: number; name: string; endpoint: NetworkEndpoint; uplink: boolean }

export class VirtualSwitch {
  private readonly ports = new Map<number, PortEntry>();
  private readonly table = new Map<number, { port: number; seen: number }>();
  private nextPort = 1;
  readonly stats: SwitchStats = { forwarded: 0, flooded: 0, dropped: 0, learned: 0 };
  /** The uplink's state: adapters on a switch whose backend is down see their link down. */
  private uplinkUp = true;

  constructor(readonly name: string, private readonly now: () => number = Date.now) {}

  /** Plug an endpoint in. `uplink` marks the external side (its state is the link state of every adapter). */
  attach(endpoint: NetworkEndpoint, name: string, o: { uplink?: boolean } = {}): SwitchPort {
    const id = this.nextPort++;
    const entry: PortEntry = { id, name, endpoint, uplink: o.uplink ?? false };
    this.ports.set(id, entry);
    const sw = this;
    if (!entry.uplink) endpoint.linkChanged?.(this.linkUp);
    return {
      id, name,
      transmit(frame) { if (sw.ports.get(id) === entry) sw.forward(id, frame); },
      detach() {
        if (sw.ports.get(id) !== entry) return;
        sw.ports.delete(id);
        for (const [k, e] of sw.table) if (e.port === id) sw.table.delete(k);
        if (!entry.uplink) endpoint.linkChanged?.(false);
        else if (![...sw.ports.values()].some((p) => p.uplink)) sw.setUplinkState(true);
      },
      get attached() { return sw.ports.get(id) === entry; },
    };
  }

  get portCount(): number { return this.ports.size; }
  get linkUp(): boolean { return this.uplinkUp; }

  /** The uplink backend went down or came back: tell every adapter. */
  setUplinkState(up: boolean): void {
    if (this.uplinkUp === up) return;
    this.uplinkUp = up;
    for (const p of [...this.ports.values()]) if (!p.uplink) p.endpoint.linkChanged?.(up);
  }

  private forward(from: number, frame: Uint8Array): void {
    if (frame.length < MIN_FRAME || frame.length > MAX_FRAME) { this.stats.dropped++; return; }
    const now = this.now();
    const src = macKey(frame, 6), dst = macKey(frame, 0);
    // Learn unicast sources only; a multicast source address is bogus.
    if ((frame[6] & 1) === 0) this.learn(src, from, now);
    if ((frame[0] & 1) === 0) {
      const e = this.table.get(dst);
      if (e && now - e.seen < AGE_MS) {
        if (e.port === from) { this.stats.dropped++; return; } // destination is behind the sender
        const p = this.ports.get(e.port);
        if (p) { this.stats.forwarded++; this.deliver(p, frame); return; }
      }
    }
    this.stats.flooded++;
    for (const p of [...this.ports.values()]) if (p.id !== from) this.deliver(p, frame);
  }

  private learn(mac: number, port: number, now: number): void {
    const e = this.table.get(mac);
    if (e && e.port === port && now - e.seen < 1000) return; // hot path: refreshed recently
    // Re-inserting keeps the Map in least-recently-seen order, so eviction is O(1).
    if (e) this.table.delete(mac);
    else if (this.table.size >= MAX_LEARNED) { const oldest = this.table.keys().next().value; if (oldest !== undefined) this.table.delete(oldest); }
    this.table.set(mac, { port, seen: now });
    if (!e) this.stats.learned++;
  }

  private deliver(p: PortEntry, frame: Uint8Array): void {
    try { p.endpoint.deliver(frame); } catch { this.stats.dropped++; }
  }

  /** Port a MAC address was learned on (tests, Get-VMSwitch diagnostics). */
  portOf(mac: Uint8Array): number | undefined { return this.table.get(macKey(mac, 0))?.port; }
}
