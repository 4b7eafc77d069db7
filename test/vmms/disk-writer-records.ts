/**
 * Records of the fast test worker's writer: record i goes to slot i % slots, 4 KiB holding i, the slot and a
 * pattern derived from both, so a torn, misplaced or stale record is told apart from the right one.
 */
import { readFileSync } from 'node:fs';
import { openDisk } from '../../src/storage/open.js';

export const RECORD = 4096;

export function recordBytes(i: number, slot: number): Uint8Array {
  const b = new Uint8Array(RECORD);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, i + 1, true); // 0 means never written
  dv.setUint32(4, slot, true);
  let x = (Math.imul(i + 1, 2654435761) ^ slot) >>> 0;
  for (let k = 8; k < RECORD; k += 4) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; dv.setUint32(k, x, true); }
  return b;
}

/** The last record the writer saw acknowledged (-1: none). */
export function ackedRecord(ackFile: string): number {
  try { const t = readFileSync(ackFile, 'utf8').trim(); return t ? Number(t) : -1; } catch { return -1; }
}

/**
 * Checks the writer's ring on the disk's guest view: every slot holds a well-formed record of its own, and no
 * acknowledged record is missing (slot k holds at least the last acknowledged record that went to k).
 * Returns the problems (empty when right) and the highest record found.
 */
export async function checkRing(path: string, regionStart: number, slots: number, acked: number): Promise<{ problems: string[]; highest: number }> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  const problems: string[] = [];
  let highest = -1;
  try {
    const buf = new Uint8Array(RECORD);
    for (let k = 0; k < slots; k++) {
      await d.read(regionStart + k * RECORD, buf);
      const dv = new DataView(buf.buffer);
      const i = dv.getUint32(0, true) - 1;
      // The last acknowledged record of slot k (none when the writer never reached it).
      const want = acked < k ? -1 : acked - ((acked - k) % slots);
      if (i === -1) { if (want >= 0) problems.push(`slot ${k} is empty but record ${want} was acknowledged`); continue; }
      if (i % slots !== k || Buffer.compare(Buffer.from(buf), Buffer.from(recordBytes(i, k))) !== 0) { problems.push(`slot ${k} holds a damaged record (${i})`); continue; }
      if (i < want) problems.push(`slot ${k} holds record ${i}, older than the acknowledged ${want}: a write was lost`);
      highest = Math.max(highest, i);
    }
  } finally {
    await d.close();
  }
  return { problems, highest };
}
