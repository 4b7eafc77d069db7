/**
 * The Debian root disk: debootstrap (minbase + busybox init + hyperv-daemons) into a temporary directory,
 * our configuration on top (rootfs-config.ts), `mkfs.ext4 -d` (no loop mount), `e2fsck -fn`, then a dynamic VHDX.
 * A VM boots it with the default image's kernel and initramfs and `root=LABEL=root` (see init-script.ts).
 *
 * Init measured under QEMU TCG with -icount (guest time at 1 instruction/ns; switch_root to autologin shell):
 * busybox init 0.2 s, sysvinit-core 1.8 s, systemd-sysv + udev 2.2 s. busybox init is the one chosen; it
 * runs Debian's own hyperv-daemons init scripts as its services.
 *
 * Cached like the default image: rebuilt only when the builder, the configuration or the Debian suite's
 * package index (its InRelease file, which fixes every package version) change.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync, renameSync, rmSync, mkdtempSync, symlinkSync, openSync, fsyncSync, closeSync, statSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageCacheDir, DEFAULT_CMDLINE, run } from './builder.js';
import { debianMirror } from './apt-sources.js';
import { rootfsFiles, shadowWithoutRootPassword, BUSYBOX_LINKS, ROOTFS_LABEL } from './rootfs-config.js';
import { createProgress, type Progress } from './progress.js';
import { createVhdx, openDisk } from '../storage/open.js';
import { open } from 'node:fs/promises';

/** Bump when the root file system changes in a way the key's other inputs do not capture. */
export const ROOTFS_BUILDER_VERSION = 2;
export const ROOTFS_SUITE = 'bookworm';
export const ROOTFS_PACKAGES: readonly string[] = ['busybox', 'hyperv-daemons'];
/** Virtual size of the root disk; a dynamic VHDX stores only what is written. */
export const ROOTFS_SIZE = 2 * 1024 ** 3;
/** What the default image's command line needs to boot from the rootfs disk. */
export const ROOTFS_ROOT_OPTION = `root=LABEL=${ROOTFS_LABEL}`;
/** Kernel command line for a VM whose SCSI (or IDE) root disk is the rootfs. */
export const ROOTFS_CMDLINE = `${DEFAULT_CMDLINE} ${ROOTFS_ROOT_OPTION}`;

export interface RootfsPaths { dir: string; disk: string; manifest: string; cmdline: string }

export interface BuildRootfsOptions {
  force?: boolean;
  cacheDir?: string;
  /** Debian mirror URL (default: the host's apt source for bookworm main). */
  mirror?: string;
  progress?: Progress;
}

export interface BuildRootfsResult extends RootfsPaths {
  rebuilt: boolean;
  key: string;
  /** Installed packages, "name version". */
  packages: string[];
}

/** Where the rootfs disk lives (whether or not it has been built yet). */
export function rootfsPaths(cacheDir = imageCacheDir()): RootfsPaths {
  const dir = join(cacheDir, 'rootfs');
  return { dir, disk: join(dir, 'root.vhdx'), manifest: join(dir, 'manifest.json'), cmdline: ROOTFS_CMDLINE };
}

export interface RootfsManifest { key: string; builderVersion: number; suite: string; mirror: string; packages: string[]; size: number; buildSeconds: number }

/** The built rootfs, or null when it is missing or incomplete. */
export function readRootfsManifest(cacheDir = imageCacheDir()): RootfsManifest | null {
  const p = rootfsPaths(cacheDir);
  try {
    const m = JSON.parse(readFileSync(p.manifest, 'utf8')) as RootfsManifest;
    return typeof m.key === 'string' && existsSync(p.disk) ? m : null;
  } catch {
    return null;
  }
}

