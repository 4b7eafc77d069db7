/**
 * The channel API for providers (VSPs): offer description, packets in and out, transaction ids and
 * completion waiting. The VMBus host owns the channel lifecycle; providers only react to it.
 */
import type { GuestMemory } from '../platform/memory.js';
import { Gpadl } from './gpadl.js';
import { InboundRing, OutboundRing, RingError, type RawPacket } from './ring.js';
import { PacketType, PACKET_DESCRIPTOR_SIZE, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from './protocol.js';

export type VmbusPacket = RawPacket;
export type CloseReason = 'closed' | 'rescinded' | 'reset' | 'unload' | 'fault';

/** A device offered on VMBus (a VSP's view of the bus). */
export interface ChannelProvider {
  /** Class GUID (offer interface type), e.g. the Heartbeat IC's. */
  readonly interfaceType: string;
  /** Instance GUID: names the device in the guest; must be unique and stable. */
  readonly instance: string;
  /** Human-readable name for logs. */
  readonly name: string;
  /** Largest guest->host packet accepted (descriptor included); larger ones are a guest fault. */
  readonly maxPacketSize: number;
  /** 120-byte user-defined area of the offer (pipe mode etc.). */
  readonly userDefined?: Uint8Array;
  /** The guest opened the channel; packets may be sent from now on. */
  onOpen(channel: Channel): void;
  /** A guest packet that is not the reply to one of this provider's `request()`s. */
  onPacket(channel: Channel, packet: VmbusPacket): void;
  /** The channel stopped (guest close, rescind, unload, reset, fault). Pending requests were rejected. */
  onClose(channel: Channel, reason: CloseReason): void;
  /** Packets queued while the guest's ring was full have all been written: there is room to send again. */
  onSendRoom?(channel: Channel): void;
}

export interface SendOptions {
  type?: PacketType.DATA_INBAND | PacketType.COMP | PacketType.DATA_USING_XFER_PAGES;
  transactionId?: bigint;
  /** Bytes between the descriptor and the payload (a transfer-page header for netvsc); a multiple of 8. */
  extension?: Uint8Array;
  completionRequested?: boolean;
}

/** Host-side outbound queue limit while the guest's ring is full. */
const OUTBOUND_QUEUE_LIMIT = 1024;
/** Packets read per guest signal before yielding (the rest is read on the next turn). */
const DRAIN_BATCH = 4096;

export interface ChannelState {
  targetVp: number; ringGpadl: number;
  /** Pages (header included) of the guest->host ring; the rest of the ring GPADL is host->guest. */
  inboundPages: number;
  nextTransactionId: bigint; pending: bigint[];
  queue: Array<{ head: Uint8Array; payload: Uint8Array }>;
}

interface Pending { resolve: (p: VmbusPacket) => void; reject: (e: Error) => void }

/** Operations the host exposes to a channel (kept narrow so the channel stays testable). */
export interface ChannelHost {
  memory: GuestMemory;
  /** Set the channel's event flag on its target VP and raise SINT2. */
  signalGuest(channel: Channel): void;
  /** Guest misbehaviour on this channel: log it, stop the channel and rescind/re-offer it. */
  faultChannel(channel: Channel, reason: string): void;
  gpadl(handle: number): Gpadl | undefined;
  log(message: string): void;
  /** Run `f` later (after the current hypercall returns). */
  defer(f: () => void): void;
}

export class ChannelClosedError extends Error {}

/** Counters for diagnostics and benchmarks (signals are the interrupt cost of a channel). */
export interface ChannelStats { packetsToGuest: number; signalsToGuest: number; guestSignals: number; packetsFromGuest: number }

export class Channel {
  readonly stats: ChannelStats = { packetsToGuest: 0, signalsToGuest: 0, guestSignals: 0, packetsFromGuest: 0 };
  private nextTransactionId = 1n;
  private readonly pending = new Map<bigint, Pending>();
  private readonly queue: Array<{ head: Uint8Array; payload: Uint8Array }> = [];
  private inbound: InboundRing | null = null;
  private outbound: OutboundRing | null = null;
  private drainScheduled = false;

  constructor(private readonly host: ChannelHost, readonly provider: ChannelProvider, readonly relid: number,
    readonly connectionId: number, public targetVp: number, readonly ringGpadl: number) {}

  get isOpen(): boolean { return this.inbound !== null; }

  /** Guest memory, for providers that copy to or from guest buffers (GPADLs, GPA-direct ranges). */
  get memory(): GuestMemory { return this.host.memory; }

  /** @internal */
  attach(inbound: InboundRing, outbound: OutboundRing): void { this.inbound = inbound; this.outbound = outbound; }

  /** @internal Stop touching the rings; reject everything waiting. */
  detach(reason: CloseReason): void {
    this.inbound = this.outbound = null;
    this.queue.length = 0;
    const err = new ChannelClosedError(`${this.provider.name}: channel ${this.relid} ${reason}`);
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(err);
  }

  /** An extra GPADL the guest created on this channel (netvsc buffers), or undefined. */
  gpadl(handle: number): Gpadl | undefined {
    const g = this.host.gpadl(handle);
    return g && g.relid === this.relid && g.complete ? g : undefined;
  }

  /**
   * Send one packet. Returns false when the channel is closed or the host-side queue is full; a packet
   * that does not fit the ring now is queued and written once the guest makes room.
   */
  send(payload: Uint8Array, o: SendOptions = {}): boolean {
    if (!this.outbound) return false;
    const ext = o.extension ?? new Uint8Array(0);
    if (ext.length % 8 !== 0) throw new RangeError('packet extension must be a multiple of 8 bytes');
    const head = new Uint8Array(PACKET_DESCRIPTOR_SIZE + ext.length);
    head.set(ext, PACKET_DESCRIPTOR_SIZE);
    const v = new DataView(head.buffer);
    const len = head.length + payload.length;
    if (len > 0xffff * 8 || head.length > 0xffff * 8) return false;
    v.setUint16(0, o.type ?? PacketType.DATA_INBAND, true);
    v.setUint16(2, head.length / 8, true);
    v.setUint16(4, (len + 7) >> 3, true);
    v.setUint16(6, o.completionRequested ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0, true);
    v.setBigUint64(8, o.transactionId ?? 0n, true);
    if (this.queue.length > 0) return this.enqueue(head, payload);
    try {
      if (!this.outbound.write(head, payload)) return this.enqueue(head, payload);
    } catch (e) {
      this.fault(e);
      return false;
    }
    this.stats.packetsToGuest++;
    if (this.outbound.guestWantsInterrupt) this.signal();
    return true;
  }

  /** Send a completion packet echoing the guest's transaction id. */
  complete(transactionId: bigint, payload: Uint8Array): boolean {
    return this.send(payload, { type: PacketType.COMP, transactionId });
  }

  /** Send a request with a fresh transaction id; resolves with the guest packet carrying the same id. */
  request(payload: Uint8Array, completionRequested = false): Promise<VmbusPacket> {
    const id = this.nextTransactionId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (!this.send(payload, { transactionId: id, completionRequested })) {
        this.pending.delete(id);
        reject(new ChannelClosedError(`${this.provider.name}: channel ${this.relid} is not open`));
      }
    });
  }

  /** Saved state (Save-VM): transaction ids still waiting for the guest and packets queued for its ring. */
  saveState(): ChannelState {
    return {
      targetVp: this.targetVp, ringGpadl: this.ringGpadl, inboundPages: (this.inbound?.ring.data.length ?? 0) + 1,
      nextTransactionId: this.nextTransactionId, pending: [...this.pending.keys()],
      queue: this.queue.map((q) => ({ head: q.head.slice(), payload: q.payload.slice() })),
    };
  }

  /**
   * @internal Restored channel: the requests the guest has not answered yet come back as waiters whose
   * reply is dropped, unless the provider takes one over with `adoptTransaction`.
   */
  restoreState(s: ChannelState): void {
    this.nextTransactionId = s.nextTransactionId;
    for (const id of s.pending) this.pending.set(id, { resolve: () => {}, reject: () => {} });
    for (const q of s.queue.slice(0, OUTBOUND_QUEUE_LIMIT)) this.queue.push({ head: q.head.slice(), payload: q.payload.slice() });
  }

  /** Transaction ids sent with `request()` and not answered yet. */
  get pendingTransactions(): bigint[] { return [...this.pending.keys()]; }

  /** A restored provider waits again for the guest's reply to transaction `id` (sent before the save). */
  adoptTransaction(id: bigint): Promise<VmbusPacket> {
    return new Promise((resolve, reject) => {
      if (!this.inbound) { reject(new ChannelClosedError(`${this.provider.name}: channel ${this.relid} is not open`)); return; }
      this.pending.set(id, { resolve, reject });
    });
  }

  /** Packets waiting in the host-side queue for room in the guest's ring. */
  get queued(): number { return this.queue.length; }

  /** Number of requests waiting for the guest. */
  get outstanding(): number { return this.pending.size; }

  /** Report guest misbehaviour on this channel (providers call this for malformed payloads). */
  fault(reason: unknown): void {
    this.host.faultChannel(this, reason instanceof Error ? reason.message : String(reason));
  }

  private signal(): void {
    this.stats.signalsToGuest++;
    this.host.signalGuest(this);
  }

  /** @internal The guest signalled: read its packets, retry queued sends. */
  onGuestSignal(): void {
    if (!this.inbound) return;
    this.stats.guestSignals++;
    this.flushQueue();
    let batch;
    try {
      batch = this.inbound.drain(DRAIN_BATCH);
    } catch (e) {
      if (e instanceof RingError) { this.fault(e); return; }
      throw e;
    }
    if (batch.signalGuest) this.signal();
    this.stats.packetsFromGuest += batch.packets.length;
    for (const p of batch.packets) {
      if (!this.inbound) return; // a provider closed or faulted the channel meanwhile
      const waiter = p.transactionId !== 0n ? this.pending.get(p.transactionId) : undefined;
      try {
        if (waiter) { this.pending.delete(p.transactionId); waiter.resolve(p); } else this.provider.onPacket(this, p);
      } catch (e) {
        this.host.log(`${this.provider.name}: provider error: ${(e as Error).stack ?? e}`);
        this.fault(`provider could not handle a packet: ${(e as Error).message}`);
        return;
      }
    }
    if (batch.packets.length === DRAIN_BATCH && !this.drainScheduled) {
      this.drainScheduled = true;
      this.host.defer(() => { this.drainScheduled = false; this.onGuestSignal(); });
    }
  }

  private enqueue(head: Uint8Array, payload: Uint8Array): boolean {
    if (this.queue.length >= OUTBOUND_QUEUE_LIMIT) return false;
    this.queue.push({ head, payload: payload.slice() });
    return true;
  }

  private flushQueue(): void {
    if (!this.outbound || this.queue.length === 0) return;
    let wrote = false;
    try {
      while (this.queue.length > 0 && this.outbound.write(this.queue[0].head, this.queue[0].payload)) { this.queue.shift(); wrote = true; this.stats.packetsToGuest++; }
      if (this.queue.length === 0) this.outbound.ring.pendingSendSize = 0;
    } catch (e) {
      this.fault(e);
      return;
    }
    if (wrote && this.outbound.guestWantsInterrupt) this.signal();
    if (wrote && this.queue.length === 0) this.provider.onSendRoom?.(this);
  }
}
