/**
 * Execution-core benchmark for the emulated processor: (a) a synthetic integer loop (loads, stores, ALU,
 * push/pop, call/ret, cmp+jcc) and (b) rep movsq/stosq over 64 KiB on the test machine, then (c) the real
 * Linux boot to power-off with the warp clock. Prints MIPS (instructions retired per host CPU second: the
 * machine is shared, so process CPU time is steadier than wall time) and times.
 *
 *   npm run bench:cpu [-- --no-boot] [--loops N]
 */
import { existsSync } from 'node:fs';
import { createTestMachine } from '../src/processor/emulated/testing.js';
import { Partition } from '../src/platform/partition.js';
import { defaultImagePaths } from '../src/image/builder.js';
import { INIT_BANNER } from '../src/image/init-script.js';
import { jitStats } from '../src/processor/emulated/jit.js';

const args = process.argv.slice(2);
const noBoot = args.includes('--no-boot');
const loops = Number(args.includes('--loops') ? args[args.indexOf('--loops') + 1] : 3_000_000);

const CODE = 0x1000000, DATA = 0x2000000, STACK = 0x3000000;

function le64(v: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < 8; k++) { out.push(v % 256); v = Math.floor(v / 256); }
  return out;
}

/** Assemble the integer loop: `n` iterations of 11 instructions, then hlt. */
function integerLoop(n: number): Uint8Array {
  const b: number[] = [];
  b.push(0x48, 0x31, 0xc9); // xor rcx, rcx
  b.push(0x48, 0xba, ...le64(n)); // mov rdx, n
  b.push(0x48, 0xbe, ...le64(DATA)); // mov rsi, DATA
  const loop = b.length;
  b.push(0x48, 0x8b, 0x06); // mov rax, [rsi]
  b.push(0x48, 0x01, 0xd8); // add rax, rbx
  b.push(0x48, 0x89, 0x46, 0x08); // mov [rsi+8], rax
  b.push(0x53); // push rbx
  const call = b.length;
  b.push(0xe8, 0, 0, 0, 0); // call f
  b.push(0x5b); // pop rbx
  b.push(0x83, 0xe0, 0x0f); // and eax, 15
  b.push(0x48, 0xff, 0xc1); // inc rcx
  b.push(0x48, 0x39, 0xd1); // cmp rcx, rdx
  b.push(0x75, (loop - (b.length + 2)) & 0xff); // jne loop
  b.push(0xf4); // hlt
  const f = b.length;
  b.push(0x48, 0x83, 0xc3, 0x01); // add rbx, 1
  b.push(0xc3); // ret
  const rel = f - (call + 5);
  b[call + 1] = rel & 0xff; b[call + 2] = (rel >> 8) & 0xff;
  return Uint8Array.from(b);
}

/** `n` rounds of rep movsq (8 KiB elements = 64 KiB) then rep stosq over the same size. */
function stringLoop(n: number): Uint8Array {
  const b: number[] = [];
  b.push(0x49, 0xb8, ...le64(n)); // mov r8, n
  const loop = b.length;
  b.push(0x48, 0xbe, ...le64(DATA)); // mov rsi, DATA
  b.push(0x48, 0xbf, ...le64(DATA + 0x10000)); // mov rdi, DATA+64K
  b.push(0xb9, 0x00, 0x20, 0, 0); // mov ecx, 8192
  b.push(0xf3, 0x48, 0xa5); // rep movsq
  b.push(0x48, 0xbf, ...le64(DATA + 0x10000)); // mov rdi, DATA+64K
  b.push(0xb9, 0x00, 0x20, 0, 0); // mov ecx, 8192
  b.push(0xf3, 0x48, 0xab); // rep stosq
  b.push(0x49, 0xff, 0xc8); // dec r8
  b.push(0x0f, 0x85, ...[0, 0, 0, 0]); // jne loop
  const rel = loop - b.length;
  b[b.length - 4] = rel & 0xff; b[b.length - 3] = (rel >> 8) & 0xff; b[b.length - 2] = (rel >> 16) & 0xff; b[b.length - 1] = (rel >> 24) & 0xff;
  b.push(0xf4);
  return Uint8Array.from(b);
}

