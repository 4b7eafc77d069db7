/** Disk fixtures of the checkpoint-disk tests: a marker written at two places of a disk's guest view. */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openDisk } from '../../src/storage/open.js';

const OFFSETS = [0, 3 << 20];
const SECTOR = 4096;

export function diskDir(dataDir: string, name: string): string {
  const dir = join(dataDir, 'disks', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Files in `dir` that are not lock holder records. */
export const folderFiles = (dir: string): string[] => readdirSync(dir).filter((x) => !x.startsWith('.')).sort();

/** Writes `mark` (one letter) over two sectors of the disk's guest view, then flushes. */
export async function writeMark(path: string, mark: string): Promise<void> {
  const d = await openDisk(path, { purpose: 'test' });
  try {
    for (const o of OFFSETS) await d.write(o, Buffer.alloc(SECTOR, mark));
    await d.flush();
  } finally {
    await d.close();
  }
}

/** The mark the disk shows ('' when never written, '?' when the two places disagree or are torn). */
export async function readMark(path: string): Promise<string> {
  const d = await openDisk(path, { readOnly: true, lock: false });
  try {
    const marks = new Set<string>();
    for (const o of OFFSETS) {
      const b = Buffer.alloc(SECTOR);
      await d.read(o, b);
      const s = new Set(b.toString('latin1'));
      marks.add(s.size === 1 ? (b[0] === 0 ? '' : b.toString('latin1', 0, 1)) : '?');
    }
    return marks.size === 1 ? [...marks][0] : '?';
  } finally {
    await d.close();
  }
}
