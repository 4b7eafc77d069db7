/**
 * Disk benchmark, one run: the same guest workload (sequential O_DIRECT write and read with busybox dd, 1 MiB
 * requests; 4 KiB O_DIRECT random reads at queue depth 1 with ioping) on
 *   - hyperts, one Debian guest with a synthetic SCSI disk (storvsp, hv_storvsc) and an emulated IDE disk
 *     (PIIX4, ata_piix), each a raw file of the same size;
 *   - QEMU TCG (same kernel and initramfs), an IDE disk and a virtio-blk disk, each a fresh raw file.
 * Prints MiB/s and IOPS with the ratios the project aims at: synthetic >= 2x emulated IDE, and synthetic
 * within 2x of QEMU TCG's virtio-blk. Guest times come from the guest's own clock (/proc/uptime; hyperts runs
 * its realtime clock mode, so guest seconds are host seconds). The host's dd on the same file is printed for scale.
 *
 *   npm run bench:disk [-- --size 256M] [--no-qemu] [--no-ide] [--verbose]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestSession } from '../test/boot/guest-session.js';
import { defaultImagePaths } from '../src/image/builder.js';
import type { DriveConfig } from '../src/platform/hardware.js';
import { QemuGuest, qemuAvailable } from './qemu-guest.js';
import { virtioInitrd } from './virtio-initrd.js';

const args = process.argv.slice(2);
const opt = (k: string): string | undefined => (args.includes(k) ? args[args.indexOf(k) + 1] : undefined);
const sizeMiB = Number(/^(\d+)M$/i.exec(opt('--size') ?? '256M')?.[1]);
if (!sizeMiB || sizeMiB < 32) { console.error('bench:disk: --size takes a size in MiB of at least 32M, e.g. 256M'); process.exit(2); }
const withIde = !args.includes('--no-ide');
const withQemu = !args.includes('--no-qemu');
/** --verbose: the guests' consoles on stderr. */
const verbose = args.includes('--verbose');

interface Result { write: number; read: number; iops: number; avgUs: number; requests: number }
type Sh = (cmd: string) => Promise<string>;

/** The guest workload on /dev/`dev`: MiB/s of the whole-disk sequential write and read, and random-read IOPS. */
async function workload(sh: Sh, dev: string): Promise<Result> {
  /** Guest seconds a command took (uptime has 10 ms resolution; every step runs for seconds). */
  const timed = async (cmd: string): Promise<number> => {
    const out = await sh(`a=$(cut -d' ' -f1 /proc/uptime); ${cmd} >/dev/null 2>&1; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b"`);
    const [a, b] = out.split('\n').pop()!.split(' ').map(Number);
    return b - a;
  };
  const write = sizeMiB / await timed(`dd if=/dev/zero of=/dev/${dev} bs=1M count=${sizeMiB} oflag=direct`);
  const read = sizeMiB / await timed(`dd if=/dev/${dev} of=/dev/null bs=1M count=${sizeMiB} iflag=direct`);
  // ioping -R: 4 KiB O_DIRECT reads at random offsets over the whole disk, one at a time, for 3 s; -B prints raw
  // statistics: requests, time (ns), IOPS, bytes/s, min, avg, max, mdev (ns).
  const io = (await sh(`ioping -R -D -B -S ${sizeMiB}m /dev/${dev}`)).split('\n').pop()!.trim().split(/\s+/).map(Number);
  return { write, read, iops: io[2], avgUs: io[5] / 1000, requests: io[0] };
}

function rawFile(dir: string, name: string): string {
  const p = join(dir, name);
  writeFileSync(p, Buffer.alloc(0));
  spawnSync('truncate', ['-s', `${sizeMiB}M`, p]);
  return p;
}

/** Host reference: the same dd with O_DIRECT on the same file (page cache bypassed as in the guest). */
function hostDd(ddArgs: string[]): number {
  const t0 = performance.now();
  const r = spawnSync('dd', ddArgs, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`host dd failed: ${r.stderr}`);
  return sizeMiB / ((performance.now() - t0) / 1000);
}

