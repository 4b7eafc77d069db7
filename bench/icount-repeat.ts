/**
 * Reproducibility check: boots the default Debian guest twice in icount mode with the same RTC base and
 * compares the console output up to the shell prompt and each vCPU's retired-instruction count at the moment
 * the prompt appeared. Exit status 0 only when both are identical.
 *
 *   npm run check:icount [-- --cpus N]
 */
import { Partition } from '../src/platform/partition.js';
import { defaultImagePaths } from '../src/image/builder.js';
import { existsSync } from 'node:fs';

const args = process.argv.slice(2);
const cpus = args.includes('--cpus') ? Number(args[args.indexOf('--cpus') + 1]) : 2;
if (!Number.isInteger(cpus) || cpus < 1 || cpus > 64) { console.error('check:icount: --cpus takes 1..64'); process.exit(2); }
const PROMPT = /hyperts-guest: init started[^]*\n[^\n]*# $/;
const LIMIT_MS = 30 * 60_000;

interface Boot { output: string; insns: number[]; seconds: number }

async function boot(): Promise<Boot> {
  const img = defaultImagePaths();
  let output = '';
  let insns: number[] | null = null;
  const dec = new TextDecoder();
  let vm: Partition;
  vm = await Partition.create({
    processor: 'emulated', memoryBytes: 512 * 1024 * 1024, cpus, enlightened: true,
    kernel: img.kernel, initrd: img.initrd, cmdline: img.cmdline, clockMode: 'icount', rtcBaseMs: Date.UTC(2026, 0, 1),
    onConsoleOutput: (b) => {
      output += dec.decode(b, { stream: true });
      if (insns === null && PROMPT.test(output)) {
        // Taken synchronously, on the instruction that printed the prompt's last byte.
        insns = vm.vcpus.map((v) => v.instructions ?? -1);
        setImmediate(() => vm.turnOff('prompt reached'));
      }
    },
  });
  const t0 = performance.now();
  const timer = setTimeout(() => vm.turnOff('time limit'), LIMIT_MS);
  await vm.start();
  clearTimeout(timer);
  if (insns === null) throw new Error(`no shell prompt within ${LIMIT_MS / 60_000} minutes; output ends:\n${output.slice(-500)}`);
  return { output, insns, seconds: (performance.now() - t0) / 1000 };
}

async function main(): Promise<number> {
  const img = defaultImagePaths();
  if (!existsSync(img.kernel)) { console.error("check:icount: the default image is missing; run 'npm run setup' first"); return 2; }
  const a = await boot();
  console.log(`boot 1: ${a.seconds.toFixed(1)} s, instructions per vCPU at the prompt: ${a.insns.join(', ')}`);
  const b = await boot();
  console.log(`boot 2: ${b.seconds.toFixed(1)} s, instructions per vCPU at the prompt: ${b.insns.join(', ')}`);
  const sameInsns = a.insns.join() === b.insns.join();
  const sameOut = a.output === b.output;
  if (!sameOut) {
    const la = a.output.split('\n'), lb = b.output.split('\n');
    const i = la.findIndex((l, k) => l !== lb[k]);
    console.log(`console output differs first at line ${i + 1}:\n  1: ${la[i]}\n  2: ${lb[i]}`);
  }
  console.log(`--cpus ${cpus}: console output ${sameOut ? 'identical' : 'DIFFERS'} (${a.output.length} bytes), instruction counts ${sameInsns ? 'identical' : 'DIFFER'}`);
  return sameOut && sameInsns ? 0 : 1;
}
main().then((c) => process.exit(c), (e) => { console.error((e as Error).message); process.exit(2); });
