/**
 * The VMBus host (the parent side of VMBus): channel-management protocol (contract §6), GPADLs and the
 * channels of every offered device. HvPostMessage/HvSignalEvent from the hypervisor land here.
 *
 * Everything the guest sends is validated; a bad message is logged and ignored (or answered with a failure
 * so the guest's wait ends), and a misbehaving channel is rescinded and offered afresh. Nothing a guest
 * does throws out of here.
 */
import type { GuestMemory } from '../platform/memory.js';
import type { SynIC } from '../hypervisor/synic.js';
import { SYNIC_QUEUE_SOFT_LIMIT } from '../hypervisor/synic.js';
import type { HypervisorConnections } from '../hypervisor/hypercall.js';
import { GuestRam, u64, consoleFaultLogger, type FaultLogger } from '../hypervisor/guest-memory-access.js';
import * as T from '../hypervisor/tlfs.js';
import { VMBUS_SINT } from '../platform/layout.js';
import { Gpadl, GPADL_MAX_PAGES } from './gpadl.js';
import { Ring, InboundRing, OutboundRing } from './ring.js';
import { Channel, type ChannelHost, type ChannelProvider, type ChannelState, type CloseReason } from './channel.js';
import { guidToBytes } from './guid.js';
import * as P from './protocol.js';
import { Msg } from './protocol.js';

export interface VmbusHostOptions {
  memory: GuestMemory;
  synic: SynIC;
  vpCount: number;
  /** Highest protocol version offered (default 5.3); lower it to emulate an older host. */
  maxVersion?: number;
  log?: FaultLogger;
  /** Times a faulting channel is re-offered before it stays rescinded. Default 3. */
  maxChannelResets?: number;
  /** Deferred work (default setImmediate). */
  defer?: (f: () => void) => void;
}

export type DeviceState = 'idle' | 'offered' | 'open' | 'rescinded' | 'removed';

/** A provider registered with the host, and its offer/channel state. */
export class VmbusDevice {
  relid = 0;
  state: DeviceState = 'idle';
  channel: Channel | null = null;
  resets = 0;
  /** Re-offer after RELID_RELEASED (reset after a fault) instead of staying gone. */
  reofferOnRelease = false;
  /** removeDevice() was called: never offer again. */
  removing = false;
  constructor(readonly provider: ChannelProvider) {}
  get connectionId(): number { return P.CHANNEL_CONNECTION_ID_BASE + this.relid; }
}

export type ConnectionState = 'disconnected' | 'connected';

export interface VmbusHostState {
  state: ConnectionState; version: number; targetVcpu: number; messageSint: number; monitorPages: number[];
  interruptPage: number; offersRequested: boolean;
  gpadls: Array<{ handle: number; relid: number; byteCount: number; byteOffset: number; expectedPages: number; pfns: number[]; complete: boolean; inUseBy: number | null }>;
  devices: Array<{ instance: string; relid: number; state: string; resets: number; reofferOnRelease: boolean; removing: boolean; channel: ChannelState | null }>;
}

const MAX_GPADLS = 4096;

export class VmbusHost implements HypervisorConnections {
  state: ConnectionState = 'disconnected';
  /** Negotiated version (major << 16 | minor), 0 while disconnected. */
  version = 0;
  /** VP index that receives channel-management messages. */
  targetVcpu = 0;
  /** SINT of channel-management messages (msg_sint for >= 5.0). */
  messageSint = VMBUS_SINT;
  monitorPages: [number, number] = [0, 0];
  interruptPage = 0;
  /** Faults caused by the guest, newest last (bounded). */
  readonly faults: string[] = [];

  private readonly devices: VmbusDevice[] = [];
  private readonly byRelid = new Map<number, VmbusDevice>();
  private readonly byConnection = new Map<number, VmbusDevice>();
  private readonly gpadls = new Map<number, Gpadl>();
  private offersRequested = false;
  private readonly ram: GuestRam;
  private readonly logFault: FaultLogger;
  private readonly maxVersion: number;
  private readonly chHost: ChannelHost;

