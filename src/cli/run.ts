/**
 * `hyperts run`: boot a transient VM with the serial console on this terminal (Ctrl-A X quits, as in QEMU).
 */
import { existsSync } from 'node:fs';
import { parseArgs, parseSize, UsageError } from './args.js';
import { Partition, type PartitionConfig } from '../platform/partition.js';
import { natNetwork } from '../platform/assemble-network.js';
import type { HardwareConfig, NetworkAdapterConfig } from '../platform/hardware.js';
import { parseForward } from '../net/passt.js';
import { parseMac, randomHyperVMac, formatMac } from '../net/mac.js';
import { hardwareFromDriveOptions, takeRepeated } from './drive-args.js';

const help = `usage: hyperts run [options]

  --processor auto|emulated|kvm   processor backend (default auto: kvm where the host check says it is fast)
  --kernel FILE                   bzImage, ELF vmlinux or multiboot ELF (default: the built default image)
  --initrd FILE                   initramfs (multiboot: the first module)
  --append STRING                 kernel command line (added to the default one for the default image)
  --memory SIZE                   guest memory, e.g. 512M or 1G (default 512M)
  --cpus N                        virtual processors, 1-64 (default 1; more than 1 runs on the emulated processor)
  --enlightenments on|off         expose Hyper-V (CPUID leaves, SynIC, VMBus) or run unenlightened (default on)
  --gdb PORT                      serve the GDB remote protocol on 127.0.0.1:PORT (a GDB thread per vCPU)
  --gdb-wait                      with --gdb: start with the processor stopped until GDB continues (QEMU's -S)
  --clock realtime|warp|icount    virtual time follows the host; or also jumps over idle periods; or counts
                                  retired instructions, 1 ns each (emulated only; reproducible) (default realtime)
  --rtc-base DATE                 the guest's wall clock (RTC) at power-on, UTC, e.g. 2026-01-01T00:00:00 (default:
                                  now); with --clock icount, boots then repeat exactly
  --nic                           add a synthetic network adapter on a NAT switch (user-mode, through passt:
                                  DHCP, DNS, outbound TCP/UDP; the gateway address reaches this host's loopback)
  --nic legacy                    the same with Hyper-V's legacy network adapter (emulated DEC 21140, Linux's
                                  tulip driver) instead: for unenlightened guests (--enlightenments off); boots
                                  the generic-kernel image (hyperts image build --generic) unless --kernel
  --nic-forward H:G[,H:G...]      with --nic: forward host TCP port H to guest port G
  --nic-mac MAC                   with --nic: a static MAC (default: random in Hyper-V's 00:15:5d range)
  --vhd PATH[,controller=scsi|ide][,location=L|C:L][,readonly]
                                  attach a disk (VHDX or raw; repeatable): synthetic SCSI controller 0 by
                                  default (locations 0, 1, ...), or the emulated IDE controller (Gen 1 PIIX4)
  --dvd ISO                       put an ISO image in a DVD drive on IDE (1:0 unless taken)
  --quiet                         do not print hyperts' own status lines

Ctrl-A X quits; Ctrl-A A sends a literal Ctrl-A.
`;

export default async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) { process.stdout.write(help); return 0; }
  let cfg: PartitionConfig;
  try {
    cfg = await configFromArgs(args);
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`hyperts: ${e.message}\n`); return 2; }
    throw e;
  }
  const status = (msg: string): void => { if (!cfg.quiet) process.stderr.write(`hyperts: ${msg}\n`); };
  cfg.log = status;
  cfg.onConsoleOutput = (b) => { process.stdout.write(b); };
  const vm = await Partition.create(cfg);
  const stdin = process.stdin;
  let ctrlA = false;
  const onInput = (d: Buffer): void => {
    const out: number[] = [];
    for (const b of d) {
      if (ctrlA) {
        ctrlA = false;
        if (b === 0x78 || b === 0x58) { status('Ctrl-A X: turning the VM off'); vm.turnOff('console quit'); return; }
        if (b === 0x01) out.push(0x01);
        continue;
      }
      if (b === 0x01) { ctrlA = true; continue; }
      out.push(b);
    }
    if (out.length) vm.consoleInput(Uint8Array.from(out));
  };
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.on('data', onInput);
  try {
    const exit = await vm.start();
    status(`VM ended: ${exit.reason} (exit code ${exit.code})`);
    return exit.code;
  } finally {
    stdin.off('data', onInput);
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  }
}

