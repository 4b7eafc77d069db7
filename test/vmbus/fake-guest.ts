/**
 * A test-side Linux guest: hv_vmbus + hv_utils behaviour (contract §1-§8) driven directly against the
 * host through GuestMemory, MSR and hypercall calls, as the real kernel will once the processor runs it.
 */
import { GuestMemory } from '../../src/platform/memory.js';
import { VirtualClock } from '../../src/platform/clock.js';
import { HyperVStack, type HyperVStackOptions } from '../../src/vsp/hyperv-stack.js';
import type { CpuidProvider, HypercallRegs } from '../../src/processor/backend.js';
import { guidFromBytes } from '../../src/vmbus/guid.js';

export const PAGE = 4096;
export const GUEST_OS_ID_LINUX_6_1_192 = 0x8100000601c00000n;
const HV_CALLBACK_VECTOR = 0xf3;
export const VERSIONS = [0x50003, 0x50002, 0x50001, 0x50000, 0x40001, 0x40000, 0x30000, 0x20004];
const WLTIMEDELTA = 116444736000000000n;

/** A base CPUID like the processor's: vendor leaves only. */
export const baseCpuid: CpuidProvider = {
  cpuid(leaf) {
    if (leaf === 0) return { eax: 0xd, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 };
    if (leaf === 1) return { eax: 0x806c1, ebx: 0, ecx: 0x1, edx: 0x200 }; // APIC bit in EDX
    // A careless base could leak KVM's signature; the combinator must hide it.
    if (leaf === 0x40000100) return { eax: 0x40000101, ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d };
    return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  },
};

export class Regs implements HypercallRegs {
  readonly r = new Map<number, bigint>();
  get(reg: number): { lo: number; hi: number } { const v = this.r.get(reg) ?? 0n; return { lo: Number(v & 0xffffffffn), hi: Number(v >> 32n) }; }
  set(reg: number, lo: number, hi: number): void { this.r.set(reg, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)); }
}

export interface Offer { type: string; instance: string; relid: number; connectionId: number; dedicated: number; monitorAllocated: number; raw: Uint8Array }
export interface Message { type: number; bytes: Uint8Array; view: DataView }

export function msg(type: number, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size); const view = new DataView(bytes.buffer); view.setUint32(0, type, true); return { bytes, view };
}

/** Fake host time so the virtual clock is fully controlled by the test. */
export class TestTime {
  ns = 0;
  readonly clock = new VirtualClock('realtime', () => this.ns);
  advance(ms: number): void { this.ns += ms * 1e6; this.clock.poll(); }
}

export class FakeLinuxGuest {
  readonly memory: GuestMemory;
  readonly time = new TestTime();
  readonly stack: HyperVStack;
  readonly cpuid: CpuidProvider;
  readonly faults: string[] = [];
  /** Interrupts injected, in order. */
  readonly injected: Array<{ vp: number; vector: number; autoEoi: boolean }> = [];
  private unhandled = 0;
  readonly inbox: Message[] = [];
  eoms = 0;
  private nextPage = 0x100000 / PAGE;
  simp: number[] = []; siefp: number[] = [];
  inputPage: number;
  version = 0;
  msgConnId = 1;
  channels = new Map<number, FakeChannel>();

  constructor(readonly vpCount = 2, stackOptions: Partial<HyperVStackOptions> = {}, memBytes = 16 << 20) {
    this.memory = new GuestMemory(memBytes);
    this.stack = new HyperVStack({
      memory: this.memory, clock: this.time.clock, vpCount, tscHz: 2_500_000_000,
      inject: (vp, vector, autoEoi) => { this.injected.push({ vp, vector, autoEoi }); this.unhandled++; },
      log: (s, m) => this.faults.push(`${s}: ${m}`),
      ...stackOptions,
    });
    this.cpuid = this.stack.cpuid(baseCpuid);
    this.inputPage = this.allocPages(1);
  }

  get hv() { return this.stack.hypervisor; }
  get vmbus() { return this.stack.vmbus!; }
  get ics() { return this.stack.ics!; }

