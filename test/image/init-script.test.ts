import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initScript, INIT_BANNER, RUN_EXIT_MARKER, MODULE_LIST_PATH, SHUTDOWN_MARKER, SHUTDOWN_DONE_MARKER } from '../../src/image/init-script.js';

test('init: mounts, banner, modules, shell on the console, power-off', () => {
  const s = initScript('6.1.0-50-cloud-amd64');
  assert.ok(s.startsWith('#!/bin/sh\n'));
  for (const fs of ['proc proc /proc', 'sysfs sysfs /sys', 'devtmpfs devtmpfs /dev']) assert.ok(s.includes(`mount -t ${fs}`), fs);
  assert.ok(s.includes(`echo "${INIT_BANNER}"`));
  assert.ok(s.indexOf(INIT_BANNER) < s.indexOf('insmod'), 'banner before module loading');
  assert.ok(s.includes('KVER=6.1.0-50-cloud-amd64'));
  assert.ok(s.includes(`/${MODULE_LIST_PATH}`));
  assert.match(s, /setsid cttyhack sh/);
  assert.match(s, /poweroff -f/);
  assert.match(s, /shutdown_path poweroff\n$/, 'the shell ending also takes the shutdown path');
  const r = spawnSync('sh', ['-n'], { input: s });
  assert.equal(r.status, 0, `sh -n: ${r.stderr}`);
});

/** Run the script's hyperts.run parsing + execution against a fake /proc/cmdline. */
function runPart(cmdline: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'init-'));
  try {
    const f = join(dir, 'cmdline');
    writeFileSync(f, cmdline + '\n');
    const s = initScript('x');
    const start = s.indexOf('run=$(');
    const end = s.indexOf('else\n', start);
    const part = s.slice(start, end).replaceAll('/proc/cmdline', f) + 'fi\n';
    const r = spawnSync('sh', [], { input: part });
    return r.stdout.toString();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('init: hyperts.run="..." runs the command and prints its status', () => {
  const out = runPart('console=ttyS0 hyperts.run="echo hello world; exit 3" nokaslr');
  assert.equal(out, `hello world\n${RUN_EXIT_MARKER}3\n`);
});

test('init: unquoted hyperts.run and base64 hyperts.run64', () => {
  assert.equal(runPart('quiet hyperts.run=true panic=-1'), `${RUN_EXIT_MARKER}0\n`);
  const cmd = Buffer.from(`echo "quoted 'text'"`).toString('base64');
  assert.equal(runPart(`hyperts.run64=${cmd} console=ttyS0`), `quoted 'text'\n${RUN_EXIT_MARKER}0\n`);
});

test('init: no hyperts.run means the interactive branch', () => {
  assert.equal(runPart('console=ttyS0 nokaslr'), '');
});

/**
 * The shutdown half of /init on the host: the privileged commands are replaced by echoes, the work is a
 * long sleep, and the test sends the signal busybox poweroff/reboot send to PID 1.
 */
function shutdownBySignal(signal: NodeJS.Signals): Promise<string> {
  const s = initScript('x');
  const part = s.slice(s.indexOf('stopping='))
    .replaceAll('/proc/cmdline', '/dev/null')
    .replace('kill -TERM -1', 'kill -TERM $!; echo kill-term-all').replace('kill -KILL -1', 'echo kill-kill-all')
    .replace('sleep 1', 'true').replace('umount -a -r', 'echo umount-all')
    .replace('reboot -f;', 'echo reboot-f;').replace('poweroff -f;', 'echo poweroff-f;')
    .replace('setsid cttyhack sh -l &', 'sleep 30 &'); // the stubbed kill-all ends it
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', part], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    setTimeout(() => p.kill(signal), 300); // a moment for the traps to be installed
    p.on('close', () => resolve(out));
  });
}

test('init: poweroff (SIGUSR2) and halt (SIGUSR1) run the shutdown path and power off', async () => {
  for (const sig of ['SIGUSR2', 'SIGUSR1'] as const) {
    const out = await shutdownBySignal(sig);
    assert.equal(out, `${SHUTDOWN_MARKER}poweroff\nkill-term-all\nkill-kill-all\numount-all\n${SHUTDOWN_DONE_MARKER}poweroff\npoweroff-f\n`, sig);
  }
});

test('init: reboot (SIGTERM) runs the shutdown path and reboots', async () => {
  const out = await shutdownBySignal('SIGTERM');
  assert.match(out, new RegExp(`^${SHUTDOWN_MARKER}reboot\n[^]*umount-all\n${SHUTDOWN_DONE_MARKER}reboot\nreboot-f\n$`));
});