  constructor(private readonly o: VmbusHostOptions) {
    this.ram = new GuestRam(o.memory);
    this.logFault = o.log ?? consoleFaultLogger;
    this.maxVersion = o.maxVersion ?? P.VERSION_WIN10_V5_3;
    const defer = o.defer ?? ((f: () => void) => { setImmediate(f); });
    this.chHost = {
      memory: o.memory,
      signalGuest: (ch) => { o.synic.signalEvent(ch.targetVp, VMBUS_SINT, ch.relid); },
      faultChannel: (ch, reason) => this.faultChannel(ch, reason),
      gpadl: (h) => this.gpadls.get(h),
      log: (m) => this.fault(m),
      defer,
    };
  }

  /** Versions this host accepts, newest first. */
  get versions(): number[] { return P.SUPPORTED_VERSIONS.filter((v) => v <= this.maxVersion); }

  /** Register a device; it is offered now if the guest already asked for offers (hot add). */
  addDevice(provider: ChannelProvider): VmbusDevice {
    const same = this.devices.find((d) => d.provider.instance.toLowerCase() === provider.instance.toLowerCase() && d.state !== 'removed');
    if (same?.removing && same.provider === provider) {
      // Enabled again before the guest released the rescinded channel: offer it afresh once it does.
      same.removing = false;
      same.reofferOnRelease = true;
      return same;
    }
    if (same) throw new Error(`a VMBus device with instance ${provider.instance} is already registered`);
    guidToBytes(provider.interfaceType); guidToBytes(provider.instance); // validate early with a clear error
    const d = new VmbusDevice(provider);
    this.devices.push(d);
    if (this.offersRequested) this.offer(d);
    return d;
  }

  /** Hot remove: rescind the offer; the device is forgotten once the guest releases the relid. */
  removeDevice(d: VmbusDevice): void {
    const i = this.devices.indexOf(d);
    if (i < 0) return;
    if (d.state === 'idle') { this.devices.splice(i, 1); d.state = 'removed'; return; }
    d.reofferOnRelease = false;
    d.removing = true;
    this.rescind(d, 'rescinded');
    if (d.state === 'removed') this.devices.splice(this.devices.indexOf(d), 1);
  }

  get deviceList(): readonly VmbusDevice[] { return this.devices; }
  channelOf(d: VmbusDevice): Channel | null { return d.channel; }

  /** VM reset (or power cycle): drop every channel and GPADL and wait for a new INITIATE_CONTACT. */
  reset(): void { this.disconnect('reset'); }

  // ---- saved state -----------------------------------------------------------------------------------

  /** Saved state (Save-VM): connection, offers by device instance, GPADLs and open channels. */
  saveState(): VmbusHostState {
    return {
      state: this.state, version: this.version, targetVcpu: this.targetVcpu, messageSint: this.messageSint,
      monitorPages: [...this.monitorPages], interruptPage: this.interruptPage, offersRequested: this.offersRequested,
      gpadls: [...this.gpadls.values()].map((g) => ({
        handle: g.handle, relid: g.relid, byteCount: g.byteCount, byteOffset: g.byteOffset, expectedPages: g.expectedPages,
        pfns: [...g.pfns], complete: g.complete, inUseBy: g.inUseBy,
      })),
      devices: this.devices.map((d) => ({
        instance: d.provider.instance.toLowerCase(), relid: d.relid, state: d.state, resets: d.resets,
        reofferOnRelease: d.reofferOnRelease, removing: d.removing, channel: d.channel?.saveState() ?? null,
      })),
    };
  }