  allocPages(n: number): number { const gpa = this.nextPage * PAGE; this.nextPage += n; return gpa; }
  /** Non-contiguous pages, like vmalloc. */
  allocScattered(n: number): number[] { const out: number[] = []; for (let i = 0; i < n; i++) { out.push(this.allocPages(1)); this.allocPages(1); } return out; }

  rdmsr(vp: number, idx: number): bigint | null {
    const o = { lo: 0, hi: 0 };
    return this.hv.msr.read(vp, idx, o) ? (BigInt(o.hi >>> 0) << 32n) | BigInt(o.lo >>> 0) : null;
  }
  wrmsr(vp: number, idx: number, v: bigint): boolean {
    return this.hv.msr.write(vp, idx, Number(v & 0xffffffffn), Number((v >> 32n) & 0xffffffffn));
  }
  hypercall(vp: number, control: bigint, rdx: bigint, r8 = 0n): bigint {
    const regs = new Regs();
    regs.r.set(1, control); regs.r.set(2, rdx); regs.r.set(8, r8);
    const h = this.stack.hypercall;
    if (!h) throw new Error('no hypercall handler');
    h.hypercall(vp, regs);
    return regs.r.get(0) ?? 0n;
  }

  /** ms_hyperv_platform() + the mandatory feature checks. */
  detect(): boolean {
    const l1 = this.cpuid.cpuid(1, 0);
    if (!(l1.ecx & 0x80000000)) return false;
    const v = this.cpuid.cpuid(0x40000000, 0);
    if (v.eax < 0x40000005 || v.eax > 0x4000ffff) return false;
    if (v.ebx !== 0x7263694d || v.ecx !== 0x666f736f || v.edx !== 0x76482074) return false;
    const f = this.cpuid.cpuid(0x40000003, 0);
    return (f.eax & 0x20) !== 0 && (f.eax & 0x40) !== 0;
  }

  /** hyperv_init() on the BSP plus every AP's hv_cpu_init(). */
  hypervInit(): void {
    for (let vp = 0; vp < this.vpCount; vp++) {
      if (this.rdmsr(vp, 0x40000002) !== BigInt(vp)) throw new Error('VP index mismatch');
      if (!this.wrmsr(vp, 0x40000073, BigInt(this.allocPages(1)) | 1n)) throw new Error('VP assist write failed');
    }
    this.wrmsr(0, 0x40000000, GUEST_OS_ID_LINUX_6_1_192);
    const old = this.rdmsr(0, 0x40000001)!;
    const page = this.allocPages(1);
    this.memory.bytes.fill(0x5a, page, page + PAGE); // vmalloc'ed, not zeroed
    this.wrmsr(0, 0x40000001, (old & 0xffen) | BigInt(page) | 1n);
    if (!((this.rdmsr(0, 0x40000001) ?? 0n) & 1n)) throw new Error('hypercall page not enabled');
  }

  /** hv_synic_enable_regs() on every CPU (RMW order of contract §2.3). */
  synicInit(): void {
    for (let vp = 0; vp < this.vpCount; vp++) {
      this.simp[vp] = this.allocPages(1); this.siefp[vp] = this.allocPages(1);
      const simp = this.rdmsr(vp, 0x40000083)!;
      this.wrmsr(vp, 0x40000083, (simp & 0xffen) | BigInt(this.simp[vp]) | 1n);
      const siefp = this.rdmsr(vp, 0x40000082)!;
      this.wrmsr(vp, 0x40000082, (siefp & 0xffen) | BigInt(this.siefp[vp]) | 1n);
      const sint = this.rdmsr(vp, 0x40000092)!;
      // Hint bit 9 set => auto_eoi = 0.
      const hints = this.cpuid.cpuid(0x40000004, 0).eax;
      const autoEoi = (hints & 0x200) ? 0n : 1n << 17n;
      this.wrmsr(vp, 0x40000092, (sint & ~0x300ffn) | BigInt(HV_CALLBACK_VECTOR) | autoEoi);
      const sc = this.rdmsr(vp, 0x40000080)!;
      this.wrmsr(vp, 0x40000080, sc | 1n);
    }
  }

