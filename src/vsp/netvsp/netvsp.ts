/**
 * The synthetic network adapter's VSP (Hyper-V's netvsp): the host side of Linux's hv_netvsc on one VMBus
 * channel. NVSP negotiation and the two buffers (contract §10.2), RNDIS control (§10.4), guest frames out
 * to a switch port, frames from the switch into the guest's receive buffer as transfer-page packets.
 *
 * The guest is untrusted: every NVSP/RNDIS field is checked. A malformed data message is dropped, counted
 * and completed with a failure status; a protocol violation (wrong state, bad buffer) resets the channel.
 * Queues are bounded: frames for a guest that does not return receive slots are dropped, not buffered.
 */
import type { Channel, ChannelProvider, CloseReason, VmbusPacket } from '../../vmbus/channel.js';
import type { Gpadl } from '../../vmbus/gpadl.js';
import { PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from '../../vmbus/protocol.js';
import { parseGpaDirect, GpaRangeError } from '../../vmbus/gpa-direct.js';
import { randomGuid } from '../../vmbus/guid.js';
import type { NetworkEndpoint } from '../../net/switch.js';
import { formatMac } from '../../net/mac.js';
import * as N from './nvsp.js';
import { NvspType, NvspStatus } from './nvsp.js';
import * as R from './rndis.js';
import { RndisType, Oid, RndisError } from './rndis.js';
import { receiveChecksumInfo } from './rx-checksum.js';

export interface NetvspOptions {
  /** The adapter's MAC (6 bytes). */
  mac: Uint8Array;
  instance?: string;
  /** Hyper-V's adapter name, for logs. */
  name?: string;
  log?: (message: string) => void;
}

export interface NetvspStats {
  /** Frames the guest sent, forwarded to the switch. */
  txFrames: number;
  /** Guest frames dropped: link down, adapter not initialised. */
  txDropped: number;
  /** Frames delivered into the guest. */
  rxFrames: number;
  /** Frames for the guest dropped: no free receive slot, link down, adapter not ready, too big. */
  rxDropped: number;
  /** Of those: no free receive slot (the guest holds them all). */
  rxNoSlot: number;
  /** Of those: the host->guest ring and its host-side queue were full. */
  rxRingFull: number;
  /** Guest messages dropped as malformed (bad RNDIS, bad section index, oversize frame...). */
  malformed: number;
  /** Channel resets caused by protocol violations. */
  resets: number;
}

/** Largest guest->host packet: a 40-byte NVSP message and up to MAX_SKB_FRAGS+2 page ranges (with slack). */
const MAX_GUEST_PACKET = 16 + 8 + 64 * 24 + 64;
/** Receive slots kept for RNDIS control replies and status indications, so data cannot starve them. */
const CONTROL_RESERVE = 16;
/** Control replies waiting for a receive slot (a guest that never completes receives cannot grow this). */
const MAX_PENDING_CONTROL = 64;
/** Host->guest data packets waiting for ring space beyond which frames are dropped. */
const MAX_QUEUED_PACKETS = 256;
/** Link speed reported, in units of 100 bit/s (10 Gbit/s, like Hyper-V's synthetic adapter). */
const LINK_SPEED = 100_000_000;
const MTU = 1500;

type RndisState = 'uninitialized' | 'initialized' | 'halted';

interface ReceiveBuffer { gpadl: Gpadl; slots: number; free: number[] }
interface SendBuffer { gpadl: Gpadl; sections: number }

class ProtocolError extends Error {}

/** Saved state (Save-VM) of one adapter: negotiation, buffers (by GPADL handle) and receive slots lent out. */
export interface NetvspState {
  version: number; ndisMtu: number; rndis: RndisState; packetFilter: number;
  recvGpadl: number | null; sendGpadl: number | null;
  free: number[]; lent: Array<[string, number[]]>; nextTransaction: string;
  pendingControl: string[];
}

export class NetvspAdapter implements ChannelProvider, NetworkEndpoint {
  readonly interfaceType = N.NETVSC_CLASS_GUID;
  readonly instance: string;
  readonly name: string;
  readonly maxPacketSize = MAX_GUEST_PACKET;
  readonly mac: Uint8Array;
  readonly stats: NetvspStats = { txFrames: 0, txDropped: 0, rxFrames: 0, rxDropped: 0, rxNoSlot: 0, rxRingFull: 0, malformed: 0, resets: 0 };

  private channel: Channel | null = null;
  private version = 0;
  private ndisMtu = MTU + 14;
  private recv: ReceiveBuffer | null = null;
  private send: SendBuffer | null = null;
  private rndis: RndisState = 'uninitialized';
  private packetFilter = 0;
  /** Receive slots lent to the guest, by the transaction id of the packet that carried them. */
  private readonly lent = new Map<bigint, number[]>();
  private nextTransaction = 1n;
  private readonly pendingControl: Uint8Array[] = [];
  private connected = false;
  private uplink: ((frame: Uint8Array) => void) | null = null;
  /** The switch port's "room again" signal, and whether a frame found us full since it was last given. */
  private room: (() => void) | null = null;
  private wasFull = false;
  private readonly log: (m: string) => void;

  constructor(o: NetvspOptions) {
    if (o.mac.length !== 6) throw new RangeError('a MAC address has 6 bytes');
    this.mac = o.mac.slice();
    this.instance = o.instance ?? randomGuid();
    this.name = o.name ?? 'Network Adapter';
    this.log = o.log ?? ((m) => console.warn(`[netvsp] ${m}`));
  }

  // ---- the network side ------------------------------------------------------------------------------

  /**
   * Connect to a switch port (its transmit function, and its `resume` for when the guest returns receive
   * slots) or disconnect (null): the guest sees the link follow.
   */
  plug(transmit: ((frame: Uint8Array) => void) | null, room?: () => void): void {
    this.uplink = transmit;
    this.room = transmit ? room ?? null : null;
    if (!transmit) this.linkChanged(false);
  }

  /** Link state of the switch port (NetworkEndpoint). */
  linkChanged(up: boolean): void {
    const now = up && this.uplink !== null;
    if (now === this.connected) return;
    this.connected = now;
    if (this.rndis === 'initialized') this.sendControl(R.indicateStatus(now ? R.RNDIS_STATUS_MEDIA_CONNECT : R.RNDIS_STATUS_MEDIA_DISCONNECT));
  }

  get linkUp(): boolean { return this.connected; }
  /** The guest driver finished initialisation and opened the adapter (packet filter set). */
  get ready(): boolean { return this.rndis === 'initialized' && this.recv !== null && this.channel !== null; }
  get negotiatedVersion(): number { return this.version; }

  /**
   * Flow control (NetworkEndpoint): false while a frame would be dropped for want of a receive slot or ring
   * space only. An adapter that is not receiving at all takes (and drops) frames, so it never holds a source.
   */
  canReceive(): boolean {
    // Without a "room again" signal to give, claiming to be full would hold the switch's queue for ever.
    if (!this.room || !this.ready || !this.connected || this.packetFilter === 0) return true;
    if (this.channel!.queued < MAX_QUEUED_PACKETS && this.recv!.free.length > CONTROL_RESERVE) return true;
    this.wasFull = true;
    return false;
  }

  /** A frame from the switch for this adapter (NetworkEndpoint): into the guest's receive buffer. */
  deliver(frame: Uint8Array): void {
    if (!this.ready || !this.connected || this.packetFilter === 0) { this.stats.rxDropped++; return; }
    const ch = this.channel!;
    if (ch.queued >= MAX_QUEUED_PACKETS) { this.wasFull = true; this.stats.rxDropped++; this.stats.rxRingFull++; return; }
    if (this.recv!.free.length <= CONTROL_RESERVE) { this.wasFull = true; this.stats.rxDropped++; this.stats.rxNoSlot++; return; }
    const packet = R.dataPacket(frame, receiveChecksumInfo(frame));
    if (packet.length > N.RECV_SECTION_SIZE) { this.stats.rxDropped++; return; }
    if (this.toGuest(packet)) this.stats.rxFrames++; else this.stats.rxDropped++;
  }

  // ---- ChannelProvider -------------------------------------------------------------------------------

  onOpen(channel: Channel): void {
    this.resetState();
    this.channel = channel;
  }

  onClose(channel: Channel, reason: CloseReason): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.resetState();
    if (reason === 'fault') this.stats.resets++;
  }

  onSendRoom(channel: Channel): void {
    if (channel === this.channel) this.signalRoom();
  }

  onPacket(channel: Channel, p: VmbusPacket): void {
    if (channel !== this.channel) return;
    try {
      if (p.type === PacketType.COMP) this.onCompletion(p);
      else if (p.type === PacketType.DATA_INBAND || p.type === PacketType.DATA_USING_GPA_DIRECT) this.onMessage(channel, p);
      else throw new ProtocolError(`unexpected VMBus packet type ${p.type}`);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.log(`${this.name}: ${e.message}; resetting the channel`);
      channel.fault(e.message);
    }
  }

  private resetState(): void {
    this.version = 0; this.recv = null; this.send = null; this.rndis = 'uninitialized'; this.packetFilter = 0;
    this.lent.clear(); this.pendingControl.length = 0; this.ndisMtu = MTU + 14;
    // Not receiving now: whatever the switch holds for us goes (and is dropped) instead of holding its sources.
    if (this.wasFull && this.room) { this.wasFull = false; queueMicrotask(() => this.room?.()); }
  }

  // ---- guest -> host -------------------------------------------------------------------------------

  private onCompletion(p: VmbusPacket): void {
    // Only receive completions (108) come back; the slots of that packet are free again.
    const slots = this.lent.get(p.transactionId);
    if (!slots) { this.stats.malformed++; return; }
    if (p.payload.length < 8 || new DataView(p.payload.buffer, p.payload.byteOffset).getUint32(0, true) !== NvspType.SEND_RNDIS_PKT_COMPLETE) {
      throw new ProtocolError(`receive completion of ${p.payload.length} bytes is not SEND_RNDIS_PKT_COMPLETE`);
    }
    this.lent.delete(p.transactionId);
    if (this.recv) for (const s of slots) this.recv.free.push(s);
    this.flushControl();
    this.signalRoom();
  }

  /** Tell the switch port we can take frames again, once per time it found us full. */
  private signalRoom(): void {
    if (!this.wasFull || !this.room || !this.canReceive()) return;
    this.wasFull = false;
    this.room();
  }

  private onMessage(ch: Channel, p: VmbusPacket): void {
    const m = p.payload;
    if (m.length < 4) throw new ProtocolError(`NVSP message of ${m.length} bytes`);
    const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
    const type = v.getUint32(0, true);
    const need = (n: number): void => { if (m.length < n) throw new ProtocolError(`NVSP message ${type} of ${m.length} bytes (need ${n})`); };
    if (type !== NvspType.INIT && this.version === 0) throw new ProtocolError(`NVSP message ${type} before INIT`);
    if (type !== NvspType.SEND_RNDIS_PKT && p.type !== PacketType.DATA_INBAND) throw new ProtocolError(`NVSP message ${type} in a GPA-direct packet`);
    switch (type) {
      case NvspType.INIT: {
        need(12);
        const min = v.getUint32(4, true), max = v.getUint32(8, true);
        const chosen = N.NVSP_VERSIONS.find((x) => x >= min && x <= max);
        if (chosen !== undefined) this.version = chosen;
        ch.complete(p.transactionId, N.initComplete(chosen ?? 0, chosen !== undefined));
        return;
      }
      case NvspType.SEND_NDIS_CONFIG:
        need(8);
        this.ndisMtu = Math.min(65535, Math.max(MTU + 14, v.getUint32(4, true)));
        return;
      case NvspType.SEND_NDIS_VER:
        need(12);
        return;
      case NvspType.SEND_RECV_BUF: return this.onReceiveBuffer(ch, p, v, need);
      case NvspType.SEND_SEND_BUF: return this.onSendBuffer(ch, p, v, need);
      case NvspType.REVOKE_RECV_BUF:
        this.recv = null; this.lent.clear(); this.pendingControl.length = 0;
        return;
      case NvspType.REVOKE_SEND_BUF:
        this.send = null;
        return;
      case NvspType.SEND_RNDIS_PKT: return this.onRndisPacket(ch, p, v, need);
      case NvspType.SUBCHANNEL:
      case NvspType.SWITCH_DATA_PATH:
        // Not offered (single queue, no VF): a guest asking anyway gets a failure.
        if (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) { const r = N.nvsp(type + 1); r.view.setUint32(4, NvspStatus.FAIL, true); ch.complete(p.transactionId, r.bytes); }
        return;
      default:
        this.stats.malformed++;
        this.log(`${this.name}: NVSP message type ${type} ignored`);
    }
  }

  private onReceiveBuffer(ch: Channel, p: VmbusPacket, v: DataView, need: (n: number) => void): void {
    need(10);
    const handle = v.getUint32(4, true), id = v.getUint16(8, true);
    const g = ch.gpadl(handle);
    let status = NvspStatus.SUCCESS;
    if (this.recv) { this.log(`${this.name}: a second receive buffer`); status = NvspStatus.FAIL; }
    else if (!g) { this.log(`${this.name}: receive buffer GPADL 0x${handle.toString(16)} is not a complete GPADL of this channel`); status = NvspStatus.FAIL; }
    else if (id !== N.RECEIVE_BUFFER_ID) { this.log(`${this.name}: receive buffer id 0x${id.toString(16)} (expected 0xcafe)`); status = NvspStatus.FAIL; }
    else if (Math.floor(g.size / N.RECV_SECTION_SIZE) <= CONTROL_RESERVE) { this.log(`${this.name}: receive buffer of ${g.size} bytes is too small`); status = NvspStatus.FAIL; }
    const slots = g ? Math.floor(g.size / N.RECV_SECTION_SIZE) : 0;
    if (status === NvspStatus.SUCCESS) {
      // Lowest slots first, so a lightly loaded guest touches few pages.
      this.recv = { gpadl: g!, slots, free: Array.from({ length: slots }, (_, i) => slots - 1 - i) };
    }
    ch.complete(p.transactionId, N.recvBufComplete(status, N.RECV_SECTION_SIZE, slots));
  }

  private onSendBuffer(ch: Channel, p: VmbusPacket, v: DataView, need: (n: number) => void): void {
    need(10);
    const handle = v.getUint32(4, true);
    const g = ch.gpadl(handle);
    let status = NvspStatus.SUCCESS;
    if (this.send) status = NvspStatus.FAIL;
    else if (!g || g.size < N.SEND_SECTION_SIZE) { this.log(`${this.name}: send buffer GPADL 0x${handle.toString(16)} is missing or too small`); status = NvspStatus.FAIL; }
    if (status === NvspStatus.SUCCESS) this.send = { gpadl: g!, sections: Math.floor(g!.size / N.SEND_SECTION_SIZE) };
    ch.complete(p.transactionId, N.sendBufComplete(status, N.SEND_SECTION_SIZE));
  }

  private onRndisPacket(ch: Channel, p: VmbusPacket, v: DataView, need: (n: number) => void): void {
    need(16);
    const index = v.getUint32(8, true), size = v.getUint32(12, true);
    let status = NvspStatus.SUCCESS;
    try {
      this.handleRndis(this.gather(ch, p, index, size));
    } catch (e) {
      if (!(e instanceof RndisError || e instanceof GpaRangeError)) throw e;
      this.stats.malformed++;
      status = NvspStatus.INVALID_RNDIS_PKT;
    }
    // Every send is completed: it releases the guest's send slot (its TX queue stops otherwise).
    if (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) ch.complete(p.transactionId, N.rndisPacketComplete(status));
  }

  /** The RNDIS bytes of one send: a send-buffer section, page buffers, or both (read as one stream). */
  private gather(ch: Channel, p: VmbusPacket, index: number, size: number): Uint8Array {
    let section: Uint8Array = new Uint8Array(0);
    if (index !== N.NO_SECTION) {
      if (!this.send) throw new RndisError(`send-buffer section ${index} without a send buffer`);
      if (index >= this.send.sections) throw new RndisError(`send-buffer section ${index} of ${this.send.sections}`);
      if (size === 0 || size > N.SEND_SECTION_SIZE) throw new RndisError(`send-buffer section size ${size}`);
      section = this.send.gpadl.read(ch.memory, index * N.SEND_SECTION_SIZE, size) ?? new Uint8Array(0);
    }
    if (p.type !== PacketType.DATA_USING_GPA_DIRECT) {
      if (index === N.NO_SECTION) throw new RndisError('RNDIS packet with neither a section nor page buffers');
      return section;
    }
    const pages = parseGpaDirect(p.extension, this.ndisMtu + 4096);
    const out = new Uint8Array(section.length + pages.length);
    out.set(section, 0);
    pages.readInto(ch.memory, section.length, out.subarray(section.length));
    return out;
  }

  private handleRndis(bytes: Uint8Array): void {
    for (const raw of R.splitRndis(bytes, R.MAX_PACKETS_PER_MESSAGE * 4)) {
      const m = R.parseRndis(raw, this.ndisMtu);
      switch (m.type) {
        case RndisType.PACKET:
          if (this.rndis !== 'initialized' || !this.uplink || !this.connected) { this.stats.txDropped++; continue; }
          this.stats.txFrames++;
          this.uplink(m.frame.slice());
          continue;
        case RndisType.INIT:
          this.rndis = 'initialized';
          this.sendControl(R.initComplete(m.requestId, R.RNDIS_STATUS_SUCCESS));
          continue;
        case RndisType.HALT:
          this.rndis = 'halted'; this.packetFilter = 0;
          continue;
        case RndisType.QUERY: {
          const [status, data] = this.query(m.oid, m.info);
          this.sendControl(R.queryComplete(m.requestId, status, data));
          continue;
        }
        case RndisType.SET:
          this.sendControl(R.setComplete(m.requestId, this.set(m.oid, m.info)));
          continue;
        case RndisType.RESET:
          this.packetFilter = 0;
          this.sendControl(R.resetComplete(R.RNDIS_STATUS_SUCCESS));
          continue;
        case RndisType.KEEPALIVE:
          this.sendControl(R.keepaliveComplete(m.requestId, R.RNDIS_STATUS_SUCCESS));
          continue;
      }
    }
  }

  private query(oid: number, info: Uint8Array): [number, Uint8Array] {
    switch (oid) {
      case Oid.PERMANENT_ADDRESS: case Oid.CURRENT_ADDRESS: return [R.RNDIS_STATUS_SUCCESS, this.mac.slice()];
      case Oid.GEN_MAXIMUM_FRAME_SIZE: return [R.RNDIS_STATUS_SUCCESS, R.u32(MTU)];
      case Oid.GEN_MAXIMUM_TOTAL_SIZE: return [R.RNDIS_STATUS_SUCCESS, R.u32(MTU + 14)];
      case Oid.GEN_MEDIA_CONNECT_STATUS: return [R.RNDIS_STATUS_SUCCESS, R.u32(this.connected ? 0 : 1)];
      case Oid.GEN_LINK_SPEED: return [R.RNDIS_STATUS_SUCCESS, R.u32(LINK_SPEED)];
      case Oid.GEN_CURRENT_PACKET_FILTER: return [R.RNDIS_STATUS_SUCCESS, R.u32(this.packetFilter)];
      case Oid.TCP_OFFLOAD_HARDWARE_CAPABILITIES: return [R.RNDIS_STATUS_SUCCESS, R.noOffloads(info)];
      // Single queue: no RSS capabilities, so Linux uses the primary channel only.
      default: return [R.RNDIS_STATUS_NOT_SUPPORTED, new Uint8Array(0)];
    }
  }

  private set(oid: number, info: Uint8Array): number {
    switch (oid) {
      case Oid.GEN_CURRENT_PACKET_FILTER:
        if (info.length < 4) return R.RNDIS_STATUS_INVALID_DATA;
        this.packetFilter = new DataView(info.buffer, info.byteOffset).getUint32(0, true);
        return R.RNDIS_STATUS_SUCCESS;
      case Oid.TCP_OFFLOAD_PARAMETERS:
        // Transmit offloads stay off whatever the guest asks; Linux only needs the SET to succeed. Receive
        // checksum info (rx-checksum.ts) needs no negotiation: hv_netvsc always turns on NETIF_F_RXCSUM.
        return R.RNDIS_STATUS_SUCCESS;
      case Oid.MULTICAST_LIST:
        return R.RNDIS_STATUS_SUCCESS;
      default:
        return R.RNDIS_STATUS_NOT_SUPPORTED;
    }
  }

  // ---- host -> guest -------------------------------------------------------------------------------

  /** RNDIS control replies and indications: never dropped while the guest keeps completing receives. */
  private sendControl(msg: Uint8Array): void {
    if (this.pendingControl.length > 0 || !this.toGuest(msg, true)) {
      if (this.pendingControl.length >= MAX_PENDING_CONTROL) { this.stats.rxDropped++; return; }
      this.pendingControl.push(msg);
    }
  }

  private flushControl(): void {
    while (this.pendingControl.length > 0 && this.toGuest(this.pendingControl[0], true)) this.pendingControl.shift();
  }

  /** Copy one RNDIS message into a free receive slot and hand it to the guest. False when no slot is free. */
  private toGuest(msg: Uint8Array, control = false): boolean {
    const ch = this.channel, recv = this.recv;
    if (!ch || !recv || msg.length > N.RECV_SECTION_SIZE) return false;
    if (recv.free.length === 0 || (!control && recv.free.length <= CONTROL_RESERVE)) return false;
    const slot = recv.free.pop()!;
    const offset = slot * N.RECV_SECTION_SIZE;
    if (!recv.gpadl.write(ch.memory, offset, msg)) { recv.free.push(slot); return false; }
    const id = this.nextTransaction++;
    const ok = ch.send(N.rndisPacketHeader(), {
      type: PacketType.DATA_USING_XFER_PAGES, transactionId: id, completionRequested: true,
      extension: N.transferPageExtension([{ offset, length: msg.length }]),
    });
    if (!ok) { recv.free.push(slot); return false; }
    this.lent.set(id, [slot]);
    return true;
  }

  saveState(): NetvspState {
    return {
      version: this.version, ndisMtu: this.ndisMtu, rndis: this.rndis, packetFilter: this.packetFilter,
      recvGpadl: this.recv?.gpadl.handle ?? null, sendGpadl: this.send?.gpadl.handle ?? null,
      free: [...(this.recv?.free ?? [])], lent: [...this.lent].map(([id, slots]) => [id.toString(), [...slots]]),
      nextTransaction: this.nextTransaction.toString(), pendingControl: this.pendingControl.map((m) => Buffer.from(m).toString('base64')),
    };
  }

  /**
   * Restore after the VMBus host reopened `channel` (null: the guest had it closed). The buffers are looked up
   * again by handle; everything is checked before anything changes.
   */
  restoreState(s: NetvspState, channel: Channel | null): void {
    this.resetState();
    this.channel = channel;
    if (!channel) return;
    const fail = (why: string): never => { throw new Error(`${this.name}: saved state ${why}`); };
    if (s.version !== 0 && !(N.NVSP_VERSIONS as readonly number[]).includes(s.version)) fail(`has NVSP version 0x${s.version.toString(16)}`);
    if (!['uninitialized', 'initialized', 'halted'].includes(s.rndis)) fail(`has RNDIS state '${s.rndis}'`);
    let recv: ReceiveBuffer | null = null, send: SendBuffer | null = null;
    if (s.recvGpadl !== null) {
      const g = channel.gpadl(s.recvGpadl) ?? fail('names a receive buffer the VMBus state lacks');
      const slots = Math.floor(g.size / N.RECV_SECTION_SIZE);
      const all = [...s.free, ...s.lent.flatMap(([, x]) => x)];
      if (all.length !== slots || new Set(all).size !== slots || all.some((x) => !Number.isInteger(x) || x < 0 || x >= slots)) fail('has inconsistent receive slots');
      recv = { gpadl: g, slots, free: [...s.free] };
    }
    if (s.sendGpadl !== null) {
      const g = channel.gpadl(s.sendGpadl) ?? fail('names a send buffer the VMBus state lacks');
      send = { gpadl: g, sections: Math.floor(g.size / N.SEND_SECTION_SIZE) };
    }
    this.version = s.version; this.ndisMtu = Math.min(65535, Math.max(MTU + 14, s.ndisMtu)); this.rndis = s.rndis;
    this.packetFilter = s.packetFilter >>> 0; this.recv = recv; this.send = send;
    for (const [id, slots] of s.lent) this.lent.set(BigInt(id), [...slots]);
    this.nextTransaction = BigInt(s.nextTransaction);
    for (const m of s.pendingControl.slice(0, MAX_PENDING_CONTROL)) this.pendingControl.push(new Uint8Array(Buffer.from(m, 'base64')));
  }

  /** For logs and Get-VMNetworkAdapter. */
  describe(): string { return `${this.name} ${formatMac(this.mac)} (${this.connected ? 'connected' : 'disconnected'})`; }
}
