/**
 * Linux 6.1's hv_netvsc, test side: NVSP negotiation, receive/send buffers, RNDIS control and data over a
 * FakeChannel (contract §10). Also sends malformed input on request, for the hostile-guest suite.
 */
import { FakeLinuxGuest, FakeChannel, PAGE, type Offer, type GuestPacket } from '../../vmbus/fake-guest.js';

export const NIC_CLASS = 'f8615163-df3e-46c5-913f-f2d2f965ed0e';
export const NO_RESPONSE = 0xfffffffffffffffdn;

export interface RndisIn { type: number; bytes: Uint8Array; view: DataView }

export class FakeNetvsc {
  ch!: FakeChannel;
  /** Host completions (VM_PKT_COMP), by transaction id. */
  readonly completions = new Map<bigint, DataView>();
  /** RNDIS messages the host put in the receive buffer, in order. */
  readonly rndis: RndisIn[] = [];
  /** Received Ethernet frames. */
  readonly frames: Uint8Array[] = [];
  /** Return receive slots at once (false: a guest that never completes receives). */
  autoComplete = true;
  /** Transfer-page packets not completed yet (autoComplete off). */
  readonly unacked: bigint[] = [];
  recvPages: number[] = [];
  sendPages: number[] = [];
  recvGpadl = 0; sendGpadl = 0;
  private tid = 1n;
  private reqId = 1;
  badXfer = 0;

  constructor(readonly g: FakeLinuxGuest, readonly offer: Offer) {}

  open(ringPages = 32): void {
    const ch = this.g.open(this.offer, ringPages);
    if (typeof ch === 'number') throw new Error(`open failed: ${ch}`);
    this.ch = ch;
    ch.onPacket = (p) => this.onPacket(p);
  }

  /** Take over a channel whose rings already exist (a guest moved to a restored host). */
  adopt(ch: FakeChannel, from: FakeNetvsc): void {
    this.ch = ch;
    ch.onPacket = (p) => this.onPacket(p);
    this.recvPages = from.recvPages; this.sendPages = from.sendPages;
    this.recvGpadl = from.recvGpadl; this.sendGpadl = from.sendGpadl;
  }

