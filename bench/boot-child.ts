/**
 * One hyperts boot (1 vCPU, emulated) in a fresh process, for `npm run bench:boot -- --compare-with DIR`:
 * loads the Partition of the build at `--build ROOT` (this checkout or another one, built with `npx tsc -p .`),
 * boots the given kernel to power-off and prints one JSON line of times. Each boot gets a new process so
 * the two builds never share V8's compiled code or heap.
 *
 *   node dist/bench/boot-child.js --build ROOT --kernel K --initrd I --cmdline C --clock icount
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measureWorkerMemory } from './worker-memory.js';

const arg = (name: string): string => {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`boot-child: ${name} is required`);
  return process.argv[i + 1];
};

interface PartitionLike { memory: { bytes: Uint8Array }; start(): Promise<{ code: number; reason: string }>; vcpus: Array<{ snapshot(): Record<string, number | bigint> }> }
interface PartitionModule { Partition: { create(c: Record<string, unknown>): Promise<PartitionLike> } }

async function main(): Promise<void> {
  const root = resolve(arg('--build'));
  const banner = (await import(pathToFileURL(join(root, 'dist/src/image/init-script.js')).href) as { INIT_BANNER: string }).INIT_BANNER;
  const { Partition } = await import(pathToFileURL(join(root, 'dist/src/platform/partition.js')).href) as PartitionModule;
  const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let toInit = NaN, cpuToInit = NaN, out = '';
  const dec = new TextDecoder();
  const vm = await Partition.create({
    processor: 'emulated', memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: true,
    kernel: arg('--kernel'), initrd: arg('--initrd'), cmdline: arg('--cmdline'), clockMode: arg('--clock'),
    onConsoleOutput: (b: Uint8Array) => {
      if (!Number.isNaN(toInit)) return;
      out += dec.decode(b, { stream: true });
      if (out.includes(banner)) { toInit = performance.now() - t0; cpuToInit = cpuMs(process.cpuUsage(c0)); }
    },
  });
  const exit = await vm.start();
  const toOff = performance.now() - t0, cpuToOff = cpuMs(process.cpuUsage(c0));
  if (exit.code !== 0) throw new Error(`boot failed: ${exit.reason}`);
  const insns = Number(vm.vcpus[0].snapshot().insns ?? 0);
  const memory = measureWorkerMemory(vm.memory.bytes);
  process.stdout.write(JSON.stringify({ toInit, toOff, cpuToInit, cpuToOff, insns, memory, translator: await translatorStats(root) }) + '\n');
}

/** What the translator did in this boot (builds without these modules or fields give null). */
async function translatorStats(root: string): Promise<Record<string, unknown> | null> {
  try {
    const jit = await import(pathToFileURL(join(root, 'dist/src/processor/emulated/jit.js')).href) as Record<string, unknown>;
    let wasm: unknown = null;
    try { wasm = (await import(pathToFileURL(join(root, 'dist/src/processor/emulated/wasm/runtime.js')).href) as { wasmStats: unknown }).wasmStats; } catch { /* no wasm translator */ }
    const stats = jit.jitStats as { insns?: number } | undefined;
    return { engine: jit.jitEngine ?? 'js', threshold: jit.jitThreshold, translatedInsns: stats?.insns ?? null, wasm };
  } catch { return null; }
}

main().catch((e) => { console.error(e); process.exit(1); });
