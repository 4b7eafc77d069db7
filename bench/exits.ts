/**
 * bench:exits — cost of one PIO exit round trip through hyperts' KVM backend (KVM_RUN through koffi,
 * the exit record, IoBus dispatch) against bench/exits-reference.c doing the same KVM_RUN loop in C
 * (compiled now with gcc; same VM setup: in-kernel irqchip). The two alternate in ROUNDS rounds so a
 * change in the shared machine's load hits both sides; each side's fastest round is its cost (noise
 * only ever adds time), and the median round ratio is printed next to it (goal: at most 1.1x).
 * Where KVM is not usable it says so in one line and exits 0.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IoBus, MmioBus } from '../src/platform/bus.js';
import { VirtualClock } from '../src/platform/clock.js';
import type { PlatformServices } from '../src/processor/backend.js';

const ITERATIONS = Number(process.env.EXITS ?? 200_000);
const ROUNDS = Math.max(1, Number(process.env.ROUNDS ?? 8));
const PORT = 0x10;

async function main(): Promise<number> {
  let kvm: typeof import('../src/processor/kvm/processor.js');
  let backend: InstanceType<typeof kvm.KvmBackend>;
  try {
    kvm = await import('../src/processor/kvm/processor.js');
    backend = new kvm.KvmBackend({ irqchip: 'kernel' });
  } catch (e) {
    console.log(`bench:exits: KVM is not usable on this host (${(e as Error).message.split('\n')[0]}); nothing to measure`);
    return 0;
  }
  // The C reference runs before and after hyperts, so a change in load during the run hits both sides.
  const here = dirname(fileURLToPath(import.meta.url));
  const src = join(here, '..', '..', 'bench', 'exits-reference.c');
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-exits-'));
  const exe = join(dir, 'exits-reference');
  const cc = spawnSync('gcc', ['-O2', '-o', exe, src], { encoding: 'utf8' });
  if (cc.status !== 0) {
    console.log(`bench:exits: cannot compile the C reference (${cc.stderr.trim().split('\n')[0] || 'gcc missing'})`);
    backend.destroy(); rmSync(dir, { recursive: true, force: true }); return 0;
  }
  const perRound = Math.max(1, Math.floor(ITERATIONS / ROUNDS));
  const reference = (): number | null => {
    const r = spawnSync(exe, [String(perRound), 'irqchip'], { encoding: 'utf8' });
    if (r.status !== 0) { console.log(`bench:exits: C reference failed: ${r.stderr.trim()}`); return null; }
    return Number(r.stdout.trim());
  };
  const memory = kvm.allocateGuestMemory(0x10000);
  memory.write(0x1000, new Uint8Array([0xe6, PORT, 0xeb, 0xfc])); // 1: out %al, $0x10; jmp 1b
  let count = 0;
  let target = 0;
  let vp: Awaited<ReturnType<typeof backend.createVcpu>> | null = null;
  const io = new IoBus();
  io.register(PORT, 1, { pioRead: () => 0, pioWrite: () => { if (++count === target) vp!.requestExit(); } }, 'bench');
  const platform: PlatformServices = {
    memory, io, mmio: new MmioBus(), clock: new VirtualClock('realtime'),
    cpuid: { cpuid: (leaf) => leaf === 0 ? { eax: 1, ebx: 0, ecx: 0, edx: 0 } : { eax: 0, ebx: 0, ecx: 0, edx: 0 } },
    msr: { read: () => false, write: () => false }, hypercall: null, interrupts: [], tscHz: 1e9,
    onReset: () => {}, onShutdown: () => {},
  };
  vp = await backend.createVcpu(0, platform);
  vp.setBootState({ mode: 'real', rip: 0x1000, cs: 0, ds: 0, gpr: {} });
  const cRounds: number[] = [];
  const tsRounds: number[] = [];
  let failed = false;
  for (let r = 0; r < ROUNDS && !failed; r++) {
    const c = reference();
    if (c === null) { failed = true; break; }
    cRounds.push(c);
    const start = count;
    target = start + perRound;
    const t0 = performance.now();
    while (count < target) {
      const o = await vp.run(100);
      if (o.kind === 'shutdown' || o.kind === 'reset') { console.log(`bench:exits: guest stopped: ${JSON.stringify(o)}`); failed = true; break; }
    }
    tsRounds.push(((performance.now() - t0) * 1e6) / Math.max(count - start, 1));
  }
  backend.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (failed || !tsRounds.length) return 0;
  if (process.env.VERBOSE) console.log(`rounds (ns): hyperts ${tsRounds.map((x) => x.toFixed(0)).join(" ")}; C ${cRounds.map((x) => x.toFixed(0)).join(" ")}`);
  const ratios = tsRounds.map((t, i) => t / cRounds[i]).sort((a, b) => a - b);
  const median = ratios[Math.floor(ratios.length / 2)];
  const tsBest = Math.min(...tsRounds);
  const cBest = Math.min(...cRounds);
  console.log(`PIO exit round trip, ${tsRounds.length} alternating rounds of ${perRound} exits: hyperts ${tsBest.toFixed(0)} ns, ` +
    `C reference ${cBest.toFixed(0)} ns (fastest rounds), ratio ${(tsBest / cBest).toFixed(2)}x, median round ratio ${median.toFixed(2)}x (goal <= 1.1x)`);
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e: unknown) => { console.error(e); process.exitCode = 1; });
