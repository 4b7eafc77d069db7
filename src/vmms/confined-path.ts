/**
 * File paths that API clients give (virtual disks, ISOs, export folders) are confined to roots the host
 * configures: resolved through every symlink, required to lie under a root, then opened without following a
 * final symlink, and checked once more on the open descriptor (/proc/self/fd), so a link swapped in between
 * the check and the open is caught. Only regular files (or directories, when asked) are accepted: no FIFOs,
 * devices or /proc files.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { badRequest } from './errors.js';

export interface ConfineOptions {
  /** 'file' (default): a regular file; 'directory': a folder (export targets). */
  kind?: 'file' | 'directory';
  /** Open for writing (a disk the VM writes); default read-only. */
  write?: boolean;
  /** The file may not exist yet (a new disk or export): its folder must then exist under a root. */
  mayCreate?: boolean;
  /** What the path is, for messages ("virtual disk", "ISO image"). */
  what?: string;
}

export interface ConfinedFile {
  /** The resolved real path, under one of the roots. */
  path: string;
  /** An open descriptor of that very file (the caller owns it), or null for a path that does not exist yet. */
  fd: number | null;
}

const under = (p: string, root: string): boolean => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

function realRoots(roots: string[]): string[] {
  const out: string[] = [];
  for (const r of roots) { try { out.push(realpathSync(r)); } catch { /* a root that does not exist holds nothing */ } }
  return out;
}

/**
 * Resolves `path` (absolute, or relative to the first root) and opens it, confined to `roots`. Throws a 400 that
 * names the allowed roots otherwise. The returned descriptor is what the caller must use (not the path again).
 */
export function openConfined(path: unknown, roots: string[], o: ConfineOptions = {}): ConfinedFile {
  const what = o.what ?? 'file';
  if (typeof path !== 'string' || !path || path.includes('\0')) throw badRequest(`the ${what} path must be a non-empty string`);
  const allowed = realRoots(roots);
  const refuse = (why: string): never => {
    throw badRequest(`${what} '${path}' ${why}; allowed folders: ${allowed.join(', ') || '(none configured)'} (the host adds more with 'hyperts serve --path-root DIR')`);
  };
  if (!allowed.length) refuse('cannot be used: no folder is configured for such files');
  const abs = isAbsolute(path) ? resolve(path) : resolve(allowed[0], path);
  let real: string;
  let exists = true;
  try { real = realpathSync(abs); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !o.mayCreate) refuse(`does not exist or cannot be resolved (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    let parent: string;
    try { parent = realpathSync(dirname(abs)); } catch { return refuse('is in a folder that does not exist'); }
    real = join(parent, abs.slice(dirname(abs).length + 1));
    exists = false;
  }
  real = real!;
  if (!allowed.some((r) => under(real, r))) refuse('is outside the folders this host allows');
  if (!exists) return { path: real, fd: null };
  const flags = (o.kind === 'directory' ? constants.O_RDONLY | constants.O_DIRECTORY : o.write ? constants.O_RDWR : constants.O_RDONLY)
    // O_NONBLOCK: opening a FIFO must not hang waiting for a writer (it is refused just below).
    | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
  let fd: number;
  try { fd = openSync(real, flags); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return refuse(code === 'ELOOP' ? 'became a symbolic link while it was being opened' : code === 'ENOTDIR' ? 'is not a folder'
      : `cannot be opened (${code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd);
    if (o.kind === 'directory' ? !st.isDirectory() : !st.isFile()) refuse(o.kind === 'directory' ? 'is not a folder' : 'is not a regular file');
    // What was actually opened, whatever happened to the path's folders in the meantime.
    const opened = readlinkSync(`/proc/self/fd/${fd}`);
    if (!allowed.some((r) => under(opened, r))) refuse('was swapped for a link out of the allowed folders while it was being opened');
    return { path: opened, fd };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Like openConfined, for callers that want only the checked real path (the descriptor is closed). */
export function resolveConfinedPath(path: unknown, roots: string[], o: ConfineOptions = {}): string {
  const r = openConfined(path, roots, o);
  if (r.fd !== null) closeSync(r.fd);
  return r.path;
}
