/** The host check's decision logic over recorded host facts, and the /proc/cpuinfo parser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateHost, NEEDED_CAPS, USEFUL_CAPS, MIN_KVM_INSTRUCTIONS_PER_SECOND, type HostFacts } from '../../src/host/check.js';
import { parseCpuinfo, chooseBackend, probeHost } from '../../src/host/probe.js';

const BASE_FLAGS = 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic popcnt aes xsave avx f16c rdrand lahf_lm abm';

/** Recorded /proc/cpuinfo first-CPU blocks. */
const CPUINFO_INTEL = `processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nflags\t\t: ${BASE_FLAGS} vmx tpr_shadow vnmi flexpriority ept vpid ept_ad\nvmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb flexpriority apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple shadow_vmcs\n\nprocessor\t: 1\nflags\t\t: other\n`;
const CPUINFO_AMD = `processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\nflags\t\t: ${BASE_FLAGS} svm extapic cr8_legacy npt lbrv svm_lock nrip_save tsc_scale vmcb_clean decodeassists\n`;
const CPUINFO_NESTED_NO_VT = `processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: ${BASE_FLAGS} hypervisor\n`;

const allCaps = (): Record<string, number> => Object.fromEntries([...NEEDED_CAPS, ...USEFUL_CAPS].map((n) => [n, 1]));

function facts(over: Partial<HostFacts>): HostFacts {
  return {
    machine: 'x86_64', cpuFlags: BASE_FLAGS.split(' '), cpuVendor: null, kvmDevice: { state: 'absent' }, kvmModules: [],
    apiVersion: null, capabilities: null, guestSpeed: null, nodeVersion: 'v20.19.0', ...over,
  };
}

const vtxHost = facts({
  cpuFlags: parseCpuinfo(CPUINFO_INTEL).flags, cpuVendor: 'GenuineIntel', kvmDevice: { state: 'open' },
  kvmModules: ['kvm', 'kvm_intel'], apiVersion: 12, capabilities: allCaps(), guestSpeed: { instructionsPerSecond: 2.9e9 },
});
const amdHost = facts({
  cpuFlags: parseCpuinfo(CPUINFO_AMD).flags, cpuVendor: 'AuthenticAMD', kvmDevice: { state: 'open' },
  kvmModules: ['kvm', 'kvm_amd'], apiVersion: 12, capabilities: allCaps(), guestSpeed: { instructionsPerSecond: 3.4e9 },
});
const noKvmHost = facts({ cpuFlags: parseCpuinfo(CPUINFO_NESTED_NO_VT).flags, cpuVendor: 'AuthenticAMD' });
const pvmHost = facts({
  cpuFlags: parseCpuinfo(CPUINFO_NESTED_NO_VT).flags, kvmDevice: { state: 'open' }, kvmModules: ['kvm', 'kvm_pvm'],
  apiVersion: 12, capabilities: allCaps(), guestSpeed: { instructionsPerSecond: 1.1e6 },
  realModeTripleFault: { asHardware: false, detail: 'this KVM delivers a real-mode INT through the IVT past a zero IDT limit' },
});
const host32 = facts({ machine: 'i686', cpuFlags: BASE_FLAGS.replace(' lm ', ' ').split(' ').concat('vmx') });

test('cpuinfo parser reads the first CPU and merges the vmx flags line', () => {
  const p = parseCpuinfo(CPUINFO_INTEL);
  assert.equal(p.vendor, 'GenuineIntel');
  for (const f of ['vmx', 'ept', 'unrestricted_guest', 'nx', 'lm']) assert.ok(p.flags.includes(f), f);
  assert.ok(!p.flags.includes('other'), 'flags of the second CPU are not mixed in');
  assert.ok(parseCpuinfo(CPUINFO_AMD).flags.includes('npt'));
});

test('VT-x host: kvm usable and chosen', async () => {
  const r = evaluateHost(vtxHost);
  assert.equal(r.backends.kvm.usable, true);
  assert.equal(r.backends.emulated.usable, true);
  assert.equal(r.choice, 'kvm');
  assert.equal(r.items.find((i) => i.name === 'Hardware virtualization')?.detail, 'VT-x (vmx)');
  assert.equal(r.items.find((i) => i.name === 'Second-level address translation')?.detail, 'EPT');
  assert.deepEqual(await chooseBackend(vtxHost), { kind: 'kvm', reason: r.why });
});

test('AMD-V host: kvm usable with NPT', () => {
  const r = evaluateHost(amdHost);
  assert.equal(r.choice, 'kvm');
  assert.equal(r.items.find((i) => i.name === 'Hardware virtualization')?.detail, 'AMD-V (svm)');
  assert.equal(r.items.find((i) => i.name === 'Second-level address translation')?.detail, 'NPT');
});

