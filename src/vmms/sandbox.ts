/**
 * The VM worker's sandbox (Firecracker's jailer, crosvm's minijail), with bubblewrap: no network, a read-only
 * root holding only /usr, the application and the files the VM needs (its kernel and initrd bound from
 * descriptors the service checked, its disks and ISOs bound one by one), its own VM folder the only writable place, no capabilities, no new user namespaces, a seccomp
 * filter, and memory and process limits in a cgroup of its own (v1 or v2, under the service's cgroup).
 * The Node IPC channel to the service (fd 3) and the file channel (fd 5: files the service hands over later as
 * descriptors, fd-passing.ts) pass through.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { seccompProgram } from './seccomp.js';
import { WORKER_NODE_FLAGS } from './worker-flags.js';

export const BWRAP = '/usr/bin/bwrap';
export const SETPRIV = '/usr/bin/setpriv';
/** The worker's user when the service runs as root: nobody. */
export const WORKER_UID = 65534;

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface SandboxSpec {
  /** The worker module to run. */
  workerPath: string;
  /** The VM's own folder: the only writable place. */
  vmDir: string;
  /** Files the VM reads (differencing parents, ISOs), bound read-only at the same paths. */
  readOnly: string[];
  /**
   * Files bound read-only from open descriptors (kernel, initrd): the caller opened and checked each one and places
   * it at `fdIndex` in the child's descriptor table, so no path swapped in after the check is bound instead.
   */
  readOnlyFds?: { fdIndex: number; dest: string }[];
  /** Files the VM writes (virtual disks), bound read-write at the same paths. */
  readWrite: string[];
  /** Device nodes (/dev/kvm). */
  devices: string[];
  /** Memory of the whole worker (guest memory plus the emulator's own). */
  memoryLimitBytes: number;
  /** Processes and threads of the worker. */
  pidsLimit: number;
  /**
   * Run the worker as this uid/gid (a root service: nobody). Bubblewrap then runs as root without a user
   * namespace, so it can bind paths only root can reach, and setpriv inside the sandbox drops to the uid (and
   * with it every capability) just before Node starts. The VM folder and bound files must be usable by the uid.
   */
  uid?: number;
}

export interface IsolationSupport {
  available: boolean;
  /** Why not, or what is missing (limits without cgroups, for instance). */
  notes: string[];
  memoryLimit: 'cgroup-v1' | 'cgroup-v2' | null;
  pidsLimit: 'cgroup-v1' | 'cgroup-v2' | null;
  /** A root service can run workers as nobody (setpriv + unprivileged bubblewrap). */
  unprivilegedUser: boolean;
}

let cached: IsolationSupport | null = null;

/** Whether bubblewrap can sandbox a worker here, and which limits the cgroups allow (cached: `hyperts check`, the service). */
export function isolationSupport(refresh = false): IsolationSupport {
  if (cached && !refresh) return cached;
  const notes: string[] = [];
  let available = false;
  if (!existsSync(BWRAP)) notes.push(`bubblewrap is not installed (${BWRAP}): apt-get install bubblewrap`);
  else {
    const r = spawnSync(BWRAP, ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--cap-drop', 'ALL',
      ...systemBinds(), '--proc', '/proc', '--dev', '/dev', '--remount-ro', '/', process.execPath, '-e', 'process.exit(7)'], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 7) available = true;
    else notes.push(`bubblewrap cannot create a sandbox here: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()} (user namespaces disabled? sysctl kernel.unprivileged_userns_clone=1)`);
  }
  let unprivilegedUser = false;
  if (available && process.getuid?.() === 0 && existsSync(SETPRIV)) {
    const r = spawnSync(BWRAP, [...namespaceArgs(WORKER_UID), ...systemBinds(), '--proc', '/proc', '--dev', '/dev', '--remount-ro', '/',
      SETPRIV, ...dropArgs(WORKER_UID), process.execPath, '-e', `process.exit(process.getuid() === ${WORKER_UID} ? 7 : 1)`], { encoding: 'utf8', timeout: 20_000 });
    if (r.status === 7) unprivilegedUser = true;
    else notes.push(`workers keep the service's uid: bubblewrap as nobody failed (${(r.stderr || `exit ${r.status}`).trim()})`);
  }
  const mem = cgroupDir('memory');
  const pids = cgroupDir('pids');
  if (!mem) notes.push('no writable memory cgroup: the worker\'s memory is not limited');
  if (!pids) notes.push('no writable pids cgroup: the worker\'s processes are not limited');
  cached = { available, notes, memoryLimit: mem?.version ?? null, pidsLimit: pids?.version ?? null, unprivilegedUser };
  return cached;
}