  /** vmbus_post_msg(): HvPostMessage through the per-CPU input page. Returns the HV status. */
  post(bytes: Uint8Array, connId = this.msgConnId, vp = 0, messageType = 1): number {
    const v = this.memory.view;
    this.memory.bytes.fill(0, this.inputPage, this.inputPage + 256);
    v.setUint32(this.inputPage, connId, true);
    v.setUint32(this.inputPage + 8, messageType, true);
    v.setUint32(this.inputPage + 12, bytes.length, true);
    this.memory.bytes.set(bytes.subarray(0, 240), this.inputPage + 16);
    return Number(this.hypercall(vp, 0x5cn, BigInt(this.inputPage)) & 0xffffn);
  }

  signal(connectionId: number, vp = 0): number {
    return Number(this.hypercall(vp, 0x1005dn, BigInt(connectionId)) & 0xffffn);
  }

  /** The VMBus ISR + message tasklet: drain event flags and the SINT2 slot, one message per interrupt. */
  pump(): void {
    for (let guard = 0; guard < 100000 && this.unhandled > 0; guard++) {
      this.unhandled--;
      for (let vp = 0; vp < this.vpCount; vp++) {
        if (!this.siefp[vp]) continue;
        const base = this.siefp[vp] + 2 * 256;
        for (let relid = 1; relid < 2048; relid++) {
          const off = base + (relid >> 3);
          const bit = 1 << (relid & 7);
          if (this.memory.bytes[off] & bit) {
            this.memory.bytes[off] &= ~bit; // sync_test_and_clear_bit
            this.channels.get(relid)?.onInterrupt();
          }
        }
        const slot = this.simp[vp] + 2 * 256;
        const v = this.memory.view;
        const type = v.getUint32(slot, true);
        if (type !== 0) {
          const size = this.memory.bytes[slot + 4];
          const copy = this.memory.bytes.slice(slot + 16, slot + 16 + size);
          v.setUint32(slot, 0, true); // cmpxchg to HVMSG_NONE
          if (this.memory.bytes[slot + 5] & 1) { this.eoms++; this.wrmsr(vp, 0x40000084, 0n); }
          const m: Message = { type: new DataView(copy.buffer).getUint32(0, true), bytes: copy, view: new DataView(copy.buffer) };
          this.inbox.push(m);
        }
      }
    }
  }

  /** Pump and take the first received message of `type`. */
  take(type: number): Message | undefined {
    this.pump();
    const i = this.inbox.findIndex((m) => m.type === type);
    return i < 0 ? undefined : this.inbox.splice(i, 1)[0];
  }

  /** vmbus_negotiate_version() for one version; returns true when accepted. */
  tryVersion(version: number): boolean {
    const m = msg(14, 40);
    m.view.setUint32(8, version, true);
    m.view.setUint32(12, 0, true); // target_vcpu = VP of CPU 0
    if (version >= 0x50000) m.view.setUint8(16, 2); else m.view.setBigUint64(16, BigInt(this.allocPages(1)), true);
    m.view.setBigUint64(24, BigInt(this.allocPages(1)), true);
    m.view.setBigUint64(32, BigInt(this.allocPages(1)), true);
    const st = this.post(m.bytes, version >= 0x50000 ? 4 : 1);
    if (st === 18) return false; // connection 4 unknown: next version
    if (st !== 0) throw new Error(`INITIATE_CONTACT post failed with status ${st}`);
    const r = this.take(15);
    if (!r) throw new Error('no VERSION_RESPONSE');
    if (r.view.getUint8(8) !== 1) return false;
    this.version = version;
    this.msgConnId = version >= 0x50000 ? r.view.getUint32(12, true) : 1;
    return true;
  }

  /** vmbus_connect(): versions newest first. */
  connect(versions = VERSIONS): number {
    for (const v of versions) if (this.tryVersion(v)) return v;
    throw new Error('no VMBus version accepted');
  }

