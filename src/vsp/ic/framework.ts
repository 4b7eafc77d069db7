/**
 * The integration-component framework shared by every IC channel (contract §8.2, §8.3): message framing,
 * version negotiation, one outstanding transaction at a time, and the Hyper-V status of the service.
 */
import type { VirtualClock, TimerHandle } from '../../platform/clock.js';
import type { Channel, ChannelProvider, CloseReason, VmbusPacket } from '../../vmbus/channel.js';
import { randomGuid } from '../../vmbus/guid.js';

export const ICMSG_HDR = 28;
export const enum IcMsgType { NEGOTIATE = 0, HEARTBEAT = 1, KVPEXCHANGE = 2, SHUTDOWN = 3, TIMESYNC = 4, VSS = 5 }
export const ICMSGHDRFLAG_TRANSACTION = 1;
export const ICMSGHDRFLAG_REQUEST = 2;
export const ICMSGHDRFLAG_RESPONSE = 4;

export const S_OK = 0;
export const E_FAIL = 0x80004005;
export const S_CONT = 0x80070103;

/** Hyper-V's integration-service status words (Get-VMIntegrationService PrimaryStatusDescription). */
export type IcStatus = 'OK' | 'No Contact' | 'Lost Communication' | 'Protocol Mismatch';

export interface IcVersion { major: number; minor: number }
const v = (s: string): IcVersion => { const [a, b] = s.split('.').map(Number); return { major: a, minor: b }; };
export const versionsOf = (...s: string[]): IcVersion[] => s.map(v);
export const fmt = (x: IcVersion | null): string => x ? `${x.major}.${x.minor}` : '-';

export class IcError extends Error {}

/** Saved state of one integration component. */
export interface IcState {
  instance: string; negotiated: boolean; mismatch: boolean; hadContact: boolean;
  frameworkVersion: IcVersion | null; messageVersion: IcVersion | null; txId: number;
  /** The request the guest had not answered at the save. */
  pending: { type: IcMsgType; id: bigint } | null;
  extra: Record<string, unknown>;
}

export function hresult(status: number): string { return '0x' + (status >>> 0).toString(16).padStart(8, '0'); }

/** Everything an IC needs from the partition. */
export interface IcContext {
  clock: VirtualClock;
  log: (message: string) => void;
}

export interface IcOptions { instance?: string }

/** Base of the five ICs: a VMBus provider that negotiates versions and serialises transactions. */
export abstract class IntegrationComponent implements ChannelProvider {
  abstract readonly interfaceType: string;
  /** Hyper-V's service name, e.g. "Key-Value Pair Exchange". */
  abstract readonly name: string;
  readonly instance: string;
  abstract readonly maxPacketSize: number;
  protected abstract readonly icType: IcMsgType;
  protected abstract readonly frameworkVersions: IcVersion[];
  protected abstract readonly messageVersions: IcVersion[];

  channel: Channel | null = null;
  frameworkVersion: IcVersion | null = null;
  messageVersion: IcVersion | null = null;
  protected negotiated = false;
  protected mismatch = false;
  /** Ever negotiated since the partition started (distinguishes No Contact from Lost Communication). */
  protected hadContact = false;
  private chain: Promise<unknown> = Promise.resolve();
  private txId = 0;
  protected timers: TimerHandle[] = [];
  /** Message type of the transaction waiting for the guest (saved state), null when none. */
  private pendingType: IcMsgType | null = null;

  constructor(protected readonly ctx: IcContext, o: IcOptions = {}) {
    this.instance = o.instance ?? randomGuid();
  }

  get status(): IcStatus {
    if (this.mismatch) return 'Protocol Mismatch';
    if (this.negotiated) return 'OK';
    return this.hadContact ? 'Lost Communication' : 'No Contact';
  }

  /** Negotiated and usable. */
  get ready(): boolean { return this.negotiated && this.channel !== null; }

  onOpen(channel: Channel): void {
    this.channel = channel;
    this.negotiated = false; this.mismatch = false;
    this.chain = Promise.resolve();
    void this.negotiate(channel);
  }

  onPacket(channel: Channel, p: VmbusPacket): void {
    // The guest never starts IC transactions; a packet that answers nothing is stale or bogus.
    if (p.payload.length < ICMSG_HDR) channel.fault(`${p.payload.length}-byte IC packet is shorter than the IC header`);
    else this.ctx.log(`${this.name}: unsolicited IC packet (transaction ${p.transactionId}) ignored`);
  }