/** Cache key: builder version, suite, mirror, packages, size, generated files, and the suite's package index. */
export function rootfsKey(inRelease: string, mirror: string): string {
  const h = createHash('sha256');
  h.update(`rootfs ${ROOTFS_BUILDER_VERSION}\n${ROOTFS_SUITE}\n${mirror}\n${ROOTFS_PACKAGES.join(',')}\n${ROOTFS_SIZE} ${ROOTFS_VHDX_BLOCK}\n`);
  h.update(JSON.stringify(rootfsFiles()) + '\n' + BUSYBOX_LINKS.join(',') + '\n');
  h.update(createHash('sha256').update(inRelease).digest('hex'));
  return h.digest('hex').slice(0, 24);
}

export async function buildRootfs(opts: BuildRootfsOptions = {}): Promise<BuildRootfsResult> {
  const progress = opts.progress ?? createProgress();
  const cacheDir = opts.cacheDir ?? imageCacheDir();
  const paths = rootfsPaths(cacheDir);
  const mirror = (opts.mirror ?? debianMirror(ROOTFS_SUITE)).replace(/\/+$/, '');
  const cached = readRootfsManifest(cacheDir);

  let inRelease: string;
  try {
    inRelease = await fetchText(`${mirror}/dists/${ROOTFS_SUITE}/InRelease`);
  } catch (e) {
    if (cached && !opts.force) {
      progress.info(`warning: cannot reach ${mirror} (${(e as Error).message}); using the cached root disk`);
      return { ...paths, rebuilt: false, key: cached.key, packages: cached.packages };
    }
    throw new Error(`cannot reach the Debian mirror ${mirror}: ${(e as Error).message}; check the network or pass --mirror URL`);
  }
  const key = rootfsKey(inRelease, mirror);
  if (!opts.force && cached?.key === key) {
    progress.info(`root disk up to date (Debian ${ROOTFS_SUITE}, ${cached.packages.length} packages): ${paths.disk}`);
    return { ...paths, rebuilt: false, key, packages: cached.packages };
  }

  if (process.getuid?.() !== 0) throw new Error('building the root disk needs root (debootstrap chroots and creates device nodes): run it as root, e.g. with sudo');
  await requireTools();
  const t0 = Date.now();
  const workRoot = join(cacheDir, 'work');
  mkdirSync(workRoot, { recursive: true });
  mkdirSync(paths.dir, { recursive: true });
  await removeAbandonedWork(workRoot);
  const work = mkdtempSync(join(workRoot, 'rootfs-'));
  writeFileSync(join(work, 'pid'), `${process.pid}\n`);
  const target = join(work, 'target');
  try {
    await progress.step(`debootstrap Debian ${ROOTFS_SUITE} minbase + ${ROOTFS_PACKAGES.join(', ')} from ${mirror}`, (update) =>
      debootstrap(target, mirror, join(paths.dir, 'debs'), update).catch((e: Error) => {
        const log = join(target, 'debootstrap', 'debootstrap.log');
        const kept = join(paths.dir, 'debootstrap.log');
        if (existsSync(log)) { copyFileSync(log, kept); throw new Error(`${e.message}\n(full log: ${kept})`); }
        throw e;
      }));
    configure(target);
    const packages = (await run('dpkg-query', [`--admindir=${join(target, 'var/lib/dpkg')}`, '-W', '-f=${Package} ${Version}\n'], 'could not list the installed packages'))
      .split('\n').filter(Boolean).sort();
    trim(target);
    pruneDebCache(join(paths.dir, 'debs'), packages);

    const raw = join(work, 'root.ext4');
    await progress.step(`mkfs.ext4 -d (${(ROOTFS_SIZE / 1024 ** 3).toFixed(0)} GiB, label ${ROOTFS_LABEL})`, async () => {
      closeSync(openSync(raw, 'w'));
      await run('truncate', ['-s', String(ROOTFS_SIZE), raw], 'could not create the image file');
      await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', ROOTFS_LABEL, '-d', target, raw], 'mkfs.ext4 -d failed');
    });
    await progress.step('e2fsck -fn', () => run('e2fsck', ['-fn', raw], 'the new file system does not pass e2fsck -fn'));
    await removeWork(target); // before the conversion doubles the space used

    const tmp = paths.disk + '.tmp';
    rmSync(tmp, { force: true });
    await progress.step('converting to a dynamic VHDX', (update) => rawToDynamicVhdx(raw, tmp, update));
    syncFile(tmp);
    rmSync(paths.manifest, { force: true }); // no manifest while the disk and its description disagree
    renameSync(tmp, paths.disk);
    const buildSeconds = Math.round((Date.now() - t0) / 100) / 10;
    const manifest: RootfsManifest = { key, builderVersion: ROOTFS_BUILDER_VERSION, suite: ROOTFS_SUITE, mirror, packages, size: ROOTFS_SIZE, buildSeconds };
    writeFileSync(paths.manifest + '.tmp', JSON.stringify(manifest, null, 2) + '\n');
    syncFile(paths.manifest + '.tmp');
    renameSync(paths.manifest + '.tmp', paths.manifest);
    syncFile(paths.dir);
    progress.info(`root disk built in ${buildSeconds} s (Debian ${ROOTFS_SUITE}, ${packages.length} packages): ${paths.disk}`);
    return { ...paths, rebuilt: true, key, packages };
  } finally {
    await removeWork(work);
  }
}