  /**
   * Restore into a fresh host whose devices (same instances) are registered and not yet offered. Everything
   * is checked against guest memory before anything changes; afterwards each open channel looks at its ring
   * once, in case the guest signalled just before the save.
   */
  restoreState(s: VmbusHostState): void {
    if (this.state !== 'disconnected' || this.gpadls.size > 0) throw new Error('VMBus state can only be restored into a fresh host');
    if (s.state !== 'connected' && s.state !== 'disconnected') throw new Error(`VMBus connection state '${s.state}' is unknown`);
    if (s.targetVcpu >= this.o.vpCount || s.messageSint < 1 || s.messageSint >= T.HV_SYNIC_SINT_COUNT) throw new Error('VMBus message target is out of range');
    const gpadls = new Map<number, Gpadl>();
    for (const x of s.gpadls) {
      if (x.pfns.length > GPADL_MAX_PAGES || x.expectedPages > GPADL_MAX_PAGES || gpadls.has(x.handle)) throw new Error(`GPADL 0x${x.handle.toString(16)} is malformed`);
      const g = new Gpadl(x.handle, x.relid, x.byteCount, x.byteOffset, x.expectedPages, [...x.pfns]);
      if (x.complete) {
        const err = g.finish(this.o.memory);
        if (err) throw new Error(`GPADL 0x${x.handle.toString(16)}: ${err}`);
      }
      g.inUseBy = x.inUseBy;
      gpadls.set(x.handle, g);
    }
    const plan: Array<{ d: VmbusDevice; x: VmbusHostState['devices'][number] }> = [];
    const relids = new Set<number>();
    for (const x of s.devices) {
      const d = this.devices.find((e) => e.provider.instance.toLowerCase() === x.instance);
      if (!d) throw new Error(`the saved VMBus device ${x.instance} is not configured in this VM`);
      if (!['idle', 'offered', 'open', 'rescinded'].includes(x.state)) throw new Error(`VMBus device ${x.instance} has state '${x.state}'`);
      if (x.state !== 'idle') {
        if (!(x.relid > 0 && x.relid < P.MAX_CHANNEL_RELIDS) || relids.has(x.relid)) throw new Error(`VMBus device ${x.instance} has a bad channel id ${x.relid}`);
        relids.add(x.relid);
      }
      if ((x.state === 'open') !== (x.channel !== null)) throw new Error(`VMBus device ${x.instance}: channel state does not match '${x.state}'`);
      if (x.channel) {
        const g = gpadls.get(x.channel.ringGpadl);
        const c = x.channel;
        if (!g || !g.complete || g.relid !== x.relid || g.inUseBy !== x.relid) throw new Error(`channel ${x.relid}: its ring GPADL is missing`);
        if (c.inboundPages < 2 || g.pageOffsets.length - c.inboundPages < 2 || c.targetVp >= this.o.vpCount) throw new Error(`channel ${x.relid}: ring layout is malformed`);
      }
      plan.push({ d, x });
    }
    // Devices enabled in this VM but absent from the file (enabled while saved) wait for the next offer round.
    this.state = s.state; this.version = s.version; this.targetVcpu = s.targetVcpu; this.messageSint = s.messageSint;
    this.monitorPages = [s.monitorPages[0], s.monitorPages[1]]; this.interruptPage = s.interruptPage;
    this.offersRequested = s.offersRequested;
    for (const [h, g] of gpadls) this.gpadls.set(h, g);
    const opened: Channel[] = [];
    for (const { d, x } of plan) {
      d.relid = x.relid; d.state = x.state as DeviceState; d.resets = x.resets;
      d.reofferOnRelease = x.reofferOnRelease; d.removing = x.removing;
      if (d.state !== 'idle') { this.byRelid.set(d.relid, d); this.byConnection.set(d.connectionId, d); }
      if (x.channel) {
        const c = x.channel;
        const g = gpadls.get(c.ringGpadl)!;
        const ch = new Channel(this.chHost, d.provider, d.relid, d.connectionId, c.targetVp, c.ringGpadl);
        ch.attach(new InboundRing(new Ring(this.ram, g.pageOffsets.slice(0, c.inboundPages)), d.provider.maxPacketSize),
          new OutboundRing(new Ring(this.ram, g.pageOffsets.slice(c.inboundPages))));
        ch.restoreState(c);
        d.channel = ch;
        opened.push(ch);
      }
    }
    // Offers the guest never saw (a service enabled after the save) go out now, as a hot add would.
    if (this.offersRequested) for (const d of this.devices) if (d.state === 'idle' && !plan.some((p) => p.d === d)) this.offer(d);
    if (opened.length > 0) this.chHost.defer(() => { for (const ch of opened) ch.onGuestSignal(); });
  }

