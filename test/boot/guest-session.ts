/**
 * One booted Debian guest shared by the slow boot suites: boots the default image on the emulated processor
 * in-process, and runs shell commands over the serial console, collecting their output by markers.
 */
import { existsSync } from 'node:fs';
import { Partition, type PartitionConfig, type PartitionExit } from '../../src/platform/partition.js';
import { defaultImagePaths } from '../../src/image/builder.js';
import { INIT_BANNER } from '../../src/image/init-script.js';

/**
 * A guest shell command that lists KVP pool `pool` as `key=value` lines. hv_kvp_daemon writes records of a
 * 512-byte key and a 2048-byte value, each NUL-terminated; the bytes after each NUL are whatever its heap held
 * (the daemon does not zero them), so each field is cut at its first NUL.
 */
export function kvpPoolCommand(pool: number): string {
  const field = (cut: string) => `$(dd if=$f bs=2560 skip=$i count=1 2>/dev/null | ${cut} | tr '\\000' '\\n' | head -n 1)`;
  return `f=/var/lib/hyperv/.kvp_pool_${pool}; i=0; while [ $((i*2560)) -lt $(wc -c < $f) ]; do ` +
    `echo "${field('head -c 512')}=${field('tail -c 2048')}"; i=$((i+1)); done`;
}

export class GuestSession {
  output = '';
  readonly vm: Partition;
  readonly exited: Promise<PartitionExit>;
  private waiters: Array<{ re: RegExp | string; from: number; resolve: (m: string) => void }> = [];
  private seq = 0;
  exit: PartitionExit | null = null;
  /** How the partition was built (a restore builds its successor the same way). */
  private config!: PartitionConfig;

  private constructor(vm: Partition) {
    this.vm = vm;
    this.exited = vm.start().then((e) => { this.exit = e; this.check(); return e; });
  }

  static imageAvailable(): boolean {
    const img = defaultImagePaths();
    return existsSync(img.kernel) && existsSync(img.initrd);
  }

  static async boot(overrides: Partial<PartitionConfig> = {}, extraCmdline = ''): Promise<GuestSession> {
    const img = defaultImagePaths();
    let s: GuestSession | null = null;
    const decoder = new TextDecoder();
    const vm = await Partition.create({
      processor: 'emulated', memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: true,
      kernel: img.kernel, initrd: img.initrd, cmdline: `${img.cmdline} ${extraCmdline}`.trim(), clockMode: 'icount',
      onConsoleOutput: (b) => { if (s) { s.output += decoder.decode(b, { stream: true }); s.check(); } },
      log: (m) => { if (process.env.HYPERTS_TEST_LOG) process.stderr.write(`[vm] ${m}\n`); },
      ...overrides,
    });
    s = new GuestSession(vm);
    s.config = vm.config;
    return s;
  }

  /**
   * Save-VM and start again in the same test: saves this session's partition, turns it off, and continues
   * the guest in a new Partition restored from the saved-state bytes. The console transcript carries over.
   */
  async saveAndRestore(): Promise<{ session: GuestSession; bytes: number }> {
    this.vm.pause();
    await this.vm.quiesce();
    const file = this.vm.saveState();
    this.vm.turnOff('saved');
    await this.exited;
    let s: GuestSession | null = null;
    const decoder = new TextDecoder();
    const vm = await Partition.restore({
      ...this.config,
      onConsoleOutput: (b) => { if (s) { s.output += decoder.decode(b, { stream: true }); s.check(); } },
    }, file);
    s = new GuestSession(vm);
    s.config = vm.config;
    s.output = this.output;
    s.seq = this.seq;
    return { session: s, bytes: file.length };
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      const hay = this.output.slice(w.from);
      const m = typeof w.re === 'string' ? (hay.includes(w.re) ? w.re : null) : (w.re.exec(hay)?.[0] ?? null);
      if (m !== null) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
    }
    if (this.exit) {
      for (const w of this.waiters.splice(0)) w.resolve('');
    }
  }

  /** Resolves with the match, or '' if the VM ended first. Safety limit only (not a timing assertion). */
  waitFor(re: RegExp | string, from = 0, limitMs = 30 * 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`guest did not print ${re} within ${limitMs / 1000}s; last output:\n${this.output.slice(-2000)}`)), limitMs);
      const done = (m: string): void => { clearTimeout(t); resolve(m); };
      this.waiters.push({ re, from, resolve: done });
      this.check();
    });
  }

  async waitForShell(): Promise<void> {
    await this.waitFor(INIT_BANNER);
    // The shell prompt ends in '# '; send a marker command to sync with it.
    await this.run('true');
  }

  /** Runs a shell command in the guest's console shell; returns its output (without the echo) and status. */
  async run(cmd: string, limitMs?: number): Promise<{ out: string; status: number }> {
    const n = ++this.seq;
    const begin = `__B${n}__`, end = `__E${n}__`;
    const from = this.output.length;
    // Markers are built by the shell (quoted halves) so the echoed command line does not match them.
    this.vm.consoleInput(new TextEncoder().encode(`echo "__B""${n}__"; ${cmd}; echo "__E""${n}__ $?"\n`));
    const m = await this.waitFor(new RegExp(`${end} (\\d+)`), from, limitMs);
    if (m === '') throw new Error(`VM ended while running '${cmd}': ${this.exit?.reason}`);
    const text = this.output.slice(from);
    const b = text.indexOf(begin + '\r\n') >= 0 ? text.indexOf(begin + '\r\n') + begin.length + 2 : text.indexOf(begin + '\n') + begin.length + 1;
    const e = text.indexOf(end);
    return { out: text.slice(b, e).replace(/\r\n/g, '\n'), status: Number(/(\d+)/.exec(m.slice(end.length))![1]) };
  }
}
