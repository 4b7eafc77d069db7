/**
 * A virtual switch (Hyper-V's vmswitch, reduced to layer 2): ports for adapters and uplinks, MAC learning,
 * flooding of broadcast/multicast/unknown destinations. Bounded: the learning table has a size limit and
 * entries age out, so a guest spraying source addresses cannot grow host memory.
 *
 * Flow control: an endpoint whose guest holds every receive buffer says so (`canReceive`); frames for it then
 * wait in a bounded queue per source (egress-queues.ts) and the sources feeding it are asked to pause
 * (`setPaused`: passt stops reading its socket, so its TCP slows down instead of losing segments). The
 * endpoint calls its port's `resume()` when the guest returns buffers. Frames beyond the bound are dropped for
 * that port only and counted.
 */
import { macKey } from './mac.js';
import { EgressQueues } from './egress-queues.js';

/** Something plugged into a switch port: a VM's adapter or an uplink backend (passt, TAP). */
export interface NetworkEndpoint {
  /** A frame the switch forwards to this endpoint. */
  deliver(frame: Uint8Array): void;
  /** The port's link came up or went down (uplink lost, switch removed). */
  linkChanged?(up: boolean): void;
  /**
   * False while the endpoint has no room for another frame (its guest holds every receive buffer); it calls
   * its port's `resume()` once it has room again. Endpoints without it take every frame.
   */
  canReceive?(): boolean;
  /** The switch asks this source to stop (true) or start again (false) sending: its destinations are full. */
  setPaused?(paused: boolean): void;
}

export interface SwitchPort {
  readonly id: number;
  readonly name: string;
  /** Frames sent into the switch from this port. */
  transmit(frame: Uint8Array): void;
  /** The endpoint has room again (its guest returned receive buffers): the frames queued for it go now. */
  resume(): void;
  /** Unplug; the endpoint sees its link go down. */
  detach(): void;
  readonly attached: boolean;
}

export interface SwitchStats {
  forwarded: number; flooded: number; dropped: number; learned: number;
  /** Frames that waited in a port's queue because its endpoint was full. */
  queued: number;
  /** Frames dropped because a full endpoint's queue for that source was at its bound (also in `dropped`). */
  queueDropped: number;
  /** Times a source was asked to pause. */
  pauses: number;
}

/** A port's flow-control state (Get-VMSwitch diagnostics, tests). */
export interface PortFlowStats { queuedFrames: number; queueDropped: number; paused: boolean }

const MAX_LEARNED = 4096;
const AGE_MS = 300_000;
const MIN_FRAME = 14;
const MAX_FRAME = 65535;

/**
 * Unicast peers a source exchanged frames with this long ago still count as its active destinations: a
 * source is paused only while every active destination of it is full, so passt keeps reading for the other
 * VMs of a shared NAT switch while one of them is stalled.
 */
const ACTIVE_MS = 1000;

interface PortEntry {
  id: number; name: string; endpoint: NetworkEndpoint; uplink: boolean;
  /** Frames waiting for this port's endpoint, a queue per source port. */
  egress: EgressQueues;
  /** This port as a source: unicast peers (port id -> last exchange), and whether it is paused. */
  peers: Map<number, number>;
  paused: boolean;
  queueDropped: number;
}

export class VirtualSwitch {
  private readonly ports = new Map<number, PortEntry>();
  private readonly table = new Map<number, { port: number; seen: number }>();
  private nextPort = 1;
  readonly stats: SwitchStats = { forwarded: 0, flooded: 0, dropped: 0, learned: 0, queued: 0, queueDropped: 0, pauses: 0 };
  /** The uplink's state: adapters on a switch whose backend is down see their link down. */
  private uplinkUp = true;

  constructor(readonly name: string, private readonly now: () => number = Date.now) {}

