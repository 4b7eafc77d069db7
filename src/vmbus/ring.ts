/**
 * Host side of a VMBus ring buffer pair (contract §7): header page + data pages taken from the ring GPADL,
 * indices are byte offsets into the data area, packets are 8-byte aligned and followed by a 64-bit trailer.
 * The guest owns the memory, so every index it controls is validated before use.
 */
import type { GuestMemory } from '../platform/memory.js';
import { GuestRam } from '../hypervisor/guest-memory-access.js';
import { PACKET_DESCRIPTOR_SIZE } from './protocol.js';

const PAGE = 4096;
const WRITE_INDEX = 0x0;
const READ_INDEX = 0x4;
const INTERRUPT_MASK = 0x8;
const PENDING_SEND_SZ = 0xc;
const FEATURE_BITS = 0x40;

export class RingError extends Error {}

/** One ring: its header page and data pages (byte offsets in guest RAM). */
export class Ring {
  readonly header: number;
  readonly data: number[];
  readonly size: number;
  constructor(private readonly ram: GuestRam, pages: number[]) {
    this.header = pages[0];
    this.data = pages.slice(1);
    this.size = this.data.length * PAGE;
  }

  get writeIndex(): number { return this.ram.loadU32(this.header + WRITE_INDEX); }
  set writeIndex(v: number) { this.ram.storeU32(this.header + WRITE_INDEX, v); }
  get readIndex(): number { return this.ram.loadU32(this.header + READ_INDEX); }
  set readIndex(v: number) { this.ram.storeU32(this.header + READ_INDEX, v); }
  get interruptMask(): number { return this.ram.loadU32(this.header + INTERRUPT_MASK); }
  set interruptMask(v: number) { this.ram.storeU32(this.header + INTERRUPT_MASK, v); }
  get pendingSendSize(): number { return this.ram.loadU32(this.header + PENDING_SEND_SZ); }
  set pendingSendSize(v: number) { this.ram.storeU32(this.header + PENDING_SEND_SZ, v); }
  get featureBits(): number { return this.ram.loadU32(this.header + FEATURE_BITS); }

  /** Validated (read, write) indices; throws RingError when the guest corrupted them. */
  indices(): { r: number; w: number } {
    const r = this.readIndex, w = this.writeIndex;
    if (r >= this.size || w >= this.size || r % 8 !== 0 || w % 8 !== 0) {
      throw new RingError(`ring indices out of range (read ${r}, write ${w}, data size ${this.size})`);
    }
    return { r, w };
  }

  static readable(r: number, w: number, size: number): number { return (w - r + size) % size; }

  copyOut(pos: number, dst: Uint8Array): void {
    const bytes = this.ram.memory.bytes;
    let done = 0;
    while (done < dst.length) {
      const p = (pos + done) % this.size;
      const page = Math.floor(p / PAGE), inPage = p % PAGE;
      const n = Math.min(dst.length - done, PAGE - inPage);
      dst.set(bytes.subarray(this.data[page] + inPage, this.data[page] + inPage + n), done);
      done += n;
    }
  }

  copyIn(pos: number, src: Uint8Array): void {
    const bytes = this.ram.memory.bytes;
    let done = 0;
    while (done < src.length) {
      const p = (pos + done) % this.size;
      const page = Math.floor(p / PAGE), inPage = p % PAGE;
      const n = Math.min(src.length - done, PAGE - inPage);
      bytes.set(src.subarray(done, done + n), this.data[page] + inPage);
      done += n;
    }
  }
}

export interface RawPacket {
  type: number;
  flags: number;
  transactionId: bigint;
  /** Bytes between the descriptor and offset8 (GPA ranges, transfer-page header...). */
  extension: Uint8Array;
  payload: Uint8Array;
}

/** Guest->host ring: the host is the consumer. */
export class InboundRing {
  constructor(readonly ring: Ring, private readonly maxPacket: number) {}