  requestOffers(): Offer[] {
    if (this.post(msg(3, 8).bytes) !== 0) throw new Error('REQUESTOFFERS failed');
    this.pump();
    const offers: Offer[] = [];
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === 1 || m.type === 4);
      if (i < 0) throw new Error('offers not terminated by ALLOFFERS_DELIVERED');
      const m = this.inbox.splice(i, 1)[0];
      if (m.type === 4) return offers;
      offers.push(parseOffer(m));
    }
  }

  /** Boot to a connected VMBus with offers. */
  bootToOffers(versions = VERSIONS): Offer[] {
    if (!this.detect()) throw new Error('Hyper-V not detected');
    this.hypervInit();
    this.synicInit();
    this.connect(versions);
    return this.requestOffers();
  }

  private nextGpadl = 0xe1e10;

  /** GPADL_HEADER + BODYs; returns [handle, status]. */
  createGpadl(relid: number, pages: number[], opts: { byteCount?: number } = {}): [number, number] {
    const handle = this.nextGpadl++;
    const inHeader = Math.min(pages.length, 26);
    const h = msg(8, 28 + inHeader * 8);
    h.view.setUint32(8, relid, true); h.view.setUint32(12, handle, true);
    h.view.setUint16(16, 8 + pages.length * 8, true); h.view.setUint16(18, 1, true);
    h.view.setUint32(20, opts.byteCount ?? pages.length * PAGE, true); h.view.setUint32(24, 0, true);
    for (let i = 0; i < inHeader; i++) h.view.setBigUint64(28 + i * 8, BigInt(pages[i] / PAGE), true);
    this.post(h.bytes);
    for (let i = inHeader; i < pages.length; i += 28) {
      const n = Math.min(28, pages.length - i);
      const b = msg(9, 16 + n * 8);
      b.view.setUint32(12, handle, true);
      for (let j = 0; j < n; j++) b.view.setBigUint64(16 + j * 8, BigInt(pages[i + j] / PAGE), true);
      this.post(b.bytes);
    }
    const r = this.take(10);
    if (!r || r.view.getUint32(12, true) !== handle) throw new Error('no GPADL_CREATED');
    return [handle, r.view.getUint32(16, true)];
  }

  teardownGpadl(relid: number, handle: number): boolean {
    const m = msg(11, 16); m.view.setUint32(8, relid, true); m.view.setUint32(12, handle, true);
    this.post(m.bytes);
    const r = this.take(12);
    return !!r && r.view.getUint32(8, true) === handle;
  }

  /** vmbus_open(): ring GPADL, OPENCHANNEL, wait for the result. Returns the channel or the failing status. */
  open(offer: Offer, ringPages = 4, targetVp = 0): FakeChannel | number {
    const pages = this.allocScattered(ringPages * 2);
    for (const p of pages) this.memory.bytes.fill(0, p, p + PAGE);
    const [gpadl, st] = this.createGpadl(offer.relid, pages);
    if (st !== 0) return st;
    const ch = new FakeChannel(this, offer, pages.slice(0, ringPages), pages.slice(ringPages), gpadl);
    this.channels.set(offer.relid, ch);
    const m = msg(5, 28);
    m.view.setUint32(8, offer.relid, true); m.view.setUint32(12, offer.relid, true);
    m.view.setUint32(16, gpadl, true); m.view.setUint32(20, targetVp, true); m.view.setUint32(24, ringPages, true);
    this.post(m.bytes);
    const r = this.take(6);
    if (!r) throw new Error('no OPENCHANNEL_RESULT');
    const status = r.view.getUint32(16, true);
    if (status !== 0) { this.channels.delete(offer.relid); this.teardownGpadl(offer.relid, gpadl); return status; }
    return ch;
  }

  close(ch: FakeChannel): void {
    const m = msg(7, 12); m.view.setUint32(8, ch.offer.relid, true);
    this.post(m.bytes);
    this.channels.delete(ch.offer.relid);
    this.teardownGpadl(ch.offer.relid, ch.gpadl);
  }
}

