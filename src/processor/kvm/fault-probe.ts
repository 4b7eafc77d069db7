/**
 * Does this host's KVM report a real-mode triple fault the way hardware does?
 *
 * The probe guest loads a zero-limit IDT and executes INT3 in real mode. On VT-x/AMD-V the processor
 * checks the vector against the IDT limit (#GP, then #DF, then shutdown) and KVM reports
 * KVM_EXIT_SHUTDOWN. A KVM that emulates real mode in software may instead read the vector from the
 * IVT at 0 regardless of the limit (Linux's x86 emulator does, and kvm_pvm runs real mode through
 * it); the probe's IVT entry 3 then leads to a handler that reports on a port, so the answer is a
 * definite exit either way, never a timeout.
 */
import * as abi from './abi.js';
import type { KvmSystem } from './kvm.js';
import { ProbeVm } from './probe-vm.js';

export type RealModeTripleFault =
  | { kind: 'shutdown' }
  | { kind: 'ivt-past-limit'; detail: string }
  | { kind: 'other'; detail: string };

const CODE = 0x1000;
const IDT_DESC = 0x1010;
const HANDLER = 0x2000;
const RETURNED_PORT = 0xf5;
const HANDLER_PORT = 0xf6;

export function probeRealModeTripleFault(sys: KvmSystem): RealModeTripleFault {
  const vm = ProbeVm.create(sys, CODE);
  try {
    const g = vm.guest;
    // lidt [IDT_DESC]; int3; out RETURNED_PORT, al; hlt
    g.set([0x0f, 0x01, 0x1e, IDT_DESC & 0xff, IDT_DESC >> 8, 0xcc, 0xe6, RETURNED_PORT, 0xf4], CODE);
    g.fill(0, IDT_DESC, IDT_DESC + 6); // limit 0, base 0
    g.set([0x00, HANDLER >> 8, 0x00, 0x00], 3 * 4); // IVT[3] = 0000:HANDLER
    g.set([0xe6, HANDLER_PORT, 0xf4], HANDLER); // out HANDLER_PORT, al; hlt
    const reason = vm.runToExit();
    if (reason === abi.KVM_EXIT_SHUTDOWN) return { kind: 'shutdown' };
    if (reason === abi.KVM_EXIT_IO && vm.ioPort() === HANDLER_PORT) {
      return {
        kind: 'ivt-past-limit',
        detail: 'this KVM delivers a real-mode INT through the IVT past a zero IDT limit (software real-mode emulation) instead of faulting to a triple fault',
      };
    }
    const what = reason === abi.KVM_EXIT_IO ? `KVM_EXIT_IO on port 0x${vm.ioPort().toString(16)}` : `exit reason ${reason}`;
    return { kind: 'other', detail: `a real-mode triple fault ended in ${what} instead of KVM_EXIT_SHUTDOWN` };
  } finally {
    vm.close();
  }
}
