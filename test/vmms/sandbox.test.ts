/**
 * The VM worker's sandbox (src/vmms/sandbox.ts), seen from inside: a probe worker (probe-worker.ts) started by
 * the real service tries to read the API token, another VM's folder and /etc/shadow, to open sockets of every
 * kind, to write outside its folder, and to eat memory past its limit. Also: a VM run without isolation says so.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmmsService } from '../../src/vmms/service.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';
import { seccompProgram, DENIED_SYSCALLS } from '../../src/vmms/seccomp.js';
import { socketPath, tokenPath } from '../../src/vmms/paths.js';
import { ApiServer } from '../../src/vmms/api.js';
import { waitFor, testBootRoots } from './helpers.js';
import type { ProbeReport, ProbeTargets } from './probe-worker.js';

const probeWorker = fileURLToPath(new URL('./probe-worker.js', import.meta.url));
const support = isolationSupport();
const skip = !support.available && `bubblewrap cannot sandbox here: ${support.notes.join('; ')}`;
const dirs: string[] = [];
const planted = '/tmp/hyperts-probe-planted';
after(() => { for (const d of [...dirs, planted]) rmSync(d, { recursive: true, force: true }); });

function setup(o: { isolation?: 'auto' | 'off'; overhead?: number; defaultImage?: () => { kernel: string; initrd: string; cmdline: string } } = {}): { service: VmmsService; logs: string[]; dir: string; outside: string; kernel: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-sandbox-'));
  const outside = mkdtempSync(join(tmpdir(), 'hyperts-outside-'));
  dirs.push(dir, outside);
  writeFileSync(tokenPath(dir), 'secret-token\n', { mode: 0o600 });
  const kernel = join(outside, 'vmlinuz');
  writeFileSync(kernel, 'not really a kernel');
  const logs: string[] = [];
  const service = new VmmsService({ dataDir: dir, bootRoots: testBootRoots(), workerPath: probeWorker, log: (m) => logs.push(m), isolation: o.isolation ?? 'auto', workerOverheadBytes: o.overhead, turnOffGraceMs: 3000, defaultImage: o.defaultImage });
  return { service, logs, dir, outside, kernel };
}

function report(logs: string[], vm: string): ProbeReport {
  const line = logs.find((l) => l.startsWith(`${vm}: probe `));
  assert.ok(line, `the probe of ${vm} reported (log: ${logs.join(' | ')})`);
  return JSON.parse(line.slice(`${vm}: probe `.length)) as ProbeReport;
}

test('seccomp program: well-formed classic BPF (8-byte instructions, ends in returns)', () => {
  const p = seccompProgram();
  assert.equal(p.length % 8, 0);
  const n = p.length / 8;
  assert.ok(n > Object.keys(DENIED_SYSCALLS).length + 6 && n < 4096);
  for (let i = n - 4; i < n; i++) assert.equal(p.readUInt16LE(i * 8), 0x06, 'the last four instructions are returns');
});

test('an isolated worker cannot read the token, other VMs or /etc/shadow, open any socket, or write outside its folder', { skip }, async () => {
  const { service, logs, dir, outside, kernel } = setup();
  rmSync(planted, { force: true });
  const api = new ApiServer(service, {});
  await api.listenUnix(socketPath(dir));
  try {
    service.create({ name: 'other', kernel, memory: '64M' });
    const otherDir = service.vmDirectory('other');
    const targets = (): ProbeTargets => ({ token: tokenPath(dir), otherVmDir: otherDir, serviceSocket: socketPath(dir), dataDir: dir, outsideDir: outside });
    // The other VM has files of its own (as a saved or running VM would).
    await service.start('other').catch(() => {});
    const initrd = join(outside, 'initrd.img');
    writeFileSync(initrd, 'an initrd');
    service.create({ name: 'probe', kernel, initrd, memory: '64M', processor: 'emulated', cmdline: JSON.stringify(targets()) });
    const v = await service.start('probe');
    assert.equal(v.state, 'Running');
    const r = report(logs, 'probe');
    assert.deepEqual(
      { readToken: r.readToken, listOtherVm: r.listOtherVm, readShadow: r.readShadow, readInventory: r.readInventory },
      { readToken: 'ENOENT', listOtherVm: 'ENOENT', readShadow: 'ENOENT', readInventory: 'ENOENT' }, 'none of these exist inside the sandbox');
    for (const k of ['tcpLoopback', 'unixServiceSocket', 'listen', 'udp'] as const) assert.notEqual(r[k], 'ALLOWED', `${k}: ${r[k]}`);
    assert.equal(r.tcpLoopback, 'EPERM', 'socket() itself is refused by the seccomp filter');
    assert.equal(r.writeOwnFolder, 'ALLOWED', 'its own folder is writable');
    assert.equal(r.readKernel, 'ALLOWED', 'its kernel is there (bound from the descriptor the service checked)');
    assert.equal(r.readInitrd, 'ALLOWED', 'and its initrd');
    assert.ok(existsSync(join(service.vmDirectory('probe'), 'probe.txt')), 'the write landed in the VM folder');
    for (const k of ['writeDataDir', 'writeOutside', 'writeTmp'] as const) assert.match(r[k], /^(EROFS|ENOENT|EACCES)$/, `${k}: ${r[k]}`);
    assert.ok(!existsSync(join(outside, 'planted')) && !existsSync(join(dir, 'planted')) && !existsSync(planted));
    assert.notEqual(r.openKvmOrMem, 'ALLOWED');
    if (support.unprivilegedUser) assert.equal(r.uid, '65534', 'a root service runs its workers as nobody');
    assert.deepEqual({ CapEff: r.CapEff, CapPrm: r.CapPrm, NoNewPrivs: r.NoNewPrivs, Seccomp: r.Seccomp },
      { CapEff: '0000000000000000', CapPrm: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' }, 'no capabilities, no new privileges, a seccomp filter');
    // The control: the same probe without the sandbox can do all of it (the assertions above can fail).
    const events = service.events({ name: 'probe' }).map((e) => e.message);
    assert.ok(!events.some((m) => /without isolation/i.test(m)), events.join('\n'));
  } finally { await api.close(); await service.close(); }
});

function canOpen(p: string): boolean { try { closeSync(openSync(p, 'r+')); return true; } catch { return false; } }
const kvmSkip = skip || (!existsSync('/dev/kvm') && 'no /dev/kvm here') || (!canOpen('/dev/kvm') && 'this user cannot open /dev/kvm');
test('a KVM VM\'s worker gets /dev/kvm as an open descriptor: no device node in its sandbox, and a root service runs it as nobody', { skip: kvmSkip }, async () => {
  const { service, logs, dir, outside, kernel } = setup();
  try {
    service.create({ name: 'kvm', kernel, memory: '64M', processor: 'kvm', cmdline: JSON.stringify({ token: tokenPath(dir), otherVmDir: dir, serviceSocket: socketPath(dir), dataDir: dir, outsideDir: outside }) });
    await service.start('kvm');
    const r = report(logs, 'kvm');
    assert.equal(r.openDevKvm, 'ENOENT', 'no /dev/kvm node inside');
    assert.match(r.kvmFd, /^api 12$/, 'KVM_GET_API_VERSION through the descriptor');
    if (support.unprivilegedUser) assert.equal(r.uid, '65534', 'nobody, though /dev/kvm itself is open to root only');
    assert.ok(!service.events({ name: 'kvm' }).some((e) => /keeps the service's uid/.test(e.message)));
    assert.equal(r.readToken, 'ENOENT');
  } finally { await service.close(); }
});

test('the default guest image (no kernel set) is bound from descriptors too: kernel and initrd readable inside', { skip }, async () => {
  const img = mkdtempSync(join(tmpdir(), 'hyperts-image-'));
  dirs.push(img);
  writeFileSync(join(img, 'vmlinuz'), 'a kernel');
  writeFileSync(join(img, 'initrd.img'), 'an initrd');
  const { service, logs, dir, outside } = setup({ defaultImage: () => ({ kernel: join(img, 'vmlinuz'), initrd: join(img, 'initrd.img'), cmdline: '' }) });
  try {
    service.create({ name: 'img', memory: '64M', processor: 'emulated', cmdline: JSON.stringify({ token: tokenPath(dir), otherVmDir: dir, serviceSocket: socketPath(dir), dataDir: dir, outsideDir: outside }) });
    await service.start('img');
    const r = report(logs, 'img');
    assert.deepEqual([r.readKernel, r.readInitrd], ['ALLOWED', 'ALLOWED']);
  } finally { await service.close(); }
});

test('control: without isolation the same probe reads the token and writes outside (and the event log says so)', async () => {
  const { service, logs, dir, outside, kernel } = setup({ isolation: 'off' });
  try {
    service.create({ name: 'plain', kernel, memory: '64M', processor: 'emulated', cmdline: JSON.stringify({ token: tokenPath(dir), otherVmDir: dir, serviceSocket: socketPath(dir), dataDir: dir, outsideDir: outside }) });
    await service.start('plain');
    const r = report(logs, 'plain');
    assert.equal(r.readToken, 'ALLOWED');
    assert.equal(r.writeOutside, 'ALLOWED');
    assert.ok(service.events({ name: 'plain' }).some((e) => /without isolation: the service was started with --no-isolation/.test(e.message)));
  } finally { await service.close(); }
});

test('a root service refuses a boot file only root can read (it would reach guest memory)', { skip: skip || (!support.unprivilegedUser && 'workers do not change uid here') }, async () => {
  const { service, outside } = setup();
  try {
    const secret = join(outside, 'root-only');
    writeFileSync(secret, 'root secret', { mode: 0o600 });
    service.create({ name: 'exfil', kernel: secret, memory: '64M', processor: 'emulated' });
    await assert.rejects(service.start('exfil'), /boot file .*root-only is not readable by other users.*chmod o\+r/);
    assert.equal(service.get('exfil').state, 'Off');
  } finally { await service.close(); }
});

test('a worker cannot start more processes and threads than its pids limit', { skip: skip || (!support.pidsLimit && 'no writable pids cgroup') }, async () => {
  const { service, logs, kernel } = setup();
  try {
    service.create({ name: 'forks', kernel, memory: '64M', processor: 'emulated' });
    await service.start('forks');
    service.attachConsole('forks', () => {}).write(Buffer.from('forks'));
    const line = await waitFor('the fork report', () => logs.find((l) => l.startsWith('forks: forks ')), 120_000);
    const r = JSON.parse(line.slice('forks: forks '.length)) as { started: number; error: string };
    assert.equal(r.error, 'EAGAIN', `fork refused by the pids cgroup (${line})`);
    assert.ok(r.started > 0 && r.started < 128, `started ${r.started}: below the limit of 128 (Node's own threads count too)`);
    assert.equal(service.get('forks').state, 'Running', 'the worker itself carries on');
  } finally { await service.close(); }
});

test('a worker past its memory limit is stopped, and the VM is Off with that reason', { skip: skip || (!support.memoryLimit && 'no writable memory cgroup') }, async () => {
  // Limit = 64 MiB guest + 96 MiB overhead: the probe eats 128 MiB per turn until the kernel stops it.
  const { service, kernel } = setup({ overhead: 96 << 20 });
  try {
    service.create({ name: 'hog', kernel, memory: '64M', processor: 'emulated' });
    await service.start('hog');
    const pid = service.workerPid('hog')!;
    const c = service.attachConsole('hog', () => {});
    c.write(Buffer.from('hog'));
    await waitFor('the hog to be stopped', () => service.get('hog').state === 'Off', 60_000);
    const last = service.events({ name: 'hog' }).at(-1)!;
    assert.match(last.message, /exceeded its memory limit \(160 MB\)/);
    assert.match(service.get('hog').status, /memory limit/);
    assert.equal(service.workerPid('hog'), null, `worker ${pid} is gone`);
  } finally { await service.close(); }
});
