/**
 * storvsp against a test-side storvsc (the Linux driver's packets, byte for byte as contract §9 describes):
 * initialisation, scan answers, GPA-direct I/O, concurrency, malformed input, hot add/remove, saved state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FakeLinuxGuest, FakeChannel, PAGE, settle, type GuestPacket, type Offer } from '../vmbus/fake-guest.js';
import { MAX_INFLIGHT, StorvspController, type StorvspState } from '../../src/vsp/storvsp/controller.js';
import { IDE_ACCELERATOR_CLASS, SCSI_CONTROLLER_CLASS, MAX_TRANSFER_BYTES } from '../../src/vsp/storvsp/protocol.js';
import { ScsiDisk } from '../../src/scsi/disk-target.js';
import { MemoryDisk } from '../../src/storage/disk.js';
import { pack, unpack } from '../../src/platform/saved-state.js';
import type { HyperVStackState } from '../../src/vsp/hyperv-stack.js';

const NO_ICS = { integrationServices: { enabled: { Heartbeat: false, Shutdown: false, 'Time Synchronization': false, 'Key-Value Pair Exchange': false, VSS: false } } };
const MiB = 1 << 20;
const INIT_ID = 0xfffffffffffffffdn;

/** A disk whose operations wait until the test releases them (requests in flight). */
class GatedDisk extends MemoryDisk {
  held: Array<() => void> = [];
  gate = false;
  unmaps = 0;
  private wait(): Promise<void> { return this.gate ? new Promise((r) => this.held.push(r)) : Promise.resolve(); }
  override async read(o: number, b: Uint8Array): Promise<void> { await this.wait(); return super.read(o, b); }
  override async write(o: number, d: Uint8Array): Promise<void> { await this.wait(); return super.write(o, d); }
  override async unmap(o: number, l: number): Promise<void> { this.unmaps++; return super.unmap(o, l); }
  release(order?: number[]): void { const h = this.held; this.held = []; for (const i of order ?? h.map((_, i) => i)) h[i](); }
}

interface Srb {
  lun?: number; path?: number; target?: number; cdb: number[]; dataIn?: number; length?: number;
  /** Guest buffer: first page offset and pages (default: fresh scattered pages). */
  pages?: number[]; offset?: number; cdbLength?: number;
}

interface Completion { status: number; srbStatus: number; scsiStatus: number; senseLen: number; sense: Uint8Array; transferred: number; op: number; raw: Uint8Array }

class FakeStorvsc {
  readonly ch: FakeChannel;
  private next = 1n;
  readonly done = new Map<bigint, GuestPacket>();
  readonly unsolicited: GuestPacket[] = [];
  lastOffer: Offer | null = null;
  constructor(readonly g: FakeLinuxGuest, ch: FakeChannel) {
    this.ch = ch;
    ch.onPacket = (p) => { if (p.transId === 0n) this.unsolicited.push(p); else this.done.set(p.transId, p); };
  }

  static async open(g: FakeLinuxGuest, controller: StorvspController): Promise<FakeStorvsc> {
    g.vmbus.addDevice(controller);
    const offers = g.bootToOffers();
    let lastOffer: Offer | null = null;
    const o = offers.find((x) => x.type === controller.interfaceType && x.instance === controller.instance);
    assert.ok(o, `${controller.name} offered`);
    assert.ok([SCSI_CONTROLLER_CLASS, IDE_ACCELERATOR_CLASS].includes(o!.type));
    lastOffer = o!;
    const ch = g.open(o!, 16);
    assert.ok(ch instanceof FakeChannel);
    const f = new FakeStorvsc(g, ch);
    f.lastOffer = lastOffer;
    return f;
  }

  packet(op: number, fill?: (v: DataView) => void): Uint8Array {
    const b = new Uint8Array(64); const v = new DataView(b.buffer);
    v.setUint32(0, op, true); v.setUint32(4, 1, true);
    fill?.(v);
    return b;
  }

  async request(b: Uint8Array, id = this.next++, gpa?: { offset: number; length: number; pages: number[] }): Promise<Completion> {
    if (gpa) this.sendGpa(b, id, gpa); else assert.ok(this.ch.send(b, id, 6, 1));
    for (let i = 0; i < 50 && !this.done.has(id); i++) await settle(this.g, 2);
    const p = this.done.get(id);
    assert.ok(p, `completion for transaction ${id}`);
    this.done.delete(id);
    return parse(p!);
  }

