/**
 * The default guest image: Debian's stock cloud kernel plus an initramfs hyperts writes itself (busybox,
 * the Hyper-V kernel modules, hyperv-daemons with the libc they need, and our /init).
 *
 * Inputs come from apt (`apt-get download`, `apt-cache`), are cached with the output, and the image is rebuilt
 * only when the input .deb files, the builder version or the generated init change.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync, renameSync, rmSync, mkdtempSync, copyFileSync, realpathSync, createWriteStream } from 'node:fs';
import { copyFileAtomic, fsyncDir, fsyncFile, writeFileAtomic } from '../platform/state-files.js';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import { createGzip } from 'node:zlib';
import { CpioWriter } from './cpio.js';
import { GUEST_MODULES, GENERIC_KERNEL_MODULES, scanModuleTree, resolveModules, modulesDep } from './modules.js';
import { initScript, ETC_FILES, MODULE_LIST_PATH, UDHCPC_SCRIPT } from './init-script.js';
import { createProgress, type Progress } from './progress.js';
import { neededLibraries } from '../firmware/elf.js';

/** Bump when the image layout changes in a way the input hashes do not capture. */
export const BUILDER_VERSION = 1;
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
/**
 * Image flavors: 'cloud' (the default image: Debian's cloud kernel, enough for Hyper-V's synthetic devices)
 * and 'generic' (Debian's generic kernel, which also has drivers for emulated hardware such as the legacy
 * network adapter's tulip; the cloud kernel has none). Same initramfs otherwise.
 */
export type ImageFlavor = 'cloud' | 'generic';
const FLAVORS: Record<ImageFlavor, { meta: string; versioned: RegExp; dir: string; modules: readonly string[] }> = {
  cloud: { meta: KERNEL_META_PACKAGE, versioned: /Depends:\s*(linux-image-[0-9][^\s]*-cloud-amd64)/, dir: 'default', modules: GUEST_MODULES },
  generic: { meta: 'linux-image-amd64', versioned: /Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/, dir: 'generic', modules: [...GUEST_MODULES, ...GENERIC_KERNEL_MODULES] },
};
export const DEFAULT_CMDLINE = 'console=ttyS0,115200 nokaslr panic=-1';

/**
 * Programs from Debian packages beyond busybox (the storage tests and benchmarks need real mkfs.ext4 and
 * lsblk, sg_raw, ioping): files copied as they are, links made, shared libraries resolved from TOOL_LIBRARY_PACKAGES + libc6.
 */
export const GUEST_TOOLS: ReadonlyArray<{ pkg: string; files: string[]; links?: Record<string, string> }> = [
  { pkg: 'e2fsprogs', files: ['sbin/mke2fs', 'etc/mke2fs.conf'], links: { 'sbin/mkfs.ext4': '/sbin/mke2fs' } },
  { pkg: 'util-linux', files: ['bin/lsblk'] },
  // Raw SCSI commands through SG_IO (checks a device's own answers past the block layer's checks).
  { pkg: 'sg3-utils', files: ['usr/bin/sg_raw'] },
  // Disk latency and random-read IOPS with O_DIRECT (bench:disk).
  { pkg: 'ioping', files: ['usr/bin/ioping'] },
];
const TOOL_LIBRARY_PACKAGES = ['libext2fs2', 'libcom-err2', 'libblkid1', 'libuuid1', 'libmount1', 'libsmartcols1', 'libudev1', 'libselinux1', 'libpcre2-8-0', 'libsgutils2-1.46-2'];

export interface ImagePaths { kernel: string; initrd: string; cmdline: string }

export interface BuildImageOptions {
  /** Rebuild even when the cached image matches its inputs. */
  force?: boolean;
  /** Cache root (default $XDG_CACHE_HOME/hyperts/images or ~/.cache/hyperts/images). */
  cacheDir?: string;
  /** Include hyperv-daemons and the libc6 libraries they use (default true). */
  daemons?: boolean;
  /** Which kernel (default 'cloud': the default image). */
  flavor?: ImageFlavor;
  progress?: Progress;
}

export interface BuildImageResult extends ImagePaths {
  rebuilt: boolean;
  kernelVersion: string;
  key: string;
  modules: string[];
}

export function imageCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME && process.env.XDG_CACHE_HOME.startsWith('/') ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'hyperts', 'images');
}

