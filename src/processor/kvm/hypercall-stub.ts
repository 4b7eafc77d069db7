/**
 * The Hyper-V hypercall page on KVM (hyperv-guest-contract.md §3.5). With no in-kernel Hyper-V, KVM
 * answers VMCALL itself and never exits, so the page holds `endbr64; out PORT, al; ret`: the OUT exits to
 * user space with every guest register intact (RCX control, RDX input GPA, R8 output GPA), the host runs
 * the hypercall and sets RAX, and KVM completes the OUT by stepping to the RET.
 */

/** An 8-bit port nothing on the platform decodes (clear of DMA, PIC, PIT, i8042, RTC, POST, 0xE9, 0xF4). */
export const HYPERCALL_PORT = 0xe6;
export const HV_X64_MSR_HYPERCALL = 0x4000_0001;

export function hypercallStub(port = HYPERCALL_PORT): Uint8Array {
  const s = new Uint8Array(16).fill(0xcc); // int3 after the stub: a stray jump traps instead of sliding
  s.set([0xf3, 0x0f, 0x1e, 0xfa, 0xe6, port & 0xff, 0xc3]);
  return s;
}

/** Guest-physical page the guest enabled through HV_X64_MSR_HYPERCALL, or -1 when disabled. */
export function hypercallPageGpa(lo: number, hi: number): number {
  if ((lo & 1) === 0) return -1;
  return hi * 0x1_0000_0000 + ((lo & ~0xfff) >>> 0);
}
