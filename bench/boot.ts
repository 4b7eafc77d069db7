/**
 * Boot benchmark: time from start to the guest's init banner (boot-to-init) and to power-off, for hyperts'
 * emulated processor and for QEMU TCG on the same kernel, initramfs and command line, measured in one run.
 * Prints both and their ratio. QEMU is optional (skipped with a note when qemu-system-x86_64 is missing).
 *
 *   npm run bench:boot [-- --runs N] [--no-qemu] [--clock realtime|warp]
 *   npm run bench:boot -- --compare-with DIR [--runs N]
 *
 * --compare-with DIR boots the same guest with another build of hyperts (a checkout at DIR, built with
 * `npx tsc -p .`, e.g. a temporary `git worktree` of an older commit) and with this one, alternating, each
 * boot in a fresh process (bench/boot-child.ts), and prints their CPU times side by side (no QEMU).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultImagePaths } from '../src/image/builder.js';
import { INIT_BANNER } from '../src/image/init-script.js';
import { QEMU_CPU } from './qemu-guest.js';
import type { ClockMode } from '../src/platform/clock.js';
import { formatWorkerMemory, type WorkerMemory } from './worker-memory.js';
import { WORKER_NODE_FLAGS } from '../src/vmms/worker-flags.js';

/**
 * Wall times in ms; for hyperts also process CPU time (user+sys), steadier on a shared machine, and the memory
 * its process holds at power-off. hyperts boots in a child process started like a VM worker (same Node flags,
 * nothing else loaded), so its memory is a worker's.
 */
interface TranslatorStats {
  engine: string; threshold: number; translatedInsns: number | null;
  wasm: { modules: number; blocks: number; bytes: number; compileMs: number; failed: number } | null;
}
interface BootTimes { toInit: number; toOff: number; insns?: number; cpuToInit?: number; cpuToOff?: number; memory?: WorkerMemory; translator?: TranslatorStats | null }


const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 1;
const noQemu = args.includes('--no-qemu');
const clockMode = (args.includes('--clock') ? args[args.indexOf('--clock') + 1] : 'icount') as ClockMode;
const compareWith = args.includes('--compare-with') ? args[args.indexOf('--compare-with') + 1] : null;
/** This checkout (dist/bench/boot.js -> the repository root). */
const ownRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The same user-visible work on both: boot, run init, power off.
const APPEND = 'hyperts.run=true';

function bootQemu(kernel: string, initrd: string, cmdline: string): Promise<BootTimes> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let toInit = NaN;
    let out = '';
    const p = spawn('qemu-system-x86_64', ['-M', 'pc', '-accel', 'tcg', '-cpu', QEMU_CPU, '-m', '512', '-nographic',
      '-no-reboot', '-nodefaults', '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd, '-append', cmdline]);
    p.stdout.on('data', (d: Buffer) => {
      if (!Number.isNaN(toInit)) return;
      out += d.toString('latin1');
      if (out.includes(INIT_BANNER)) toInit = performance.now() - t0;
    });
    p.on('error', reject);
    p.on('exit', () => resolve({ toInit, toOff: performance.now() - t0 }));
  });
}

