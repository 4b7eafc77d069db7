/**
 * Disk benchmark: sequential O_DIRECT read and write (dd, 1 MiB blocks) and 4 KiB random reads, measured
 * inside the Debian guest on a synthetic SCSI disk (storvsp) backed by a raw image file. Guest times come
 * from the guest's own clock (realtime clock mode, so guest seconds are host seconds). Prints MB/s and IOPS,
 * and the same sequential transfers done by the host on the same file as the reference ratio. The emulated
 * IDE controller will print the same lines for comparison.
 *
 *   npm run bench:disk [-- --size 256M]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestSession } from '../test/boot/guest-session.js';

const args = process.argv.slice(2);
const MiB = 1 << 20;
const sizeArg = args.includes('--size') ? args[args.indexOf('--size') + 1] : '256M';
const sizeMiB = Number(/^(\d+)M$/i.exec(sizeArg ?? '')?.[1]);
if (!sizeMiB || sizeMiB < 32) { console.error('bench:disk: --size takes a size in MiB of at least 32M, e.g. 256M'); process.exit(2); }
const SEQ_MIB = Math.min(128, sizeMiB / 2);

/** Host reference: the same dd with O_DIRECT on the same file (page cache bypassed as in the guest). */
function hostDd(ddArgs: string[]): number {
  const t0 = performance.now();
  const r = spawnSync('dd', ddArgs, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`host dd failed: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  if (!GuestSession.imageAvailable()) { console.error("bench:disk: the default guest image is not built; run 'npm run setup' first"); process.exit(1); }
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-bench-disk-'));
  const img = join(dir, 'bench.img');
  writeFileSync(img, Buffer.alloc(0));
  spawnSync('truncate', ['-s', `${sizeMiB}M`, img]);
  const g = await GuestSession.boot({
    clockMode: 'realtime',
    hardware: { scsiControllers: 1, networkAdapters: [], drives: [{ controllerType: 'scsi', controllerNumber: 0, controllerLocation: 0, kind: 'disk', path: img }] },
  });
  try {
    await g.waitForShell();
    const sh = async (cmd: string): Promise<string> => {
      const r = await g.run(cmd, 60 * 60_000);
      if (r.status !== 0) throw new Error(`guest: '${cmd}' failed:\n${r.out}`);
      return r.out.trim();
    };
    const dev = await sh('ls /sys/bus/scsi/devices/*:0:0:0/block');
    /** Guest seconds a command took (uptime has 10 ms resolution; every step runs for seconds). */
    const timed = async (cmd: string): Promise<number> => {
      const out = await sh(`a=$(cut -d' ' -f1 /proc/uptime); ${cmd} >/dev/null 2>&1; b=$(cut -d' ' -f1 /proc/uptime); echo "$a $b"`);
      const [a, b] = out.split('\n').pop()!.split(' ').map(Number);
      return b - a;
    };
    const write = await timed(`dd if=/dev/zero of=/dev/${dev} bs=1M count=${SEQ_MIB} oflag=direct`);
    const read = await timed(`dd if=/dev/${dev} of=/dev/null bs=1M count=${SEQ_MIB} iflag=direct`);
    // Random 4 KiB O_DIRECT reads, one at a time, for 3 s (ioping's own timing of each request).
    const io = (await sh(`ioping -R -D -B -S ${Math.floor(sizeMiB / 2)}m /dev/${dev}`)).split('\n').pop()!.trim().split(/\s+/).map(Number);
    const [count, , iops, , , avgNs] = io;
    const hw = hostDd([`if=/dev/zero`, `of=${img}`, 'bs=1M', `count=${SEQ_MIB}`, 'oflag=direct', 'conv=notrunc']);
    const hr = hostDd([`if=${img}`, 'of=/dev/null', 'bs=1M', `count=${SEQ_MIB}`, 'iflag=direct']);
    const mbs = (s: number): string => `${(SEQ_MIB / s).toFixed(1)} MiB/s`;
    console.log(`synthetic SCSI (storvsp), raw image ${sizeMiB} MiB, ${SEQ_MIB} MiB sequential, guest clock`);
    console.log(`  sequential write O_DIRECT 1M: ${mbs(write)}   host same file: ${mbs(hw)}   ratio ${(hw / write).toFixed(3)}`);
    console.log(`  sequential read  O_DIRECT 1M: ${mbs(read)}   host same file: ${mbs(hr)}   ratio ${(hr / read).toFixed(3)}`);
    console.log(`  4 KiB random read O_DIRECT, queue depth 1 (ioping -R): ${iops} IOPS, ${(avgNs / 1000).toFixed(0)} us average (${count} requests)`);
  } finally {
    g.vm.turnOff('benchmark done');
    await g.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