/** Where the default image lives (whether or not it has been built yet). */
export function defaultImagePaths(cacheDir = imageCacheDir()): ImagePaths { return imagePaths('cloud', cacheDir); }

/** Where the image of `flavor` lives (whether or not it has been built yet). */
export function imagePaths(flavor: ImageFlavor, cacheDir = imageCacheDir()): ImagePaths {
  const dir = join(cacheDir, FLAVORS[flavor].dir);
  let cmdline = DEFAULT_CMDLINE;
  try { cmdline = readFileSync(join(dir, 'cmdline'), 'utf8').trim() || DEFAULT_CMDLINE; } catch { /* not built yet */ }
  return { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), cmdline };
}

export async function buildDefaultImage(opts: BuildImageOptions = {}): Promise<BuildImageResult> {
  const progress = opts.progress ?? createProgress();
  const cacheDir = opts.cacheDir ?? imageCacheDir();
  const debDir = join(cacheDir, 'debs');
  const flavor = FLAVORS[opts.flavor ?? 'cloud'];
  const outDir = join(cacheDir, flavor.dir);
  mkdirSync(debDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const withDaemons = opts.daemons ?? true;

  const kernelPkg = await resolveKernelPackage(flavor.meta, flavor.versioned);
  const pkgs = [flavor.meta, kernelPkg, 'busybox-static', 'base-files', 'libc6', ...(withDaemons ? ['hyperv-daemons'] : []),
    ...GUEST_TOOLS.map((t) => t.pkg), ...TOOL_LIBRARY_PACKAGES];
  const debs: Record<string, string> = {};
  for (const p of pkgs) debs[p] = await fetchDeb(p, debDir, progress);

  const kernelVersion = kernelPkg.replace(/^linux-image-/, '');
  const init = initScript(kernelVersion);
  const h = createHash('sha256');
  h.update(`builder ${BUILDER_VERSION}\n${flavor.modules.join(',')}\n${init}\n${JSON.stringify(ETC_FILES)}\n${JSON.stringify(GUEST_TOOLS)}\n${UDHCPC_SCRIPT}\n`);
  for (const p of pkgs) h.update(`${p} ${createHash('sha256').update(readFileSync(debs[p])).digest('hex')}\n`);
  const key = h.digest('hex').slice(0, 24);

  const paths = imagePaths(opts.flavor ?? 'cloud', cacheDir);
  const manifestPath = join(outDir, 'manifest.json');
  if (!opts.force && existsSync(paths.kernel) && existsSync(paths.initrd) && existsSync(manifestPath)) {
    try {
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { key?: string; modules?: string[] };
      if (m.key === key) {
        progress.info(`guest image up to date (${kernelVersion}): ${outDir}`);
        return { ...paths, rebuilt: false, kernelVersion, key, modules: m.modules ?? [] };
      }
    } catch { /* rebuild */ }
  }

  mkdirSync(join(cacheDir, 'work'), { recursive: true });
  const work = mkdtempSync(join(cacheDir, 'work', 'build-'));
  try {
    const ex: Record<string, string> = {};
    await progress.step('extracting packages', async (update) => {
      let i = 0;
      for (const p of pkgs.filter((x) => x !== flavor.meta)) {
        ex[p] = join(work, p);
        mkdirSync(ex[p]);
        await run('dpkg-deb', ['-x', debs[p], ex[p]], `could not extract ${debs[p]}`);
        update(++i / (pkgs.length - 1));
      }
    });

    const kdir = ex[kernelPkg];
    const vmlinuz = join(kdir, 'boot', `vmlinuz-${kernelVersion}`);
    if (!existsSync(vmlinuz)) throw new Error(`${kernelPkg} has no boot/vmlinuz-${kernelVersion}`);
    const tree = scanModuleTree(join(kdir, 'lib', 'modules', kernelVersion));
    const resolved = resolveModules(tree, flavor.modules);

    const cpio = new CpioWriter();
    for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'root', 'mnt', 'bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc']) cpio.add({ type: 'dir', path: d });
    // The kernel opens /dev/console before running /init, before devtmpfs is mounted.
    cpio.add({ type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 });
    cpio.add({ type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 });
    for (const [p, text] of Object.entries(ETC_FILES)) cpio.add({ type: 'file', path: p, data: Buffer.from(text), mode: p === 'etc/shadow' ? 0o600 : 0o644 });
    cpio.add({ type: 'file', path: 'etc/udhcpc/default.script', data: Buffer.from(UDHCPC_SCRIPT), mode: 0o755 });

    // Before busybox's applet links, so the real programs win over applets of the same name (mke2fs).
    const libRoots = [ex['libc6'], ...TOOL_LIBRARY_PACKAGES.map((p) => ex[p])];
    const programs: Array<{ root: string; path: string }> = [];
    for (const t of GUEST_TOOLS) {
      for (const f of t.files) {
        if (!existsSync(join(ex[t.pkg], f))) throw new Error(`${t.pkg} has no ${f}`);
        programs.push({ root: ex[t.pkg], path: f });
      }
      for (const [link, target] of Object.entries(t.links ?? {})) cpio.add({ type: 'symlink', path: link, target });
    }
    addPrograms(cpio, programs, libRoots);

    const bb = join(ex['busybox-static'], 'bin', 'busybox');
    cpio.add({ type: 'file', path: 'bin/busybox', data: readFileSync(bb), mode: 0o755 });
    const applets = (await run(bb, ['--list-full'], 'could not list busybox applets')).split('\n').map((s) => s.trim()).filter(Boolean);
    for (const a of applets) if (!cpio.has(a) && a !== 'init' && a !== 'linuxrc') cpio.add({ type: 'symlink', path: a, target: '/bin/busybox' });

    const modBase = `lib/modules/${kernelVersion}`;
    for (const n of resolved.order) {
      const rel = tree.files.get(n)!;
      cpio.add({ type: 'file', path: `${modBase}/${rel}`, data: readFileSync(join(tree.root, rel)), mode: 0o644 });
    }
    cpio.add({ type: 'file', path: `${modBase}/modules.dep`, data: Buffer.from(modulesDep(tree, resolved)) });
    cpio.add({ type: 'file', path: MODULE_LIST_PATH, data: Buffer.from(resolved.order.map((n) => tree.files.get(n)).join('\n') + '\n') });

    // Debian's own os-release: hv_kvp_daemon reports its NAME and VERSION_ID to the host as the guest OS.
    const osRelease = join(ex['base-files'], 'usr', 'lib', 'os-release');
    if (existsSync(osRelease)) cpio.add({ type: 'file', path: 'etc/os-release', data: readFileSync(osRelease), mode: 0o644 });

    if (withDaemons) {
      const d = ex['hyperv-daemons'];
      const files = ['usr/sbin/hv_kvp_daemon', 'usr/sbin/hv_vss_daemon', 'usr/sbin/hv_fcopy_daemon',
        'usr/libexec/hypervkvpd/hv_get_dns_info', 'usr/libexec/hypervkvpd/hv_get_dhcp_info'];
      addPrograms(cpio, files.filter((f) => existsSync(join(d, f))).map((f) => ({ root: d, path: f })), libRoots);
    }

    const raw = cpio.finish();
    const tmp = paths.initrd + '.tmp';
    await progress.step(`compressing initramfs (${(raw.length / 1048576).toFixed(1)} MiB)`, (update) => gzipToFile(raw, tmp, update));
    // Durable in this order: the manifest, written last, is what marks the image complete.
    fsyncFile(tmp);
    renameSync(tmp, paths.initrd);
    fsyncDir(outDir);
    // World-readable: workers of a root service run as nobody and read them.
    copyFileAtomic(vmlinuz, paths.kernel, 0o644);
    writeFileAtomic(join(outDir, 'cmdline'), DEFAULT_CMDLINE + '\n', 0o644);
    writeFileAtomic(manifestPath, JSON.stringify({ key, builderVersion: BUILDER_VERSION, kernelVersion, packages: Object.fromEntries(pkgs.map((p) => [p, posix.basename(debs[p])])), modules: resolved.order, builtin: resolved.builtin }, null, 2) + '\n', 0o644);
    progress.info(`guest image built (${kernelVersion}, ${resolved.order.length} modules): ${outDir}`);
    return { ...paths, rebuilt: true, kernelVersion, key, modules: resolved.order };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The versioned kernel package the meta package depends on, e.g. linux-image-6.1.0-50-cloud-amd64. */
async function resolveKernelPackage(meta: string, versioned: RegExp): Promise<string> {
  const out = await run('apt-cache', ['depends', meta], `could not resolve ${meta}`);
  const m = versioned.exec(out);
  if (!m) throw new Error(`could not find the kernel ${meta} depends on (apt-cache depends said: ${out.trim() || 'nothing'}); run apt-get update`);
  return m[1];
}

/** Download `pkg`'s candidate .deb into `dir` unless that exact version is already there. */
export async function fetchDeb(pkg: string, dir: string, progress: Progress): Promise<string> {
  const show = await run('apt-cache', ['show', '--no-all-versions', pkg], `could not download ${pkg}`).catch((e: Error) => {
    throw new Error(`could not download ${pkg}: ${e.message}; check network/apt sources (apt-get update)`);
  });
  const version = /^Version:\s*(\S+)/m.exec(show)?.[1];
  const arch = /^Architecture:\s*(\S+)/m.exec(show)?.[1];
  if (!version || !arch) throw new Error(`could not download ${pkg}: apt-cache knows no candidate version; check network/apt sources`);
  const file = join(dir, `${pkg}_${version.replace(/:/g, '%3a')}_${arch}.deb`);
  if (existsSync(file)) return file;
  await progress.step(`downloading ${pkg} ${version}`, async () => {
    try {
      await run('apt-get', ['download', `${pkg}=${version}`], '', dir);
    } catch (e) {
      throw new Error(`could not download ${pkg}: ${(e as Error).message.trim()}; check network/apt sources`);
    }
  });
  if (!existsSync(file)) {
    const alt = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!alt) throw new Error(`could not download ${pkg}: apt-get reported success but no .deb appeared in ${dir}`);
    return join(dir, alt);
  }
  return file;
}