/** Dynamic VHDX block size: small blocks keep ext4's metadata, spread over the whole disk, from filling the file. */
export const ROOTFS_VHDX_BLOCK = 2 * 1024 * 1024;

/**
 * The one conversion step: raw image -> new dynamic VHDX at `out` (which must not exist), with src/storage's
 * own VHDX writer. Only chunks holding non-zero bytes are written, so the file holds just the file system's data.
 */
export async function rawToDynamicVhdx(raw: string, out: string, update: (f: number) => void = () => undefined): Promise<void> {
  const size = statSync(raw).size;
  if (size === 0 || size % 4096 !== 0) throw new Error(`${raw}: ${size} bytes is not a whole number of 4 KiB sectors`);
  await createVhdx({ path: out, sizeBytes: size, type: 'dynamic', blockSizeBytes: ROOTFS_VHDX_BLOCK });
  const disk = await openDisk(out, { purpose: 'the rootfs builder' });
  const src = await open(raw, 'r');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    for (let off = 0; off < size; off += chunk.length) {
      const n = Math.min(chunk.length, size - off);
      const buf = chunk.subarray(0, n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await src.read(buf, got, n - got, off + got);
        if (bytesRead === 0) throw new Error(`${raw}: ended early at ${off + got} of ${size} bytes`);
        got += bytesRead;
      }
      if (!isZero(buf)) await disk.write(off, buf);
      update((off + n) / size);
    }
    await disk.flush();
  } finally {
    await src.close();
    await disk.close();
  }
}

function isZero(b: Buffer): boolean {
  const w = new Uint32Array(b.buffer, b.byteOffset, b.length >> 2);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
  return true;
}

async function requireTools(): Promise<void> {
  for (const [cmd, pkg] of [['debootstrap', 'debootstrap'], ['mkfs.ext4', 'e2fsprogs']]) {
    await run('sh', ['-c', `command -v ${cmd}`], '').catch(() => { throw new Error(`${cmd} is not installed: apt-get install ${pkg}`); });
  }
  // mkfs.ext4 -d with 4 KiB blocks into a regular file: e2fsprogs 1.47 (bookworm) is known good.
  const v = /mke2fs (\d+)\.(\d+)/.exec(await run('sh', ['-c', 'mkfs.ext4 -V 2>&1'], ''));
  if (!v || Number(v[1]) * 100 + Number(v[2]) < 147) throw new Error(`mkfs.ext4 is older than e2fsprogs 1.47 (${v?.[0] ?? 'unknown version'}); mkfs.ext4 -d needs 1.47`);
}

