/**
 * bench:exits — cost of one PIO exit round trip through hyperts' KVM backend (worker thread, mailbox,
 * IoBus dispatch on the main thread) against bench/exits-reference.c doing the same KVM_RUN loop in C
 * (compiled now with gcc). Prints both and the ratio (goal: at most 1.2x).
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
  // C reference first, so both runs see the same machine state.
  const here = dirname(fileURLToPath(import.meta.url));
  const src = join(here, '..', '..', 'bench', 'exits-reference.c');
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-exits-'));
  let cNs: number;
  try {
    const exe = join(dir, 'exits-reference');
    const cc = spawnSync('gcc', ['-O2', '-o', exe, src], { encoding: 'utf8' });
    if (cc.status !== 0) { console.log(`bench:exits: cannot compile the C reference (${cc.stderr.trim().split('\n')[0] || 'gcc missing'})`); backend.destroy(); return 0; }
    const r = spawnSync(exe, [String(ITERATIONS)], { encoding: 'utf8' });
    if (r.status !== 0) { console.log(`bench:exits: C reference failed: ${r.stderr.trim()}`); backend.destroy(); return 0; }
    cNs = Number(r.stdout.trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const memory = kvm.allocateGuestMemory(0x10000);
  memory.write(0x1000, new Uint8Array([0xe6, PORT, 0xeb, 0xfc])); // 1: out %al, $0x10; jmp 1b
  let count = 0;
  let vp: Awaited<ReturnType<typeof backend.createVcpu>> | null = null;
  const io = new IoBus();
  io.register(PORT, 1, { pioRead: () => 0, pioWrite: () => { if (++count === ITERATIONS) vp!.requestExit(); } }, 'bench');
  const platform: PlatformServices = {
    memory, io, mmio: new MmioBus(), clock: new VirtualClock('realtime'),
    cpuid: { cpuid: (leaf) => leaf === 0 ? { eax: 1, ebx: 0, ecx: 0, edx: 0 } : { eax: 0, ebx: 0, ecx: 0, edx: 0 } },
    msr: { read: () => false, write: () => false }, hypercall: null, interrupts: [], tscHz: 1e9,
    onReset: () => {}, onShutdown: () => {},
  };
  vp = await backend.createVcpu(0, platform);
  vp.setBootState({ mode: 'real', rip: 0x1000, cs: 0, ds: 0, gpr: {} });
  const t0 = performance.now();
  while (count < ITERATIONS) {
    const o = await vp.run(100);
    if (o.kind === 'shutdown' || o.kind === 'reset') { console.log(`bench:exits: guest stopped: ${JSON.stringify(o)}`); break; }
  }
  const tsNs = ((performance.now() - t0) * 1e6) / Math.max(count, 1);
  backend.destroy();
  console.log(`PIO exit round trip over ${ITERATIONS} exits: hyperts ${tsNs.toFixed(0)} ns, C reference ${cNs.toFixed(0)} ns, ratio ${(tsNs / cNs).toFixed(2)}x (goal <= 1.2x)`);
  return 0;
}

main().then((c) => { process.exitCode = c; }, (e: unknown) => { console.error(e); process.exitCode = 1; });
