/**
 * Durable replacement of state files (saved state, checkpoints, the API token, configuration): a temporary
 * file next to the target, written and fsync-ed, renamed over the target, then the directory fsync-ed so the
 * rename itself survives a power loss. A reader sees the old file or the new one, never a mix or nothing.
 */
import { closeSync, constants, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** fsync of a directory: makes the names created, renamed or removed in it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/** fsync of a file already written (by a stream, say) before it is renamed into place. */
export function fsyncFile(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/** Temporary names carry this marker, so a service that died mid-write can sweep them at start. */
export const TEMP_MARK = '.tmp-';
const tempName = (path: string): string => join(dirname(path), `${basename(path)}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, Math.min(data.length - done, 1 << 30));
}

/**
 * Replaces `path` with `data` atomically and durably. `produce` may instead write the contents to the open
 * temporary file (for large files built in pieces).
 */
export function writeFileAtomic(path: string, data: Uint8Array | string | ((fd: number) => void), mode = 0o600): void {
  const tmp = tempName(path);
  // O_EXCL|O_NOFOLLOW: never write through a symlink or a file someone planted under the temporary name.
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      if (typeof data === 'function') data(fd);
      else writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally { closeSync(fd); }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** Copies `src` over `dst` atomically and durably (applying a checkpoint, checkpointing a saved VM). */
export function copyFileAtomic(src: string, dst: string, mode = 0o600): void {
  const in_ = openSync(src, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!fstatSync(in_).isFile()) throw new Error(`${src} is not a regular file`);
    writeFileAtomic(dst, (out) => {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(in_, buf, 0, buf.length, null);
        if (n === 0) break;
        writeAll(out, buf.subarray(0, n));
      }
    }, mode);
  } finally { closeSync(in_); }
}

/** Removes a file and makes the removal durable. */
export function removeFileDurably(path: string): void {
  rmSync(path, { force: true });
  try { fsyncDir(dirname(path)); } catch { /* the directory is gone too */ }
}
