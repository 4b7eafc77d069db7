/**
 * bench:exits — cost of one PIO exit round trip through hyperts' KVM backend (KVM_RUN through koffi,
 * the exit record, IoBus dispatch) against bench/exits-reference.c doing the same KVM_RUN loop in C
 * (compiled now with gcc; same VM setup: in-kernel irqchip). The two alternate in ROUNDS rounds so a
 * change in the shared machine's load hits both sides. The goal (at most 1.1x) is judged on CPU time per
 * exit, the median of the per-round ratios: on this shared 2-core machine wall time mostly measures how
 * long each side waited for a CPU (single runs swung 0.8x-1.2x), while CPU time is the work an exit costs.
 * hyperts' CPU time is the whole process (every Node thread), the reference's is its one thread, so any
 * unfairness is against hyperts (after an unmeasured warm-up, so V8's compiler threads do not count).
 * Wall time is printed too. Where KVM is not usable it says so and exits 0.
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
  const reference = (): { wall: number; cpu: number } | null => {
    const r = spawnSync(exe, [String(perRound), 'irqchip'], { encoding: 'utf8' });
    const [wall, cpu] = (r.stdout ?? '').trim().split(/\s+/).map(Number);
    if (r.status !== 0 || !(wall > 0) || !(cpu > 0)) { console.log(`bench:exits: C reference failed: ${(r.stderr ?? '').trim() || r.stdout}`); return null; }
    return { wall, cpu };
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
  // Warm-up, not measured: V8 compiles the exit path (its compiler threads would count in the first round).
  target = perRound;
  while (count < target) { const o = await vp.run(100); if (o.kind === 'shutdown' || o.kind === 'reset') break; }
  const c = { wall: [] as number[], cpu: [] as number[] };
  const ts = { wall: [] as number[], cpu: [] as number[] };
  let failed = false;
  for (let r = 0; r < ROUNDS && !failed; r++) {
    const ref = reference();
    if (ref === null) { failed = true; break; }
    c.wall.push(ref.wall);
    c.cpu.push(ref.cpu);
    const start = count;
    target = start + perRound;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (count < target) {
      const o = await vp.run(100);
      if (o.kind === 'shutdown' || o.kind === 'reset') { console.log(`bench:exits: guest stopped: ${JSON.stringify(o)}`); failed = true; break; }
    }
    const n = Math.max(count - start, 1);
    ts.wall.push(((performance.now() - t0) * 1e6) / n);
    const cpu = process.cpuUsage(cpu0);
    ts.cpu.push(((cpu.user + cpu.system) * 1e3) / n);
  }
  backend.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (failed || !ts.cpu.length) return 0;
  const ns = (a: number[]): string => a.map((x) => x.toFixed(0)).join(' ');
  if (process.env.VERBOSE) {
    console.log(`rounds, CPU ns: hyperts ${ns(ts.cpu)}; C ${ns(c.cpu)}`);
    console.log(`rounds, wall ns: hyperts ${ns(ts.wall)}; C ${ns(c.wall)}`);
  }
  const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
  const summary = (k: 'cpu' | 'wall'): string => {
    const ratio = median(ts[k].map((t, i) => t / c[k][i]));
    return `hyperts ${median(ts[k]).toFixed(0)} ns, C reference ${median(c[k]).toFixed(0)} ns, median round ratio ${ratio.toFixed(2)}x`;
  };
  console.log(`PIO exit round trip, ${ts.cpu.length} alternating rounds of ${perRound} exits (medians):`);
  console.log(`  CPU time:  ${summary('cpu')} (goal <= 1.1x)`);
  console.log(`  wall time: ${summary('wall')} (includes waiting for a CPU on a shared host)`);
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e: unknown) => { console.error(e); process.exitCode = 1; });
