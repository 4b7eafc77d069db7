/**
 * Host capability check: can this machine run the `kvm` and `emulated` processor backends, and which
 * one does `--processor auto` pick? Split in two: `evaluateHost` is a pure decision over recorded facts
 * (unit-tested with VT-x, AMD-V, no-/dev/kvm, software-nested and 32-bit inputs); `probeHost` gathers the
 * facts from this machine (src/host/probe.ts).
 */
import type { BackendKind } from '../processor/backend.js';

export type KvmDeviceState =
  | { state: 'absent' }
  | { state: 'no-access'; error: string }
  | { state: 'error'; error: string }
  | { state: 'open' };

export interface HostFacts {
  /** Machine architecture as `uname -m` prints it (x86_64, i686, aarch64...). */
  machine: string;
  /** Flags of the first CPU in /proc/cpuinfo, or null when it could not be read. */
  cpuFlags: string[] | null;
  /** CPU vendor id from /proc/cpuinfo (GenuineIntel, AuthenticAMD...), if known. */
  cpuVendor: string | null;
  kvmDevice: KvmDeviceState;
  /** Loaded KVM modules seen under /sys/module (kvm, kvm_intel, kvm_amd, kvm_pvm...). */
  kvmModules: string[];
  /** KVM_GET_API_VERSION, when /dev/kvm opened. */
  apiVersion: number | null;
  /** KVM_CHECK_EXTENSION answer for every capability hyperts asks about (by header name). */
  capabilities: Record<string, number> | null;
  /** Measured guest speed (instructions per second), or the reason it could not be measured. */
  guestSpeed: { instructionsPerSecond: number } | { error: string } | null;
  /**
   * Whether KVM reports a real-mode triple fault as hardware does (src/processor/kvm/fault-probe.ts);
   * optional, absent in facts recorded before the probe existed.
   */
  realModeTripleFault?: { asHardware: boolean; detail: string } | null;
  /** Node.js version (the emulated backend needs only Node >= 20 on a 64-bit host). */
  nodeVersion: string;
}

export type Status = 'ok' | 'missing' | 'warn' | 'info';
export interface CheckItem { name: string; status: Status; detail: string }
export interface BackendVerdict { usable: boolean; reasons: string[] }
export interface CheckReport {
  items: CheckItem[];
  backends: Record<BackendKind, BackendVerdict>;
  /** What `run --processor auto` uses. */
  choice: BackendKind | null;
  why: string;
}

/** Capabilities the kvm backend requires (must match REQUIRED_CAPS in src/processor/kvm/processor.ts). */
export const NEEDED_CAPS = [
  'KVM_CAP_USER_MEMORY', 'KVM_CAP_SET_TSS_ADDR', 'KVM_CAP_EXT_CPUID', 'KVM_CAP_IRQCHIP', 'KVM_CAP_HLT',
  'KVM_CAP_SIGNAL_MSI', 'KVM_CAP_IMMEDIATE_EXIT', 'KVM_CAP_X86_USER_SPACE_MSR', 'KVM_CAP_X86_MSR_FILTER',
  'KVM_CAP_VCPU_EVENTS', 'KVM_CAP_MP_STATE',
] as const;
export const USEFUL_CAPS = [
  'KVM_CAP_XSAVE', 'KVM_CAP_XCRS', 'KVM_CAP_IRQFD', 'KVM_CAP_IOEVENTFD', 'KVM_CAP_GET_TSC_KHZ', 'KVM_CAP_TSC_CONTROL',
  'KVM_CAP_SET_IDENTITY_MAP_ADDR', 'KVM_CAP_NR_VCPUS', 'KVM_CAP_MAX_VCPUS',
] as const;

/**
 * Below this measured speed KVM is not worth it for real guests: hardware VT-x/AMD-V runs a simple loop
 * at billions of instructions per second, software-assisted nested KVM (kvm_pvm) at about a million,
 * which the emulated backend beats.
 */
export const MIN_KVM_INSTRUCTIONS_PER_SECOND = 100e6;
export const KVM_API_VERSION = 12;

const X86_64 = new Set(['x86_64', 'amd64', 'x64']);
const X86_32 = new Set(['i386', 'i486', 'i586', 'i686', 'x86', 'ia32']);