  // ---- HypervisorConnections --------------------------------------------------------------------------

  postMessage(vp: number, connectionId: number, messageType: number, payload: Uint8Array): number {
    if (messageType !== P.HV_MESSAGE_TYPE_VMBUS) return T.HV_STATUS_INVALID_PARAMETER;
    const type = payload.length >= 4 ? new DataView(payload.buffer, payload.byteOffset).getUint32(0, true) : -1;
    if (connectionId === P.VMBUS_MESSAGE_CONNECTION_ID_4) {
      // Only a >= 5.0 host listens on connection 4, and only for INITIATE_CONTACT; 18 makes Linux fall back.
      if (this.maxVersion < P.VERSION_WIN10_V5 || type !== Msg.INITIATE_CONTACT) return T.HV_STATUS_INVALID_CONNECTION_ID;
    } else if (connectionId !== P.VMBUS_MESSAGE_CONNECTION_ID) {
      return T.HV_STATUS_INVALID_CONNECTION_ID;
    }
    // Flow control: when the guest is not consuming our replies, make it retry (it backs off).
    if (this.state === 'connected' && this.o.synic.queued(this.targetVcpu, this.messageSint) >= SYNIC_QUEUE_SOFT_LIMIT) {
      return T.HV_STATUS_INSUFFICIENT_BUFFERS;
    }
    this.handleMessage(vp, connectionId, payload);
    return T.HV_STATUS_SUCCESS;
  }

  signalEvent(_vp: number, connectionId: number, flag: number): number {
    if (flag !== 0) return T.HV_STATUS_INVALID_PORT_ID;
    const d = this.byConnection.get(connectionId);
    if (!d) return T.HV_STATUS_INVALID_CONNECTION_ID;
    d.channel?.onGuestSignal();
    return T.HV_STATUS_SUCCESS;
  }

  // ---- messages ---------------------------------------------------------------------------------------

  private handleMessage(vp: number, connectionId: number, p: Uint8Array): void {
    if (p.length < 8) { this.fault(`message of ${p.length} bytes is shorter than the header`); return; }
    const v = new DataView(p.buffer, p.byteOffset, p.length);
    const type = v.getUint32(0, true);
    const name = P.MSG_NAMES[type] ?? `type ${type}`;
    const min = P.GUEST_MESSAGE_MIN_SIZE[type];
    if (min === undefined) { this.fault(`unexpected message ${name} from the guest`); return; }
    if (p.length < min) { this.fault(`${name} of ${p.length} bytes, expected at least ${min}`); return; }
    if (type !== Msg.INITIATE_CONTACT && this.state !== 'connected') { this.fault(`${name} before INITIATE_CONTACT`); return; }
    switch (type) {
      case Msg.INITIATE_CONTACT: return this.onInitiateContact(vp, connectionId, v);
      case Msg.REQUESTOFFERS: return this.onRequestOffers();
      case Msg.GPADL_HEADER: return this.onGpadlHeader(v);
      case Msg.GPADL_BODY: return this.onGpadlBody(v);
      case Msg.GPADL_TEARDOWN: return this.onGpadlTeardown(v);
      case Msg.OPENCHANNEL: return this.onOpenChannel(v);
      case Msg.CLOSECHANNEL: return this.onCloseChannel(v);
      case Msg.RELID_RELEASED: return this.onRelidReleased(v);
      case Msg.UNLOAD: return this.onUnload();
      case Msg.MODIFYCHANNEL: return this.onModifyChannel(v);
      case Msg.TL_CONNECT_REQUEST: this.fault('TL_CONNECT_REQUEST: hv_sock is not offered by this host'); return;
    }
  }

  private send(bytes: Uint8Array): void {
    if (!this.o.synic.postMessage(this.targetVcpu, this.messageSint, P.HV_MESSAGE_TYPE_VMBUS, bytes)) {
      this.fault(`could not queue ${P.MSG_NAMES[bytes[0]]} for VP ${this.targetVcpu}`);
    }
  }