/**
 * Copies files into the image; for ELF programs also the shared libraries they need, transitively, found in
 * `libRoots` (extracted library packages).
 */
function addPrograms(cpio: CpioWriter, files: Array<{ root: string; path: string }>, libRoots: string[]): void {
  const libDirs = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu'];
  const needed = new Set<string>(['ld-linux-x86-64.so.2']);
  const isElf = (b: Uint8Array): boolean => b.length > 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
  for (const f of files) {
    if (cpio.has(f.path)) continue;
    const data = readFileSync(join(f.root, f.path));
    cpio.add({ type: 'file', path: f.path, data, mode: f.path.startsWith('etc/') ? 0o644 : 0o755 });
    if (isElf(data)) for (const l of neededLibraries(data)) needed.add(l);
  }
  const queue = [...needed];
  while (queue.length) {
    const lib = queue.shift()!;
    let found: string | null = null;
    for (const r of libRoots) for (const d of libDirs) if (!found && existsSync(join(r, d, lib))) found = join(r, d, lib);
    if (!found) throw new Error(`guest programs need ${lib}, which none of the library packages provides`);
    const data = readFileSync(realpathSync(found));
    const target = `lib/x86_64-linux-gnu/${lib}`;
    if (!cpio.has(target)) cpio.add({ type: 'file', path: target, data, mode: 0o755 });
    for (const l of neededLibraries(data)) if (!needed.has(l)) { needed.add(l); queue.push(l); }
  }
  if (!cpio.has('lib64/ld-linux-x86-64.so.2')) cpio.add({ type: 'symlink', path: 'lib64/ld-linux-x86-64.so.2', target: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' });
}

async function gzipToFile(data: Buffer, file: string, update: (f: number) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const gz = createGzip({ level: 9 });
    const out = createWriteStream(file);
    gz.pipe(out);
    out.on('finish', resolve);
    out.on('error', reject);
    gz.on('error', reject);
    const CHUNK = 1 << 20;
    let off = 0;
    const pump = (): void => {
      while (off < data.length) {
        const end = Math.min(off + CHUNK, data.length);
        const ok = gz.write(data.subarray(off, end));
        off = end;
        update(off / data.length);
        if (!ok) { gz.once('drain', pump); return; }
      }
      gz.end();
    };
    pump();
  });
}

/** Run a command, resolve with stdout; reject with `what: <output>` on failure. */
export function run(cmd: string, args: string[], what: string, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', (e) => reject(new Error(`${what ? what + ': ' : ''}cannot run ${cmd}: ${e.message}`)));
    p.on('close', (code) => {
      const o = Buffer.concat(out).toString('utf8');
      if (code === 0) resolve(o);
      else reject(new Error(`${what ? what + ': ' : ''}${(Buffer.concat(err).toString('utf8') + o).trim() || `${cmd} exited with ${code}`}`));
    });
  });
}
