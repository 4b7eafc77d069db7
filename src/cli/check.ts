/** `hyperts check [--json] [--no-speed] [--device PATH]`: can this host run the kvm and emulated backends? */
import { evaluateHost, type CheckReport } from '../host/check.js';
import { probeHost } from '../host/probe.js';
import { isolationSupport, type IsolationSupport } from '../vmms/sandbox.js';

const MARK: Record<string, string> = { ok: 'yes ', missing: 'NO  ', warn: 'warn', info: '    ' };

export function formatReport(r: CheckReport): string {
  const w = Math.max(...r.items.map((i) => i.name.length));
  const lines = ['hyperts host check', ''];
  for (const i of r.items) lines.push(`  ${MARK[i.status]}  ${i.name.padEnd(w)}  ${i.detail}`);
  lines.push('', 'Backends:');
  for (const [k, v] of Object.entries(r.backends)) {
    lines.push(`  ${k.padEnd(8)} ${v.usable ? 'can run' : 'cannot run'}`);
    for (const reason of v.reasons) lines.push(`           - ${reason}`);
  }
  lines.push('', r.choice ? `run --processor auto uses: ${r.choice} (${r.why})` : `no backend can run: ${r.why}`, '');
  return lines.join('\n');
}

/** The VM worker sandbox (hyperts serve): bubblewrap, and the cgroup limits around it. */
export function isolationItems(i: IsolationSupport): CheckReport['items'] {
  return [
    { name: 'VM worker isolation', status: i.available ? 'ok' : 'warn', detail: i.available ? 'bubblewrap sandbox with seccomp (no network, read-only root, own folder only)' : `${i.notes[0]}; VMs run with the service's rights` },
    { name: 'Worker memory limit', status: i.memoryLimit ? 'ok' : 'warn', detail: i.memoryLimit ?? 'no writable memory cgroup: RLIMIT_DATA only (allocations fail instead of the kernel stopping the worker)' },
    { name: 'Worker process limit', status: i.pidsLimit ? 'ok' : 'warn', detail: i.pidsLimit ?? 'no writable pids cgroup' },
  ];
}

export default async function check(args: string[]): Promise<number> {
  let json = false;
  let measureSpeed = true;
  let devicePath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--json') json = true;
    else if (a === '--no-speed') measureSpeed = false;
    else if (a === '--device') devicePath = args[++i];
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: hyperts check [--json] [--no-speed] [--device /dev/kvm]\n');
      return 0;
    } else {
      process.stderr.write(`hyperts check: unknown option '${a}' (try --help)\n`);
      return 2;
    }
  }
  const facts = await probeHost({ devicePath, measureSpeed });
  const report = evaluateHost(facts);
  const isolation = isolationSupport();
  report.items.push(...isolationItems(isolation));
  if (json) process.stdout.write(`${JSON.stringify({ facts, ...report, isolation }, null, 2)}\n`);
  else process.stdout.write(formatReport(report));
  return report.choice ? 0 : 1;
}
