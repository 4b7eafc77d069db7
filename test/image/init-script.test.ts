import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initScript, INIT_BANNER, RUN_EXIT_MARKER, MODULE_LIST_PATH, SHUTDOWN_MARKER, SHUTDOWN_DONE_MARKER, ROOT_SWITCH_MARKER, ROOT_FAILED_MARKER } from '../../src/image/init-script.js';

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

/**
 * The root-disk half of /init on the host, against a fake /proc/cmdline and a fake new root. findfs, mount,
 * umount, sleep and switch_root are shell functions that log their arguments; findfs knows LABEL=root and UUID=u1.
 */
function rootPart(cmdline: string, opts: { init?: boolean; mountFails?: boolean } = {}): { log: string; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'init-root-'));
  try {
    writeFileSync(join(dir, 'cmdline'), cmdline + '\n');
    const newroot = join(dir, 'newroot');
    if (opts.init ?? true) { mkdirSync(join(newroot, 'sbin'), { recursive: true }); writeFileSync(join(newroot, 'sbin', 'init'), '', { mode: 0o755 }); }
    const s = initScript('x');
    const part = s.slice(s.indexOf('root= hroot='), s.indexOf('[ -n "$root" ] && switch_to_root'))
      .replaceAll('/proc/cmdline', join(dir, 'cmdline')).replaceAll('/newroot', newroot).replace('exec switch_root', 'switch_root');
    const log = join(dir, 'log');
    const stubs = `L=${log}
findfs() { echo "findfs $*" >>$L; case "$1" in LABEL=root|UUID=u1) echo /dev/sda ;; *) return 1 ;; esac; }
mount() { echo "mount $*" >>$L; ${opts.mountFails ? 'echo "mount: invalid argument"; return 1' : 'return 0'}; }
umount() { echo "umount $*" >>$L; }
sleep() { echo "sleep $*" >>$L; }
switch_root() { echo "switch_root $*" >>$L; }
`;
    const r = spawnSync('sh', [], { input: stubs + part + '[ -n "$root" ] && switch_to_root\necho after\n' });
    let text = '';
    try { text = readFileSync(log, 'utf8'); } catch { /* nothing called */ }
    return { log: text.replaceAll(newroot, '/newroot'), out: r.stdout.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('init: root=LABEL=... rw mounts the disk, moves the API file systems and switches root', () => {
  const { log, out } = rootPart('console=ttyS0 root=LABEL=root rw panic=-1');
  assert.equal(log, 'findfs LABEL=root\nmount -t ext4 -o rw /dev/sda /newroot\n' +
    ['dev', 'proc', 'sys', 'run'].map((d) => `mount --move /${d} /newroot/${d}\n`).join('') + 'switch_root /newroot /sbin/init\n');
  assert.ok(out.startsWith(`${ROOT_SWITCH_MARKER}/dev/sda\n`), out);
});

test('init: root options: read-only by default, hyperts.root= wins over root=, rootfstype= and init=', () => {
  assert.match(rootPart('root=UUID=u1').log, /^findfs UUID=u1\nmount -t ext4 -o ro \/dev\/sda /);
  for (const c of ['root=LABEL=other hyperts.root=LABEL=root', 'hyperts.root=LABEL=root root=LABEL=other']) {
    assert.match(rootPart(c).log, /^findfs LABEL=root\n/, c);
  }
  const { log } = rootPart('root=LABEL=root rootfstype=ext2 init=/sbin/init');
  assert.match(log, /mount -t ext2 -o ro /);
  assert.match(log, /switch_root \/newroot \/sbin\/init\n$/);
  assert.equal(rootPart('console=ttyS0 hyperts.run=true').log, '', 'no root option: nothing mounted');
});

test('init: a root disk that never appears, will not mount or has no init leaves /init in the initramfs', () => {
  let r = rootPart('root=LABEL=missing rootdelay=2');
  assert.equal(r.log, 'findfs LABEL=missing\nsleep 1\nfindfs LABEL=missing\nsleep 1\nfindfs LABEL=missing\n');
  assert.match(r.out, new RegExp(`^${ROOT_FAILED_MARKER}LABEL=missing did not appear within 2 s .*\nafter\n$`));
  r = rootPart('root=/dev/hyperts-no-such-disk rootdelay=0');
  assert.match(r.out, /did not appear within 0 s/);
  r = rootPart('root=LABEL=root', { mountFails: true });
  assert.match(r.out, new RegExp(`^${ROOT_FAILED_MARKER}mount /dev/sda: mount: invalid argument\nafter\n$`));
  r = rootPart('root=LABEL=root', { init: false });
  assert.match(r.log, /umount \/newroot\n$/);
  assert.match(r.out, new RegExp(`^${ROOT_FAILED_MARKER}/dev/sda has no /sbin/init\nafter\n$`));
  r = rootPart('root=sda1');
  assert.match(r.out, /root=sda1: expected LABEL=\.\.\., UUID=\.\.\. or \/dev\/\.\.\./);
  assert.equal(r.log, '');
});