function runOnTestMachine(code: Uint8Array, maxInsns: number): { insns: number; ms: number; kind: string } {
  const m = createTestMachine({ memoryBytes: 64 * 1024 * 1024, cpl: 0 });
  m.map(CODE, 0x1000, { exec: true, writable: false });
  m.map(DATA, 0x40000, { writable: true });
  m.map(STACK - 0x10000, 0x10000, { writable: true });
  m.writeVirt(CODE, code);
  m.setReg(4, BigInt(STACK));
  m.rip = BigInt(CODE);
  const c0 = process.cpuUsage();
  const r = m.run({ maxInsns });
  return { insns: r.insns, ms: cpuMs(c0), kind: r.kind };
}

async function bootLinux(): Promise<{ toInit: number; toOff: number; initCpu: number; offCpu: number; insns: number }> {
  const img = defaultImagePaths();
  if (!existsSync(img.kernel) || !existsSync(img.initrd)) throw new Error("default guest image missing: run 'npm run setup'");
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let toInit = NaN, initCpu = NaN, out = '';
  const dec = new TextDecoder();
  const vm = await Partition.create({
    processor: 'emulated', memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: true,
    kernel: img.kernel, initrd: img.initrd, cmdline: `${img.cmdline} hyperts.run=true`, clockMode: 'warp',
    onConsoleOutput: (b) => {
      if (!Number.isNaN(toInit)) return;
      out += dec.decode(b, { stream: true });
      if (out.includes(INIT_BANNER)) { toInit = performance.now() - t0; initCpu = cpuMs(c0); }
    },
  });
  const exit = await vm.start();
  const toOff = performance.now() - t0, offCpu = cpuMs(c0);
  if (exit.code !== 0) throw new Error(`boot failed: ${exit.reason}`);
  const cpu = (vm.vcpus[0] as { cpu?: { blocks: { built: number } } }).cpu;
  if (cpu !== undefined) console.log(`blocks decoded ${cpu.blocks.built}, translated ${jitStats.translated} (failed ${jitStats.failed})`);
  return { toInit, toOff, initCpu, offCpu, insns: Number(vm.vcpus[0].snapshot().insns ?? 0) };
}

/** Host CPU time (user + system) of this process since `c0`, in ms: steadier than wall time on a shared machine. */
function cpuMs(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1000;
}

const mips = (insns: number, ms: number): string => (insns / ms / 1000).toFixed(1);

async function main(): Promise<void> {
  // Warm-up run so the numbers reflect optimized code, then the measured one.
  runOnTestMachine(integerLoop(200_000), 1e9);
  const a = runOnTestMachine(integerLoop(loops), 1e10);
  console.log(`integer loop : ${(a.insns / 1e6).toFixed(1)} M insns in ${(a.ms / 1000).toFixed(2)} s = ${mips(a.insns, a.ms)} MIPS (${a.kind})`);
  const rounds = 200;
  const s = runOnTestMachine(stringLoop(rounds), 1e10);
  const bytes = rounds * 2 * 65536;
  console.log(`rep movsq/stosq: ${(bytes / 1048576).toFixed(0)} MiB in ${(s.ms / 1000).toFixed(2)} s = ${(bytes / 1048576 / (s.ms / 1000)).toFixed(0)} MiB/s (${s.kind})`);
  if (noBoot) return;
  const b = await bootLinux();
  const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  console.log(`linux boot   : boot-to-init ${sec(b.toInit)} wall (${sec(b.initCpu)} cpu), to power-off ${sec(b.toOff)} wall (${sec(b.offCpu)} cpu), ${(b.insns / 1e6).toFixed(0)} M insns, ${mips(b.insns, b.offCpu)} MIPS (cpu time)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
