/** `hyperts image build [--force] [--rootfs]` and `hyperts image path [--rootfs]`: the guest images in the cache. */
import { existsSync } from 'node:fs';
import { buildDefaultImage, defaultImagePaths, imageCacheDir, imagePaths } from '../image/builder.js';
import { buildRootfs, readRootfsManifest, rootfsPaths, ROOTFS_ROOT_OPTION } from '../image/rootfs.js';

const usage = `usage: hyperts image build [--force] [--generic] [--rootfs [--mirror URL]]
       hyperts image path [--generic] [--rootfs]

build  Downloads Debian's cloud kernel, busybox-static and hyperv-daemons with apt-get and writes the default
       guest image (kernel + initramfs) to $XDG_CACHE_HOME/hyperts/images/default (default ~/.cache/...).
  --force    rebuild even when the cached image matches its inputs
  --generic  the same image with Debian's generic kernel instead (in .../images/generic): it has drivers
             for emulated devices the cloud kernel lacks, e.g. tulip for the legacy network adapter
  --rootfs   also build the Debian root disk (debootstrap bookworm minbase, busybox init, hyperv-daemons,
             root autologin on ttyS0) as a dynamic VHDX in .../images/rootfs; needs root and the Debian mirror
             of the host's apt sources (or --mirror URL). Boot it with the default kernel and initramfs and
             root=LABEL=root added to the kernel command line, on a copy of the disk.
path   Prints where the cached images are (fails if not built yet); with --rootfs just the root disk's path.
`;

export default async function (args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    process.stdout.write(usage);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'build' && sub !== 'path') {
    process.stderr.write(`hyperts image: unknown subcommand '${sub}'\n${usage}`);
    return 2;
  }
  let force = false, rootfs = false, generic = false;
  let mirror: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (sub === 'build' && (a === '--force' || a === '-f')) force = true;
    else if (a === '--rootfs') rootfs = true;
    else if (a === '--generic') generic = true;
    else if (sub === 'build' && a === '--mirror' && i + 1 < rest.length && /^https?:\/\//.test(rest[i + 1])) mirror = rest[++i];
    else if (sub === 'build' && a === '--mirror') { process.stderr.write(`hyperts image build: --mirror needs an http(s) URL, e.g. --mirror http://deb.debian.org/debian\n`); return 2; }
    else { process.stderr.write(`hyperts image ${sub}: unknown option '${a}'\n${usage}`); return 2; }
  }
  if (mirror && !rootfs) { process.stderr.write('hyperts image build: --mirror applies to --rootfs only\n'); return 2; }
  if (generic && rootfs) { process.stderr.write('hyperts image: --generic and --rootfs are separate images; give one of them\n'); return 2; }
  if (sub === 'path') return printPaths(rootfs, generic);
  try {
    const r = await buildDefaultImage({ force, flavor: generic ? 'generic' : 'cloud' });
    process.stdout.write(`kernel:  ${r.kernel}\ninitrd:  ${r.initrd}\ncmdline: ${r.cmdline}\n`);
    if (rootfs) {
      const f = await buildRootfs({ force, mirror });
      process.stdout.write(`rootfs:  ${f.disk}\nrootfs cmdline: ${f.cmdline}\n`);
    }
    return 0;
  } catch (e) {
    process.stderr.write(`hyperts image build: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function printPaths(rootfs: boolean, generic = false): number {
  const d = generic ? imagePaths('generic') : defaultImagePaths();
  const missing = (what: string, flag: string): number => {
    process.stderr.write(`hyperts image path: the ${what} is not built yet in ${imageCacheDir()}; run: hyperts image build${flag}\n`);
    return 1;
  };
  if (rootfs) {
    if (!readRootfsManifest()) return missing('root disk', ' --rootfs');
    // Just the path, for $(hyperts image path --rootfs); the boot option goes to a terminal only.
    process.stdout.write(`${rootfsPaths().disk}\n`);
    if (process.stderr.isTTY) process.stderr.write(`boot a copy with the default image and --append ${ROOTFS_ROOT_OPTION}\n`);
    return 0;
  }
  if (!d.kernel || !existsAll(d.kernel, d.initrd)) return generic ? missing('generic-kernel image', ' --generic') : missing('default image', '');
  process.stdout.write(`kernel:  ${d.kernel}\ninitrd:  ${d.initrd}\ncmdline: ${d.cmdline}\n`);
  return 0;
}

function existsAll(...p: string[]): boolean {
  return p.every((x) => existsSync(x));
}
