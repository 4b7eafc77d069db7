/** MAC addresses: Hyper-V hands out 00:15:5D:xx:xx:xx (Microsoft's OUI) to adapters with a dynamic MAC. */
import { randomBytes } from 'node:crypto';

export const HYPERV_OUI = [0x00, 0x15, 0x5d] as const;

export class MacError extends Error {}

/** "00:15:5d:01:02:03", "00-15-5D-01-02-03" or "00155D010203" -> 6 bytes; a clear error otherwise. */
export function parseMac(text: string): Uint8Array {
  const hex = text.trim().replace(/[:-]/g, '');
  if (!/^[0-9a-fA-F]{12}$/.test(hex)) throw new MacError(`"${text}" is not a MAC address (expected six hex bytes, e.g. 00:15:5d:12:34:56)`);
  const b = new Uint8Array(6);
  for (let i = 0; i < 6; i++) b[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  if (b[0] & 1) throw new MacError(`${formatMac(b)} is a multicast address; an adapter needs a unicast MAC`);
  return b;
}

export function formatMac(b: Uint8Array): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A random address in Hyper-V's dynamic range 00:15:5d:xx:xx:xx. */
export function randomHyperVMac(): string {
  return formatMac(Uint8Array.from([...HYPERV_OUI, ...randomBytes(3)]));
}

export const BROADCAST = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** Destination/source of an Ethernet frame as 48-bit integers (Map keys). */
export function macKey(frame: Uint8Array, offset: number): number {
  return frame[offset] * 2 ** 40 + frame[offset + 1] * 2 ** 32 + ((frame[offset + 2] << 24) >>> 0) + (frame[offset + 3] << 16) + (frame[offset + 4] << 8) + frame[offset + 5];
}