  /**
   * Read up to `limit` packets and publish the new read index once. Returns the packets and whether the
   * guest asked to be told that space was freed (pending_send_sz crossed). Throws RingError on bad input.
   */
  drain(limit: number): { packets: RawPacket[]; signalGuest: boolean } {
    const ring = this.ring;
    const { r: r0, w } = ring.indices();
    let r = r0;
    const packets: RawPacket[] = [];
    const desc = new Uint8Array(PACKET_DESCRIPTOR_SIZE);
    const dv = new DataView(desc.buffer);
    while (packets.length < limit) {
      const avail = Ring.readable(r, w, ring.size);
      if (avail === 0) break;
      if (avail < PACKET_DESCRIPTOR_SIZE + 8) throw new RingError(`truncated packet: ${avail} bytes available`);
      ring.copyOut(r, desc);
      const type = dv.getUint16(0, true), off = dv.getUint16(2, true) * 8, len = dv.getUint16(4, true) * 8;
      const flags = dv.getUint16(6, true), transactionId = dv.getBigUint64(8, true);
      if (len < PACKET_DESCRIPTOR_SIZE || off < PACKET_DESCRIPTOR_SIZE || off > len) {
        throw new RingError(`malformed packet descriptor (type ${type}, offset ${off}, length ${len})`);
      }
      if (len + 8 > avail) throw new RingError(`packet length ${len} exceeds the ${avail} bytes written`);
      if (len > this.maxPacket) throw new RingError(`packet of ${len} bytes exceeds the channel limit of ${this.maxPacket}`);
      const body = new Uint8Array(len - PACKET_DESCRIPTOR_SIZE);
      ring.copyOut((r + PACKET_DESCRIPTOR_SIZE) % ring.size, body);
      packets.push({ type, flags, transactionId, extension: body.subarray(0, off - PACKET_DESCRIPTOR_SIZE), payload: body.subarray(off - PACKET_DESCRIPTOR_SIZE) });
      r = (r + len + 8) % ring.size;
    }
    if (r === r0) return { packets, signalGuest: false };
    const freeBefore = ring.size - Ring.readable(r0, w, ring.size);
    ring.readIndex = r;
    // The guest producer is blocked until free space exceeds pending_send_sz (contract §7.5).
    const pending = ring.pendingSendSize;
    const freeAfter = ring.size - Ring.readable(r, ring.writeIndex % ring.size, ring.size);
    return { packets, signalGuest: pending !== 0 && freeBefore <= pending && freeAfter > pending };
  }
}

/** Host->guest ring: the host is the producer. */
export class OutboundRing {
  constructor(readonly ring: Ring) {}

  /** Bytes a packet with `payloadLen` bytes after a descriptor of `headerLen` takes (incl. trailer). */
  static footprint(headerLen: number, payloadLen: number): number { return ((headerLen + payloadLen + 7) & ~7) + 8; }

  /**
   * Write one packet (descriptor+extension already in `head`, then `payload`). Returns false when it does
   * not fit (then pending_send_sz is set so the guest signals once it has made room). Throws RingError.
   */
  write(head: Uint8Array, payload: Uint8Array): boolean {
    const ring = this.ring;
    const { r, w } = ring.indices();
    const len = (head.length + payload.length + 7) & ~7;
    const need = len + 8;
    const free = ring.size - Ring.readable(r, w, ring.size);
    // Strictly more than needed, so a full ring never looks empty.
    if (free <= need) {
      ring.pendingSendSize = need;
      return false;
    }
    const buf = new Uint8Array(need);
    buf.set(head, 0);
    buf.set(payload, head.length);
    new DataView(buf.buffer).setUint32(len + 4, w, true); // trailer: old write index << 32
    ring.copyIn(w, buf);
    ring.writeIndex = (w + need) % ring.size;
    return true;
  }

  /** The guest is not draining with interrupts masked, so it needs an interrupt. */
  get guestWantsInterrupt(): boolean { return this.ring.interruptMask === 0; }
}