/** /usr and the merged-/usr links, the dynamic loader's cache, the node binary and the application. */
function systemBinds(): string[] {
  const a = ['--ro-bind', '/usr', '/usr', '--perms', '0755', '--dir', '/etc'];
  for (const d of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    let st;
    try { st = lstatSync(d); } catch { continue; }
    if (st.isSymbolicLink()) a.push('--symlink', readlinkSync(d), d);
    else if (st.isDirectory()) a.push('--ro-bind', d, d);
  }
  if (existsSync('/etc/ld.so.cache')) a.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache');
  const node = realpathSync(process.execPath);
  if (!node.startsWith('/usr/')) a.push('--ro-bind', dirname(node), dirname(node));
  return a;
}

const dropArgs = (uid: number): string[] => [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs'];

/**
 * Namespaces and capabilities. As the service's own user: a user namespace (no nested ones), no capabilities.
 * Dropping to `uid` (root service): no user namespace, only CAP_SETUID/SETGID kept for setpriv, which gives
 * them up with the uid change.
 */
function namespaceArgs(uid?: number): string[] {
  const common = ['--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try', '--die-with-parent', '--new-session'];
  return uid === undefined
    ? [...common, '--unshare-user', '--disable-userns', '--cap-drop', 'ALL']
    : [...common, '--cap-drop', 'ALL', '--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--cap-add', 'CAP_SETPCAP'];
}

/** Bind mounts, with their parent folders made first as 0755 (bubblewrap as root makes them 0700, closed to the worker's uid). */
class Binds {
  readonly args: string[] = [];
  private readonly made = new Set<string>(['/']);
  add(kind: 'ro' | 'rw', src: string, dest = src): void {
    for (const d of this.parents(dest)) { this.args.push('--perms', '0755', '--dir', d); this.made.add(d); }
    this.args.push(kind === 'ro' ? '--ro-bind' : '--bind', src, dest);
  }
  addFd(fdIndex: number, dest: string): void {
    for (const d of this.parents(dest)) { this.args.push('--perms', '0755', '--dir', d); this.made.add(d); }
    this.args.push('--ro-bind-fd', String(fdIndex), dest);
  }
  private parents(dest: string): string[] {
    const parents: string[] = [];
    for (let d = dirname(dest); !this.made.has(d); d = dirname(d)) parents.unshift(d);
    return parents;
  }
}

/** The compiled application (dist/), package.json (ESM) and node_modules, wherever they really are. */
function appBinds(b: Binds): void {
  const dist = join(repoRoot, 'dist');
  b.add('ro', dist);
  const pkg = join(repoRoot, 'package.json');
  if (existsSync(pkg)) b.add('ro', pkg);
  const nm = join(repoRoot, 'node_modules');
  try {
    const st = lstatSync(nm);
    if (st.isSymbolicLink()) { const real = realpathSync(nm); b.add('ro', real); b.args.push('--symlink', real, nm); }
    else b.add('ro', nm);
  } catch { /* no dependencies */ }
}

// ---- cgroups ----------------------------------------------------------------------------------------------

interface CgroupBase { version: 'cgroup-v1' | 'cgroup-v2'; dir: string }

/** A folder in which this process may create child cgroups for `controller`, under its own cgroup. */
function cgroupDir(controller: 'memory' | 'pids'): CgroupBase | null {
  let lines: string[];
  try { lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n'); } catch { return null; }
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes(controller));
  const tryDir = (version: CgroupBase['version'], dir: string): CgroupBase | null => {
    const probe = join(dir, `hyperts-probe-${process.pid}`);
    try { mkdirSync(probe); rmdirSync(probe); return { version, dir }; } catch { return null; }
  };
  if (v1) {
    const base = `/sys/fs/cgroup/${controller}`;
    if (existsSync(join(base, 'cgroup.procs'))) return tryDir('cgroup-v1', join(base, v1[2]));
  }
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2) {
    for (const mount of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
      const dir = join(mount, v2.slice(3));
      let ctl = '';
      try { ctl = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8'); } catch { continue; }
      if (ctl.split(/\s+/).includes(controller)) return tryDir('cgroup-v2', dir);
    }
  }
  return null;
}

interface Cgroup { procs: string; dir: string; version: CgroupBase['version'] }

function makeCgroup(controller: 'memory' | 'pids', name: string, limit: number): Cgroup | null {
  const base = cgroupDir(controller);
  if (!base) return null;
  const dir = join(base.dir, name);
  try {
    mkdirSync(dir);
    if (base.version === 'cgroup-v1') {
      if (controller === 'memory') {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limit));
        // With swap accounting, memory+swap gets the same limit: a hog cannot spill into swap.
        try { writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limit)); } catch { /* no swap accounting */ }
      } else writeFileSync(join(dir, 'pids.max'), String(limit));
    } else {
      writeFileSync(join(dir, controller === 'memory' ? 'memory.max' : 'pids.max'), String(limit));
      if (controller === 'memory') try { writeFileSync(join(dir, 'memory.swap.max'), '0'); } catch { /* no swap controller */ }
    }
    return { procs: join(dir, 'cgroup.procs'), dir, version: base.version };
  } catch {
    try { rmdirSync(dir); } catch { /* not created */ }
    return null;
  }
}