export function parseOffer(m: Message): Offer {
  return {
    type: guidFromBytes(m.bytes, 8), instance: guidFromBytes(m.bytes, 24), relid: m.view.getUint32(184, true),
    connectionId: m.view.getUint32(192, true), dedicated: m.view.getUint16(190, true), monitorAllocated: m.view.getUint8(189), raw: m.bytes,
  };
}

export interface GuestPacket { type: number; flags: number; transId: bigint; payload: Uint8Array; /** Bytes between the descriptor and offset8 (transfer-page ranges). */ extension?: Uint8Array }

/** Guest side of one channel's rings, with Linux's index, mask and signalling rules (contract §7). */
export class FakeChannel {
  /** Called for each packet read (utils callbacks read one per interrupt unless `batch`). */
  onPacket: ((p: GuestPacket) => void) | null = null;
  readonly received: GuestPacket[] = [];
  signalsSent = 0;
  /** Read every available packet per interrupt (heartbeat/timesync) instead of one (shutdown/KVP/VSS). */
  batch = true;
  /** Like the KVP driver before its daemon registers: leave packets in the ring. */
  paused = false;

  constructor(readonly g: FakeLinuxGuest, readonly offer: Offer, readonly out: number[], readonly inn: number[], readonly gpadl: number) {
    for (const r of [out, inn]) g.memory.view.setUint32(r[0] + 0x40, 1, true); // feature_bits: pending_send_sz
  }

  private size(r: number[]): number { return (r.length - 1) * PAGE; }
  private at(r: number[], pos: number): number { return r[1 + Math.floor(pos / PAGE)] + (pos % PAGE); }
  private copyIn(r: number[], pos: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.g.memory.bytes[this.at(r, (pos + i) % this.size(r))] = data[i];
  }
  private copyOut(r: number[], pos: number, len: number): Uint8Array {
    const o = new Uint8Array(len);
    for (let i = 0; i < len; i++) o[i] = this.g.memory.bytes[this.at(r, (pos + i) % this.size(r))];
    return o;
  }

  hdr(r: 'out' | 'in', field: number): number { return this.g.memory.view.getUint32((r === 'out' ? this.out : this.inn)[0] + field, true); }
  setHdr(r: 'out' | 'in', field: number, v: number): void { this.g.memory.view.setUint32((r === 'out' ? this.out : this.inn)[0] + field, v, true); }

  /** hv_ringbuffer_write() + hv_signal_on_write(). Returns false when the ring is full. */
  send(payload: Uint8Array, transId: bigint, type = 6, flags = 0): boolean {
    const len = (16 + payload.length + 7) & ~7;
    const pkt = new Uint8Array(len + 8);
    const v = new DataView(pkt.buffer);
    v.setUint16(0, type, true); v.setUint16(2, 2, true); v.setUint16(4, len / 8, true); v.setUint16(6, flags, true);
    v.setBigUint64(8, transId, true);
    pkt.set(payload, 16);
    return this.sendRaw(pkt);
  }

  /** Write raw bytes as the next "packet" (malformed-input tests). */
  sendRaw(pkt: Uint8Array): boolean {
    const size = this.size(this.out);
    const w = this.hdr('out', 0), r = this.hdr('out', 4);
    const free = size - ((w - r + size) % size);
    if (free <= pkt.length) return false;
    const v = new DataView(pkt.buffer, pkt.byteOffset, pkt.length);
    if (pkt.length >= 8) v.setBigUint64(pkt.length - 8, BigInt(w) << 32n, true);
    this.copyIn(this.out, w, pkt);
    this.setHdr('out', 0, (w + pkt.length) % size);
    if (this.hdr('out', 8) === 0 && w === r) { this.signalsSent++; this.g.signal(this.offer.connectionId); }
    return true;
  }

