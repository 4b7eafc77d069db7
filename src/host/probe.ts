/**
 * Gathers HostFacts from this machine: /proc/cpuinfo, uname, /sys/module, /dev/kvm (API version,
 * capabilities) and a measured guest loop. All failure paths become facts, never exceptions.
 */
import { readFileSync, existsSync, accessSync, constants } from 'node:fs';
import { machine } from 'node:os';
import type { BackendKind } from '../processor/backend.js';
import type { KvmSystem } from '../processor/kvm/kvm.js';
import { evaluateHost, NEEDED_CAPS, USEFUL_CAPS, type HostFacts, type KvmDeviceState } from './check.js';

export const KVM_MODULES = ['kvm', 'kvm_intel', 'kvm_amd', 'kvm_pvm', 'kvm_hv'];

/** Flags of the first CPU (merged with its "vmx flags" line, where newer kernels list EPT). */
export function parseCpuinfo(text: string): { flags: string[]; vendor: string | null } {
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const flags = new Set<string>();
  let vendor: string | null = null;
  for (const line of first.split('\n')) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1].trim();
    if (key === 'flags' || key === 'vmx flags' || key === 'svm flags') for (const f of m[2].split(/\s+/)) if (f) flags.add(f);
    if (key === 'vendor_id') vendor = m[2].trim();
  }
  return { flags: [...flags], vendor };
}

export interface ProbeOptions {
  devicePath?: string;
  /** An open /dev/kvm to probe instead of the path (a sandboxed worker's, handed in by the service). */
  deviceFd?: number;
  measureSpeed?: boolean;
}

export async function probeHost(opts: ProbeOptions = {}): Promise<HostFacts> {
  const path = opts.devicePath ?? '/dev/kvm';
  let cpuFlags: string[] | null = null;
  let cpuVendor: string | null = null;
  try {
    const p = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
    cpuFlags = p.flags;
    cpuVendor = p.vendor;
  } catch { /* reported as unknown */ }
  const kvmModules = KVM_MODULES.filter((m) => existsSync(`/sys/module/${m}`));
  const facts: HostFacts = {
    machine: machine(), cpuFlags, cpuVendor, kvmDevice: { state: 'absent' }, kvmModules,
    apiVersion: null, capabilities: null, guestSpeed: null, nodeVersion: process.version,
  };
  if (opts.deviceFd === undefined) {
    if (!existsSync(path)) return facts;
    try { accessSync(path, constants.R_OK | constants.W_OK); } catch (e) {
      facts.kvmDevice = { state: 'no-access', error: (e as NodeJS.ErrnoException).code ?? String(e) };
      return facts;
    }
  }
  let kvm: typeof import('../processor/kvm/kvm.js');
  try {
    kvm = await import('../processor/kvm/kvm.js');
  } catch (e) {
    facts.kvmDevice = { state: 'error', error: `cannot load the KVM bindings: ${(e as Error).message}` };
    return facts;
  }
  let sys: KvmSystem;
  try {
    sys = opts.deviceFd !== undefined ? kvm.KvmSystem.fromFd(opts.deviceFd) : kvm.KvmSystem.open(path);
  } catch (e) {
    const msg = (e as Error).message;
    facts.kvmDevice = /EACCES|EPERM/.test(msg) ? { state: 'no-access', error: msg } : { state: 'error', error: msg } as KvmDeviceState;
    return facts;
  }
  try {
    facts.kvmDevice = { state: 'open' };
    facts.apiVersion = sys.apiVersion();
    const caps: Record<string, number> = {};
    for (const n of [...NEEDED_CAPS, ...USEFUL_CAPS]) caps[n] = sys.checkExtension(n);
    facts.capabilities = caps;
    if (opts.measureSpeed !== false) {
      try {
        const { measureGuestSpeed } = await import('../processor/kvm/speed-probe.js');
        facts.guestSpeed = { instructionsPerSecond: measureGuestSpeed(sys).instructionsPerSecond };
      } catch (e) {
        facts.guestSpeed = { error: (e as Error).message };
      }
      try {
        const { probeRealModeTripleFault } = await import('../processor/kvm/fault-probe.js');
        const p = probeRealModeTripleFault(sys);
        facts.realModeTripleFault = p.kind === 'shutdown' ? { asHardware: true, detail: 'KVM_EXIT_SHUTDOWN' } : { asHardware: false, detail: p.detail };
      } catch (e) {
        facts.realModeTripleFault = { asHardware: false, detail: `the probe guest did not run: ${(e as Error).message}` };
      }
    }
  } finally {
    sys.close();
  }
  return facts;
}

/**
 * The backend `run --processor auto` uses: kvm where /dev/kvm has every needed capability and runs a
 * test guest fast, otherwise emulated. Pass recorded facts to decide without probing.
 */
export async function chooseBackend(facts?: HostFacts): Promise<{ kind: BackendKind; reason: string }> {
  const r = evaluateHost(facts ?? await probeHost());
  if (r.choice === null) throw new Error(r.why);
  return { kind: r.choice, reason: r.why };
}