async function runHyperts(dir: string): Promise<{ scsi: Result; ide: Result | string }> {
  const scsiImg = rawFile(dir, 'scsi.img');
  const ideImg = rawFile(dir, 'ide.img');
  const drives: DriveConfig[] = [{ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: scsiImg }];
  if (withIde) drives.push({ controllerType: 'ide', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: ideImg });
  const g = await GuestSession.boot({ processor: 'emulated', clockMode: 'realtime', hardware: { scsiControllers: 1, networkAdapters: [], drives } });
  let shown = 0;
  const echo = verbose ? setInterval(() => { process.stderr.write(g.output.slice(shown)); shown = g.output.length; }, 500) : null;
  try {
    await g.waitForShell();
    const sh: Sh = async (cmd) => {
      const r = await g.run(cmd, 60 * 60_000);
      if (r.status !== 0) throw new Error(`hyperts guest: '${cmd}' failed:\n${r.out}`);
      return r.out.trim();
    };
    // Kernel messages on the console would interleave with the numbers.
    await sh('dmesg -n 1');
    // Which sd device each driver gave: the device path runs through the VMBus device or the ATA port.
    const devs = await sh('for i in $(seq 1 100); do [ $(ls -d /sys/block/sd* 2>/dev/null | wc -l) -ge ' + drives.length + ' ] && break; sleep 0.2; done; ' +
      'for d in /sys/block/sd*; do echo "${d##*/} $(readlink -f $d)"; done');
    const find = (re: RegExp): string | undefined => devs.split('\n').map((l) => l.trim().split(' ')).find(([, p]) => p && re.test(p))?.[0];
    const scsiDev = find(/\/VMBUS:|vmbus/i);
    if (!scsiDev) throw new Error(`the synthetic SCSI disk is not in the guest:\n${devs}`);
    const scsi = await workload(sh, scsiDev);
    let ide: Result | string = 'not measured (--no-ide)';
    if (withIde) {
      const ideDev = find(/\/ata\d+\//);
      ide = ideDev ? await workload(sh, ideDev) : `not measured: no ata_piix disk in the guest (${devs.replace(/\n/g, '; ')})`;
    }
    return { scsi, ide };
  } finally {
    if (echo) clearInterval(echo);
    g.vm.turnOff('benchmark done');
    await g.exited;
  }
}

async function runQemu(dir: string): Promise<{ ide: Result; virtio: Result } | string> {
  if (!withQemu) return 'not measured (--no-qemu)';
  if (!qemuAvailable()) return 'not measured: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  const img = defaultImagePaths();
  const initrd = await virtioInitrd(img, dir);
  if (typeof initrd !== 'object') return `not measured: ${initrd}`;
  const ide = rawFile(dir, 'qemu-ide.img');
  const virtio = rawFile(dir, 'qemu-virtio.img');
  const q = QemuGuest.boot(img.kernel, initrd.path, img.cmdline, [
    '-drive', `file=${ide},format=raw,if=ide,index=0,media=disk`,
    '-drive', `file=${virtio},format=raw,if=virtio`,
  ]);
  try {
    await q.waitForShell();
    const sh: Sh = async (cmd) => {
      const r = await q.run(cmd);
      if (r.status !== 0) throw new Error(`QEMU guest: '${cmd}' failed:\n${r.out}`);
      return r.out.trim();
    };
    await sh('dmesg -n 1');
    await sh(initrd.load);
    await sh('for i in $(seq 1 100); do [ -e /sys/block/vda ] && [ -e /sys/block/sda ] && break; sleep 0.2; done; ls /sys/block/vda /sys/block/sda >/dev/null');
    return { ide: await workload(sh, 'sda'), virtio: await workload(sh, 'vda') };
  } finally {
    await q.close();
  }
}

const mib = (x: number): string => `${x.toFixed(1).padStart(7)} MiB/s`;
const iops = (r: Result): string => `${r.iops.toFixed(0).padStart(6)} IOPS (${r.avgUs.toFixed(0)} us each, ${r.requests} requests)`;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;

async function main(): Promise<void> {
  if (!GuestSession.imageAvailable()) { console.error("bench:disk: the default guest image is not built; run 'npm run setup' first"); process.exit(1); }
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-bench-disk-'));
  try {
    console.log(`disk ${sizeMiB} MiB raw files; sequential ${sizeMiB} MiB O_DIRECT in 1 MiB requests; 4 KiB O_DIRECT random reads, queue depth 1 (ioping -R)`);
    const h = await runHyperts(dir);
    const hostW = hostDd(['if=/dev/zero', `of=${join(dir, 'scsi.img')}`, 'bs=1M', `count=${sizeMiB}`, 'oflag=direct', 'conv=notrunc']);
    const hostR = hostDd([`if=${join(dir, 'scsi.img')}`, 'of=/dev/null', 'bs=1M', `count=${sizeMiB}`, 'iflag=direct']);
    // The reference is optional: a failure there must not cost the hyperts numbers measured already.
    const q = await runQemu(dir).catch((e: Error) => `not measured: ${e.message}`);
    const line = (name: string, r: Result): void => console.log(`${name.padEnd(34)} write ${mib(r.write)}   read ${mib(r.read)}   random read ${iops(r)}`);
    console.log('\nhyperts, emulated processor:');
    line('  synthetic SCSI (storvsp)', h.scsi);
    if (typeof h.ide === 'string') console.log(`  emulated IDE (PIIX4): ${h.ide}`);
    else line('  emulated IDE (PIIX4, ata_piix)', h.ide);
    console.log('\nQEMU TCG, same kernel and initramfs:');
    if (typeof q === 'string') console.log(`  ${q}`);
    else { line('  IDE (PIIX3, ata_piix)', q.ide); line('  virtio-blk', q.virtio); }
    console.log(`\nhost dd O_DIRECT on the same file: write ${mib(hostW)}   read ${mib(hostR)}`);
    console.log('\nratios:');
    if (typeof h.ide !== 'string') {
      console.log(`  synthetic / emulated IDE (goal >= 2x):        write ${ratio(h.scsi.write, h.ide.write)}   read ${ratio(h.scsi.read, h.ide.read)}   random read ${ratio(h.scsi.iops, h.ide.iops)}`);
    }
    if (typeof q !== 'string') {
      console.log(`  synthetic / QEMU virtio-blk (goal >= 0.5x):   write ${ratio(h.scsi.write, q.virtio.write)}   read ${ratio(h.scsi.read, q.virtio.read)}   random read ${ratio(h.scsi.iops, q.virtio.iops)}`);
      if (typeof h.ide !== 'string') console.log(`  hyperts IDE / QEMU IDE:                      write ${ratio(h.ide.write, q.ide.write)}   read ${ratio(h.ide.read, q.ide.read)}   random read ${ratio(h.ide.iops, q.ide.iops)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