  sendGpa(b: Uint8Array, id: bigint, gpa: { offset: number; length: number; pages: number[] }): void {
    const ext = 8 + 8 + 8 * gpa.pages.length;
    const off = 16 + ext;
    const len = (off + b.length + 7) & ~7;
    const pkt = new Uint8Array(len + 8); const v = new DataView(pkt.buffer);
    v.setUint16(0, 9, true); v.setUint16(2, off / 8, true); v.setUint16(4, len / 8, true); v.setUint16(6, 1, true);
    v.setBigUint64(8, id, true);
    v.setUint32(20, 1, true);
    v.setUint32(24, gpa.length, true); v.setUint32(28, gpa.offset, true);
    gpa.pages.forEach((p, i) => v.setBigUint64(32 + i * 8, BigInt(Math.floor(p / PAGE)), true));
    pkt.set(b, off);
    assert.ok(this.ch.sendRaw(pkt));
  }

  async init(version = 0x0602): Promise<void> {
    for (const [op, fill] of [[7, undefined], [9, (v: DataView) => v.setUint16(12, version, true)], [10, undefined], [8, undefined]] as const) {
      const c = await this.request(this.packet(op, fill), INIT_ID);
      assert.equal(c.op, 1, 'COMPLETE_IO');
      assert.equal(c.status, 0, `init step ${op}`);
    }
  }

  srbPacket(s: Srb): Uint8Array {
    return this.packet(3, (v) => {
      v.setUint16(12, 52, true);
      v.setUint8(17, s.path ?? 0); v.setUint8(18, s.target ?? 0); v.setUint8(19, s.lun ?? 0);
      v.setUint8(20, s.cdbLength ?? s.cdb.length); v.setUint8(21, 20); v.setUint8(22, s.dataIn ?? 2);
      v.setUint32(24, s.length ?? 0, true);
      s.cdb.forEach((x, i) => v.setUint8(28 + i, x));
      v.setUint8(51, 0x20);
    });
  }

  /** EXECUTE_SRB; with a length, a GPA-direct packet over `pages` (scattered by default). */
  async srb(s: Srb): Promise<Completion & { pages: number[]; offset: number }> {
    const b = this.srbPacket(s);
    const length = s.length ?? 0, offset = s.offset ?? 0;
    const pages = s.pages ?? (length ? this.g.allocScattered(Math.ceil((offset + length) / PAGE)) : []);
    const c = await this.request(b, undefined, length ? { offset, length, pages } : undefined);
    return { ...c, pages, offset };
  }

  readGuest(pages: number[], offset: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0, at = offset; i < n; i++, at++) out[i] = this.g.memory.bytes[pages[Math.floor(at / PAGE)] + (at % PAGE)];
    return out;
  }
  writeGuest(pages: number[], offset: number, data: Uint8Array): void {
    for (let i = 0, at = offset; i < data.length; i++, at++) this.g.memory.bytes[pages[Math.floor(at / PAGE)] + (at % PAGE)] = data[i];
  }
}

function parse(p: GuestPacket): Completion {
  const v = new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.length);
  assert.equal(p.type, 0xb, 'a completion packet');
  assert.ok(p.payload.length >= 64, 'full vstor_packet');
  return {
    op: v.getUint32(0, true), status: v.getUint32(8, true), srbStatus: v.getUint8(14), scsiStatus: v.getUint8(15),
    senseLen: v.getUint8(21), sense: p.payload.slice(28, 28 + v.getUint8(21)), transferred: v.getUint32(24, true), raw: p.payload,
  };
}

const be32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const read10 = (lba: number, n: number): number[] => [0x28, 0, ...be32(lba), 0, n >> 8, n & 0xff, 0];
const write10 = (lba: number, n: number): number[] => [0x2a, 0, ...be32(lba), 0, n >> 8, n & 0xff, 0];
const TUR = [0, 0, 0, 0, 0, 0];

