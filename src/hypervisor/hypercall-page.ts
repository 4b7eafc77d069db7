/**
 * What the host writes into the guest's hypercall page when the guest enables it (contract §3.5).
 * The emulated processor traps VMCALL directly; the KVM backend needs a port-I/O stub because KVM
 * swallows VMCALL without in-kernel Hyper-V.
 */
export type HypercallPageWriter = (page: Uint8Array) => void;

function fill(page: Uint8Array, code: number[]): void {
  page.fill(0xcc); // int3 padding: a stray jump into the page traps instead of sliding
  page.set(code, 0);
}

/** VMCALL; RET (Intel encoding; the emulator accepts it on any vendor). */
export const vmcallPage: HypercallPageWriter = (p) => fill(p, [0x0f, 0x01, 0xc1, 0xc3]);
/** VMMCALL; RET (AMD encoding). */
export const vmmcallPage: HypercallPageWriter = (p) => fill(p, [0x0f, 0x01, 0xd9, 0xc3]);

/** ENDBR64; OUT imm8, AL; RET. RCX/RDX/R8 stay intact for the exit handler. */
export function portIoPage(port: number): HypercallPageWriter {
  if (!Number.isInteger(port) || port < 0 || port > 0xff) throw new RangeError(`hypercall port must be 0..255, got ${port}`);
  return (p) => fill(p, [0xf3, 0x0f, 0x1e, 0xfa, 0xe6, port, 0xc3]);
}