async function configFromArgs(allArgs: string[]): Promise<PartitionConfig & { quiet: boolean }> {
  const { rest: args0, values: vhds } = takeRepeated(allArgs, 'vhd');
  const args = nicKindArgs(args0);
  const { opts, positional } = parseArgs(args, {
    processor: 'string', kernel: 'string', initrd: 'string', append: 'string', memory: 'string', cpus: 'string',
    enlightenments: 'string', gdb: 'string', 'gdb-wait': 'boolean', clock: 'string', quiet: 'boolean',
    nic: 'boolean', 'nic-legacy': 'boolean', 'nic-forward': 'string', 'nic-mac': 'string',
    dvd: 'string', 'rtc-base': 'string',
  }, 'run');
  if (positional.length) throw new UsageError(`run: unexpected argument '${positional[0]}' (options start with --)`);
  const processor = (opts.processor as string | undefined) ?? 'auto';
  if (!['auto', 'emulated', 'kvm'].includes(processor)) throw new UsageError(`run: --processor must be auto, emulated or kvm, not '${processor}'`);
  const memoryBytes = parseSize((opts.memory as string | undefined) ?? '512M', 'memory size');
  if (memoryBytes < 64 * 1024 * 1024 || memoryBytes % 4096 !== 0) throw new UsageError(`run: --memory must be at least 64M and a multiple of 4K`);
  if (memoryBytes > 16 * 1024 ** 3) throw new UsageError(`run: --memory above 16G is not supported by this host build`);
  const cpus = Number((opts.cpus as string | undefined) ?? '1');
  if (!Number.isInteger(cpus) || cpus < 1) throw new UsageError(`run: --cpus must be a positive integer`);
  if (cpus > 64) throw new UsageError(`run: --cpus ${cpus}: at most 64 virtual processors are supported`);
  const enl = (opts.enlightenments as string | undefined) ?? 'on';
  if (enl !== 'on' && enl !== 'off') throw new UsageError(`run: --enlightenments must be on or off`);
  const clock = (opts.clock as string | undefined) ?? 'realtime';
  if (clock !== 'realtime' && clock !== 'warp' && clock !== 'icount') throw new UsageError(`run: --clock must be realtime, warp or icount`);
  let rtcBaseMs: number | undefined;
  if (opts['rtc-base'] !== undefined) {
    const v = opts['rtc-base'] as string;
    rtcBaseMs = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?Z?$/.test(v) ? Date.parse(/T/.test(v) ? (v.endsWith('Z') ? v : `${v}Z`) : `${v}T00:00:00Z`) : NaN;
    if (!Number.isFinite(rtcBaseMs)) throw new UsageError(`run: --rtc-base takes a UTC date, e.g. 2026-01-01 or 2026-01-01T12:00:00, not '${v}'`);
  }
  let gdbPort: number | undefined;
  if (opts['gdb-wait'] && opts.gdb === undefined) throw new UsageError('run: --gdb-wait needs --gdb PORT');
  if (opts.gdb !== undefined) {
    gdbPort = Number(opts.gdb);
    if (!Number.isInteger(gdbPort) || gdbPort < 1 || gdbPort > 65535) throw new UsageError(`run: --gdb needs a TCP port number`);
  }
  let kernel = opts.kernel as string | undefined;
  if (kernel !== undefined && !existsSync(kernel)) throw new UsageError(`run: kernel file '${kernel}' does not exist`);
  if (opts.initrd !== undefined && !existsSync(opts.initrd as string)) throw new UsageError(`run: initrd file '${opts.initrd}' does not exist`);
  let initrd = opts.initrd as string | undefined;
  let cmdline = (opts.append as string | undefined) ?? '';
  if (!kernel) {
    const { defaultImagePaths, imagePaths } = await import('../image/builder.js');
    // The legacy adapter's driver (tulip) is only in Debian's generic kernel: that image, when asked for it.
    const generic = opts['nic-legacy'] === true;
    const img = generic ? imagePaths('generic') : defaultImagePaths();
    if (!existsSync(img.kernel) || !existsSync(img.initrd)) {
      throw new UsageError(generic
        ? `run: --nic legacy boots the generic-kernel image (the default one has no tulip driver), which is not built yet; run 'hyperts image build --generic' first, or pass --kernel`
        : `run: the default guest image is not built yet; run 'hyperts image build' (or 'npm run setup') first, or pass --kernel`);
    }
    kernel = img.kernel;
    initrd = initrd ?? img.initrd;
    cmdline = `${img.cmdline} ${cmdline}`.trim();
  }
  const network = nicFromArgs(opts, enl === 'on');
  return {
    processor: processor as PartitionConfig['processor'],
    memoryBytes, cpus, enlightened: enl === 'on', kernel, initrd, cmdline,
    clockMode: clock, rtcBaseMs, gdbPort, gdbWait: opts['gdb-wait'] === true, quiet: opts.quiet === true,
    switches: network.switches,
    hardware: withAdapters(hardwareFromDriveOptions(vhds, opts.dvd as string | undefined), network.hardware?.networkAdapters ?? []),
  };
}

