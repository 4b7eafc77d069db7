/**
 * `npm run stress:smp [-- ROUNDS] [--cpus 2,4]`: the SMP test kernel (smp-kernel.ts) with ROUNDS rounds
 * (default 100,000) of each phase: TLB shootdown by INVLPG+IPI, by the flush hypercall, and code patched by
 * the BSP while the APs run it. Prints per phase and vCPU count the rounds, the stale reads (errors) and the
 * APs' checked reads; exits 1 if any phase saw an error or did not finish.
 */
import { Partition, type PartitionExit } from '../../src/platform/partition.js';
import { smpKernel, haveBinutils, STRESS_PHASES, stressResults } from './smp-kernel.js';

const args = process.argv.slice(2);
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 100_000);
const cpuList = (args.includes('--cpus') ? args[args.indexOf('--cpus') + 1] : '2').split(',').map(Number);
if (!Number.isInteger(rounds) || rounds < 1) { console.error('stress:smp: ROUNDS must be a positive integer'); process.exit(2); }
if (cpuList.some((c) => !Number.isInteger(c) || c < 2 || c > 64)) { console.error('stress:smp: --cpus takes a list of 2..64, e.g. 2,4'); process.exit(2); }
if (!haveBinutils()) { console.error('stress:smp: needs binutils (as, ld): apt-get install binutils'); process.exit(2); }

async function run(cpus: number): Promise<boolean> {
  const out: string[] = [];
  const p = await Partition.create({
    name: 'smp-stress', processor: 'emulated', memoryBytes: 16 << 20, cpus, enlightened: true, kernel: smpKernel(rounds),
    cmdline: '', clockMode: 'icount', quiet: true, onConsoleOutput: (b) => out.push(Buffer.from(b).toString('latin1')),
  });
  const t0 = performance.now(), c0 = process.cpuUsage();
  let exit: PartitionExit | null = null;
  const exited = p.start().then((e) => { exit = e; });
  while (!out.join('').includes('done\n') && exit === null) await new Promise((r) => setTimeout(r, 50));
  p.turnOff('stress done');
  await exited;
  const s = out.join('');
  const c = process.cpuUsage(c0);
  const results = stressResults(s);
  let ok = true;
  console.log(`--cpus ${cpus}: ${((performance.now() - t0) / 1000).toFixed(1)} s wall, ${((c.user + c.system) / 1e6).toFixed(1)} s CPU, ${(p.vcpus.reduce((n, v) => n + (v.instructions ?? 0), 0) / 1e6).toFixed(0)} M instructions`);
  for (const phase of STRESS_PHASES) {
    const r = results.get(phase);
    if (!r) { console.log(`  ${phase.padEnd(9)}: no result (the kernel did not finish this phase)`); ok = false; continue; }
    const bad = r.rounds !== rounds || r.errors !== 0 || r.reads === 0;
    if (bad) ok = false;
    console.log(`  ${phase.padEnd(9)}: rounds ${r.rounds}, errors ${r.errors}, AP reads checked ${r.reads}${bad ? '   FAIL' : ''}`);
  }
  return ok;
}

let ok = true;
for (const cpus of cpuList) ok = (await run(cpus)) && ok;
process.exit(ok ? 0 : 1);
