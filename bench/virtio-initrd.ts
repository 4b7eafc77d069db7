/**
 * The default initramfs plus the cloud kernel's virtio modules, for the QEMU reference guests of bench:disk and bench:net.
 * The default image carries only the drivers a hyperts VM needs (hv_*, ata_piix); the same kernel package has
 * virtio_blk, virtio_net and virtio_pci as modules, so they are taken from it and appended as a second cpio archive (the
 * kernel unpacks concatenated archives in turn), leaving the cached image untouched. The guest loads them
 * with the returned command.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageCacheDir, type ImagePaths } from '../src/image/builder.js';

/** Paths under the kernel's module tree, in dependency order (insmod does not resolve dependencies). */
const VIRTIO_PCI = ['drivers/virtio/virtio_ring.ko', 'drivers/virtio/virtio.ko', 'drivers/virtio/virtio_pci_modern_dev.ko',
  'drivers/virtio/virtio_pci_legacy_dev.ko', 'drivers/virtio/virtio_pci.ko'];
export const VIRTIO_BLK = [...VIRTIO_PCI, 'drivers/block/virtio_blk.ko'];
export const VIRTIO_NET = [...VIRTIO_PCI, 'net/core/failover.ko', 'drivers/net/net_failover.ko', 'drivers/net/virtio_net.ko'];

/** The initrd path and the guest command that loads the modules, or why it cannot be made. */
export async function virtioInitrd(img: ImagePaths, dir: string, modules: readonly string[] = VIRTIO_BLK): Promise<{ path: string; load: string } | string> {
  const manifestPath = join(img.initrd, '..', 'manifest.json');
  let m: { kernelVersion: string; packages: Record<string, string> };
  try { m = JSON.parse(readFileSync(manifestPath, 'utf8')); } catch { return `the image has no readable ${manifestPath} (rebuild it: hyperts image build)`; }
  const deb = join(imageCacheDir(), 'debs', m.packages[`linux-image-${m.kernelVersion}`] ?? '');
  if (!existsSync(deb)) return `the kernel package ${deb} is not in the image cache (rebuild the image: hyperts image build)`;
  const root = join(dir, 'virtio-root');
  mkdirSync(root, { recursive: true });
  const x = spawnSync('dpkg-deb', ['-x', deb, root]);
  if (x.status !== 0) return `dpkg-deb -x ${deb} failed: ${x.stderr}`;
  const rel = modules.map((f) => `lib/modules/${m.kernelVersion}/kernel/${f}`);
  const missing = rel.filter((f) => !existsSync(join(root, f)));
  if (missing.length) return `the kernel ${m.kernelVersion} has no ${missing.join(', ')}`;
  // Directories first, as cpio wants them before their files.
  const entries = [...new Set(rel.flatMap((f) => f.split('/').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('/'))))].concat(rel);
  const c = spawnSync('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: root, input: entries.join('\n') + '\n', maxBuffer: 1 << 28 });
  if (c.status !== 0) return `cpio failed (is cpio installed?): ${c.stderr}`;
  const path = join(dir, 'initrd-virtio.img');
  const base = readFileSync(img.initrd);
  // The kernel skips zero padding between archives; a new one starts on a 4-byte boundary.
  writeFileSync(path, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), c.stdout]));
  return { path, load: rel.map((f) => `insmod /${f}`).join(' && ') };
}