/** `--nic legacy` / `--nic=legacy` (and `synthetic`, the default kind) -> --nic [--nic-legacy]. */
function nicKindArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const kind = a.startsWith('--nic=') ? a.slice(6) : a === '--nic' && (args[i + 1] === 'legacy' || args[i + 1] === 'synthetic') ? args[++i] : null;
    if (kind === null) { out.push(a); continue; }
    if (kind !== 'legacy' && kind !== 'synthetic') throw new UsageError(`run: --nic takes no value or 'legacy', not '${kind}'`);
    out.push('--nic');
    if (kind === 'legacy') out.push('--nic-legacy');
  }
  return out;
}

/** --nic [legacy], --nic-forward, --nic-mac -> one synthetic (or legacy) adapter on a NAT switch. */
function nicFromArgs(opts: Record<string, string | boolean>, enlightened: boolean): Pick<PartitionConfig, 'hardware' | 'switches'> {
  const fwd = opts['nic-forward'] as string | undefined, mac = opts['nic-mac'] as string | undefined;
  const legacy = opts['nic-legacy'] === true;
  if (!opts.nic) {
    if (fwd !== undefined || mac !== undefined) throw new UsageError('run: --nic-forward and --nic-mac need --nic');
    return {};
  }
  if (!enlightened && !legacy) throw new UsageError('run: --nic adds a synthetic adapter, which needs --enlightenments on; an unenlightened guest takes --nic legacy');
  let macAddress = randomHyperVMac();
  if (mac !== undefined) {
    try { macAddress = formatMac(parseMac(mac)); } catch (e) { throw new UsageError(`run: --nic-mac: ${(e as Error).message}`); }
  }
  const forwards = [];
  for (const f of (fwd ?? '').split(',').filter((x) => x.trim())) {
    try { forwards.push(parseForward(f)); } catch (e) { throw new UsageError(`run: --nic-forward: ${(e as Error).message}`); }
  }
  return natNetwork(macAddress, forwards, legacy);
}

/** The drive options' hardware with the --nic adapters added (either may be absent). */
function withAdapters(hw: HardwareConfig | undefined, adapters: NetworkAdapterConfig[]): HardwareConfig | undefined {
  if (adapters.length === 0) return hw;
  return { ...(hw ?? { scsiControllers: 0, drives: [] }), networkAdapters: adapters };
}