function fmtSpeed(ips: number): string {
  if (ips >= 1e9) return `${(ips / 1e9).toFixed(2)} G instructions/s`;
  if (ips >= 1e6) return `${(ips / 1e6).toFixed(1)} M instructions/s`;
  return `${Math.round(ips / 1e3)} k instructions/s`;
}

export function evaluateHost(f: HostFacts): CheckReport {
  const items: CheckItem[] = [];
  const kvmWhyNot: string[] = [];
  const emuWhyNot: string[] = [];
  const flags = new Set(f.cpuFlags ?? []);
  const flagsKnown = f.cpuFlags !== null;
  const is64 = X86_64.has(f.machine);
  const is32 = X86_32.has(f.machine);

  // Architecture.
  if (is64) items.push({ name: 'x86-64 host', status: 'ok', detail: f.machine });
  else if (is32) {
    items.push({ name: 'x86-64 host', status: 'missing', detail: `${f.machine}: a 32-bit kernel` });
    kvmWhyNot.push(`this is a 32-bit ${f.machine} kernel: KVM on a 32-bit host cannot run 64-bit guests, and hyperts' guests are x86-64`);
    emuWhyNot.push(`a 32-bit host cannot run hyperts (it needs a 64-bit Node.js for guest memory above 2 GiB); use an x86-64 kernel and Node`);
  } else {
    items.push({ name: 'x86-64 host', status: 'missing', detail: `${f.machine} is not x86` });
    kvmWhyNot.push(`${f.machine} is not x86: KVM here runs only guests of this architecture, not x86-64`);
  }
  const nodeMajor = Number(/^v?(\d+)/.exec(f.nodeVersion)?.[1] ?? 0);
  if (nodeMajor < 20) emuWhyNot.push(`Node.js ${f.nodeVersion} is too old (hyperts needs Node 20 or newer)`);

  // CPU features.
  if (!flagsKnown) {
    items.push({ name: 'CPU flags', status: 'warn', detail: '/proc/cpuinfo could not be read' });
  } else {
    items.push({ name: 'Long mode (lm)', status: flags.has('lm') ? 'ok' : 'missing', detail: flags.has('lm') ? 'present' : 'the CPU cannot run 64-bit code' });
    if (!flags.has('lm') && is64) kvmWhyNot.push('the CPU reports no long mode');
    items.push({ name: 'NX / DEP', status: flags.has('nx') ? 'ok' : 'missing', detail: flags.has('nx') ? 'present' : 'no-execute pages not supported' });
    const vmx = flags.has('vmx');
    const svm = flags.has('svm');
    const vt = vmx ? 'VT-x (vmx)' : svm ? 'AMD-V (svm)' : null;
    items.push({ name: 'Hardware virtualization', status: vt ? 'ok' : 'missing', detail: vt ?? 'no vmx or svm flag: the CPU (or the hypervisor below this machine) does not expose VT-x/AMD-V' });
    const slat = vmx ? flags.has('ept') : svm ? flags.has('npt') : false;
    if (vt) items.push({ name: 'Second-level address translation', status: slat ? 'ok' : 'warn', detail: slat ? (vmx ? 'EPT' : 'NPT') : 'no EPT/NPT: KVM falls back to shadow paging (slow)' });
    items.push({ name: 'Running under a hypervisor', status: 'info', detail: flags.has('hypervisor') ? 'yes (nested virtualization needed for KVM)' : 'no (bare metal)' });
    if (!vt && f.kvmDevice.state === 'absent') {
      kvmWhyNot.push('the CPU flags show neither vmx nor svm, so this host has no hardware virtualization' +
        (flags.has('hypervisor') ? ' (it is itself a virtual machine whose hypervisor does not offer nested virtualization)' : ' (or it is disabled in the firmware setup)'));
    }
  }

  // /dev/kvm.
  const dev = f.kvmDevice;
  const mods = f.kvmModules.filter((m) => m !== 'kvm');
  items.push({ name: 'KVM module', status: mods.length ? 'info' : f.kvmModules.length ? 'info' : 'info', detail: f.kvmModules.length ? f.kvmModules.join(', ') : 'none loaded' });
  const software = mods.some((m) => m === 'kvm_pvm');
  switch (dev.state) {
    case 'absent':
      items.push({ name: '/dev/kvm', status: 'missing', detail: 'not present' });
      if (!kvmWhyNot.length) kvmWhyNot.push('/dev/kvm does not exist (load kvm_intel or kvm_amd: modprobe kvm_intel / kvm_amd)');
      else kvmWhyNot.push('/dev/kvm does not exist');
      break;
    case 'no-access':
      items.push({ name: '/dev/kvm', status: 'missing', detail: `present but not usable: ${dev.error}` });
      kvmWhyNot.push(`/dev/kvm cannot be opened (${dev.error}): add your user to the 'kvm' group (sudo usermod -aG kvm $USER, then log in again)`);
      break;
    case 'error':
      items.push({ name: '/dev/kvm', status: 'missing', detail: dev.error });
      kvmWhyNot.push(`/dev/kvm: ${dev.error}`);
      break;
    case 'open':
      items.push({ name: '/dev/kvm', status: 'ok', detail: 'opens read-write' });
      break;
  }
  if (dev.state === 'open') {
    if (f.apiVersion !== null) {
      const ok = f.apiVersion === KVM_API_VERSION;
      items.push({ name: 'KVM API version', status: ok ? 'ok' : 'missing', detail: String(f.apiVersion) });
      if (!ok) kvmWhyNot.push(`KVM API version ${f.apiVersion} (hyperts needs ${KVM_API_VERSION})`);
    }
    const caps = f.capabilities ?? {};
    const missing: string[] = [];
    for (const n of NEEDED_CAPS) {
      const v = caps[n] ?? 0;
      items.push({ name: n, status: v ? 'ok' : 'missing', detail: v ? `yes (${v})` : 'no' });
      if (!v) missing.push(n);
    }
    for (const n of USEFUL_CAPS) {
      const v = caps[n] ?? 0;
      items.push({ name: n, status: v ? 'ok' : 'info', detail: v ? `yes (${v})` : 'no (optional)' });
    }
    if (missing.length) kvmWhyNot.push(`KVM lacks ${missing.join(', ')} (a newer host kernel has them)`);
    const gs = f.guestSpeed;
    if (gs === null) {
      items.push({ name: 'Guest speed', status: 'warn', detail: 'not measured' });
    } else if ('error' in gs) {
      items.push({ name: 'Guest speed', status: 'missing', detail: `a test guest did not run: ${gs.error}` });
      kvmWhyNot.push(`a test guest did not run on KVM: ${gs.error}`);
    } else {
      const fast = gs.instructionsPerSecond >= MIN_KVM_INSTRUCTIONS_PER_SECOND;
      items.push({ name: 'Guest speed', status: fast ? 'ok' : 'warn', detail: `${fmtSpeed(gs.instructionsPerSecond)} in a test loop` });
      if (!fast) {
        kvmWhyNot.push(`KVM works but runs guest code at only ${fmtSpeed(gs.instructionsPerSecond)}` +
          `${software ? ' (kvm_pvm: software-assisted nested KVM)' : ''}, below the ${fmtSpeed(MIN_KVM_INSTRUCTIONS_PER_SECOND)} a real guest needs`);
      }
    }
  }

  const tf = f.realModeTripleFault;
  if (dev.state === 'open' && tf) {
    items.push({ name: 'Real-mode triple fault', status: tf.asHardware ? 'ok' : 'warn', detail: tf.asHardware ? 'reported as on VT-x/AMD-V (KVM_EXIT_SHUTDOWN)' : tf.detail });
  }

  const kvmUsable = kvmWhyNot.length === 0 && dev.state === 'open';
  const emuUsable = emuWhyNot.length === 0;
  const backends: Record<BackendKind, BackendVerdict> = {
    kvm: { usable: kvmUsable, reasons: kvmUsable ? ['hardware virtualization through /dev/kvm with every capability hyperts needs'] : kvmWhyNot },
    emulated: { usable: emuUsable, reasons: emuUsable ? ['hyperts\' own x86-64 processor needs only Node.js on a 64-bit host'] : emuWhyNot },
  };
  let choice: BackendKind | null = null;
  let why: string;
  if (kvmUsable) {
    choice = 'kvm';
    const gs = f.guestSpeed as { instructionsPerSecond: number } | null;
    why = `KVM is usable${gs ? ` and fast (${fmtSpeed(gs.instructionsPerSecond)})` : ''}`;
  } else if (emuUsable) {
    choice = 'emulated';
    why = `kvm cannot be used: ${kvmWhyNot[0] ?? 'unknown'}`;
  } else {
    why = `no backend can run here: ${emuWhyNot[0]}`;
  }
  return { items, backends, choice, why };
}
