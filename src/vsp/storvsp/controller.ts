/**
 * storvsp: Hyper-V's synthetic SCSI controller as a VMBus provider (contract §9). It speaks the storvsc
 * transport (initialisation, EXECUTE_SRB with GPA-direct data, completions) and hands each CDB to the SCSI
 * target at that location; absent locations are answered the way Linux's scan expects of Hyper-V.
 *
 * Requests run concurrently: each completion packet goes out when its disk I/O settles. Everything the guest
 * sends is checked; malformed SRBs get an SRB error, a malformed transport packet resets the channel.
 */
import type { Channel, ChannelProvider, CloseReason, VmbusPacket } from '../../vmbus/channel.js';
import { PacketType } from '../../vmbus/protocol.js';
import { GpaRangeError, GuestBuffer, parseGpaDirect } from '../../vmbus/gpa-direct.js';
import type { GuestMemory } from '../../platform/memory.js';
import { Asc, INQUIRY_NO_LUN, Op, ScsiStatus, SenseKey, SPC_VERSION, fixedSense } from '../../scsi/protocol.js';
import { reportLunsData, type ScsiDataBuffer, type ScsiResult, type ScsiTarget } from '../../scsi/target.js';
import {
  LOCATION_PATH, LOCATION_TARGET, MAX_CDB_LENGTH, MAX_GUEST_PACKET, MAX_SENSE_LENGTH, MAX_TRANSFER_BYTES, Off,
  IDE_ACCELERATOR_CLASS, SCSI_CONTROLLER_CLASS, STORAGE_CHANNEL_EMULATED_IDE_FLAG, SRB_STATUS_AUTOSENSE_VALID, SrbDirection, SrbStatus, SUPPORTED_PROTOCOLS,
  VSTOR_PACKET_SIZE, VSTOR_PACKET_SIZE_PRE_WIN8, VSTOR_STATUS_INVALID_DEVICE_STATE, VSTOR_STATUS_REVISION_MISMATCH,
  VSTOR_STATUS_SUCCESS, VstorOp, vstorPacket,
} from './protocol.js';

/** Hyper-V: 64 locations per controller, each a LUN of channel 0, target 0. */
export const LUNS_PER_CONTROLLER = 64;
/**
 * Requests running at once per controller. Linux's storvsc queues far fewer (its can_queue follows the ring
 * size); a guest that sends more gets BUSY instead of making the host buffer without limit.
 */
export const MAX_INFLIGHT = 1024;

export interface StorvspOptions {
  /** Controller number 0-3 (names the instance GUID unless `instance` is given). */
  controller: number;
  instance?: string;
  /**
   * An IDE accelerator channel instead of a SCSI controller: the one disk at IDE `channel`:`drive` (controller is
   * then the IDE channel number). Its SRBs address path 0, target = drive, LUN 0.
   */
  ide?: { channel: number; drive: number };
  log?: (message: string) => void;
  /** Called when a request starts host I/O; the returned function when it ends (VirtualClock.holdWarp). */
  busy?: () => () => void;
}

type Stage = 'closed' | 'opened' | 'initializing' | 'ready';

/** A guest request still running, kept as the raw packet so a restored controller can run it again. */
interface Inflight { transactionId: bigint; type: number; extension: Uint8Array; payload: Uint8Array }

export interface StorvspState {
  instance: string;
  stage: Stage;
  protocol: number | null;
  /** EXECUTE_SRB packets whose completion the guest has not received yet (re-run after a restore). */
  inflight: Array<{ transactionId: bigint; type: number; extension: Uint8Array; payload: Uint8Array }>;
}

class SrbError extends Error { constructor(readonly srbStatus: SrbStatus, message: string) { super(message); } }

