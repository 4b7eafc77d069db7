/**
 * Conformance check with kvm-unit-tests' x86 suite (a local check: its sources are not part of hyperts and
 * not available to CI). Runs every x86_64 test kernel listed in x86/unittests.cfg on hyperts (multiboot
 * kernel, environment file with NR_CPUS as the first module, --cpus as the test's smp count, QEMU's isa-debug-exit
 * at 0xf4) and on QEMU TCG with the same test arguments and -smp, and prints per kernel and in total which pass on each.
 *
 *   KUT_DIR=/path/to/built/kvm-unit-tests npm run conformance [-- --only NAME[,NAME]] [--timeout S] [--qemu-cache]
 *   Console logs go to $KUT_LOG_DIR (default $TMPDIR/hyperts-kut-logs).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

interface UnitTest { name: string; file: string; smp: number; args: string; qemuParams: string; arch?: string; timeout: number }
type Verdict = 'PASS' | 'FAIL' | 'SKIP' | 'TIMEOUT' | 'N/A';

function parseCfg(text: string): UnitTest[] {
  const tests: UnitTest[] = [];
  let cur: Partial<UnitTest> & { name?: string } | null = null;
  const flush = (): void => { if (cur?.name && cur.file) tests.push({ smp: 1, args: '', qemuParams: '', timeout: 90, ...cur } as UnitTest); };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { flush(); cur = { name: sec[1] }; continue; }
    const kv = /^(\w+)\s*=\s*(.*)$/.exec(line);
    if (!kv || !cur) continue;
    const v = kv[2].replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');
    switch (kv[1]) {
      case 'file': cur.file = v; break;
      case 'smp': cur.smp = Number(v) || 1; break;
      case 'test_args': case 'extra_params': cur.args = v.replace(/^-append\s+/, '').replace(/^'(.*)'$/, '$1'); break;
      case 'qemu_params': cur.qemuParams = v; break;
      case 'arch': cur.arch = v; break;
      case 'timeout': cur.timeout = parseInt(v, 10) || 90; break;
    }
  }
  flush();
  return tests;
}

/**
 * kvm-unit-tests exits through isa-debug-exit, which exits with (status << 1) | 1: 1 = pass, 77 = skip. QEMU's own start-up
 * errors also exit with 1, so a run whose output is only QEMU complaining (e.g. "-cpu host requires KVM")
 * is N/A: that configuration cannot run under TCG.
 */
function verdictOf(exitCode: number | null, timedOut: boolean, output: string): Verdict {
  if (timedOut) return 'TIMEOUT';
  if (exitCode === 1 && /^qemu-system-\w+: /m.test(output) && !/SUMMARY|enabling apic|PASS|FAIL/.test(output)) return 'N/A';
  if (exitCode === null) return 'FAIL';
  // report_summary() returns 77 >> 1 when everything was skipped, so the process exits with 77.
  if (exitCode === 77) return 'SKIP';
  if ((exitCode & 1) === 1) return exitCode === 1 ? 'PASS' : 'FAIL';
  return /SUMMARY: .* 0 unexpected failures/.test(output) && exitCode === 0 ? 'PASS' : 'FAIL';
}

function runCmd(cmd: string, args: string[], timeoutS: number): Promise<{ code: number | null; out: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    p.stdout.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    const t = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, timeoutS * 1000);
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, out, timedOut }); });
  });
}