  /** hv_pkt_iter_first/next/close on the host->guest ring. */
  readOne(): GuestPacket | null {
    const size = this.size(this.inn);
    const w = this.hdr('in', 0), r = this.hdr('in', 4);
    if (w === r) return null;
    const d = new DataView(this.copyOut(this.inn, r, 16).buffer);
    const off = d.getUint16(2, true) * 8, len = d.getUint16(4, true) * 8;
    const body = this.copyOut(this.inn, r, len);
    const p: GuestPacket = { type: d.getUint16(0, true), flags: d.getUint16(6, true), transId: d.getBigUint64(8, true), payload: body.slice(off), extension: body.slice(16, off) };
    this.setHdr('in', 4, (r + len + 8) % size);
    return p;
  }

  onInterrupt(): void {
    if (this.paused) return;
    for (let p = this.readOne(); p; p = this.batch ? this.readOne() : null) {
      this.received.push(p);
      this.onPacket?.(p);
    }
  }
}

/** hv_utils' guest side of the ICs. */
export class FakeIcGuest {
  readonly shutdowns: Array<{ flags: number }> = [];
  readonly timeSamples: Array<{ flags: number; guestTime100ns: bigint }> = [];
  readonly pool0 = new Map<string, string>();
  frozen = false;
  vssDaemon = true;
  /** Versions the guest accepts, per IC type (contract §8.3), most preferred first. */
  static readonly PREFS: Record<number, { fw: string[]; msg: string[] }> = {
    1: { fw: ['3.0', '1.0'], msg: ['3.0', '1.0'] }, 3: { fw: ['3.0', '1.0'], msg: ['3.2', '3.1', '3.0', '1.0'] },
    4: { fw: ['3.0', '1.0'], msg: ['4.0', '3.0', '1.0'] }, 2: { fw: ['3.0', '1.0'], msg: ['4.0', '3.0', '1.0'] },
    5: { fw: ['3.0'], msg: ['5.0'] },
  };
  negotiated = new Map<number, string>();
  intrinsics: Array<[string, string]> = [['FullyQualifiedDomainName', 'debian'], ['IntegrationServicesVersion', '3.1'],
    ['NetworkAddressIPv4', '10.0.2.15'], ['NetworkAddressIPv6', 'fe80::1'], ['OSBuildNumber', '6.1.0-50-cloud-amd64'],
    ['OSName', 'Debian GNU/Linux'], ['OSMajorVersion', '12'], ['OSMinorVersion', ''], ['OSVersion', '6.1.0'], ['ProcessorArchitecture', 'x86_64']];
  /** Answer heartbeats (false = a hung guest kernel). */
  alive = true;
  /**
   * hv_kvp_daemon's GET_IP_INFO answers by MAC (upper case, as the daemon compares); the strings go into the
   * reply as written, so tests can put garbage in. A MAC not here is answered with HV_E_FAIL.
   */
  ipInfo = new Map<string, { addresses: string; subnets?: string; gateways?: string; dns?: string; dhcp?: number; family?: number }>();
  /** Adapter ids the host asked GET_IP_INFO for. */
  readonly ipInfoAsked: string[] = [];

  constructor(readonly g: FakeLinuxGuest) {}

  /** util_probe(): open the channel and answer like hv_utils; `icType` picks the service behaviour. */
  attach(ch: FakeChannel, icType: number): void {
    ch.batch = icType === 1 || icType === 4; // heartbeat/timesync loop; the others read one packet
    ch.onPacket = (p) => this.handle(ch, icType, p);
  }

  private handle(ch: FakeChannel, icType: number, p: GuestPacket): void {
    const b = p.payload.slice();
    const v = new DataView(b.buffer);
    if (b.length < 28) return;
    const t = v.getUint16(12, true);
    if (t === 0) {
      this.negotiate(icType, b, v);
    } else if (t === 1) {
      if (!this.alive) return;
      v.setBigUint64(28, v.getBigUint64(28, true) + 1n, true);
    } else if (t === 3) {
      const flags = v.getUint32(36, true);
      this.shutdowns.push({ flags });
      v.setUint32(20, flags <= 3 ? 0 : 0x80004005, true);
    } else if (t === 4) {
      const parent = v.getBigUint64(28, true), ref = v.getBigUint64(36, true);
      const now = this.g.hv.referenceTime.count();
      this.timeSamples.push({ flags: v.getUint8(44), guestTime100ns: parent - WLTIMEDELTA + (now - ref) });
    } else if (t === 2) {
      this.kvp(b, v);
    } else if (t === 5) {
      const op = v.getUint8(28);
      if ((op === 5 || op === 6) && !this.vssDaemon) v.setUint32(20, 0x80004005, true);
      else { if (op === 5) this.frozen = true; if (op === 6) this.frozen = false; v.setUint32(20, 0, true); }
    }
    v.setUint8(25, 1 | 4);
    ch.send(b, p.transId);
  }