/** The SRB's data buffer in guest memory, only usable in the direction the SRB declared. */
class SrbData implements ScsiDataBuffer {
  constructor(private readonly memory: GuestMemory, private readonly buf: GuestBuffer, readonly length: number, private readonly dir: SrbDirection) {}
  read(offset: number, dst: Uint8Array): void {
    if (this.dir !== SrbDirection.WRITE) throw new SrbError(SrbStatus.INVALID_REQUEST, 'the command writes but the SRB is not data-out');
    if (offset + dst.length > this.length) throw new SrbError(SrbStatus.INVALID_REQUEST, 'read past the transfer length');
    this.buf.readInto(this.memory, offset, dst);
  }
  write(offset: number, src: Uint8Array): void {
    if (this.dir !== SrbDirection.READ) throw new SrbError(SrbStatus.INVALID_REQUEST, 'the command reads but the SRB is not data-in');
    if (offset + src.length > this.length) throw new SrbError(SrbStatus.INVALID_REQUEST, 'write past the transfer length');
    this.buf.writeFrom(this.memory, offset, src);
  }
}

export class StorvspController implements ChannelProvider {
  readonly interfaceType: string;
  readonly instance: string;
  readonly name: string;
  readonly maxPacketSize = MAX_GUEST_PACKET;
  private channel: Channel | null = null;
  private stage: Stage = 'closed';
  private protocol: number | null = null;
  private readonly luns = new Map<number, ScsiTarget>();
  private readonly inflight = new Map<number, Inflight>();
  private readonly running = new Set<Promise<void>>();
  private nextKey = 1;
  private readonly log: (m: string) => void;
  private readonly busy: () => () => void;
  /** Where the guest addresses this controller's LUNs (SRB path and target). */
  private readonly path: number;
  private readonly targetId: number;
  private readonly ide: boolean;

  constructor(private readonly memory: GuestMemory, o: StorvspOptions) {
    if (!Number.isInteger(o.controller) || o.controller < 0 || o.controller > 0xff) throw new RangeError(`SCSI controller number ${o.controller} is out of range`);
    this.ide = o.ide !== undefined;
    if (o.ide) {
      const { channel, drive } = o.ide;
      if (![0, 1].includes(channel) || ![0, 1].includes(drive)) throw new RangeError(`IDE ${channel}:${drive} is not a Generation 1 IDE location`);
      this.interfaceType = IDE_ACCELERATOR_CLASS;
      // data1 = channel, data2 = drive (Linux takes the target from bytes 4-5), data3 = 0x8899 as Hyper-V.
      this.instance = o.instance ?? `0000000${channel}-000${drive}-8899-0000-000000000000`;
      this.name = `IDE accelerator ${channel}:${drive}`;
      this.path = 0;
      this.targetId = drive;
    } else {
      this.interfaceType = SCSI_CONTROLLER_CLASS;
      // Stable per controller number: the guest names its SCSI host's sysfs device after it.
      this.instance = o.instance ?? `5ca1ab1e-5c51-4000-8000-0000000000${o.controller.toString(16).padStart(2, '0')}`;
      this.name = `SCSI controller ${o.controller}`;
      this.path = LOCATION_PATH;
      this.targetId = LOCATION_TARGET;
    }
    this.log = o.log ?? (() => {});
    this.busy = o.busy ?? (() => () => {});
  }

  /** Negotiated storvsc protocol version, null before the guest's QUERY_PROTOCOL_VERSION succeeded. */
  get protocolVersion(): number | null { return this.protocol; }
  get isReady(): boolean { return this.stage === 'ready'; }
  get attachedLuns(): number[] { return [...this.luns.keys()].sort((a, b) => a - b); }
  get inflightCount(): number { return this.inflight.size; }
  target(lun: number): ScsiTarget | undefined { return this.luns.get(lun); }

  /** Attach a target at `lun` (0-63); on a running guest this is a hot add and the guest rescans. */
  attach(lun: number, target: ScsiTarget): void {
    const max = this.ide ? 1 : LUNS_PER_CONTROLLER;
    if (!Number.isInteger(lun) || lun < 0 || lun >= max) throw new RangeError(`${this.name}: location ${lun} is outside 0-${max - 1}`);
    if (this.luns.has(lun)) throw new Error(`${this.name}: location ${lun} already holds a drive`);
    this.luns.set(lun, target);
    this.announceBusChange();
  }

