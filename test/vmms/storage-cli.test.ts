/**
 * The drive and VHD commands of the CLI end to end: VHD commands on files without a service (Attached
 * unknown), then against a real `hyperts serve` (new-vm --new-vhd-path, add-/get-/remove-vmharddiskdrive,
 * add-vmscsicontroller, set-/get-vmdvddrive, Attached, refusals, remove-vm keeping the VHDX, exit statuses).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'hyperts');
const dir = mkdtempSync(join(tmpdir(), 'hyperts-scli-'));
const work = mkdtempSync(join(tmpdir(), 'hyperts-scli-files-'));
const skip = spawnSync('qemu-img', ['--version']).status !== 0 && 'qemu-img (qemu-utils) not installed';
let server: ChildProcess | null = null;

after(() => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function hyperts(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--data-dir', dir], { cwd: work, env: { ...process.env, HYPERTS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Get-VHD's list output as an object. */
const fields = (s: string): Record<string, string> => Object.fromEntries(s.trimEnd().split('\n').map((l) => { const i = l.indexOf(' : '); return i < 0 ? [l.replace(/ +:$/, '').trim(), ''] : [l.slice(0, i).trim(), l.slice(i + 3)]; }));

test('CLI: VHD commands without a service, then drives through the service', { skip }, async () => {
  // No service: the files are worked on here; Attached cannot be known and says so.
  let r = await hyperts('new-vhd', 'base.vhdx', '--size-bytes', '512MB');
  assert.equal(r.code, 0, r.stderr);
  const base = join(work, 'base.vhdx');
  let g = fields(r.stdout);
  assert.deepEqual([g.Path, g.VhdFormat, g.VhdType, g.Size], [base, 'VHDX', 'Dynamic', String(512 * 1048576)]);
  assert.match(g.Attached, /unknown: the management service is not running/);
  r = await hyperts('new-vhd', 'base.vhdx', '--size-bytes', '1GB');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /base.vhdx already exists/);
  r = await hyperts('new-vhd', 'x.vhdx', '--size-bytes', '12QB');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid sizeBytes "12QB"/);
  r = await hyperts('new-vhd', 'x.vhdx', '--size-bytes', '1GB', '--fixed', '--dynamic');
  assert.equal(r.code, 2);
  r = await hyperts('new-vhd', 'fixed.vhdx', '--size-bytes', '16MB', '--fixed', '--json');
  assert.equal(JSON.parse(r.stdout).vhdType, 'Fixed');
  r = await hyperts('convert-vhd', 'base.vhdx', 'copy.vhdx', '--vhd-type', 'dynamic', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).path, join(work, 'copy.vhdx'));
  // On a terminal, a long command draws a progress line (percent, rate, time left), then "done".
  if (spawnSync('script', ['--version']).status === 0) {
    const cmd = [process.execPath, bin, 'convert-vhd', 'base.vhdx', 'tty.vhdx', '--data-dir', dir].map((x) => `'${x}'`).join(' ');
    const t = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: work, encoding: 'utf8', env: { ...process.env, HYPERTS_URL: '' } });
    assert.equal(t.status, 0, t.stdout);
    assert.match(t.stdout, /convert-vhd: +\d+% (\d+\.\d MB\/s )?(--:--:--|\d\d:\d\d:\d\d) left/);
    assert.match(t.stdout, /convert-vhd: done/);
  }
  r = await hyperts('test-vhd', 'base.vhdx');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /base.vhdx is a usable virtual hard disk/);
  writeFileSync(join(work, 'broken.vhdx'), 'no');
  r = await hyperts('test-vhd', 'broken.vhdx');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /broken.vhdx is not usable/);
  r = await hyperts('get-vhd', 'missing.vhdx');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing.vhdx does not exist/);

  server = spawn(process.execPath, [bin, 'serve', '--data-dir', dir, '--quiet', '--listen', '127.0.0.1:0', '--path-root', `${dir},${work}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  server.stderr!.on('data', (d) => { err += d; });
  const url = await waitFor('serve to listen', () => {
    if (server!.exitCode !== null) throw new Error(`serve exited: ${err}`);
    return /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(err)?.[1];
  });

  // With --url the VHD commands run on the service (its operations), paths still the caller's.
  r = await hyperts('new-vhd', 'remote.vhdx', '--size-bytes', '64MB', '--url', url, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([JSON.parse(r.stdout).path, JSON.parse(r.stdout).attached], [join(work, 'remote.vhdx'), false]);
  r = await hyperts('convert-vhd', 'remote.vhdx', 'remote-fixed.vhdx', '--vhd-type', 'fixed', '--url', url, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).vhdType, 'Fixed');
  r = await hyperts('merge-vhd', 'remote.vhdx', '--url', url);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /only a differencing disk can be merged/);
  r = await hyperts('test-vhd', 'broken.vhdx', '--url', url);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /broken.vhdx is not usable/);

  r = await hyperts('new-vm', 'app', '--new-vhd-path', 'app.vhdx', '--new-vhd-size-bytes', '1GB');
  assert.equal(r.code, 0, r.stderr);
  const app = join(work, 'app.vhdx');
  assert.ok(existsSync(app), 'the new VHDX is where the caller named it (relative to its directory)');
  r = await hyperts('get-vmharddiskdrive', 'app');
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^VMName +ControllerType +ControllerNumber +ControllerLocation +Path$/);
  assert.match(lines[2], new RegExp(`^app +SCSI +0 +0 +${app}$`));

  r = await hyperts('new-vm', 'db');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'app.vhdx');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /app.vhdx is already attached to VM 'app' at SCSI 0:0/);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'base.vhdx', '--controller-location', '3', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).controllerLocation, 3);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'copy.vhdx', '--controller-location', '3');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /SCSI 0:3 of VM 'db' is already in use/);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'copy.vhdx', '--controller-number', '1');
  assert.match(r.stderr, /no controller 1 \(add-vmscsicontroller db adds one\)/);
  r = await hyperts('add-vmscsicontroller', 'db');
  assert.match(r.stdout, /db now has 2 SCSI controller\(s\)/);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'copy.vhdx', '--controller-number', '1');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('add-vmharddiskdrive', 'db', '--path', 'fixed.vhdx', '--controller-type', 'IDE');
  assert.equal(r.code, 0, r.stderr);
  const all = JSON.parse((await hyperts('get-vmharddiskdrive', '--json')).stdout) as { vmName: string; controllerType: string; controllerNumber: number; controllerLocation: number }[];
  assert.deepEqual(all.map((d) => `${d.vmName} ${d.controllerType} ${d.controllerNumber}:${d.controllerLocation}`), ['app SCSI 0:0', 'db IDE 0:0', 'db SCSI 0:3', 'db SCSI 1:0']);

  // Get-VHD's Attached now comes from the inventory.
  g = fields((await hyperts('get-vhd', 'base.vhdx')).stdout);
  assert.equal(g.Attached, 'True (db (SCSI 0:3))');
  g = fields((await hyperts('get-vhd', 'broken.vhdx')).stdout);
  r = await hyperts('merge-vhd', 'base.vhdx');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot merge .*base.vhdx: it is attached to VM 'db' at SCSI 0:3 \(remove-vmharddiskdrive db first\)/);

  r = await hyperts('remove-vmharddiskdrive', 'db', '--controller-type', 'SCSI', '--controller-number', '0');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give --controller-type, --controller-number and --controller-location/);
  r = await hyperts('remove-vmharddiskdrive', 'db', '--controller-type', 'SCSI', '--controller-number', '0', '--controller-location', '3');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fields((await hyperts('get-vhd', 'base.vhdx')).stdout).Attached, 'False');

  // DVD drive on IDE, then eject.
  writeFileSync(join(work, 'tools.iso'), Buffer.alloc(4096));
  r = await hyperts('set-vmdvddrive', 'db', '--path', 'tools.iso', '--controller-number', '1', '--controller-location', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.match((await hyperts('get-vmdvddrive', 'db')).stdout, new RegExp(`db +IDE +1 +1 +${join(work, 'tools.iso')}`));
  r = await hyperts('set-vmdvddrive', 'db', '--path', '');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse((await hyperts('get-vmdvddrive', '--json')).stdout).map((d: { path: string | null }) => d.path), [null]);

  // A checkpoint of a VM with a disk puts an AVHDX on it; remove-vm keeps the disk files.
  r = await hyperts('checkpoint-vm', 'app');
  assert.equal(r.code, 0, r.stderr);
  assert.match((await hyperts('get-vmharddiskdrive', 'app')).stdout, /app_[0-9A-F-]{36}\.avhdx/);
  assert.equal((await hyperts('remove-vm', 'app', 'db')).code, 0);
  for (const f of ['app.vhdx', 'copy.vhdx', 'fixed.vhdx', 'base.vhdx']) assert.ok(existsSync(join(work, f)), `${f} stays after remove-vm`);
  assert.equal(fields((await hyperts('get-vhd', 'app.vhdx')).stdout).Attached, 'False');

  server.kill('SIGTERM');
  await new Promise((res) => server!.once('exit', res));
});