  /** Plug an endpoint in. `uplink` marks the external side (its state is the link state of every adapter). */
  attach(endpoint: NetworkEndpoint, name: string, o: { uplink?: boolean } = {}): SwitchPort {
    const id = this.nextPort++;
    const entry: PortEntry = { id, name, endpoint, uplink: o.uplink ?? false, egress: new EgressQueues(), peers: new Map(), paused: false, queueDropped: 0 };
    this.ports.set(id, entry);
    const sw = this;
    if (!entry.uplink) endpoint.linkChanged?.(this.linkUp);
    return {
      id, name,
      transmit(frame) { if (sw.ports.get(id) === entry) sw.forward(id, frame); },
      resume() { if (sw.ports.get(id) === entry) sw.drain(entry); },
      detach() {
        if (sw.ports.get(id) !== entry) return;
        sw.ports.delete(id);
        for (const [k, e] of sw.table) if (e.port === id) sw.table.delete(k);
        // Frames queued for it are gone; frames it queued elsewhere stay (they were sent). Its sources may go on.
        const sources = entry.egress.sources();
        entry.egress.clear();
        for (const s of sources) { const p = sw.ports.get(s); if (p) sw.updatePause(p); }
        for (const p of sw.ports.values()) if (p.peers.delete(id)) sw.updatePause(p);
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
    const source = this.ports.get(from)!;
    if ((frame[0] & 1) === 0) {
      const e = this.table.get(dst);
      if (e && now - e.seen < AGE_MS) {
        if (e.port === from) { this.stats.dropped++; return; } // destination is behind the sender
        const p = this.ports.get(e.port);
        if (p) {
          this.stats.forwarded++;
          source.peers.set(p.id, now);
          // The sender is a peer of the destination too: a VM's frame to a paused source (a request to passt)
          // wakes that source if this VM has room for the answers.
          if (p.paused || p.peers.get(from) !== now) { p.peers.set(from, now); if (p.paused) this.updatePause(p); }
          this.deliver(p, source, frame);
          return;
        }
      }
    }
    this.stats.flooded++;
    for (const p of [...this.ports.values()]) if (p.id !== from) this.deliver(p, source, frame);
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

  /** To `p` now if it has room and nothing waits before the frame; else into its queue for `source`. */
  private deliver(p: PortEntry, source: PortEntry, frame: Uint8Array): void {
    const room = p.endpoint.canReceive?.() ?? true;
    if (p.egress.size === 0 && room) { this.send(p, frame); return; }
    if (!p.egress.push(source.id, frame)) {
      this.stats.dropped++; this.stats.queueDropped++; p.queueDropped++;
    } else this.stats.queued++;
    // Room, but frames were waiting (a "room again" signal not given yet): they go first, then this one.
    if (room) this.drain(p);
    else if (!source.paused) this.updatePause(source);
  }

  private send(p: PortEntry, frame: Uint8Array): void {
    try { p.endpoint.deliver(frame); } catch { this.stats.dropped++; }
  }

  /** `p` has room again: hand it queued frames, one source at a time in turn, while it takes them. */
  private drain(p: PortEntry): void {
    const touched = new Set<number>();
    while (p.egress.size > 0 && (p.endpoint.canReceive?.() ?? true)) {
      const next = p.egress.shift()!;
      touched.add(next.source);
      this.send(p, next.frame);
      if (this.ports.get(p.id) !== p) return; // delivering detached it
    }
    for (const id of touched) { const s = this.ports.get(id); if (s?.paused) this.updatePause(s); }
  }

  /**
   * Pause a source while every destination it exchanges unicast frames with is full for it (its queue there
   * past the pause mark); resume it once one of them has drained below the resume mark or has gone quiet.
   */
  private updatePause(s: PortEntry): void {
    if (!s.endpoint.setPaused) return;
    const now = this.now();
    let full = 0, open = 0;
    for (const [id, seen] of s.peers) {
      const d = this.ports.get(id);
      if (!d || now - seen > ACTIVE_MS) { s.peers.delete(id); continue; }
      const n = d.egress.count(s.id);
      if (s.paused ? n > EgressQueues.RESUME_AT : n >= EgressQueues.PAUSE_AT) full++; else open++;
    }
    const pause = full > 0 && open === 0;
    if (pause === s.paused) return;
    s.paused = pause;
    if (pause) this.stats.pauses++;
    try { s.endpoint.setPaused(pause); } catch { /* a backend's own failure; its restart logic reports it */ }
  }

  /** Flow-control state of port `id` (undefined: no such port). */
  portFlow(id: number): PortFlowStats | undefined {
    const p = this.ports.get(id);
    return p && { queuedFrames: p.egress.size, queueDropped: p.queueDropped, paused: p.paused };
  }

  /** Port a MAC address was learned on (tests, Get-VMSwitch diagnostics). */
  portOf(mac: Uint8Array): number | undefined { return this.table.get(macKey(mac, 0))?.port; }
}