/** One boot of the build at `root` in a fresh process (bench/boot-child.ts of this build drives it), with the worker's Node flags. */
function bootChild(root: string, kernel: string, initrd: string, cmdline: string): BootTimes {
  const child = join(ownRoot, 'dist/bench/boot-child.js');
  const r = spawnSync(process.execPath, [...WORKER_NODE_FLAGS, child, '--build', root, '--kernel', kernel, '--initrd', initrd, '--cmdline', cmdline, '--clock', clockMode],
    { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`boot with the build at ${root} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as BootTimes;
}

/** Two builds side by side: boots alternate (A, B, A, B...) so both see the same machine load. */
function compareBuilds(other: string, kernel: string, initrd: string, cmdline: string): void {
  const root = resolve(other);
  if (!existsSync(join(root, 'dist/src/platform/partition.js'))) {
    console.error(`bench:boot: ${root} has no build (dist/src/platform/partition.js); run 'npx tsc -p .' there first`);
    process.exit(1);
  }
  const a: BootTimes[] = [], b: BootTimes[] = [];
  for (let i = 0; i < runs; i++) {
    a.push(bootChild(root, kernel, initrd, cmdline));
    b.push(bootChild(ownRoot, kernel, initrd, cmdline));
    const row = (x: BootTimes): string => `CPU ${fmt(x.cpuToInit!)} to init, ${fmt(x.cpuToOff!)} to power-off (wall ${fmt(x.toOff)}, ${((x.insns ?? 0) / 1e6).toFixed(0)} M insns)` +
      (x.memory ? `, beyond guest RAM ${(x.memory.overhead / 1048576).toFixed(1)} MiB (RSS ${(x.memory.rss / 1048576).toFixed(1)})` : '');
    console.log(`run ${i + 1}: other ${row(a[i])}\n       this  ${row(b[i])}`);
  }
  const best = (xs: BootTimes[], k: 'cpuToInit' | 'cpuToOff'): number => Math.min(...xs.map((x) => x[k] ?? NaN));
  const median = (xs: BootTimes[], k: 'cpuToInit' | 'cpuToOff'): number => {
    const v = xs.map((x) => x[k] ?? NaN).sort((p, q) => p - q);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  console.log(`\nother build (${root}) vs this build (${ownRoot}), CPU time (user+sys), ${runs} run(s) each:`);
  for (const k of ['cpuToInit', 'cpuToOff'] as const) {
    const oa = best(a, k), ob = best(b, k), ma = median(a, k), mb = median(b, k);
    console.log(`  ${k === 'cpuToInit' ? 'boot-to-init' : 'to power-off'}: best ${fmt(oa)} vs ${fmt(ob)} (this/other ${(ob / oa).toFixed(3)})   median ${fmt(ma)} vs ${fmt(mb)} (${(mb / ma).toFixed(3)})`);
  }
  const overhead = (xs: BootTimes[]): string => xs.map((x) => (x.memory ? `${(x.memory.overhead / 1048576).toFixed(1)}` : 'n/a')).join(', ');
  console.log(`  beyond guest RAM at power-off (MiB): other ${overhead(a)}   this ${overhead(b)}`);
}

const fmt = (ms: number): string => (Number.isNaN(ms) ? '   n/a' : `${(ms / 1000).toFixed(2)} s`);

async function main(): Promise<void> {
  const img = defaultImagePaths();
  if (!existsSync(img.kernel) || !existsSync(img.initrd)) {
    console.error("bench:boot: the default guest image is not built; run 'npm run setup' first");
    process.exit(1);
  }
  const cmdline = `${img.cmdline} ${APPEND}`;
  if (compareWith !== null) {
    console.log(`kernel ${img.kernel}\ninitrd ${img.initrd}\ncmdline ${cmdline}\nhyperts clock: ${clockMode}; runs: ${runs}\n`);
    compareBuilds(compareWith, img.kernel, img.initrd, cmdline);
    return;
  }
  const haveQemu = !noQemu && spawnSync('qemu-system-x86_64', ['--version']).status === 0;
  console.log(`kernel ${img.kernel}\ninitrd ${img.initrd}\ncmdline ${cmdline}\nhyperts clock: ${clockMode}; runs: ${runs}\n`);
  const best = (xs: BootTimes[], k: 'toInit' | 'toOff' | 'cpuToInit' | 'cpuToOff'): number => Math.min(...xs.map((x) => x[k] ?? NaN));
  const h: BootTimes[] = [], q: BootTimes[] = [];
  for (let i = 0; i < runs; i++) {
    if (haveQemu) q.push(await bootQemu(img.kernel, img.initrd, cmdline));
    h.push(bootChild(ownRoot, img.kernel, img.initrd, cmdline));
  }
  const hi = best(h, 'toInit'), ho = best(h, 'toOff');
  const insns = h[0].insns ?? 0;
  console.log(`hyperts emulated : boot-to-init ${fmt(hi)}   to power-off ${fmt(ho)}   ${(insns / 1e6).toFixed(0)} M instructions, ${(insns / (ho / 1000) / 1e6).toFixed(1)} MIPS`);
  const tr = h[0].translator;
  if (tr) {
    const ws = tr.wasm;
    const w = ws && ws.modules > 0 ? `; wasm: ${ws.blocks} blocks in ${ws.modules} modules, ${(ws.bytes / 1048576).toFixed(1)} MiB, ${(ws.compileMs / 1000).toFixed(2)} s to build+compile, ${ws.failed} failed` : '';
    const share = tr.translatedInsns !== null && insns > 0 ? `${(tr.translatedInsns / insns * 100).toFixed(1)}% of instructions run translated` : 'share translated not reported';
    console.log(`translator       : ${tr.engine}, threshold ${tr.threshold}; ${share}${w}`);
  }
  console.log(`hyperts CPU time : boot-to-init ${fmt(best(h, 'cpuToInit'))}   to power-off ${fmt(best(h, 'cpuToOff'))}   (user+sys of the boot's process, incl. V8's compiler threads)`);
  if (haveQemu) {
    const qi = best(q, 'toInit'), qo = best(q, 'toOff');
    console.log(`QEMU TCG         : boot-to-init ${fmt(qi)}   to power-off ${fmt(qo)}`);
    console.log(`ratio hyperts/QEMU: boot-to-init ${(hi / qi).toFixed(2)}x   to power-off ${(ho / qo).toFixed(2)}x   (goal: within 3x)`);
  } else {
    console.log('QEMU TCG         : not measured (qemu-system-x86_64 not installed; apt-get install qemu-system-x86)');
  }
  // The last boot's process: earlier runs' freed memory may still be counted, so one run is the clean measure.
  for (const line of formatWorkerMemory(h[h.length - 1].memory!)) console.log(line);
}

main().catch((e) => { console.error(e); process.exit(1); });