  /** Detach the target at `lun` (hot remove). Resolves once its running commands finished. */
  async detach(lun: number): Promise<ScsiTarget | undefined> {
    const t = this.luns.get(lun);
    if (!t) return undefined;
    this.luns.delete(lun);
    this.announceBusChange();
    await t.idle();
    return t;
  }

  /** Completes when no guest request is running (saved state: the caller may also just save them). */
  async idle(): Promise<void> { while (this.running.size) await Promise.allSettled([...this.running]); }

  onOpen(channel: Channel): void {
    this.channel = channel;
    this.stage = 'opened';
    this.protocol = null;
  }

  onClose(channel: Channel, reason: CloseReason): void {
    if (this.channel !== channel) return;
    this.channel = null;
    this.stage = 'closed';
    // Requests still on disk finish but their completions have nowhere to go; the guest resends after reopening.
    if (this.inflight.size) this.log(`${this.name}: channel ${reason} with ${this.inflight.size} request(s) running`);
    this.inflight.clear();
  }

  onPacket(channel: Channel, p: VmbusPacket): void {
    if (p.type !== PacketType.DATA_INBAND && p.type !== PacketType.DATA_USING_GPA_DIRECT) {
      channel.fault(`storvsc packet of type ${p.type} (expected in-band or GPA-direct data)`);
      return;
    }
    if (p.payload.length < VSTOR_PACKET_SIZE_PRE_WIN8) {
      channel.fault(`${p.payload.length}-byte vstor packet (at least ${VSTOR_PACKET_SIZE_PRE_WIN8} needed)`);
      return;
    }
    const pkt = new Uint8Array(VSTOR_PACKET_SIZE);
    pkt.set(p.payload.subarray(0, VSTOR_PACKET_SIZE));
    const v = new DataView(pkt.buffer);
    const op = v.getUint32(Off.operation, true);
    if (op === VstorOp.EXECUTE_SRB) {
      if (this.stage !== 'ready') { this.reply(channel, p.transactionId, VSTOR_STATUS_INVALID_DEVICE_STATE); return; }
      if (this.inflight.size >= MAX_INFLIGHT) {
        const busy = vstorPacket(VstorOp.COMPLETE_IO);
        busy.bytes.set(pkt.subarray(Off.srbLength, VSTOR_PACKET_SIZE), Off.srbLength);
        busy.view.setUint8(Off.srbStatus, SrbStatus.ERROR);
        busy.view.setUint8(Off.scsiStatus, ScsiStatus.BUSY);
        busy.view.setUint8(Off.senseInfoLength, 0);
        busy.view.setUint32(Off.dataTransferLength, 0, true);
        channel.complete(p.transactionId, busy.bytes);
        return;
      }
      this.startSrb(channel, { transactionId: p.transactionId, type: p.type, extension: p.extension.slice(), payload: pkt });
      return;
    }
    if (p.type !== PacketType.DATA_INBAND) { channel.fault(`storvsc operation ${op} sent with page ranges`); return; }
    switch (op) {
      case VstorOp.BEGIN_INITIALIZATION:
        this.stage = 'initializing';
        this.protocol = null;
        this.reply(channel, p.transactionId, VSTOR_STATUS_SUCCESS);
        return;
      case VstorOp.QUERY_PROTOCOL_VERSION: {
        const ver = v.getUint16(Off.majorMinor, true);
        const ok = this.stage === 'initializing' && SUPPORTED_PROTOCOLS.includes(ver);
        if (ok) this.protocol = ver;
        this.reply(channel, p.transactionId, ok ? VSTOR_STATUS_SUCCESS : VSTOR_STATUS_REVISION_MISMATCH, (r) => {
          r.setUint16(Off.majorMinor, ver, true);
        });
        return;
      }
      case VstorOp.QUERY_PROPERTIES:
        // Single channel (multi-channel flag clear), so the guest never asks for sub-channels.
        this.reply(channel, p.transactionId, this.stage === 'initializing' ? VSTOR_STATUS_SUCCESS : VSTOR_STATUS_INVALID_DEVICE_STATE, (r) => {
          r.setUint16(Off.maxChannelCount, 0, true);
          r.setUint32(Off.propFlags, this.ide ? STORAGE_CHANNEL_EMULATED_IDE_FLAG : 0, true);
          r.setUint32(Off.maxTransferBytes, MAX_TRANSFER_BYTES, true);
        });
        return;
      case VstorOp.END_INITIALIZATION: {
        const ok = this.stage === 'initializing' && this.protocol !== null;
        if (ok) this.stage = 'ready';
        this.reply(channel, p.transactionId, ok ? VSTOR_STATUS_SUCCESS : VSTOR_STATUS_INVALID_DEVICE_STATE);
        return;
      }
      case VstorOp.RESET_BUS: case VstorOp.RESET_ADAPTER: case VstorOp.RESET_LUN:
        // Nothing is queued inside the controller: each running command completes on its own, which is
        // what the guest waits for after this reply.
        this.reply(channel, p.transactionId, VSTOR_STATUS_SUCCESS);
        return;
      default:
        // CREATE_SUB_CHANNELS (not offered), FCHBA_DATA (not a Fibre Channel HBA), unknown operations.
        this.reply(channel, p.transactionId, VSTOR_STATUS_INVALID_DEVICE_STATE);
    }
  }