  private onInitiateContact(vp: number, connectionId: number, v: DataView): void {
    // A new contact while connected is a rebooted or kexec'ed guest: start over (as QEMU does).
    if (this.state === 'connected') this.disconnect('unload');
    const version = v.getUint32(8, true);
    const target = v.getUint32(12, true);
    const v5 = version >= P.VERSION_WIN10_V5;
    const sint = v5 ? v.getUint8(16) : VMBUS_SINT;
    let ok = this.versions.includes(version);
    // >= 5.0 is requested on connection 4 and older versions on connection 1 (contract §6.1).
    if (ok && v5 !== (connectionId === P.VMBUS_MESSAGE_CONNECTION_ID_4)) ok = false;
    if (target >= this.o.vpCount) { this.fault(`INITIATE_CONTACT names VP ${target} of ${this.o.vpCount}`); ok = false; }
    if (sint < 1 || sint >= T.HV_SYNIC_SINT_COUNT) { this.fault(`INITIATE_CONTACT asks for SINT ${sint}`); ok = false; }
    // An impossible target still gets its answer, on the VP that asked.
    this.targetVcpu = target < this.o.vpCount ? target : vp;
    this.messageSint = ok ? sint : VMBUS_SINT;
    const r = P.message(Msg.VERSION_RESPONSE, 16);
    r.view.setUint8(8, ok ? 1 : 0);
    r.view.setUint32(12, P.VMBUS_MESSAGE_CONNECTION_ID, true);
    if (ok) {
      this.state = 'connected';
      this.version = version;
      this.interruptPage = v5 ? 0 : u64(v.getUint32(16, true), v.getUint32(20, true));
      this.monitorPages = [u64(v.getUint32(24, true), v.getUint32(28, true)), u64(v.getUint32(32, true), v.getUint32(36, true))];
    }
    this.send(r.bytes);
  }

  private onRequestOffers(): void {
    this.offersRequested = true;
    for (const d of this.devices) if (d.state === 'idle') this.offer(d);
    this.send(P.message(Msg.ALLOFFERS_DELIVERED, 8).bytes);
  }

  private allocateRelid(): number {
    for (let r = 1; r < P.MAX_CHANNEL_RELIDS; r++) if (!this.byRelid.has(r)) return r;
    return 0;
  }

  private offer(d: VmbusDevice): void {
    if (this.state !== 'connected') return;
    const relid = d.relid && !this.byRelid.has(d.relid) ? d.relid : this.allocateRelid();
    if (!relid) { this.fault(`no free relid for ${d.provider.name}`); return; }
    d.relid = relid;
    d.state = 'offered';
    this.byRelid.set(relid, d);
    this.byConnection.set(d.connectionId, d);
    const m = P.message(Msg.OFFERCHANNEL, P.OFFER_SIZE);
    m.bytes.set(guidToBytes(d.provider.interfaceType), 8);
    m.bytes.set(guidToBytes(d.provider.instance), 24);
    if (d.provider.userDefined) m.bytes.set(d.provider.userDefined.subarray(0, 120), 60);
    m.view.setUint32(184, relid, true);
    // No monitor page; a dedicated interrupt: every guest notification is an HvSignalEvent (contract §6.5).
    m.view.setUint16(190, 1, true);
    m.view.setUint32(192, d.connectionId, true);
    this.send(m.bytes);
  }

  private deviceFor(relid: number, what: string): VmbusDevice | null {
    const d = this.byRelid.get(relid);
    if (!d || d.state === 'rescinded') { this.fault(`${what} names unknown channel ${relid}`); return null; }
    return d;
  }

  private gpadlCreated(relid: number, handle: number, status: number): void {
    const m = P.message(Msg.GPADL_CREATED, 20);
    m.view.setUint32(8, relid, true);
    m.view.setUint32(12, handle, true);
    m.view.setUint32(16, status, true);
    this.send(m.bytes);
  }

