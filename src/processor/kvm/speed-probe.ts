/**
 * Measures how fast this host's KVM runs guest code: a one-vCPU VM executes a real-mode
 * `dec ecx; jnz` loop and reports each round with an OUT. Runs synchronously on the calling thread
 * (no worker, no device models), for `hyperts check` and `--processor auto`.
 * A software-assisted nested KVM (e.g. kvm_pvm) shows up here as a few million instructions per
 * second instead of billions.
 */
import * as abi from './abi.js';
import type { KvmSystem } from './kvm.js';
import { ProbeVm } from './probe-vm.js';

export interface GuestSpeed { instructionsPerSecond: number; iterations: number; seconds: number }

const CODE_ADDR = 0x1000;
const PROBE_PORT = 0xf4;

/** Real-mode loop: mov ecx, N; l: dec ecx; jnz l; out PROBE_PORT, al; jmp start. */
export function probeProgram(iterations: number): Uint8Array {
  const b = new Uint8Array(14);
  b.set([0x66, 0xb9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xfc, 0xe6, PROBE_PORT, 0xeb, 0xf2]);
  new DataView(b.buffer).setUint32(2, iterations >>> 0, true);
  return b;
}

/**
 * Runs rounds of growing length until one takes at least `minSeconds` (or `maxSeconds` are spent).
 * Throws KvmError when the VM cannot be built or run.
 */
export function measureGuestSpeed(sys: KvmSystem, minSeconds = 0.02, maxSeconds = 2): GuestSpeed {
  const vm = ProbeVm.create(sys, CODE_ADDR);
  try {
    const runToOut = (): void => {
      const reason = vm.runToExit();
      if (reason === abi.KVM_EXIT_IO && vm.ioPort() === PROBE_PORT) return;
      throw new Error(`speed probe: unexpected KVM exit reason ${reason}`);
    };
    let iterations = 1000;
    let spent = 0;
    for (;;) {
      // The loop is only entered from its start (after the OUT the guest jumps back to the MOV).
      vm.guest.set(probeProgram(iterations), CODE_ADDR);
      const t0 = performance.now();
      runToOut();
      const dt = (performance.now() - t0) / 1000;
      spent += dt;
      if (dt >= minSeconds || spent >= maxSeconds || iterations >= 1e9) {
        return { instructionsPerSecond: (2 * iterations) / Math.max(dt, 1e-9), iterations, seconds: dt };
      }
      iterations = Math.min(1e9, iterations * (dt < minSeconds / 100 ? 10 : 2));
    }
  } finally {
    vm.close();
  }
}
