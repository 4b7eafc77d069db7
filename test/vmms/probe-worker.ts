/**
 * A stand-in VM worker for the sandbox tests: it speaks the worker protocol, and instead of running a guest it
 * tries what a compromised worker would try (read the API token, another VM's files, /etc/shadow; open sockets;
 * write outside its folder) and reports each outcome. Console input "hog" makes it eat memory until stopped.
 * The targets come in through the VM's command line (JSON), as the service passes it to every worker.
 */
import { closeSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { FromWorker, ToWorker, WorkerStartConfig } from '../../src/vmms/worker-protocol.js';
import { KvmSystem } from '../../src/processor/kvm/kvm.js';

export interface ProbeTargets { token: string; otherVmDir: string; serviceSocket: string; dataDir: string; outsideDir: string }
export type ProbeReport = Record<string, string>;

const send = (m: FromWorker): void => { process.send!(m); };
const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

function attempt(fn: () => void): string { try { fn(); return 'ALLOWED'; } catch (e) { return errCode(e); } }

function tryConnect(opts: { port: number; host: string } | { path: string }): Promise<string> {
  return new Promise((resolve) => {
    let s;
    try { s = connect(opts as never); } catch (e) { resolve(errCode(e)); return; }
    s.once('connect', () => { s.destroy(); resolve('ALLOWED'); });
    s.once('error', (e) => resolve(errCode(e)));
  });
}

function tryListen(): Promise<string> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e) => resolve(errCode(e)));
    try { srv.listen(0, '127.0.0.1', () => { srv.close(); resolve('ALLOWED'); }); } catch (e) { resolve(errCode(e)); }
  });
}

function tryUdp(): Promise<string> {
  return new Promise((resolve) => {
    let s;
    try { s = createSocket('udp4'); } catch (e) { resolve(errCode(e)); return; }
    s.once('error', (e) => resolve(errCode(e)));
    s.send('x', 9, '127.0.0.1', (e) => { s.close(); resolve(e ? errCode(e) : 'ALLOWED'); });
  });
}

async function probe(t: ProbeTargets, c: WorkerStartConfig): Promise<ProbeReport> {
  const r: ProbeReport = {};
  // KVM: the device node (absent in the sandbox), and the descriptor the service hands a KVM VM's worker.
  // Its kernel, bound by bubblewrap from the descriptor the service opened and checked.
  r.readKernel = attempt(() => { if (readFileSync(c.kernel).length === 0) throw new Error('empty'); });
  r.readInitrd = c.initrd ? attempt(() => { if (readFileSync(c.initrd!).toString() !== 'an initrd') throw new Error('wrong content'); }) : 'none';
  r.openDevKvm = attempt(() => closeSync(openSync('/dev/kvm', 'r+')));
  r.kvmFd = c.kvmDeviceFd === undefined ? 'none' : (() => { try { return `api ${KvmSystem.fromFd(c.kvmDeviceFd).apiVersion()}`; } catch (e) { return (e as Error).message; } })();
  r.readToken = attempt(() => readFileSync(t.token));
  r.listOtherVm = attempt(() => readdirSync(t.otherVmDir));
  r.readShadow = attempt(() => readFileSync('/etc/shadow'));
  r.readInventory = attempt(() => readFileSync(join(t.dataDir, 'inventory.sqlite')));
  r.tcpLoopback = await tryConnect({ port: 22, host: '127.0.0.1' });
  r.unixServiceSocket = await tryConnect({ path: t.serviceSocket });
  r.listen = await tryListen();
  r.udp = await tryUdp();
  r.writeOwnFolder = attempt(() => writeFileSync(join(process.cwd(), 'probe.txt'), 'x'));
  r.writeDataDir = attempt(() => writeFileSync(join(t.dataDir, 'planted'), 'x'));
  r.writeOutside = attempt(() => writeFileSync(join(t.outsideDir, 'planted'), 'x'));
  r.writeTmp = attempt(() => writeFileSync('/tmp/hyperts-probe-planted', 'x'));
  r.openKvmOrMem = attempt(() => closeSync(openSync('/dev/mem', 'r')));
  r.uid = String(process.getuid?.());
  const status = readFileSync('/proc/self/status', 'utf8');
  for (const k of ['CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp']) r[k] = /^(\w+):\s*(\S+)/m.exec(status.slice(status.indexOf(`${k}:`)))?.[2] ?? '?';
  return r;
}

let hog: Buffer[] = [];
const kids: ChildProcess[] = [];

/** Starts sleepers until one fails (the pids limit) or 400 run; reports how many and the error. */
async function forkBomb(): Promise<void> {
  let err = 'none';
  for (let i = 0; i < 400 && err === 'none'; i++) {
    err = await new Promise<string>((resolve) => {
      let c: ChildProcess;
      try { c = spawn('/usr/bin/sleep', ['60'], { stdio: 'ignore' }); } catch (e) { resolve(errCode(e)); return; }
      c.once('spawn', () => { kids.push(c); resolve('none'); });
      c.once('error', (e) => resolve(errCode(e)));
    });
  }
  send({ t: 'log', message: `forks ${JSON.stringify({ started: kids.length, error: err })}` });
  for (const k of kids.splice(0)) k.kill('SIGKILL');
}
process.on('message', (m: ToWorker) => {
  if (m.t === 'start') {
    let targets: ProbeTargets;
    try { targets = JSON.parse(m.config.cmdline) as ProbeTargets; } catch { send({ t: 'started', backend: 'probe' }); return; }
    probe(targets, m.config).then((r) => { send({ t: 'log', message: `probe ${JSON.stringify(r)}` }); send({ t: 'started', backend: 'probe' }); },
      (e: unknown) => send({ t: 'failed', error: String(e) }));
  } else if (m.t === 'console' && Buffer.from(m.data).toString() === 'forks') {
    void forkBomb();
  } else if (m.t === 'console' && Buffer.from(m.data).toString() === 'hog') {
    // Touch every page, so the memory is really charged to the worker's cgroup.
    const eat = (): void => { for (let i = 0; i < 8; i++) hog.push(Buffer.alloc(16 << 20, 1)); send({ t: 'log', message: `hog ${hog.length * 16} MB` }); setImmediate(eat); };
    eat();
  } else if (m.t === 'req' && m.req.op === 'turnOff') {
    hog = [];
    process.send!({ t: 'exit', code: 0, reason: m.req.reason } satisfies FromWorker, () => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