  private onGpadlHeader(v: DataView): void {
    const relid = v.getUint32(8, true), handle = v.getUint32(12, true);
    const rangeBuflen = v.getUint16(16, true), rangeCount = v.getUint16(18, true);
    const byteCount = v.getUint32(20, true), byteOffset = v.getUint32(24, true);
    const fail = (why: string): void => { this.fault(`GPADL 0x${handle.toString(16)}: ${why}`); this.gpadlCreated(relid, handle, P.STATUS_UNSUCCESSFUL); };
    if (!this.deviceFor(relid, 'GPADL_HEADER')) { this.gpadlCreated(relid, handle, P.STATUS_UNSUCCESSFUL); return; }
    if (this.gpadls.has(handle)) { fail('handle already in use'); return; }
    if (this.gpadls.size >= MAX_GPADLS) { fail('too many GPADLs'); return; }
    if (rangeCount !== 1) { fail(`${rangeCount} ranges (only 1 supported)`); return; }
    if (rangeBuflen < 16 || (rangeBuflen - 8) % 8 !== 0) { fail(`range_buflen ${rangeBuflen}`); return; }
    const pages = (rangeBuflen - 8) / 8;
    if (pages > GPADL_MAX_PAGES) { fail(`${pages} pages exceed the limit of ${GPADL_MAX_PAGES}`); return; }
    if (byteOffset >= 4096 || byteCount === 0 || byteOffset + byteCount > pages * 4096 || byteOffset + byteCount <= (pages - 1) * 4096) {
      fail(`byte range ${byteOffset}+${byteCount} does not match ${pages} pages`); return;
    }
    const g = new Gpadl(handle, relid, byteCount, byteOffset, pages);
    const inHeader = Math.min(pages, Math.floor((v.byteLength - 28) / 8));
    g.addPfns(this.readPfns(v, 28, inHeader));
    this.gpadls.set(handle, g);
    if (g.received) this.finishGpadl(g);
  }