  private reply(channel: Channel, transactionId: bigint, status: number, fill?: (v: DataView) => void): void {
    const r = vstorPacket(VstorOp.COMPLETE_IO, status);
    fill?.(r.view);
    if (!channel.complete(transactionId, r.bytes)) this.log(`${this.name}: could not send a completion (ring full or channel closed)`);
  }

  /** Tell the guest to rescan (storvsc: TEST UNIT READY on known LUNs, then a host scan). */
  private announceBusChange(): void {
    const ch = this.channel;
    if (!ch || this.stage !== 'ready') return;
    ch.send(vstorPacket(VstorOp.ENUMERATE_BUS).bytes, { transactionId: 0n });
  }

  private startSrb(channel: Channel, req: Inflight): void {
    const key = this.nextKey++;
    this.inflight.set(key, req);
    const release = this.busy();
    const run = this.executeSrb(req.type, req.extension, req.payload).then((done) => {
      release();
      // Only the channel that carried the request may complete it (a reset channel forgot it).
      if (!this.inflight.delete(key) || this.channel !== channel) return;
      if (!channel.complete(req.transactionId, done)) this.log(`${this.name}: could not send an SRB completion (ring full or channel closed)`);
    });
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  /** Runs one SRB and builds its completion packet. Never rejects: every failure is an SRB status. */
  private async executeSrb(type: number, extension: Uint8Array, pkt: Uint8Array): Promise<Uint8Array> {
    const v = new DataView(pkt.buffer, pkt.byteOffset, VSTOR_PACKET_SIZE);
    const out = vstorPacket(VstorOp.COMPLETE_IO);
    // Echo the request's vm_srb, then overwrite the result fields.
    out.bytes.set(pkt.subarray(Off.srbLength, VSTOR_PACKET_SIZE), Off.srbLength);
    const o = out.view;
    o.setUint16(Off.srbLength, VSTOR_PACKET_SIZE - Off.srbLength, true);
    out.bytes.fill(0, Off.senseData, Off.senseData + MAX_SENSE_LENGTH);
    const finish = (srb: number, r: ScsiResult | null): Uint8Array => {
      o.setUint8(Off.srbStatus, srb);
      o.setUint8(Off.scsiStatus, r?.status ?? 0);
      o.setUint32(Off.dataTransferLength, r && (srb & 0x3f) === SrbStatus.SUCCESS ? r.transferred : 0, true);
      const sense = r?.sense ?? null;
      if (sense && (srb & SRB_STATUS_AUTOSENSE_VALID)) {
        const n = Math.min(sense.length, MAX_SENSE_LENGTH);
        out.bytes.set(sense.subarray(0, n), Off.senseData);
        o.setUint8(Off.senseInfoLength, n);
      } else o.setUint8(Off.senseInfoLength, 0);
      return out.bytes;
    };
    try {
      const path = v.getUint8(Off.pathId), target = v.getUint8(Off.targetId), lun = v.getUint8(Off.lun);
      const cdbLen = v.getUint8(Off.cdbLength), dir = v.getUint8(Off.dataIn) as SrbDirection;
      const length = v.getUint32(Off.dataTransferLength, true);
      if (cdbLen === 0 || cdbLen > MAX_CDB_LENGTH) throw new SrbError(SrbStatus.INVALID_REQUEST, `CDB length ${cdbLen}`);
      if (dir > SrbDirection.UNKNOWN) throw new SrbError(SrbStatus.INVALID_REQUEST, `data direction ${dir}`);
      const cdb = pkt.slice(Off.cdb, Off.cdb + cdbLen);
      const data = this.dataBuffer(type, extension, length, dir);
      const r = await this.dispatch(path, target, lun, cdb, data);
      if (r === 'invalid-lun') return finish(SrbStatus.INVALID_LUN, null);
      if (r.status === ScsiStatus.GOOD) return finish(SrbStatus.SUCCESS, r);
      return finish(SrbStatus.ERROR | (r.sense ? SRB_STATUS_AUTOSENSE_VALID : 0), r);
    } catch (e) {
      if (e instanceof SrbError || e instanceof GpaRangeError) {
        this.log(`${this.name}: rejected an SRB: ${e.message}`);
        return finish(e instanceof SrbError ? e.srbStatus : SrbStatus.INVALID_REQUEST, null);
      }
      this.log(`${this.name}: SRB failed: ${(e as Error).stack ?? e}`);
      return finish(SrbStatus.ERROR, null);
    }
  }

  /** The SRB's data buffer: GPA ranges checked against the declared length and guest RAM before any I/O. */
  private dataBuffer(type: number, extension: Uint8Array, length: number, dir: SrbDirection): ScsiDataBuffer {
    if (type !== PacketType.DATA_USING_GPA_DIRECT) {
      if (length !== 0 && dir !== SrbDirection.UNKNOWN) throw new SrbError(SrbStatus.INVALID_REQUEST, `${length}-byte transfer without page ranges`);
      return new SrbData(this.memory, GuestBuffer.empty(), 0, SrbDirection.UNKNOWN);
    }
    if (length > MAX_TRANSFER_BYTES) throw new SrbError(SrbStatus.INVALID_REQUEST, `transfer of ${length} bytes exceeds the advertised ${MAX_TRANSFER_BYTES}`);
    const buf = parseGpaDirect(extension, MAX_TRANSFER_BYTES + 4096);
    if (buf.length < length) throw new SrbError(SrbStatus.INVALID_REQUEST, `transfer length ${length} exceeds the ${buf.length} bytes of its page ranges`);
    for (let i = 0; i < buf.gpas.length; i++) {
      if (!this.memory.isRam(buf.gpas[i], buf.lens[i])) throw new SrbError(SrbStatus.INVALID_REQUEST, `page 0x${buf.gpas[i].toString(16)} of the transfer is not guest RAM`);
    }
    return new SrbData(this.memory, buf, length, dir);
  }

  /** Routes a CDB: REPORT LUNS and absent locations are the controller's, the rest goes to the LUN's target. */
  private async dispatch(path: number, target: number, lun: number, cdb: Uint8Array, data: ScsiDataBuffer): Promise<ScsiResult | 'invalid-lun'> {
    const here = path === this.path && target === this.targetId;
    const op = cdb[0];
    if (op === Op.REPORT_LUNS) {
      if (cdb.length < 12) return checkCondition(Asc.INVALID_FIELD_IN_CDB);
      const alloc = new DataView(cdb.buffer, cdb.byteOffset).getUint32(6);
      if (alloc < 16) return checkCondition(Asc.INVALID_FIELD_IN_CDB);
      return give(data, reportLunsData(here ? this.attachedLuns : []), alloc);
    }
    const t = here ? this.luns.get(lun) : undefined;
    if (t) return t.execute(cdb, data);
    // No drive here: what Linux's scan needs to move on (INQUIRY says "no LUN", others fail the LUN).
    if (op === Op.INQUIRY) {
      if (cdb.length < 6 || (cdb[1] & 1) !== 0) return 'invalid-lun';
      const d = new Uint8Array(36);
      d[0] = INQUIRY_NO_LUN; d[2] = SPC_VERSION; d[3] = 0x12; d[4] = 31;
      return give(data, d, (cdb[3] << 8) | cdb[4]);
    }
    if (op === Op.REQUEST_SENSE) return give(data, fixedSense(SenseKey.ILLEGAL_REQUEST, Asc.LUN_NOT_SUPPORTED), cdb[4] ?? 0);
    return 'invalid-lun';
  }

  /** Saved state (Save-VM): negotiation and the requests the guest is still waiting for. */
  saveState(): StorvspState {
    return {
      instance: this.instance, stage: this.stage, protocol: this.protocol,
      inflight: [...this.inflight.values()].map((r) => ({ transactionId: r.transactionId, type: r.type, extension: r.extension.slice(), payload: r.payload.slice() })),
    };
  }

  /**
   * Restore into a fresh controller whose drives are attached, after the VMBus host reopened `channel`.
   * Requests that were running at the save are run again (reads and writes of the same guest buffers are
   * idempotent, and the guest cannot reuse a buffer before its completion), so nothing is lost.
   */
  restoreState(s: StorvspState, channel: Channel | null): void {
    if (s.instance.toLowerCase() !== this.instance.toLowerCase()) throw new Error(`${this.name}: saved instance ${s.instance} is not this controller's`);
    if (!['closed', 'opened', 'initializing', 'ready'].includes(s.stage)) throw new Error(`${this.name}: saved stage '${s.stage}' is unknown`);
    if (s.protocol !== null && !SUPPORTED_PROTOCOLS.includes(s.protocol)) throw new Error(`${this.name}: saved protocol 0x${s.protocol.toString(16)} is not supported`);
    if (!Array.isArray(s.inflight) || s.inflight.length > 4096) throw new Error(`${this.name}: saved requests are malformed`);
    this.channel = channel;
    this.stage = channel ? s.stage : 'closed';
    this.protocol = channel ? s.protocol : null;
    if (!channel) return;
    for (const r of s.inflight) {
      if (!(r.payload instanceof Uint8Array) || r.payload.length !== VSTOR_PACKET_SIZE || !(r.extension instanceof Uint8Array) || typeof r.transactionId !== 'bigint') {
        throw new Error(`${this.name}: a saved request is malformed`);
      }
      this.startSrb(channel, { transactionId: r.transactionId, type: r.type, extension: r.extension.slice(), payload: r.payload.slice() });
    }
  }
}

function checkCondition(asc: Asc): ScsiResult {
  return { status: ScsiStatus.CHECK_CONDITION, sense: fixedSense(SenseKey.ILLEGAL_REQUEST, asc), transferred: 0 };
}

function give(data: ScsiDataBuffer, bytes: Uint8Array, alloc: number): ScsiResult {
  const n = Math.min(bytes.length, alloc, data.length);
  if (n > 0) data.write(0, bytes.subarray(0, n));
  return { status: ScsiStatus.GOOD, sense: null, transferred: n };
}