test('host without /dev/kvm and without vmx/svm: emulated, with the reason', async () => {
  const r = evaluateHost(noKvmHost);
  assert.equal(r.backends.kvm.usable, false);
  assert.equal(r.choice, 'emulated');
  assert.match(r.backends.kvm.reasons.join('\n'), /neither vmx nor svm/);
  assert.match(r.backends.kvm.reasons.join('\n'), /nested virtualization/);
  assert.match(r.why, /vmx nor svm/);
  assert.equal((await chooseBackend(noKvmHost)).kind, 'emulated');
});

test('software-assisted nested KVM (kvm_pvm): opens, has every capability, too slow: emulated', () => {
  const r = evaluateHost(pvmHost);
  assert.equal(r.backends.kvm.usable, false);
  assert.equal(r.choice, 'emulated');
  assert.match(r.why, /1\.1 M instructions\/s/);
  assert.match(r.why, /kvm_pvm/);
  // The same host measured fast would pick kvm: the speed is what decides.
  assert.equal(evaluateHost({ ...pvmHost, guestSpeed: { instructionsPerSecond: MIN_KVM_INSTRUCTIONS_PER_SECOND * 2 } }).choice, 'kvm');
});

test('32-bit host: kvm cannot run (explained), and neither can emulated', () => {
  const r = evaluateHost(host32);
  assert.equal(r.backends.kvm.usable, false);
  assert.match(r.backends.kvm.reasons[0], /32-bit/);
  assert.equal(r.backends.emulated.usable, false);
  assert.equal(r.choice, null);
});

test('missing capabilities and permission problems are named', () => {
  const caps = allCaps();
  caps.KVM_CAP_X86_MSR_FILTER = 0;
  const r = evaluateHost({ ...vtxHost, capabilities: caps });
  assert.equal(r.choice, 'emulated');
  assert.match(r.why, /KVM_CAP_X86_MSR_FILTER/);
  const p = evaluateHost({ ...vtxHost, kvmDevice: { state: 'no-access', error: 'EACCES' }, apiVersion: null, capabilities: null, guestSpeed: null });
  assert.equal(p.choice, 'emulated');
  assert.match(p.why, /kvm' group/);
  const failed = evaluateHost({ ...vtxHost, guestSpeed: { error: 'KVM_RUN failed: EINVAL' } });
  assert.equal(failed.choice, 'emulated');
  assert.match(failed.why, /EINVAL/);
});

test('kvm_pvm host: the real-mode triple-fault difference is shown, and the speed alone decides', () => {
  const r = evaluateHost(pvmHost);
  const item = r.items.find((i) => i.name === 'Real-mode triple fault');
  assert.equal(item?.status, 'warn');
  assert.match(item!.detail, /IVT past a zero IDT limit/);
  const hw = evaluateHost({ ...vtxHost, realModeTripleFault: { asHardware: true, detail: 'KVM_EXIT_SHUTDOWN' } });
  assert.equal(hw.items.find((i) => i.name === 'Real-mode triple fault')?.status, 'ok');
  assert.equal(hw.choice, 'kvm');
});

test('this host, probed for real: the verdict follows from what was measured, with the reason', async () => {
  const f = await probeHost();
  const r = evaluateHost(f);
  assert.equal(r.backends.emulated.usable, true, r.backends.emulated.reasons.join('; '));
  if (f.kvmDevice.state !== 'open') {
    // No usable /dev/kvm (absent, no permission, or an error): emulated, and the reason names /dev/kvm or the CPU.
    assert.equal(r.choice, 'emulated');
    assert.match(r.why, /\/dev\/kvm|vmx|svm|x86/);
    return;
  }
  const gs = f.guestSpeed;
  assert.ok(gs && 'instructionsPerSecond' in gs, `the guest-speed probe ran on the open /dev/kvm: ${JSON.stringify(gs)}`);
  assert.ok(gs.instructionsPerSecond > 0);
  assert.ok(f.realModeTripleFault, 'the real-mode triple-fault probe ran');
  const missing = NEEDED_CAPS.filter((n) => !f.capabilities?.[n]);
  if (gs.instructionsPerSecond < MIN_KVM_INSTRUCTIONS_PER_SECOND) {
    // A software-assisted KVM such as kvm_pvm: usable in principle, too slow for a real guest.
    assert.equal(r.choice, 'emulated');
    assert.match(r.why, /runs guest code at only [\d.]+ [kMG] instructions\/s/);
    if (f.kvmModules.includes('kvm_pvm')) assert.match(r.why, /kvm_pvm/);
  } else if (missing.length === 0 && f.apiVersion === 12) {
    assert.equal(r.choice, 'kvm');
  } else {
    assert.equal(r.choice, 'emulated');
  }
});
