/** Runs real gdb in batch mode against the stub on 127.0.0.1:port: each command as an -ex, output and exit code. */
import { spawn } from 'node:child_process';

export async function gdbBatch(elf: string, port: number, commands: string[]): Promise<{ out: string; code: number | null }> {
  const args = ['-nx', '-batch', elf, '-ex', `target remote 127.0.0.1:${port}`];
  for (const c of commands) args.push('-ex', c);
  const gdb = spawn('gdb', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  gdb.stdout.on('data', (d: Buffer) => { out += d; });
  gdb.stderr.on('data', (d: Buffer) => { out += d; });
  const code = await new Promise<number | null>((r) => gdb.on('exit', r));
  return { out, code };
}