  private readPfns(v: DataView, off: number, n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const hi = v.getUint32(off + i * 8 + 4, true);
      // PFNs beyond 2^40 pages cannot be RAM; keep them out of float range.
      out.push(hi >= 0x100 ? Number.MAX_SAFE_INTEGER : u64(v.getUint32(off + i * 8, true), hi));
    }
    return out;
  }

  private onGpadlBody(v: DataView): void {
    const handle = v.getUint32(12, true);
    const g = this.gpadls.get(handle);
    if (!g || g.complete) { this.fault(`GPADL_BODY for unknown or complete GPADL 0x${handle.toString(16)}`); return; }
    if ((v.byteLength - 16) % 8 !== 0 || v.byteLength === 16) {
      this.failGpadl(g, `GPADL_BODY of ${v.byteLength} bytes`); return;
    }
    if (!g.addPfns(this.readPfns(v, 16, (v.byteLength - 16) / 8))) { this.failGpadl(g, 'more PFNs than announced'); return; }
    if (g.received) this.finishGpadl(g);
  }

  private failGpadl(g: Gpadl, why: string): void {
    this.gpadls.delete(g.handle);
    this.fault(`GPADL 0x${g.handle.toString(16)}: ${why}`);
    this.gpadlCreated(g.relid, g.handle, P.STATUS_UNSUCCESSFUL);
  }

  private finishGpadl(g: Gpadl): void {
    const err = g.finish(this.o.memory);
    if (err) { this.failGpadl(g, err); return; }
    this.gpadlCreated(g.relid, g.handle, 0);
  }

  private torndown(handle: number): void {
    const m = P.message(Msg.GPADL_TORNDOWN, 12);
    m.view.setUint32(8, handle, true);
    this.send(m.bytes);
  }

  private onGpadlTeardown(v: DataView): void {
    const relid = v.getUint32(8, true), handle = v.getUint32(12, true);
    const g = this.gpadls.get(handle);
    if (!g) {
      // Answer anyway: the guest waits for TORNDOWN without a timeout.
      this.fault(`GPADL_TEARDOWN of unknown GPADL 0x${handle.toString(16)}`);
      this.torndown(handle);
      return;
    }
    if (g.relid !== relid) this.fault(`GPADL_TEARDOWN of 0x${handle.toString(16)} names channel ${relid}, created on ${g.relid}`);
    if (g.inUseBy !== null) {
      const d = this.byRelid.get(g.inUseBy);
      if (d?.channel) this.faultChannel(d.channel, `ring GPADL 0x${handle.toString(16)} torn down while the channel is open`);
    }
    this.gpadls.delete(handle);
    this.torndown(handle);
  }

  private openResult(relid: number, openId: number, status: number): void {
    const m = P.message(Msg.OPENCHANNEL_RESULT, 20);
    m.view.setUint32(8, relid, true);
    m.view.setUint32(12, openId, true);
    m.view.setUint32(16, status, true);
    this.send(m.bytes);
  }

  private onOpenChannel(v: DataView): void {
    const relid = v.getUint32(8, true), openId = v.getUint32(12, true), handle = v.getUint32(16, true);
    const targetVp = v.getUint32(20, true), downstreamPages = v.getUint32(24, true);
    const d = this.byRelid.get(relid);
    const fail = (why: string): void => { this.fault(`OPENCHANNEL ${relid}: ${why}`); this.openResult(relid, openId, P.STATUS_UNSUCCESSFUL); };
    if (!d || d.state === 'rescinded') { fail('unknown channel'); return; }
    if (d.state === 'open') { fail('already open'); return; }
    const g = this.gpadls.get(handle);
    if (!g || !g.complete || g.relid !== relid) { fail(`ring GPADL 0x${handle.toString(16)} is not a complete GPADL of this channel`); return; }
    if (g.inUseBy !== null) { fail('ring GPADL already in use'); return; }
    const total = g.pageOffsets.length;
    if (g.byteOffset !== 0 || g.byteCount !== total * 4096) { fail('ring GPADL is not whole pages'); return; }
    if (downstreamPages < 2 || total - downstreamPages < 2) { fail(`ring split at page ${downstreamPages} of ${total}`); return; }
    if (targetVp >= this.o.vpCount) { fail(`target VP ${targetVp} does not exist`); return; }
    const ch = new Channel(this.chHost, d.provider, relid, d.connectionId, targetVp, handle);
    const inbound = new Ring(this.ram, g.pageOffsets.slice(0, downstreamPages));
    const outbound = new Ring(this.ram, g.pageOffsets.slice(downstreamPages));
    try {
      inbound.indices(); outbound.indices();
    } catch (e) { fail((e as Error).message); return; }
    ch.attach(new InboundRing(inbound, d.provider.maxPacketSize), new OutboundRing(outbound));
    g.inUseBy = relid;
    d.channel = ch;
    d.state = 'open';
    // Only after OPENCHANNEL_RESULT may the host send packets (contract §6.4).
    this.openResult(relid, openId, 0);
    try {
      d.provider.onOpen(ch);
    } catch (e) {
      this.faultChannel(ch, `provider failed to open: ${(e as Error).message}`);
    }
  }

  /** Stop a channel's rings and tell its provider. */
  private closeChannel(d: VmbusDevice, reason: CloseReason): void {
    const ch = d.channel;
    if (!ch) return;
    d.channel = null;
    const g = this.gpadls.get(ch.ringGpadl);
    if (g && g.inUseBy === d.relid) g.inUseBy = null;
    ch.detach(reason);
    try { d.provider.onClose(ch, reason); } catch (e) { this.fault(`${d.provider.name}: onClose failed: ${(e as Error).message}`); }
  }

  private onCloseChannel(v: DataView): void {
    const relid = v.getUint32(8, true);
    const d = this.byRelid.get(relid);
    if (d?.state === 'rescinded') return; // a rescinded channel's driver may still close it
    if (!d || d.state !== 'open') { this.fault(`CLOSECHANNEL of channel ${relid}, which is not open`); return; }
    this.closeChannel(d, 'closed');
    d.state = 'offered';
  }

  private rescind(d: VmbusDevice, reason: CloseReason): void {
    if (d.state === 'idle' || d.state === 'rescinded' || d.state === 'removed') return;
    this.closeChannel(d, reason);
    // Rescind implies teardown of the channel's GPADLs.
    for (const [h, g] of this.gpadls) if (g.relid === d.relid) this.gpadls.delete(h);
    if (this.state !== 'connected') { this.forget(d); return; }
    d.state = 'rescinded';
    const m = P.message(Msg.RESCIND_CHANNELOFFER, 12);
    m.view.setUint32(8, d.relid, true);
    this.send(m.bytes);
  }

  /** Drop the relid binding; the device goes back to idle (re-offered later) or is removed. */
  private forget(d: VmbusDevice): void {
    this.byRelid.delete(d.relid);
    this.byConnection.delete(d.connectionId);
    d.state = d.removing ? 'removed' : 'idle';
  }

  private onRelidReleased(v: DataView): void {
    const relid = v.getUint32(8, true);
    const d = this.byRelid.get(relid);
    if (!d || d.state !== 'rescinded') { this.fault(`RELID_RELEASED of channel ${relid}, which was not rescinded`); return; }
    const reoffer = d.reofferOnRelease;
    d.reofferOnRelease = false;
    this.byRelid.delete(relid);
    this.byConnection.delete(d.connectionId);
    if (d.removing) {
      d.state = 'removed';
      const i = this.devices.indexOf(d);
      if (i >= 0) this.devices.splice(i, 1);
      return;
    }
    d.state = 'idle';
    // A channel that faulted too often waits for the next guest connection (reboot) to be offered again.
    if (reoffer) this.offer(d);
  }

  private onUnload(): void {
    this.disconnect('unload');
    this.send(P.message(Msg.UNLOAD_RESPONSE, 8).bytes);
  }

  private onModifyChannel(v: DataView): void {
    const relid = v.getUint32(8, true), vp = v.getUint32(12, true);
    const d = this.byRelid.get(relid);
    let status = 0;
    if (!d?.channel || vp >= this.o.vpCount) { this.fault(`MODIFYCHANNEL ${relid} -> VP ${vp} rejected`); status = P.STATUS_UNSUCCESSFUL; } else d.channel.targetVp = vp;
    if (this.version >= P.VERSION_WIN10_V5_3) {
      const m = P.message(Msg.MODIFYCHANNEL_RESPONSE, 16);
      m.view.setUint32(8, relid, true);
      m.view.setUint32(12, status, true);
      this.send(m.bytes);
    }
  }

  /** Close every channel, drop all GPADLs and relids; devices return to "not offered". */
  private disconnect(reason: CloseReason): void {
    for (const d of this.devices) {
      this.closeChannel(d, reason);
      d.state = d.removing ? 'removed' : 'idle';
      d.reofferOnRelease = false;
      d.resets = 0;
    }
    for (let i = this.devices.length - 1; i >= 0; i--) if (this.devices[i].state === 'removed') this.devices.splice(i, 1);
    this.byRelid.clear();
    this.byConnection.clear();
    this.gpadls.clear();
    this.offersRequested = false;
    this.state = 'disconnected';
    this.version = 0;
  }

  // ---- faults -----------------------------------------------------------------------------------------

  private fault(message: string): void {
    this.faults.push(message);
    if (this.faults.length > 256) this.faults.shift();
    this.logFault('vmbus', message);
  }

  /** Guest misbehaviour on one channel: stop it, rescind it and (a bounded number of times) offer it again. */
  faultChannel(ch: Channel, reason: string): void {
    const d = this.byRelid.get(ch.relid);
    if (!d || d.channel !== ch) return;
    this.fault(`${d.provider.name} (channel ${ch.relid}): ${reason}; ${d.resets < (this.o.maxChannelResets ?? 3) ? 'resetting' : 'rescinding'} the channel`);
    d.resets++;
    d.reofferOnRelease = d.resets <= (this.o.maxChannelResets ?? 3);
    this.rescind(d, 'fault');
  }
}