/** Host I/O the guest waits for, as the partition's clock sees it (no idle warp while > 0). */
let held = 0;
const busy = (): (() => void) => { held++; let done = false; return () => { if (!done) { done = true; held--; } }; };

async function setup(disks: Array<[number, MemoryDisk]> = [[0, new MemoryDisk(4 * MiB)]]): Promise<{ g: FakeLinuxGuest; c: StorvspController; s: FakeStorvsc }> {
  const g = new FakeLinuxGuest(1, NO_ICS as never);
  const c = new StorvspController(g.memory, { controller: 0, busy });
  for (const [lun, d] of disks) c.attach(lun, new ScsiDisk(d, { maxTransferBytes: MAX_TRANSFER_BYTES }));
  const s = await FakeStorvsc.open(g, c);
  return { g, c, s };
}

test('initialisation as Linux 6.1 does it: versions WIN10/8.1/8 accepted, older refused, properties, end', async () => {
  const { c, s } = await setup();
  assert.equal((await s.request(s.packet(7), INIT_ID)).status, 0);
  const old = await s.request(s.packet(9, (v) => v.setUint16(12, 0x0402, true)), INIT_ID);
  assert.equal(old.op, 1);
  assert.notEqual(old.status, 0, 'a version we do not speak is refused');
  assert.equal((await s.request(s.packet(9, (v) => v.setUint16(12, 0x0602, true)), INIT_ID)).status, 0);
  const props = await s.request(s.packet(10), INIT_ID);
  const pv = new DataView(props.raw.buffer, props.raw.byteOffset);
  assert.equal(pv.getUint32(20, true) & 1, 0, 'no multi-channel');
  assert.equal(pv.getUint32(24, true), MAX_TRANSFER_BYTES);
  assert.equal((await s.request(s.packet(8), INIT_ID)).status, 0);
  assert.equal(c.protocolVersion, 0x0602);
  assert.ok(c.isReady);
  for (const v of [0x0600, 0x0501]) {
    const { c: c2, s: s2 } = await setup();
    await s2.init(v);
    assert.equal(c2.protocolVersion, v);
  }
});

test('before initialisation, SRBs are refused; END_INITIALIZATION without a version fails', async () => {
  const { s } = await setup();
  assert.notEqual((await s.request(s.srbPacket({ cdb: TUR }))).status, 0);
  assert.equal((await s.request(s.packet(7), INIT_ID)).status, 0);
  assert.notEqual((await s.request(s.packet(8), INIT_ID)).status, 0);
});

