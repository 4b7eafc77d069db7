/**
 * Shell commands in a service-managed Debian guest over its console WebSocket, output collected by markers.
 * The console stays attached across the VM's restarts (the service routes keystrokes to whichever worker runs
 * the VM), and a console opened while the VM is off first replays the previous run's output: so a boot is
 * waited for from an offset taken before the start, never from the beginning of the transcript.
 */
import { INIT_BANNER } from '../../src/image/init-script.js';
import type { VmmsClient } from '../../src/vmms/client.js';
import { openConsole } from './helpers.js';

export interface GuestConsole {
  /** Everything the console printed since it was opened. */
  text(): string;
  send(s: string): void;
  /** The first match of `re` in the output after offset `from`. */
  wait(re: RegExp, from?: number): Promise<string>;
  /** Runs `cmd` in the guest shell; its output (exit status ignored). */
  sh(cmd: string): Promise<string>;
  /** Waits for the guest's init banner after `from` (text().length taken before start-vm), then for its shell. */
  booted(from: number): Promise<void>;
  close(): void;
}

const banner = new RegExp(INIT_BANNER.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

export async function guestConsole(client: VmmsClient, name: string, limitMs: number): Promise<GuestConsole> {
  const con = await openConsole(client, name);
  const wait = async (re: RegExp, from = 0): Promise<string> => {
    const end = Date.now() + limitMs;
    for (;;) {
      const m = re.exec(con.text().slice(from));
      if (m) return m[0];
      if (Date.now() > end) throw new Error(`guest did not print ${re}; last output:\n${con.text().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  let seq = 0;
  const sh = async (cmd: string): Promise<string> => {
    const n = ++seq;
    const from = con.text().length;
    // The quotes split the markers so the echoed command line never matches them.
    con.send(`echo "__B""${n}__"; ${cmd}; echo "__E""${n}__ $?"\n`);
    await wait(new RegExp(`__E${n}__ \\d+`), from);
    // Kernel messages can reach the console before `dmesg -n 1` ran (or at emergency level): drop their lines.
    const t = con.text().slice(from).replace(/\r\n/g, '\n').replace(/^\[ *\d+\.\d+\] .*\n/gm, '');
    return t.slice(t.indexOf(`__B${n}__\n`) + `__B${n}__\n`.length, t.indexOf(`__E${n}__`));
  };
  return {
    text: con.text, send: con.send, wait, sh,
    booted: async (from) => {
      await wait(banner, from);
      await sh('true');
      // Kernel messages on the console would interleave with command output.
      await sh('dmesg -n 1');
    },
    close: () => con.ws.close(),
  };
}
