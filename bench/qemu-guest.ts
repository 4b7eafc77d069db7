/**
 * The reference guest of the benchmarks: QEMU TCG (`qemu-system-x86_64 -accel tcg`) booting the same kernel
 * and initramfs as hyperts, with shell commands over its serial console (stdio), collected by markers as the
 * boot tests do. QEMU is optional: callers check `qemuAvailable()` and say so when it is missing.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { INIT_BANNER } from '../src/image/init-script.js';

/** QEMU's CPU model matched to what hyperts advertises. */
export const QEMU_CPU = 'qemu64,-svm,-pni,-lahf_lm,-cx16,-popcnt,-sse4.1,-sse4.2,-ssse3,-x2apic';

export function qemuAvailable(): boolean { return spawnSync('qemu-system-x86_64', ['--version']).status === 0; }

export class QemuGuest {
  private output = '';
  private exited = false;
  private seq = 0;
  private constructor(private readonly p: ChildProcessWithoutNullStreams) {
    p.stdout.on('data', (d: Buffer) => { this.output += d.toString('latin1'); });
    p.stderr.on('data', (d: Buffer) => { this.output += d.toString('latin1'); });
    p.on('exit', () => { this.exited = true; });
  }

  /** Boots; `extra` adds devices (drives). 512 MiB and one processor, as the hyperts guests of the benchmarks. */
  static boot(kernel: string, initrd: string, cmdline: string, extra: string[]): QemuGuest {
    return new QemuGuest(spawn('qemu-system-x86_64', ['-M', 'pc', '-accel', 'tcg', '-cpu', QEMU_CPU, '-m', '512', '-smp', '1',
      '-display', 'none', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd, '-append', cmdline, ...extra]));
  }

  private async waitFor(re: RegExp, from: number, limitMs: number): Promise<RegExpExecArray> {
    const end = Date.now() + limitMs;
    for (;;) {
      const m = re.exec(this.output.slice(from));
      if (m) return m;
      if (this.exited) throw new Error(`QEMU ended; last output:\n${this.output.slice(-2000)}`);
      if (Date.now() > end) throw new Error(`QEMU guest did not print ${re}; last output:\n${this.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Calls `fn` with every piece of console output as it arrives (for host-side timing of guest markers). */
  onOutput(fn: (text: string) => void): void {
    this.p.stdout.on('data', (d: Buffer) => fn(d.toString('latin1')));
  }

  async waitForShell(limitMs = 10 * 60_000): Promise<void> {
    await this.waitFor(new RegExp(INIT_BANNER), 0, limitMs);
    await this.run('true', limitMs);
  }

  async run(cmd: string, limitMs = 60 * 60_000): Promise<{ out: string; status: number }> {
    const n = ++this.seq;
    const from = this.output.length;
    // Markers are built by the shell (quoted halves) so the echoed command line does not match them.
    this.p.stdin.write(`echo "__B""${n}__"; ${cmd}; echo "__E""${n}__ $?"\n`);
    const m = await this.waitFor(new RegExp(`__E${n}__ (\\d+)`), from, limitMs);
    const text = this.output.slice(from).replace(/\r\n/g, '\n');
    const b = text.indexOf(`__B${n}__\n`) + `__B${n}__\n`.length;
    return { out: text.slice(b, text.indexOf(`__E${n}__`)), status: Number(m[1]) };
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.p.once('exit', () => r()));
    this.p.kill('SIGTERM');
    await gone;
  }
}