test('scan: INQUIRY of a present LUN, 0x7F for absent LUNs and targets, REPORT LUNS, INVALID_LUN otherwise', async () => {
  const { s } = await setup([[0, new MemoryDisk(MiB)], [2, new MemoryDisk(2 * MiB)]]);
  await s.init();
  const inq = async (where: Partial<Srb>): Promise<number> => {
    const r = await s.srb({ ...where, cdb: [0x12, 0, 0, 0, 36, 0], dataIn: 1, length: 36 });
    assert.equal(r.srbStatus, 1);
    assert.equal(r.transferred, 36);
    return s.readGuest(r.pages, 0, 1)[0];
  };
  assert.equal(await inq({ lun: 0 }), 0x00);
  assert.equal(await inq({ lun: 2 }), 0x00);
  assert.equal(await inq({ lun: 1 }), 0x7f);
  assert.equal(await inq({ target: 1 }), 0x7f);
  assert.equal(await inq({ path: 3 }), 0x7f);
  const rl = await s.srb({ cdb: [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dataIn: 1, length: 256 });
  assert.equal(rl.transferred, 24);
  assert.deepEqual([...s.readGuest(rl.pages, 0, 24)], [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
  const other = await s.srb({ target: 1, cdb: [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dataIn: 1, length: 256 });
  assert.equal(other.transferred, 8, 'no LUNs behind other targets');
  assert.equal((await s.srb({ lun: 1, cdb: TUR })).srbStatus, 0x20);
  assert.equal((await s.srb({ lun: 1, cdb: read10(0, 1), dataIn: 1, length: 512 })).srbStatus, 0x20);
});

test('GPA-direct reads and writes over scattered pages starting mid-page move the right bytes', async () => {
  const disk = new MemoryDisk(4 * MiB);
  const { s } = await setup([[0, disk]]);
  await s.init();
  const n = 64 * 1024 + 512, offset = 0x200;
  const data = Uint8Array.from({ length: n }, (_, i) => (i * 13 + 5) & 0xff);
  const pages = s.g.allocScattered(Math.ceil((offset + n) / PAGE));
  s.writeGuest(pages, offset, data);
  const w = await s.srb({ cdb: write10(100, n / 512), dataIn: 0, length: n, pages, offset });
  assert.equal(w.srbStatus, 1);
  assert.equal(w.scsiStatus, 0);
  assert.equal(w.transferred, n);
  assert.deepEqual(disk.bytes.subarray(100 * 512, 100 * 512 + n), data);
  const r = await s.srb({ cdb: read10(100, n / 512), dataIn: 1, length: n, offset: 0x800 });
  assert.equal(r.transferred, n);
  assert.deepEqual(s.readGuest(r.pages, 0x800, n), data);
  // The largest transfer the guest was told about works.
  const big = await s.srb({ cdb: read10(0, MAX_TRANSFER_BYTES / 512), dataIn: 1, length: MAX_TRANSFER_BYTES });
  assert.equal(big.transferred, MAX_TRANSFER_BYTES);
});

test('CHECK CONDITION travels as SRB ERROR|AUTOSENSE with fixed sense data and no transferred bytes', async () => {
  const { s } = await setup([[0, new MemoryDisk(MiB, { readOnly: true })]]);
  await s.init();
  const w = await s.srb({ cdb: write10(0, 1), dataIn: 0, length: 512 });
  assert.equal(w.srbStatus, 0x84);
  assert.equal(w.scsiStatus, 2);
  assert.equal(w.transferred, 0);
  assert.equal(w.senseLen, 18);
  assert.equal(w.sense[0], 0x70);
  assert.equal(w.sense[2], 0x07, 'DATA PROTECT');
  assert.equal(w.sense[12], 0x27, 'WRITE PROTECTED');
  const bad = await s.srb({ cdb: [0xc1, 0, 0, 0, 0, 0] });
  assert.equal(bad.srbStatus, 0x84);
  assert.equal(bad.sense[2], 0x05);
  assert.equal(bad.sense[12], 0x20, 'INVALID COMMAND OPERATION CODE');
});

test('requests complete asynchronously, each when its disk I/O settles, in any order', async () => {
  const disk = new GatedDisk(MiB);
  const { g, c, s } = await setup([[0, disk]]);
  await s.init();
  disk.gate = true;
  const ids = [11n, 12n, 13n];
  for (const [i, id] of ids.entries()) {
    const pages = g.allocScattered(1);
    s.writeGuest(pages, 0, new Uint8Array(512).fill(i + 1));
    s.sendGpa(s.srbPacket({ cdb: write10(i, 1), dataIn: 0, length: 512 }), id, { offset: 0, length: 512, pages });
  }
  await settle(g, 10);
  assert.equal(s.done.size, 0, 'nothing completes while the disk holds the writes');
  assert.equal(c.inflightCount, 3);
  assert.equal(disk.held.length, 3);
  assert.equal(held, 3, 'the clock may not warp while the guest waits for these');
  disk.release([2, 0, 1]);
  await settle(g, 10);
  assert.deepEqual([...s.done.keys()].sort(), ids);
  for (const id of ids) assert.equal(parse(s.done.get(id)!).srbStatus, 1);
  assert.deepEqual([disk.bytes[0], disk.bytes[512], disk.bytes[1024]], [1, 2, 3]);
  assert.equal(c.inflightCount, 0);
  assert.equal(held, 0);
});

test('malformed SRBs get SRB errors, never a host exception', async () => {
  const { g, s } = await setup();
  await s.init();
  assert.equal((await s.srb({ cdb: TUR, cdbLength: 0 })).srbStatus, 0x06);
  assert.equal((await s.srb({ cdb: TUR, cdbLength: 17 })).srbStatus, 0x06);
  assert.equal((await s.srb({ cdb: TUR, dataIn: 7 })).srbStatus, 0x06);
  // Transfer length larger than the page ranges.
  const b = s.srbPacket({ cdb: read10(0, 8), dataIn: 1, length: 4096 });
  const short = await s.request(b, 900n, { offset: 0, length: 1024, pages: g.allocScattered(1) });
  assert.equal(short.srbStatus, 0x06);
  // Ranges naming pages outside guest RAM.
  const outside = await s.request(s.srbPacket({ cdb: read10(0, 1), dataIn: 1, length: 512 }), 901n, { offset: 0, length: 512, pages: [64 * MiB] });
  assert.equal(outside.srbStatus, 0x06);
  // More than the advertised maximum transfer.
  const huge = MAX_TRANSFER_BYTES + PAGE;
  const tooBig = await s.request(s.srbPacket({ cdb: read10(0, huge / 512), dataIn: 1, length: huge }), 902n, { offset: 0, length: huge, pages: g.allocScattered(huge / PAGE) });
  assert.equal(tooBig.srbStatus, 0x06);
  // The command reads but the SRB says data-out: the buffer may not be written.
  const pages = g.allocScattered(1);
  g.memory.bytes.fill(0xab, pages[0], pages[0] + PAGE);
  const dir = await s.srb({ cdb: read10(0, 1), dataIn: 0, length: 512, pages });
  assert.equal(dir.srbStatus, 0x06);
  assert.equal(g.memory.bytes[pages[0]], 0xab);
  // Data without page ranges.
  assert.equal((await s.request(s.srbPacket({ cdb: read10(0, 1), dataIn: 1, length: 512 }))).srbStatus, 0x06);
  // Unknown and unsupported operations are refused in-band.
  assert.notEqual((await s.request(s.packet(13, (v) => v.setUint16(12, 4, true)))).status, 0);
  assert.notEqual((await s.request(s.packet(99))).status, 0);
  assert.equal((await s.request(s.packet(6), 0xfffffffffffffffcn)).status, 0, 'RESET_BUS is answered');
  assert.equal((await s.srb({ cdb: TUR })).srbStatus, 1, 'the channel still works');
  assert.deepEqual(g.faults.filter((f) => /storvsp|SCSI/.test(f)), []);
});

test('a truncated vstor packet resets the channel instead of being guessed at', async () => {
  const { g, s } = await setup();
  await s.init();
  assert.ok(s.ch.send(new Uint8Array(20), 5n, 6, 1));
  await settle(g, 4);
  assert.ok(g.faults.some((f) => /-byte vstor packet \(at least 52 needed\)/.test(f)), g.faults.join('\n'));
});

test('property: random SRB packets and GPA ranges always get a completion (SRB status, no channel reset, no host exception)', async () => {
  const { g, c, s } = await setup([[0, new MemoryDisk(MiB)], [1, new MemoryDisk(MiB, { readOnly: true })]]);
  await s.init();
  let id = 1000n;
  await fc.assert(fc.asyncProperty(
    fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 4095 }),
    fc.array(fc.integer({ min: 0, max: 8192 }), { minLength: 0, maxLength: 20 }),
    async (raw, length, offset, pfns) => {
      const v = new DataView(raw.buffer);
      v.setUint32(0, 3, true);
      v.setUint8(19, raw[19] & 3); // mostly present LUNs, so commands reach the targets
      const me = id++;
      s.sendGpa(raw, me, { offset, length, pages: pfns.map((p) => p * PAGE) });
      for (let i = 0; i < 40 && !s.done.has(me); i++) await settle(g, 2);
      assert.deepEqual(g.faults, [], 'well-framed packets never reset the channel');
      const p = s.done.get(me);
      assert.ok(p, 'every SRB is completed');
      s.done.delete(me);
      const r = parse(p!);
      assert.ok([0x01, 0x84, 0x04, 0x06, 0x20].includes(r.srbStatus), `srb status ${r.srbStatus}`);
      if (r.srbStatus !== 1) assert.equal(r.transferred, 0);
    }), { numRuns: 400 });
  assert.equal(c.inflightCount, 0);
});

test('hot add and remove: ENUMERATE_BUS tells the guest to rescan; REPORT LUNS and TUR follow the change', async () => {
  const { g, c, s } = await setup();
  await s.init();
  const luns = async (): Promise<number[]> => {
    const r = await s.srb({ cdb: [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dataIn: 1, length: 256 });
    const d = s.readGuest(r.pages, 0, r.transferred);
    return Array.from({ length: (r.transferred - 8) / 8 }, (_, i) => d[9 + 8 * i]);
  };
  assert.deepEqual(await luns(), [0]);
  const extra = new GatedDisk(MiB);
  c.attach(5, new ScsiDisk(extra));
  await settle(g, 4);
  assert.equal(s.unsolicited.length, 1);
  assert.equal(new DataView(s.unsolicited[0].payload.buffer, s.unsolicited[0].payload.byteOffset).getUint32(0, true), 11, 'ENUMERATE_BUS');
  assert.deepEqual(await luns(), [0, 5]);
  assert.equal((await s.srb({ lun: 5, cdb: TUR })).srbStatus, 1);
  // Removal waits for the LUN's running I/O; that request still completes.
  extra.gate = true;
  s.sendGpa(s.srbPacket({ lun: 5, cdb: read10(0, 1), dataIn: 1, length: 512 }), 77n, { offset: 0, length: 512, pages: g.allocScattered(1) });
  await settle(g, 4);
  let removed = false;
  const removal = c.detach(5).then(() => { removed = true; });
  await settle(g, 4);
  assert.equal(removed, false);
  assert.equal(s.unsolicited.length, 2);
  assert.equal((await s.srb({ lun: 5, cdb: TUR })).srbStatus, 0x20, 'the removed LUN is gone');
  extra.release();
  await removal;
  await settle(g, 4);
  assert.equal(parse(s.done.get(77n)!).srbStatus, 1);
  assert.deepEqual(await luns(), [0]);
  assert.throws(() => c.attach(64, new ScsiDisk(new MemoryDisk(MiB))), /outside 0-63/);
});

test('saved state in the middle of I/O: the restored controller runs the unfinished requests, nothing is lost', async () => {
  const disk = new GatedDisk(MiB);
  const { g, c, s } = await setup([[0, disk]]);
  await s.init();
  disk.gate = true;
  const pages = g.allocScattered(2);
  const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 3) & 0xff);
  s.writeGuest(pages, 0, data);
  s.sendGpa(s.srbPacket({ cdb: write10(8, 16), dataIn: 0, length: 8192 }), 41n, { offset: 0, length: 8192, pages });
  const rpages = g.allocScattered(1);
  s.sendGpa(s.srbPacket({ cdb: [0x12, 0, 0, 0, 36, 0], dataIn: 1, length: 36 }), 42n, { offset: 0, length: 36, pages: rpages });
  await settle(g, 6);
  assert.ok(s.done.has(42n), 'INQUIRY (no disk I/O) completed before the save');
  s.done.delete(42n);
  assert.equal(c.inflightCount, 1);
  const stack = unpack(JSON.parse(JSON.stringify(pack(g.stack.saveState())))) as HyperVStackState;
  const st = unpack(JSON.parse(JSON.stringify(pack(c.saveState())))) as StorvspState;
  assert.equal(st.inflight.length, 1);
  // The old process dies with the write still held: it never reaches the disk.
  assert.ok(disk.bytes.subarray(8 * 512, 24 * 512).every((x) => x === 0));

  const g2 = new FakeLinuxGuest(1, NO_ICS as never);
  g2.memory.bytes.set(g.memory.bytes);
  const src = g as unknown as Record<string, unknown>, dst = g2 as unknown as Record<string, unknown>;
  for (const k of ['simp', 'siefp', 'inputPage', 'version', 'msgConnId', 'nextPage', 'nextGpadl']) dst[k] = src[k];
  const disk2 = new MemoryDisk(MiB);
  disk2.bytes.set(disk.bytes);
  const c2 = new StorvspController(g2.memory, { controller: 0 });
  c2.attach(0, new ScsiDisk(disk2));
  const dev = g2.vmbus.addDevice(c2);
  g2.stack.restoreState(stack);
  c2.restoreState(st, g2.vmbus.channelOf(dev));
  const ch2 = new FakeChannel(g2, s.ch.offer, s.ch.out, s.ch.inn, s.ch.gpadl);
  g2.channels.set(s.ch.offer.relid, ch2);
  const s2 = new FakeStorvsc(g2, ch2);
  await c2.idle();
  await settle(g2, 6);
  assert.equal(parse(s2.done.get(41n)!).srbStatus, 1, 'the guest gets the completion of its write');
  assert.deepEqual(disk2.bytes.subarray(8 * 512, 8 * 512 + 8192), data);
  assert.equal(c2.protocolVersion, 0x0602);
  // And the restored channel carries new requests.
  const r = await s2.srb({ cdb: read10(8, 16), dataIn: 1, length: 8192 });
  assert.deepEqual(s2.readGuest(r.pages, 0, 8192), data);
});

test('a guest that floods requests gets BUSY beyond the in-flight limit instead of unbounded host buffering', async () => {
  const disk = new GatedDisk(MiB);
  const { g, c, s } = await setup([[0, disk]]);
  await s.init();
  disk.gate = true;
  const page = g.allocScattered(1);
  let sent = 0;
  for (let id = 1; id <= MAX_INFLIGHT + 5; id++) {
    const b = s.srbPacket({ cdb: read10(0, 1), dataIn: 1, length: 512 });
    s.sendGpa(b, BigInt(id), { offset: 0, length: 512, pages: page });
    sent++;
    if (id % 32 === 0) await settle(g, 1);
  }
  await settle(g, 4);
  assert.equal(c.inflightCount, MAX_INFLIGHT);
  const busy = [...s.done.values()].map(parse).filter((r) => r.scsiStatus === 8);
  assert.equal(busy.length, sent - MAX_INFLIGHT);
  for (const r of busy) { assert.equal(r.srbStatus, 0x04); assert.equal(r.transferred, 0); }
  disk.release();
  await c.idle();
  await settle(g, 10);
  assert.equal(c.inflightCount, 0);
});

test('IDE accelerator channel: offered with the IDE class, the drive in instance bytes 4-5, one disk at target = drive, LUN 0', async () => {
  const g = new FakeLinuxGuest(1, NO_ICS as never);
  const disk = new MemoryDisk(MiB);
  await disk.write(512, new Uint8Array(512).fill(0x3c));
  const c = new StorvspController(g.memory, { controller: 1, ide: { channel: 1, drive: 1 }, busy });
  c.attach(0, new ScsiDisk(disk, { maxTransferBytes: MAX_TRANSFER_BYTES }));
  assert.throws(() => c.attach(1, new ScsiDisk(new MemoryDisk(MiB), {})), /outside 0-0/, 'one disk per accelerator channel');
  const s = await FakeStorvsc.open(g, c);
  assert.equal(s.lastOffer!.type, IDE_ACCELERATOR_CLASS);
  // What storvsc_probe reads: dev_instance.b[4] | b[5] << 8 (offer message: instance GUID at byte 24).
  const raw = s.lastOffer!.raw;
  assert.equal(raw[24 + 4] | (raw[24 + 5] << 8), 1, 'target = drive');
  await s.init();
  const props = await s.request(s.packet(10), INIT_ID);
  assert.equal(new DataView(props.raw.buffer, props.raw.byteOffset).getUint32(20, true), 0x2, 'EMULATED_IDE channel flag, no multi-channel');
  const r = await s.srb({ target: 1, lun: 0, cdb: read10(1, 1), dataIn: 1, length: 512 });
  assert.equal(r.srbStatus, 1);
  assert.deepEqual([...s.readGuest(r.pages, 0, 512)], Array(512).fill(0x3c));
  const w = await s.srb({ target: 1, lun: 0, cdb: write10(2, 1), dataIn: 0, length: 512 });
  assert.equal(w.srbStatus, 1);
  // Elsewhere on this channel there is no disk.
  for (const where of [{ target: 0, lun: 0 }, { target: 1, lun: 1 }, { path: 1, target: 1, lun: 0 }]) {
    const inq = await s.srb({ ...where, cdb: [0x12, 0, 0, 0, 36, 0], dataIn: 1, length: 36 });
    assert.equal(s.readGuest(inq.pages, 0, 1)[0], 0x7f, `no LUN at ${JSON.stringify(where)}`);
  }
  assert.throws(() => new StorvspController(g.memory, { controller: 0, ide: { channel: 2, drive: 0 } }), /not a Generation 1 IDE location/);
});
