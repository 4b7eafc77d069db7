/**
 * Boot benchmark: time from start to the guest's init banner (boot-to-init) and to power-off, for hyperts'
 * emulated processor and for QEMU TCG on the same kernel, initramfs and command line, measured in one run.
 * Prints both and their ratio. QEMU is optional (skipped with a note when qemu-system-x86_64 is missing).
 *
 *   npm run bench:boot [-- --runs N] [--no-qemu] [--clock realtime|warp]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Partition } from '../src/platform/partition.js';
import { defaultImagePaths } from '../src/image/builder.js';
import { INIT_BANNER } from '../src/image/init-script.js';
import { QEMU_CPU } from './qemu-guest.js';
import type { ClockMode } from '../src/platform/clock.js';

/** Wall times in ms; for hyperts (run in this process) also process CPU time (user+sys), steadier on a shared machine. */
interface BootTimes { toInit: number; toOff: number; insns?: number; cpuToInit?: number; cpuToOff?: number }

const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 1;
const noQemu = args.includes('--no-qemu');
const clockMode = (args.includes('--clock') ? args[args.indexOf('--clock') + 1] : 'icount') as ClockMode;
// The same user-visible work on both: boot, run init, power off.
const APPEND = 'hyperts.run=true';

async function bootHyperts(kernel: string, initrd: string, cmdline: string): Promise<BootTimes> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let toInit = NaN, cpuToInit = NaN;
  let out = '';
  const dec = new TextDecoder();
  const vm = await Partition.create({
    processor: 'emulated', memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: true,
    kernel, initrd, cmdline, clockMode,
    onConsoleOutput: (b) => {
      if (!Number.isNaN(toInit)) return;
      out += dec.decode(b, { stream: true });
      if (out.includes(INIT_BANNER)) { toInit = performance.now() - t0; cpuToInit = cpuMs(process.cpuUsage(c0)); }
    },
  });
  const exit = await vm.start();
  const toOff = performance.now() - t0;
  const cpuToOff = cpuMs(process.cpuUsage(c0));
  if (exit.code !== 0) throw new Error(`hyperts boot failed: ${exit.reason}`);
  const insns = Number(vm.vcpus[0].snapshot().insns ?? 0);
  return { toInit, toOff, insns, cpuToInit, cpuToOff };
}

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

const fmt = (ms: number): string => (Number.isNaN(ms) ? '   n/a' : `${(ms / 1000).toFixed(2)} s`);

async function main(): Promise<void> {
  const img = defaultImagePaths();
  if (!existsSync(img.kernel) || !existsSync(img.initrd)) {
    console.error("bench:boot: the default guest image is not built; run 'npm run setup' first");
    process.exit(1);
  }
  const cmdline = `${img.cmdline} ${APPEND}`;
  const haveQemu = !noQemu && spawnSync('qemu-system-x86_64', ['--version']).status === 0;
  console.log(`kernel ${img.kernel}\ninitrd ${img.initrd}\ncmdline ${cmdline}\nhyperts clock: ${clockMode}; runs: ${runs}\n`);
  const best = (xs: BootTimes[], k: 'toInit' | 'toOff' | 'cpuToInit' | 'cpuToOff'): number => Math.min(...xs.map((x) => x[k] ?? NaN));
  const h: BootTimes[] = [], q: BootTimes[] = [];
  for (let i = 0; i < runs; i++) {
    if (haveQemu) q.push(await bootQemu(img.kernel, img.initrd, cmdline));
    h.push(await bootHyperts(img.kernel, img.initrd, cmdline));
  }
  const hi = best(h, 'toInit'), ho = best(h, 'toOff');
  const insns = h[0].insns ?? 0;
  console.log(`hyperts emulated : boot-to-init ${fmt(hi)}   to power-off ${fmt(ho)}   ${(insns / 1e6).toFixed(0)} M instructions, ${(insns / (ho / 1000) / 1e6).toFixed(1)} MIPS`);
  console.log(`hyperts CPU time : boot-to-init ${fmt(best(h, 'cpuToInit'))}   to power-off ${fmt(best(h, 'cpuToOff'))}   (user+sys of this process, incl. V8's compiler threads)`);
  if (haveQemu) {
    const qi = best(q, 'toInit'), qo = best(q, 'toOff');
    console.log(`QEMU TCG         : boot-to-init ${fmt(qi)}   to power-off ${fmt(qo)}`);
    console.log(`ratio hyperts/QEMU: boot-to-init ${(hi / qi).toFixed(2)}x   to power-off ${(ho / qo).toFixed(2)}x   (goal: within 3x)`);
  } else {
    console.log('QEMU TCG         : not measured (qemu-system-x86_64 not installed; apt-get install qemu-system-x86)');
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
