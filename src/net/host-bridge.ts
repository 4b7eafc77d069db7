/**
 * The host side of Internal and External switches: a Linux bridge per switch (iproute2's `ip`). Internal:
 * the bridge itself is the host's interface on the switch (Hyper-V's "vEthernet (NAME)"); External: the
 * bridge also enslaves a host interface, so the switch reaches that interface's network. VMs join through
 * TAP devices (tap.ts) that the management service plugs into the bridge. All of it needs root.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';

export class HostNetworkError extends Error {}

/** Linux interface names are at most 15 bytes: derived names keep a short prefix and a hash. */
export const bridgeName = (switchName: string): string => `hvbr-${hash(switchName.toLowerCase())}`;
export const tapName = (vmId: string, switchName: string): string => `hvtap-${hash(`${vmId}\0${switchName.toLowerCase()}`)}`;
const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;

export function isRoot(): boolean { return process.getuid?.() === 0; }

/** A clear refusal for anything that changes host networking without root. */
export function requireRoot(what: string): void {
  if (!isRoot()) {
    throw new HostNetworkError(`${what} needs root: it creates a Linux bridge and TAP devices on the host. ` +
      'Run the management service as root (sudo hyperts serve), or use a NAT or Private switch, which need no root');
  }
}

/** Runs `ip ARGS`; throws with ip's own message. */
export function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 20_000 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new HostNetworkError(missing ? "the 'ip' command is missing: apt-get install iproute2" : `ip ${args.join(' ')}: ${r.error.message}`);
  }
  if (r.status !== 0) throw new HostNetworkError(`ip ${args.join(' ')}: ${(r.stderr || `exit ${r.status}`).trim()}`);
  return r.stdout;
}

/**
 * What iproute2 says of interface `name` in this thread's network namespace (null: no such interface).
 * Asked through `ip`, not /sys: /sys shows the namespace it was mounted in, which need not be ours.
 */
export function linkInfo(name: string): { master: string | null; kind: string | null } | null {
  if (!IFNAME_RE.test(name)) return null;
  const r = spawnSync('ip', ['-j', '-d', 'link', 'show', 'dev', name], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new HostNetworkError((r.error as NodeJS.ErrnoException).code === 'ENOENT' ? "the 'ip' command is missing: apt-get install iproute2" : r.error.message);
  if (r.status !== 0) return null;
  try {
    const [l] = JSON.parse(r.stdout) as Array<{ master?: string; linkinfo?: { info_kind?: string } }>;
    return { master: l?.master ?? null, kind: l?.linkinfo?.info_kind ?? null };
  } catch { return null; }
}

export const interfaceExists = (name: string): boolean => linkInfo(name) !== null;

/** Checks an External switch's host interface before anything changes. */
export function checkExternalInterface(name: string, bridge: string): void {
  if (!IFNAME_RE.test(name)) throw new HostNetworkError(`'${name}' is not a network interface name (see 'ip link' for the host's interfaces)`);
  const l = linkInfo(name);
  if (!l) throw new HostNetworkError(`the host has no network interface '${name}' (see 'ip link' for the ones it has)`);
  if (name === 'lo') throw new HostNetworkError('the loopback interface cannot be bridged; name a physical or veth interface');
  if (l.kind === 'bridge') throw new HostNetworkError(`'${name}' is itself a bridge; name the physical interface instead`);
  if (l.master && l.master !== bridge) throw new HostNetworkError(`'${name}' is already part of bridge '${l.master}'; take it out first (ip link set ${name} nomaster)`);
}

/** Creates (or finds) the switch's bridge, up, with `external` enslaved. Idempotent: the service calls it at every start. */
export function ensureBridge(bridge: string, external?: string): void {
  requireRoot('an Internal or External virtual switch');
  if (external) checkExternalInterface(external, bridge);
  if (!linkInfo(bridge)) ip('link', 'add', 'name', bridge, 'type', 'bridge');
  ip('link', 'set', bridge, 'up');
  if (external) {
    if (linkInfo(external)?.master !== bridge) ip('link', 'set', external, 'master', bridge);
    ip('link', 'set', external, 'up');
  }
}

/** Deletes the bridge (an enslaved interface is released by the kernel). */
export function removeBridge(bridge: string): void {
  if (linkInfo(bridge)) ip('link', 'del', bridge);
}