/** Run debootstrap, reporting progress from its "I: ..." lines (validate, extract, unpack, configure: ~4 per package). */
function debootstrap(target: string, mirror: string, debCache: string, update: (f: number) => void): Promise<void> {
  mkdirSync(debCache, { recursive: true });
  const args = ['--variant=minbase', `--include=${ROOTFS_PACKAGES.join(',')}`, `--cache-dir=${debCache}`, ROOTFS_SUITE, target, mirror];
  return new Promise((resolve, reject) => {
    const p = spawn('debootstrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let packages = 0, lines = 0, tail: string[] = [], buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        tail = [...tail.slice(-9), line];
        if (line.startsWith('I: Validating ') || line.startsWith('I: Retrieving ') && / \S+ \S+$/.test(line)) packages++;
        if (/^I: (Extracting|Unpacking|Configuring) /.test(line)) lines++;
        if (packages > 0) update(Math.min(0.99, (packages + lines) / (4 * packages)));
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', (e) => reject(new Error(`cannot run debootstrap: ${e.message}`)));
    p.on('close', (code) => code === 0 ? resolve() : reject(new Error(`debootstrap failed (exit ${code}):\n${tail.join('\n')}`)));
  });
}

/** Our configuration on top of minbase. */
function configure(target: string): void {
  for (const [rel, f] of Object.entries(rootfsFiles())) writeFileSync(join(target, rel), f.text, { mode: f.mode });
  for (const link of BUSYBOX_LINKS) {
    const p = join(target, link);
    if (existsSync(p)) throw new Error(`the new root already has /${link}; busybox init would not be the init`);
    symlinkSync('/bin/busybox', p);
  }
  const shadow = join(target, 'etc/shadow');
  writeFileSync(shadow, shadowWithoutRootPassword(readFileSync(shadow, 'utf8')), { mode: 0o640 });
}

/** Downloaded archives and package lists: regenerated by apt-get update when the guest has a network. */
function trim(target: string): void {
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    const d = join(target, dir);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (f !== 'partial' && f !== 'lock') rmSync(join(d, f), { recursive: true, force: true });
  }
  for (const f of ['pkgcache.bin', 'srcpkgcache.bin']) rmSync(join(target, 'var/cache/apt', f), { force: true });
}

/** Drop cached .debs of versions no longer installed (debootstrap's cache only grows). */
export function pruneDebCache(dir: string, packages: string[]): void {
  const keep = new Set(packages.map((p) => { const [n, v] = p.split(' '); return `${n}_${v.replace(/:/g, '%3a')}_`; }));
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.deb')) continue;
    const prefix = /^([^_]+_[^_]+_)/.exec(f)?.[1];
    if (prefix && !keep.has(prefix)) rmSync(join(dir, f), { force: true });
  }
}

/** Mount points at or below `dir` (debootstrap bind-mounts /dev nodes and mounts /proc into its target). */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => unescape(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(dir + '/')).sort((a, b) => b.length - a.length);
}

/** Remove a work directory (or the target in it), never following a leftover bind mount into the host's /dev or /proc. */
async function removeWork(work: string): Promise<void> {
  for (const m of mountsUnder(work)) await run('umount', ['-l', m], '').catch(() => undefined);
  const left = mountsUnder(work);
  if (left.length) throw new Error(`could not unmount ${left.join(', ')}; remove ${work} by hand after unmounting them`);
  rmSync(work, { recursive: true, force: true });
}

/** Work directories of builds whose process is gone (killed mid-build). */
async function removeAbandonedWork(workRoot: string): Promise<void> {
  for (const name of readdirSync(workRoot)) {
    if (!name.startsWith('rootfs-')) continue;
    const dir = join(workRoot, name);
    let pid = 0;
    try { pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim()); } catch { /* no pid file yet */ }
    if (pid > 0 && alive(pid)) continue;
    if (pid === 0 && Date.now() - statSync(dir).mtimeMs < 3600_000) continue; // just created by another build
    await removeWork(dir).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

async function fetchText(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return await r.text();
}
