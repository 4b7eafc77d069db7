/**
 * The CLI against a real `hyperts serve` process: Hyper-V-style commands and their errors, connect-vm,
 * bash completion, and a service killed and restarted keeping its inventory (its orphaned worker stops).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveBinutils, TEST_KERNEL_BANNER } from './test-kernel.js';
import { alive, testKernel, waitFor } from './helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'hyperts');
const dir = mkdtempSync(join(tmpdir(), 'hyperts-cli-'));
const skip = !haveBinutils() && 'binutils (as, ld) not installed';
let server: ChildProcess | null = null;

after(() => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function hyperts(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--data-dir', dir], { env: { ...process.env, HYPERTS_URL: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function serve(): Promise<ChildProcess> {
  // The test kernels are assembled under the temporary folder: a folder the service must allow boot files from.
  const p = spawn(process.execPath, [bin, 'serve', '--data-dir', dir, '--quiet', '--path-root', `${dir},${tmpdir()}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => { err += d; });
  await waitFor('serve to listen', () => { if (p.exitCode !== null) throw new Error(`serve exited: ${err}`); return err.includes('listening on unix:'); });
  return p;
}


test('without a service the commands say how to start it', async () => {
  const r = await hyperts('get-vm');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /management service is not running.*hyperts serve/);
});

test('CLI: new-vm, get-vm table and JSON, start, connect-vm, errors; service restart keeps the inventory', { skip }, async () => {
  server = await serve();
  let r = await hyperts('new-vm', 'demo', '--kernel', testKernel(), '--memory', '64M', '--processor', 'emulated');
  assert.equal(r.code, 0, r.stderr);
  r = await hyperts('new-vm', 'other', '--memory', '128M', '--kernel', '/nonexistent/vmlinuz');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /kernel '\/nonexistent\/vmlinuz' does not exist or cannot be resolved \(ENOENT\); allowed folders: /);
  r = await hyperts('new-vm', 'other', '--memory', '128M', '--kernel', '/etc/passwd');
  assert.match(r.stderr, /kernel '\/etc\/passwd' is outside the folders this host allows/);
  const gone = join(dir, 'vmlinuz-gone');
  writeFileSync(gone, 'not a kernel');
  r = await hyperts('new-vm', 'other', '--memory', '128M', '--kernel', gone);
  assert.equal(r.code, 0, r.stderr);
  rmSync(gone);
  r = await hyperts('get-vm');
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^Name +State +CPUUsage\(%\) +MemoryAssigned\(M\) +Uptime +Status/);
  assert.match(lines[2], /^demo +Off +0 +0 +00:00:00 +Operating normally/);
  assert.match(lines[3], /^other +Off/);

  // Errors name the VM and the fix; nothing changes.
  // Processor count: new-vm --cpus, set-vm --cpus, set-vmprocessor --count (VM off); get-vm shows it.
  r = await hyperts('new-vm', 'multi', '--cpus', '4', '--memory', '64M', '--kernel', testKernel());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.trimEnd().split('\n')[2], /^multi +Off .* 4$/);
  r = await hyperts('set-vm', 'multi', '--cpus', '2', '--json');
  assert.equal(JSON.parse(r.stdout).config.cpus, 2);
  r = await hyperts('set-vmprocessor', 'multi', '--count', '64', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).config.cpus, 64);
  r = await hyperts('set-vmprocessor', 'multi', '--count', '65');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /at most 64/);
  r = await hyperts('set-vmprocessor', 'multi');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--count 2/);
  // Checkpoint type (Set-VM -CheckpointType): any case in, Hyper-V's spelling out; a bad value lists the good ones.
  r = await hyperts('set-vm', 'multi', '--checkpoint-type', 'productiononly', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).config.checkpointType, 'ProductionOnly');
  r = await hyperts('set-vm', 'multi', '--checkpoint-type', 'never');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /checkpointType must be Production, ProductionOnly, Standard, Disabled/);
  r = await hyperts('remove-vm', 'multi');
  assert.equal(r.code, 0, r.stderr);

  r = await hyperts('new-vm', 'demo');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /a virtual machine named 'demo' already exists/);
  r = await hyperts('set-vm', 'demo', '--memory', '12Q');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid memory size '12Q'/);
  r = await hyperts('start-vm', 'ghost');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no virtual machine named 'ghost'/);
  r = await hyperts('stop-vm', 'demo', '--bogus');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option --bogus/);
  r = await hyperts('start-vm', 'other');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot start VM 'other': kernel '.*vmlinuz-gone' does not exist or cannot be resolved/);

  r = await hyperts('start-vm', 'demo');
  assert.equal(r.code, 0, r.stderr);
  const vm = JSON.parse((await hyperts('get-vm', 'demo', '--json')).stdout);
  assert.equal(vm.state, 'Running');
  assert.equal(vm.memoryAssignedBytes, 64 * 1048576);

  // connect-vm: history, echo, then Ctrl-] detaches and leaves the VM running.
  const con = spawn(process.execPath, [bin, 'connect-vm', 'demo', '--data-dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  con.stdout!.on('data', (d) => { out += d; });
  con.stderr!.on('data', (d) => { err += d; });
  await waitFor('console history', () => out.includes(TEST_KERNEL_BANNER));
  con.stdin!.write('typed-in-cli');
  await waitFor('echo', () => out.includes('typed-in-cli'));
  con.stdin!.write(Buffer.from([0x1d]));
  const code = await new Promise<number | null>((res) => con.on('exit', (c) => res(c)));
  assert.equal(code, 0);
  assert.match(err, /detached from demo/);
  assert.equal(JSON.parse((await hyperts('get-vm', 'demo', '--json')).stdout).state, 'Running');

  r = await hyperts('get-vmintegrationservice', 'demo');
  assert.match(r.stdout, /^VMName +Name +Enabled +PrimaryStatusDescription/);
  assert.match(r.stdout, /demo +Key-Value Pair Exchange +True +No Contact/);
  r = await hyperts('disable-vmintegrationservice', 'demo', 'vss');
  assert.match(r.stdout, /demo +VSS +False +Disabled/);

  // The service dies hard: its worker notices and stops; a new service finds the inventory, VM Off.
  server.kill('SIGKILL');
  await new Promise((res) => server!.once('exit', res));
  await waitFor('orphaned worker to stop', () => !alive(vm.workerPid));
  server = await serve();
  const after = JSON.parse((await hyperts('get-vm', '--json')).stdout);
  assert.deepEqual(after.map((v: { name: string; state: string }) => [v.name, v.state]), [['demo', 'Off'], ['other', 'Off']]);
  assert.equal(after[0].config.integrationServices.VSS, false, 'configuration changes survive');
  r = await hyperts('get-vmevent', 'demo');
  assert.match(r.stdout, /Running +Off +the management service restarted/);

  // A clean stop of the service turns its VMs off and records why.
  assert.equal((await hyperts('start-vm', 'demo')).code, 0);
  server.kill('SIGTERM');
  assert.equal(await new Promise((res) => server!.once('exit', res)), 0);
  server = await serve();
  r = await hyperts('get-vmevent', 'demo', '--limit', '2');
  assert.match(r.stdout, /Stopping +Off +the management service stopped/);
  assert.equal((await hyperts('remove-vm', 'demo', 'other')).code, 0);
  assert.equal((await hyperts('get-vm', '--json')).stdout.trim(), '[]');
  server.kill('SIGTERM');
  await new Promise((res) => server!.once('exit', res));
});

test('CLI: switches and adapters; External without root or with a missing interface says what to do', async () => {
  server = await serve();
  try {
    let r = await hyperts('new-vmswitch', 'lab');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Name +SwitchType +NetAdapterName +HostBridge/m);
    assert.match(r.stdout, /^lab +Private +- +-/m);
    // Naming a host adapter makes an External switch, as Hyper-V's New-VMSwitch -NetAdapterName does.
    r = await hyperts('new-vmswitch', 'uplink', '--net-adapter-name', 'nosuch-if0');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, process.getuid?.() === 0 ? /no network interface 'nosuch-if0' \(see 'ip link'/ : /needs root.*sudo hyperts serve/);
    assert.equal((await hyperts('new-vm', 'netcli')).code, 0);
    r = await hyperts('add-vmnetworkadapter', 'netcli', '--switch-name', 'lab', '--static-mac-address', '00-15-5D-01-02-03');
    assert.equal(r.code, 0, r.stderr);
    r = await hyperts('get-vmnetworkadapter', 'netcli');
    assert.match(r.stdout, /^VMName +Name +IsLegacy +MacAddress +SwitchName +Status +IPAddresses/m);
    assert.match(r.stdout, /^netcli +Network Adapter +False +00:15:5d:01:02:03 +lab/m);
    // Add-VMNetworkAdapter -IsLegacy: the emulated DEC 21140, shown with IsLegacy True.
    r = await hyperts('add-vmnetworkadapter', 'netcli', '--is-legacy', '--switch-name', 'lab');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^netcli +Legacy Network Adapter +True +00:15:5d:[0-9a-f:]{8} +lab/m);
    assert.equal((await hyperts('remove-vmnetworkadapter', 'netcli', 'Legacy Network Adapter')).code, 0);
    assert.equal((await hyperts('remove-vmnetworkadapter', 'netcli', 'Network Adapter')).code, 0);
    assert.equal((await hyperts('remove-vm', 'netcli')).code, 0);
    assert.equal((await hyperts('remove-vmswitch', 'lab')).code, 0);
  } finally {
    server.kill('SIGTERM');
    await new Promise((res) => server!.once('exit', res));
  }
});

test('bash completion: valid script that completes commands and VM names', { skip: spawnSync('bash', ['--version']).status !== 0 && 'no bash' }, async () => {
  const r = spawnSync(process.execPath, [bin, 'completion', 'bash']);
  assert.equal(r.status, 0);
  const script = r.stdout.toString();
  assert.equal(spawnSync('bash', ['-n'], { input: script }).status, 0, 'bash -n accepts it');
  const complete = (words: string[]): string[] => {
    const sh = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _hyperts; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return spawnSync('bash', ['-c', sh]).stdout.toString().split('\n').filter(Boolean);
  };
  assert.deepEqual(complete(['hyperts', 'start']), ['start-vm']);
  assert.ok(complete(['hyperts', 'stop-vm', '--t']).includes('--turn-off'));
  assert.deepEqual(complete(['hyperts', 'new-vm', 'x', '--processor', 'e']), ['emulated']);
});