async function main(): Promise<void> {
  const kut = process.env.KUT_DIR;
  if (!kut || !existsSync(join(kut, 'x86', 'unittests.cfg'))) {
    console.log('conformance: set KUT_DIR to a built kvm-unit-tests tree (./configure --arch=x86_64 && make); nothing run');
    return;
  }
  const argv = process.argv.slice(2);
  const only = argv.includes('--only') ? new Set(argv[argv.indexOf('--only') + 1].split(',')) : null;
  const timeoutOverride = argv.includes('--timeout') ? Number(argv[argv.indexOf('--timeout') + 1]) : 0;
  const tests = parseCfg(readFileSync(join(kut, 'x86', 'unittests.cfg'), 'utf8'))
    .filter((t) => t.arch !== 'i386' && (!only || only.has(t.name)) && existsSync(join(kut, 'x86', t.file)));
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-kut-'));
  // Per-test console output of both runs, kept for diagnosis; QEMU verdicts are cached there across runs
  // (--qemu-cache) because QEMU's side does not change while hyperts is being fixed.
  const logDir = process.env.KUT_LOG_DIR || join(tmpdir(), 'hyperts-kut-logs');
  mkdirSync(logDir, { recursive: true });
  const useQemuCache = argv.includes('--qemu-cache');
  // kvm-unit-tests reads the processor count from NR_CPUS in its environment (as its run scripts write it)
  // when there is no fw_cfg, so each smp count gets its own environment file.
  const envFor = (smp: number): string => {
    const f = join(dir, `env-smp${smp}`);
    if (!existsSync(f)) writeFileSync(f, `NR_CPUS=${smp}\nMEMSIZE=256\nTEST_DEVICE=0\n`);
    return f;
  };
  const hyperts = join(process.cwd(), 'bin', 'hyperts');
  const rows: Array<{ t: UnitTest; h: Verdict; q: Verdict }> = [];
  console.log(`kvm-unit-tests x86 (${tests.length} kernels) from ${kut}\n`);
  console.log(`${'test'.padEnd(28)} ${'hyperts'.padEnd(8)} QEMU TCG`);
  for (const t of tests) {
    const kernel = join(kut, 'x86', t.file);
    const limit = timeoutOverride || Math.max(t.timeout, 90);
    const r = await runCmd(process.execPath, [hyperts, 'run', '--quiet', '--processor', 'emulated', '--clock', 'warp', '--memory', '256M',
      '--cpus', String(t.smp), '--kernel', kernel, '--initrd', envFor(t.smp), ...(t.args ? ['--append', t.args] : [])], limit);
    const h = verdictOf(r.code, r.timedOut, r.out);
    writeFileSync(join(logDir, `${t.name}.hyperts.log`), `exit ${r.code}${r.timedOut ? ' (timeout)' : ''}\n${r.out}`);
    const qa = ['--no-reboot', '-nodefaults', '-device', 'pc-testdev', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x4',
      '-display', 'none', '-serial', 'stdio', '-device', 'pci-testdev', '-machine', 'accel=tcg', '-m', '256',
      '-smp', String(t.smp), '-kernel', kernel, ...(t.qemuParams ? t.qemuParams.split(/\s+/).filter(Boolean) : []),
      ...(t.args ? ['-append', t.args] : [])];
    const cacheFile = join(logDir, `${t.name}.qemu.verdict`);
    let q: Verdict;
    const qemuLog = join(logDir, `${t.name}.qemu.log`);
    if (useQemuCache && existsSync(qemuLog)) {
      const text = readFileSync(qemuLog, 'latin1');
      const m = /^exit (\S+)( \(timeout\))?\n/.exec(text);
      q = m ? verdictOf(m[1] === 'null' ? null : Number(m[1]), !!m[2], text.slice(m[0].length)) : 'N/A';
    } else if (useQemuCache && existsSync(cacheFile)) q = readFileSync(cacheFile, 'utf8').trim() as Verdict;
    else {
      q = await runCmd('qemu-system-x86_64', qa, limit).then((r) => {
        writeFileSync(qemuLog, `exit ${r.code}${r.timedOut ? ' (timeout)' : ''}\n${r.out}`);
        return verdictOf(r.code, r.timedOut, r.out);
      }, () => 'N/A' as Verdict);
      writeFileSync(cacheFile, q);
    }
    rows.push({ t, h, q });
    console.log(`${t.name.padEnd(28)} ${h.padEnd(8)} ${q}`);
  }
  const count = (k: 'h' | 'q', v: Verdict): number => rows.filter((r) => r[k] === v).length;
  const both = rows.filter((r) => r.q === 'PASS' && r.h === 'PASS').length;
  const qOnly = rows.filter((r) => r.q === 'PASS' && r.h !== 'PASS').map((r) => r.t.name);
  const hOnly = rows.filter((r) => r.h === 'PASS' && r.q !== 'PASS').map((r) => r.t.name);
  console.log(`\ntotal: hyperts ${count('h', 'PASS')} pass / ${count('h', 'FAIL')} fail / ${count('h', 'SKIP')} skip / ${count('h', 'TIMEOUT')} timeout / ${count('h', 'N/A')} not run`);
  console.log(`       QEMU    ${count('q', 'PASS')} pass / ${count('q', 'FAIL')} fail / ${count('q', 'SKIP')} skip / ${count('q', 'TIMEOUT')} timeout / ${count('q', 'N/A')} cannot run under TCG`);
  console.log(`pass on both: ${both}; QEMU only: ${qOnly.join(', ') || 'none'}; hyperts only: ${hOnly.join(', ') || 'none'}`);
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => { console.error(e); process.exit(1); });