  private negotiate(icType: number, b: Uint8Array, v: DataView): void {
    const fwCnt = v.getUint16(28, true), msgCnt = v.getUint16(30, true);
    const list = (start: number, n: number): string[] => Array.from({ length: n }, (_, i) => `${v.getUint16(36 + (start + i) * 4, true)}.${v.getUint16(38 + (start + i) * 4, true)}`);
    const prefs = FakeIcGuest.PREFS[icType];
    const hostFw = list(0, fwCnt), hostMsg = list(fwCnt, msgCnt);
    const fw = prefs.fw.find((x) => hostFw.includes(x)), m = prefs.msg.find((x) => hostMsg.includes(x));
    if (!fw || !m) { v.setUint16(28, 0, true); v.setUint16(30, 0, true); return; }
    v.setUint16(28, 1, true); v.setUint16(30, 1, true);
    const put = (i: number, s: string): void => { const [a, c] = s.split('.').map(Number); v.setUint16(36 + i * 4, a, true); v.setUint16(38 + i * 4, c, true); };
    put(0, fw); put(1, m);
    v.setUint16(18, 0x10, true);
    this.negotiated.set(icType, `${fw}/${m}`);
  }

  private kvp(b: Uint8Array, v: DataView): void {
    const op = v.getUint8(28), pool = v.getUint8(29);
    const str = (off: number, n: number): string => { let s = ''; for (let i = 0; i + 1 < n; i += 2) { const c = v.getUint16(off + i, true); if (!c) break; s += String.fromCharCode(c); } return s; };
    const put = (off: number, s: string): number => { for (let i = 0; i < s.length; i++) v.setUint16(off + i * 2, s.charCodeAt(i), true); v.setUint16(off + s.length * 2, 0, true); return (s.length + 1) * 2; };
    if (op === 3) {
      const idx = v.getUint32(32, true);
      const items = pool === 2 ? this.intrinsics : pool === 0 ? [...this.pool0] : [];
      if (idx >= items.length) { v.setUint32(20, 0x80070103, true); return; }
      v.setUint32(36, 1, true);
      v.setUint32(40, put(48, items[idx][0]), true);
      v.setUint32(44, put(560, items[idx][1]), true);
      v.setUint32(20, 0, true);
    } else if (op === 1) {
      this.pool0.set(str(44, v.getUint32(36, true)), str(556, v.getUint32(40, true)));
      v.setUint32(20, 0, true);
    } else if (op === 2) {
      const k = str(36, v.getUint32(32, true));
      v.setUint32(20, this.pool0.delete(k) ? 0 : 0x80070103, true);
    } else if (op === 4) {
      // struct hv_kvp_ip_msg: operation, pool, then hv_kvp_ipaddr_value (no padding).
      const id = str(30, 256);
      this.ipInfoAsked.push(id);
      const info = this.ipInfo.get(id);
      if (!info) { v.setUint32(20, 0x80004005, true); return; }
      put(288, info.addresses); put(2336, info.subnets ?? ''); put(4384, info.gateways ?? ''); put(5408, info.dns ?? '');
      v.setUint8(286, info.family ?? 3); v.setUint8(287, info.dhcp ?? 1);
      v.setUint32(20, 0, true);
    } else v.setUint32(20, 0x80004005, true);
    void b;
  }
}

/** Let promise chains in the host run, pumping the guest in between. */
export async function settle(g: FakeLinuxGuest, rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setImmediate(r));
    g.pump();
  }
}