  private onPacket(p: GuestPacket): void {
    if (p.type === 0xb) { this.completions.set(p.transId, new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.length)); return; }
    if (p.type !== 7) return;
    const ext = new DataView(p.extension!.buffer, p.extension!.byteOffset, p.extension!.length);
    if (ext.getUint16(0, true) !== 0xcafe) { this.badXfer++; return; }
    const n = ext.getUint32(4, true);
    for (let i = 0; i < n; i++) {
      const len = ext.getUint32(8 + i * 8, true), off = ext.getUint32(12 + i * 8, true);
      if (off + len > this.recvPages.length * PAGE || len > 1728) { this.badXfer++; continue; }
      const bytes = this.readBuf(this.recvPages, off, len);
      const view = new DataView(bytes.buffer);
      const m = { type: view.getUint32(0, true), bytes, view };
      this.rndis.push(m);
      if (m.type === 1) this.frames.push(bytes.slice(8 + view.getUint32(8, true), 8 + view.getUint32(8, true) + view.getUint32(12, true)));
    }
    if (this.autoComplete) this.completeReceive(p.transId); else this.unacked.push(p.transId);
  }

  completeReceive(transId: bigint): void {
    const c = new Uint8Array(16); const v = new DataView(c.buffer);
    v.setUint32(0, 108, true); v.setUint32(4, 1, true);
    this.ch.send(c, transId, 0xb);
  }

  readBuf(pages: number[], off: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.g.memory.bytes[pages[Math.floor((off + i) / PAGE)] + ((off + i) % PAGE)];
    return out;
  }
  writeBuf(pages: number[], off: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.g.memory.bytes[pages[Math.floor((off + i) / PAGE)] + ((off + i) % PAGE)] = data[i];
  }

  /** Send a 40-byte NVSP message inband; returns its transaction id. */
  nvsp(fill: (v: DataView) => void, o: { flags?: number; size?: number; tid?: bigint } = {}): bigint {
    const b = new Uint8Array(o.size ?? 40);
    fill(new DataView(b.buffer));
    const tid = o.tid ?? this.tid++;
    if (!this.ch.send(b, tid, 6, o.flags ?? 1)) throw new Error('guest ring full');
    return tid;
  }

  /** A GPA-direct packet: NVSP message + one single-page range per `ranges` entry (gpa, len). */
  gpaDirect(msg: Uint8Array, ranges: Array<{ gpa: number; len: number }>, tid = this.tid++, rangeCount = ranges.length): bigint {
    const ext = 8 + ranges.length * 16;
    const len = (16 + ext + msg.length + 7) & ~7;
    const pkt = new Uint8Array(len + 8);
    const v = new DataView(pkt.buffer);
    v.setUint16(0, 9, true); v.setUint16(2, (16 + ext) / 8, true); v.setUint16(4, len / 8, true); v.setUint16(6, 1, true);
    v.setBigUint64(8, tid, true);
    v.setUint32(20, rangeCount, true);
    ranges.forEach((r, i) => {
      v.setUint32(24 + i * 16, r.len, true); v.setUint32(28 + i * 16, r.gpa % PAGE, true);
      v.setBigUint64(32 + i * 16, BigInt(Math.floor(r.gpa / PAGE)), true);
    });
    pkt.set(msg, 16 + ext);
    if (!this.ch.sendRaw(pkt)) throw new Error('guest ring full');
    return tid;
  }

  pump(): void { this.g.pump(); }

  /** INIT with min = max = version; the INIT_COMPLETE status. */
  init(version: number): number {
    const tid = this.nvsp((v) => { v.setUint32(0, 1, true); v.setUint32(4, version, true); v.setUint32(8, version, true); });
    this.pump();
    const c = this.completions.get(tid);
    if (!c) throw new Error('no INIT_COMPLETE');
    if (c.byteLength < 28) throw new Error(`INIT_COMPLETE of ${c.byteLength} bytes`);
    return c.getUint32(12, true);
  }

  /** Linux's netvsc_connect_vsp(): versions newest first. */
  negotiate(): number {
    for (const v of [0x60001, 0x60000, 0x50000, 0x40000, 0x30002, 0x2]) if (this.init(v) === 1) return v;
    throw new Error('no NVSP version accepted');
  }

  /** NDIS config + version, receive and send buffer (netvsc_init_buf()). */
  setupBuffers(recvPages = 64, sendPages = 16): { recv: DataView; send: DataView } {
    this.nvsp((v) => { v.setUint32(0, 125, true); v.setUint32(4, 1514, true); }, { flags: 0, tid: NO_RESPONSE });
    this.nvsp((v) => { v.setUint32(0, 100, true); v.setUint32(4, 6, true); v.setUint32(8, 30, true); }, { flags: 0, tid: NO_RESPONSE });
    this.recvPages = this.g.allocScattered(recvPages);
    let st: number;
    [this.recvGpadl, st] = this.g.createGpadl(this.offer.relid, this.recvPages);
    if (st !== 0) throw new Error('recv GPADL failed');
    const t1 = this.nvsp((v) => { v.setUint32(0, 101, true); v.setUint32(4, this.recvGpadl, true); v.setUint16(8, 0xcafe, true); });
    this.pump();
    this.sendPages = this.g.allocScattered(sendPages);
    [this.sendGpadl, st] = this.g.createGpadl(this.offer.relid, this.sendPages);
    if (st !== 0) throw new Error('send GPADL failed');
    const t2 = this.nvsp((v) => { v.setUint32(0, 104, true); v.setUint32(4, this.sendGpadl, true); v.setUint16(8, 0, true); });
    this.pump();
    const recv = this.completions.get(t1), send = this.completions.get(t2);
    if (!recv || !send) throw new Error('buffer completions missing');
    return { recv, send };
  }

  /** An RNDIS message through page buffers (how Linux sends control messages). Returns the NVSP tid. */
  sendRndisPages(msg: Uint8Array, channelType = 1): bigint {
    const page = this.g.allocPages(Math.ceil(msg.length / PAGE) + 1);
    this.g.memory.bytes.set(msg, page + 8);
    const ranges: Array<{ gpa: number; len: number }> = [];
    for (let at = 0; at < msg.length;) {
      const gpa = page + 8 + at, n = Math.min(msg.length - at, PAGE - (gpa % PAGE));
      ranges.push({ gpa, len: n }); at += n;
    }
    const n = new Uint8Array(40); const v = new DataView(n.buffer);
    v.setUint32(0, 107, true); v.setUint32(4, channelType, true); v.setUint32(8, 0xffffffff, true);
    return this.gpaDirect(n, ranges);
  }

  /** An RNDIS message copied into send-buffer section `index`. */
  sendRndisSection(msg: Uint8Array, index = 0, sizeField = msg.length): bigint {
    this.writeBuf(this.sendPages, index * 6144, msg);
    return this.nvsp((v) => { v.setUint32(0, 107, true); v.setUint32(4, 0, true); v.setUint32(8, index, true); v.setUint32(12, sizeField, true); });
  }

  rndisMsg(type: number, body: number[], extra: Uint8Array = new Uint8Array(0)): Uint8Array {
    const len = 8 + body.length * 4 + extra.length;
    const b = new Uint8Array(len); const v = new DataView(b.buffer);
    v.setUint32(0, type, true); v.setUint32(4, len, true);
    body.forEach((x, i) => v.setUint32(8 + i * 4, x >>> 0, true));
    b.set(extra, 8 + body.length * 4);
    return b;
  }

  /** Send an RNDIS request and return the reply with the same request id. */
  request(type: number, body: (id: number) => number[], extra?: Uint8Array): RndisIn {
    const id = this.reqId++;
    this.sendRndisPages(this.rndisMsg(type, body(id), extra));
    this.pump();
    const r = this.rndis.find((m) => m.type === ((0x80000000 | type) >>> 0) && m.view.getUint32(8, true) === id);
    if (!r) throw new Error(`no reply to RNDIS request type ${type}`);
    return r;
  }

  query(oid: number, info: Uint8Array = new Uint8Array(0)): { status: number; data: Uint8Array } {
    const r = this.request(4, (id) => [id, oid, info.length, 20, 0], info);
    const len = r.view.getUint32(16, true), off = r.view.getUint32(20, true);
    return { status: r.view.getUint32(12, true), data: r.bytes.slice(8 + off, 8 + off + len) };
  }

  set(oid: number, info: Uint8Array): number {
    return this.request(5, (id) => [id, oid, info.length, 20, 0], info).view.getUint32(12, true);
  }

  /** What rndis_filter_device_add() + open do, in order. */
  rndisBringUp(): void {
    const init = this.request(2, (id) => [id, 1, 0, 0x4000]);
    if (init.view.getUint32(12, true) !== 0) throw new Error('RNDIS INIT failed');
    const u32 = new Uint8Array(4); new DataView(u32.buffer).setUint32(0, 0x0b, true);
    if (this.set(0x0001010e, u32) !== 0) throw new Error('packet filter not set');
  }

  /** An RNDIS_PACKET carrying `frame`. */
  static packet(frame: Uint8Array): Uint8Array {
    const b = new Uint8Array(44 + frame.length); const v = new DataView(b.buffer);
    v.setUint32(0, 1, true); v.setUint32(4, b.length, true); v.setUint32(8, 36, true); v.setUint32(12, frame.length, true);
    b.set(frame, 44);
    return b;
  }

  full(): { version: number } {
    this.open();
    const version = this.negotiate();
    this.setupBuffers();
    this.rndisBringUp();
    return { version };
  }
}

/** An Ethernet frame from `src` to `dst` with a recognisable payload. */
export function ethernet(dst: number[], src: number[], payload: string | Uint8Array, etherType = 0x88b5): Uint8Array {
  const p = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const f = new Uint8Array(14 + p.length);
  f.set(dst, 0); f.set(src, 6); f[12] = etherType >> 8; f[13] = etherType & 0xff; f.set(p, 14);
  return f;
}
