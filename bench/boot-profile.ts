/**
 * Where a boot spends host time: boots the default image (or the root disk with --rootfs, or the generic
 * image unenlightened with --generic) on the emulated processor and prints each console line with the host
 * milliseconds since start, then the time to the shell. For finding slow phases of the boot tests.
 *
 *   node dist/bench/boot-profile.js [--rootfs] [--generic] [--memory MiB] [--append "opts"] [--run "cmd"]...
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Partition } from '../src/platform/partition.js';
import { defaultImagePaths, imagePaths } from '../src/image/builder.js';
import { INIT_BANNER } from '../src/image/init-script.js';
import { rootfsPaths, ROOTFS_ROOT_OPTION } from '../src/image/rootfs.js';
import { ROOTFS_HOSTNAME } from '../src/image/rootfs-config.js';
import { diskOpener } from '../src/platform/assemble-storage.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const rootfs = args.includes('--rootfs'), generic = args.includes('--generic');
const memoryMiB = Number(opt('--memory') ?? 512);
const runs = args.flatMap((a, i) => (a === '--run' ? [args[i + 1]] : []));
const img = generic ? imagePaths('generic') : defaultImagePaths();
const dir = mkdtempSync(join(tmpdir(), 'hyperts-boot-profile-'));
let out = '';
let line = '';
const t0 = performance.now();
const stamp = (): string => ((performance.now() - t0) / 1000).toFixed(1).padStart(7);
const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
const decoder = new TextDecoder();
const cmdline = `${img.cmdline} ${rootfs ? ROOTFS_ROOT_OPTION : ''} ${opt('--append') ?? ''}`.trim();
let hardware;
if (rootfs) {
  const disk = join(dir, 'root.vhdx');
  copyFileSync(rootfsPaths().disk, disk);
  hardware = { scsiControllers: 1, networkAdapters: [], drives: [{ controllerType: 'scsi' as const, controllerNumber: 0, controllerLocation: 0, kind: 'disk' as const, path: disk }] };
}
const vm = await Partition.create({
  processor: 'emulated', memoryBytes: memoryMiB * 1024 * 1024, cpus: 1, enlightened: !generic,
  kernel: img.kernel, initrd: img.initrd, cmdline, clockMode: 'icount', hardware,
  openDisk: rootfs ? diskOpener('boot profile') : undefined,
  onConsoleOutput: (b) => {
    const s = decoder.decode(b, { stream: true });
    out += s;
    for (const ch of s) {
      if (ch === '\n') { process.stdout.write(`${stamp()} ${line}\n`); line = ''; } else if (ch !== '\r') line += ch;
    }
    for (const w of [...waiters]) if (w.re.test(out)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  },
});
const exited = vm.start();
const waitFor = (re: RegExp): Promise<void> => new Promise((resolve) => { waiters.push({ re, resolve }); if (re.test(out)) resolve(); });
await waitFor(rootfs ? new RegExp(`root@${ROOTFS_HOSTNAME}:[^#\\n]*# `) : new RegExp(INIT_BANNER));
process.stdout.write(`${stamp()} == init/login reached\n`);
let n = 0;
for (const cmd of ['true', ...runs]) {
  const k = ++n;
  const t = performance.now();
  vm.consoleInput(new TextEncoder().encode(`${cmd}; echo "__E""${k}__"\n`));
  await waitFor(new RegExp(`__E${k}__`));
  process.stdout.write(`${stamp()} == '${cmd}' took ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}
vm.turnOff('profile end');
await exited;
rmSync(dir, { recursive: true, force: true });