/** Whether the kernel's OOM killer struck in a memory cgroup. */
function oomKilled(c: Cgroup): boolean {
  try {
    const f = c.version === 'cgroup-v1' ? 'memory.oom_control' : 'memory.events';
    const m = /oom_kill (\d+)/.exec(readFileSync(join(c.dir, f), 'utf8'));
    return !!m && Number(m[1]) > 0;
  } catch { return false; }
}

// ---- the command ------------------------------------------------------------------------------------------

export interface SandboxLaunch {
  command: string;
  args: string[];
  /** Extra descriptors for spawn's stdio, from index 4 on (the seccomp program). Close them after spawn. */
  fds: number[];
  /** What the sandbox lacks (limits without cgroups), for the VM's event log. */
  notes: string[];
  /** After the worker ended: removes its cgroups; says whether the memory limit killed it. */
  cleanup: () => { oomKilled: boolean };
}

/**
 * The command that runs `spec.workerPath` in a sandbox. A small shell enters the worker's cgroups first, so
 * nothing of the worker ever runs outside its limits, then becomes bubblewrap.
 */
export function sandboxCommand(spec: SandboxSpec, name: string): SandboxLaunch {
  const notes: string[] = [];
  const cgName = `hyperts-${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${randomBytes(4).toString('hex')}`;
  const mem = makeCgroup('memory', cgName, spec.memoryLimitBytes);
  const pids = makeCgroup('pids', cgName, spec.pidsLimit);
  // Without a memory cgroup, RLIMIT_DATA (private writable memory, which is where Node puts guest RAM and its
  // heap) caps the worker: allocations past it fail instead of the kernel killing the process.
  if (!mem) notes.push('memory limited by RLIMIT_DATA only (no writable memory cgroup)');
  // RLIMIT_NPROC counts every process of the user, not the worker's: no fallback.
  if (!pids) notes.push('processes not limited (no writable pids cgroup)');

  // The seccomp program goes in through a descriptor (bwrap --seccomp FD), from a file unlinked at once.
  const tmp = mkdtempSync(join(tmpdir(), 'hyperts-seccomp-'));
  const file = join(tmp, 'filter.bpf');
  writeFileSync(file, seccompProgram(), { mode: 0o600 });
  const seccompFd = openSync(file, 'r');
  rmSync(tmp, { recursive: true, force: true });

  const fds = [seccompFd];
  const binds = new Binds();
  appBinds(binds);
  for (const f of spec.readOnly) binds.add('ro', f);
  for (const f of spec.readOnlyFds ?? []) binds.addFd(f.fdIndex, f.dest);
  for (const f of spec.readWrite) binds.add('rw', f);
  binds.add('rw', spec.vmDir);
  const bw: string[] = [
    ...namespaceArgs(spec.uid),
    '--clearenv', '--setenv', 'NODE_CHANNEL_FD', '3', '--setenv', 'NODE_CHANNEL_SERIALIZATION_MODE', 'advanced',
    '--setenv', 'PATH', '/usr/bin', '--setenv', 'HOME', spec.vmDir,
    ...systemBinds(), '--proc', '/proc', '--dev', '/dev',
  ];
  for (const d of spec.devices) bw.push('--dev-bind', d, d);
  bw.push(...binds.args, '--seccomp', '4', '--remount-ro', '/', '--chdir', spec.vmDir);
  if (spec.uid !== undefined) bw.push(SETPRIV, ...dropArgs(spec.uid));
  bw.push(process.execPath, ...WORKER_NODE_FLAGS, spec.workerPath);
  const enter = [mem, pids].filter((c): c is Cgroup => c !== null).map((c) => c.procs);
  const rlimit = mem ? '' : `ulimit -d ${Math.ceil(spec.memoryLimitBytes / 1024)} || exit 125; `;
  const script = `${rlimit}${enter.map((_, i) => `echo $$ > "$${i + 1}" || exit 125; `).join('')}shift ${enter.length}; exec "$@"`;
  return {
    command: '/bin/sh', args: ['-c', script, 'hyperts-sandbox', ...enter, BWRAP, ...bw], fds, notes,
    cleanup: () => {
      const oom = mem ? oomKilled(mem) : false;
      for (const c of [mem, pids]) if (c) try { rmdirSync(c.dir); } catch { /* a straggler process; the kernel frees it later */ }
      return { oomKilled: oom };
    },
  };
}

export function closeFds(fds: number[]): void { for (const fd of fds) try { closeSync(fd); } catch { /* closed */ } }
