/**
 * The guest's IP addresses per network adapter, as Hyper-V learns them: the host asks the guest's KVP
 * daemon (KVP_OP_GET_IP_INFO, keyed by the adapter's MAC) now and then, and keeps the last answer. Readers
 * (Get-VM, Get-VMNetworkAdapter) get the cached answer at once and never wait for the guest; a read may
 * ask for a fresher one, which arrives in the background.
 */
import type { GuestIpInfo } from '../vsp/ic/kvp.js';

/** What the monitor needs of the KVP service: null while the guest's daemon cannot answer. */
export interface IpInfoSource { getIpInfo(mac: string): Promise<GuestIpInfo | null> }

export interface GuestAddressOptions {
  source: () => IpInfoSource | null;
  /** MACs of the adapters the VM has now (adapters come and go while it runs). */
  macs: () => string[];
  /** Time between rounds while nobody asks. */
  intervalMs?: number;
  /** A read asks for a new round when the last one is older than this. */
  freshMs?: number;
  now?: () => number;
}

export interface AdapterAddresses extends GuestIpInfo { /** When the guest answered (ms since the epoch). */ at: number }

const INTERVAL_MS = 10_000;
const FRESH_MS = 2_000;

export class GuestAddressMonitor {
  private readonly known = new Map<string, AdapterAddresses>();
  private running: Promise<void> | null = null;
  private lastRound = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(private readonly o: GuestAddressOptions) { this.now = o.now ?? Date.now; }

  /** Poll on the interval until stop() (the timer does not keep the process alive). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { if (this.now() - this.lastRound >= (this.o.intervalMs ?? INTERVAL_MS)) void this.refresh(); }, 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The last answer for the adapter with `mac` (null: none yet, or the guest has no such interface). */
  get(mac: string): AdapterAddresses | null { return this.known.get(key(mac)) ?? null; }

  /** A reader wants current data: start a round unless one runs or a recent one exists. Never waits. */
  request(): void {
    if (this.now() - this.lastRound >= (this.o.freshMs ?? FRESH_MS)) void this.refresh();
  }

  /** One round over every adapter (the running one, if any). Never rejects. */
  refresh(): Promise<void> {
    this.running ??= this.round().finally(() => { this.running = null; this.lastRound = this.now(); });
    return this.running;
  }

  private async round(): Promise<void> {
    const macs = this.o.macs().map(key);
    for (const k of [...this.known.keys()]) if (!macs.includes(k)) this.known.delete(k);
    for (const mac of macs) {
      const src = this.o.source();
      // No daemon (not started yet, guest rebooting): what it said before no longer holds.
      if (!src) { this.known.clear(); return; }
      let info: GuestIpInfo | null;
      try { info = await src.getIpInfo(mac); } catch { continue; } // a timeout keeps the last answer
      if (!this.o.macs().map(key).includes(mac)) continue; // removed meanwhile
      if (info) this.known.set(mac, { ...info, at: this.now() });
      else this.known.delete(mac);
    }
  }
}

const key = (mac: string): string => mac.toUpperCase().replace(/-/g, ':');