  onClose(channel: Channel, _reason: CloseReason): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.negotiated = false;
    for (const t of this.timers) this.ctx.clock.cancel(t);
    this.timers = [];
    this.closed();
  }

  /** Hook: negotiation succeeded. */
  protected negotiatedHook(): void {}
  /** Hook: restored in the negotiated state (re-arm periodic work). */
  protected resumedHook(): void {}
  /** Hook: subclass fields for the saved state. */
  protected saveExtra(): Record<string, unknown> { return {}; }
  protected restoreExtra(_s: Record<string, unknown>): void {}
  /**
   * Hook: the guest answers, after a restore, a transaction of `type` sent before the save (its requester is
   * gone). Default: wait for it (bounded), so transactions stay one at a time.
   */
  protected resumeReply(_type: IcMsgType, reply: Promise<DataView>): Promise<unknown> { return reply; }

  /** Saved state (Save-VM): identity, negotiation and the transaction the guest still has to answer. */
  saveState(): IcState {
    const ids = this.channel?.pendingTransactions ?? [];
    const last = ids.reduce<bigint | null>((m, x) => (m === null || x > m ? x : m), null);
    return {
      instance: this.instance, negotiated: this.negotiated, mismatch: this.mismatch, hadContact: this.hadContact,
      frameworkVersion: this.frameworkVersion, messageVersion: this.messageVersion, txId: this.txId,
      pending: this.pendingType !== null && last !== null ? { type: this.pendingType, id: last } : null,
      extra: this.saveExtra(),
    };
  }

  /** Saved state, step 1 (before the VMBus host is restored): the instance GUID the guest knows the device by. */
  restoreIdentity(s: IcState): void {
    if (typeof s.instance !== 'string' || !/^[0-9a-f-]{36}$/i.test(s.instance)) throw new Error(`${this.name}: saved instance GUID is malformed`);
    (this as { instance: string }).instance = s.instance;
  }

  /** Saved state, step 2: `channel` is the channel the restored VMBus host reopened (null when closed). */
  restoreState(s: IcState, channel: Channel | null): void {
    const ver = (x: IcVersion | null, list: IcVersion[]): IcVersion | null =>
      x === null ? null : list.find((y) => y.major === x.major && y.minor === x.minor) ?? null;
    this.frameworkVersion = ver(s.frameworkVersion, this.frameworkVersions);
    this.messageVersion = ver(s.messageVersion, this.messageVersions);
    if (s.negotiated && (this.frameworkVersion === null || this.messageVersion === null)) throw new Error(`${this.name}: saved protocol versions are not ones this host offers`);
    this.channel = channel;
    this.negotiated = s.negotiated && channel !== null;
    this.mismatch = s.mismatch; this.hadContact = s.hadContact;
    this.txId = s.txId & 0xff;
    this.restoreExtra(s.extra ?? {});
    this.chain = Promise.resolve();
    if (channel !== null && s.pending !== null) {
      const type = s.pending.type;
      const reply = channel.adoptTransaction(s.pending.id).then((p) => this.replyView(channel, p, type, ICMSG_HDR));
      this.pendingType = type;
      const done = (type === IcMsgType.NEGOTIATE
        ? reply.then((r) => this.negotiationReply(channel, r))
        : this.resumeReply(type, this.bounded(reply, 30_000))).finally(() => { this.pendingType = null; });
      this.chain = done.catch(() => undefined);
    }
    if (this.negotiated) this.resumedHook();
  }

  private bounded<T>(p: Promise<T>, ms: number): Promise<T> {
    let timer: TimerHandle | null = null;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.ctx.clock.at(this.ctx.clock.now() + ms * 1e6, () => reject(new IcError(`${this.name}: the guest did not answer`)));
    });
    return Promise.race([p, timeout]).finally(() => this.ctx.clock.cancel(timer));
  }

  /** A guest reply as a view, checked to answer `type` (a malformed one faults the channel). */
  private replyView(ch: Channel, p: VmbusPacket, type: IcMsgType, minLen: number): DataView {
    const view = new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.length);
    if (p.payload.length < minLen || view.getUint16(12, true) !== type) {
      ch.fault(`malformed ${this.name} reply (${p.payload.length} bytes, type ${p.payload.length >= 14 ? view.getUint16(12, true) : '?'})`);
      throw new IcError(`${this.name}: malformed reply from the guest`);
    }
    return view;
  }
  /** Hook: the channel went away. */
  protected closed(): void {}

  /** Header + `payloadSize` bytes, ready for a request of `type`. */
  protected frame(type: IcMsgType, payloadSize: number): { bytes: Uint8Array; view: DataView } {
    const bytes = new Uint8Array(ICMSG_HDR + payloadSize);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, 0, true); // vmbuspipe_hdr flags (ignored by the guest)
    view.setUint32(4, bytes.length - 8, true);
    const fw = this.frameworkVersion ?? this.frameworkVersions[0], msg = this.messageVersion ?? this.messageVersions[0];
    view.setUint16(8, fw.major, true); view.setUint16(10, fw.minor, true);
    view.setUint16(12, type, true);
    view.setUint16(14, msg.major, true); view.setUint16(16, msg.minor, true);
    view.setUint16(18, payloadSize, true);
    view.setUint32(20, 0, true);
    view.setUint8(24, this.txId++ & 0xff);
    view.setUint8(25, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST);
    return { bytes, view };
  }

  /**
   * One transaction: send `bytes`, wait for the guest's reply (validated as a response to `type` of the
   * same length). Transactions are serialised: the IC channels read one packet per interrupt.
   */
  protected transact(bytes: Uint8Array, type: IcMsgType, timeoutMs: number | null): Promise<DataView> {
    const run = async (): Promise<DataView> => {
      const ch = this.channel;
      if (!ch) throw new IcError(`${this.name}: the channel is not open`);
      let timer: TimerHandle | null = null;
      const reply = ch.request(bytes);
      const timeout = timeoutMs === null ? null : new Promise<never>((_, reject) => {
        timer = this.ctx.clock.at(this.ctx.clock.now() + timeoutMs * 1e6, () =>
          reject(new IcError(`${this.name}: the guest did not answer within ${timeoutMs / 1000} s`)));
      });
      this.pendingType = type;
      try {
        const p = timeout ? await Promise.race([reply, timeout]) : await reply;
        return this.replyView(ch, p, type, Math.min(bytes.length, ICMSG_HDR));
      } finally {
        this.pendingType = null;
        this.ctx.clock.cancel(timer);
      }
    };
    const r = this.chain.then(run, run);
    this.chain = r.catch(() => undefined);
    return r;
  }

  private async negotiate(ch: Channel): Promise<void> {
    const fw = this.frameworkVersions, msg = this.messageVersions;
    const n = fw.length + msg.length;
    // Room for the host's lists; the guest answers in place with at most two entries.
    const f = this.frame(IcMsgType.NEGOTIATE, 8 + 4 * Math.max(n, 2));
    f.view.setUint16(ICMSG_HDR, fw.length, true);
    f.view.setUint16(ICMSG_HDR + 2, msg.length, true);
    [...fw, ...msg].forEach((x, i) => {
      f.view.setUint16(ICMSG_HDR + 8 + i * 4, x.major, true);
      f.view.setUint16(ICMSG_HDR + 10 + i * 4, x.minor, true);
    });
    let r: DataView;
    try {
      // No time limit: Linux answers the KVP negotiation only once hv_kvp_daemon runs, which may be much
      // later (or never). The pending request ends when the channel closes.
      r = await this.transact(f.bytes, IcMsgType.NEGOTIATE, null);
    } catch (e) {
      if (this.channel === ch) this.ctx.log(`${this.name}: negotiation failed: ${(e as Error).message}`);
      return;
    }
    this.negotiationReply(ch, r);
  }

  private negotiationReply(ch: Channel, r: DataView): void {
    if (this.channel !== ch) return;
    const fw = this.frameworkVersions, msg = this.messageVersions;
    const fwCount = r.getUint16(ICMSG_HDR, true), msgCount = r.getUint16(ICMSG_HDR + 2, true);
    if (fwCount === 0 || msgCount === 0) { this.mismatch = true; this.hadContact = true; this.ctx.log(`${this.name}: protocol mismatch`); return; }
    if (r.byteLength < ICMSG_HDR + 16) { ch.fault('negotiation reply too short'); return; }
    const chosenFw = { major: r.getUint16(ICMSG_HDR + 8, true), minor: r.getUint16(ICMSG_HDR + 10, true) };
    const chosenMsg = { major: r.getUint16(ICMSG_HDR + 12, true), minor: r.getUint16(ICMSG_HDR + 14, true) };
    const has = (list: IcVersion[], x: IcVersion): boolean => list.some((y) => y.major === x.major && y.minor === x.minor);
    if (!has(fw, chosenFw) || !has(msg, chosenMsg)) {
      ch.fault(`guest chose versions ${fmt(chosenFw)}/${fmt(chosenMsg)} the host did not offer`);
      return;
    }
    this.frameworkVersion = chosenFw;
    this.messageVersion = chosenMsg;
    this.negotiated = true;
    this.hadContact = true;
    this.negotiatedHook();
  }

  /** Run `f` every `ms` of virtual time while the channel is open. */
  protected every(ms: number, f: () => void): void {
    const arm = (): void => {
      const h = this.ctx.clock.at(this.ctx.clock.now() + ms * 1e6, () => {
        this.timers = this.timers.filter((t) => t !== h);
        if (!this.channel) return;
        arm();
        f();
      });
      this.timers.push(h);
    };
    arm();
  }

  /** Error for host requests when the service cannot take them. */
  protected unavailable(what: string): IcError {
    return new IcError(`${what}: the guest has no ${this.name} integration service running (status: ${this.status}). ` +
      'Check that the service is enabled for this VM and that the guest loaded hv_utils' +
      (this.name === 'Key-Value Pair Exchange' ? ' and runs hv_kvp_daemon' : this.name === 'VSS' ? ' and runs hv_vss_daemon' : '') + '.');
  }
}

export function utf16(s: string, maxBytes: number): Uint8Array {
  const out = new Uint8Array(Math.min(maxBytes, (s.length + 1) * 2));
  for (let i = 0; i < s.length && i * 2 + 1 < out.length; i++) { out[i * 2] = s.charCodeAt(i) & 0xff; out[i * 2 + 1] = s.charCodeAt(i) >> 8; }
  return out;
}

export function fromUtf16(b: Uint8Array, off: number, byteLen: number): string {
  let s = '';
  for (let i = 0; i + 1 < byteLen; i += 2) {
    const c = b[off + i] | (b[off + i + 1] << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}
