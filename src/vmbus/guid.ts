/**
 * GUIDs in the Windows binary layout VMBus uses on the wire (contract §6.6): the first three fields
 * little-endian, the last 8 bytes in order.
 */
import { createHash } from 'node:crypto';

const RE = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

export function guidToBytes(guid: string): Uint8Array {
  const m = RE.exec(guid);
  if (!m) throw new RangeError(`not a GUID: "${guid}" (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setUint32(0, parseInt(m[1], 16), true);
  v.setUint16(4, parseInt(m[2], 16), true);
  v.setUint16(6, parseInt(m[3], 16), true);
  const tail = m[4] + m[5];
  for (let i = 0; i < 8; i++) out[8 + i] = parseInt(tail.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function guidFromBytes(b: Uint8Array, off = 0): string {
  const v = new DataView(b.buffer, b.byteOffset + off, 16);
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  let tail = '';
  for (let i = 8; i < 16; i++) tail += h(b[off + i], 2);
  return `${h(v.getUint32(0, true), 8)}-${h(v.getUint16(4, true), 4)}-${h(v.getUint16(6, true), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/** A random (version 4) GUID, e.g. for instance ids. */
export function randomGuid(): string {
  return rfc4122(crypto.getRandomValues(new Uint8Array(16)), 4);
}

/** Text of 16 bytes taken in order (RFC 4122 layout) with the given version and the RFC variant set. */
function rfc4122(b: Uint8Array, version: number): string {
  b[6] = (b[6] & 0x0f) | (version << 4); b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A GUID derived from a name (SHA-1, version-5 layout): the same name gives the same GUID in every run, so
 * device instance ids, and with them the order the guest enumerates devices in, repeat from boot to boot.
 */
export function nameGuid(name: string): string {
  return rfc4122(createHash('sha1').update(`hyperts:${name}`).digest().subarray(0, 16), 5);
}
