/**
 * The KVM backend's vCPU thread after a kick: run(budget) ends a guest that never exits by signalling
 * the vCPU thread out of KVM_RUN, and the next run() must let the guest run again. Skipped, with the
 * reason, where /dev/kvm is not usable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PlatformServices, ProcessorBackend, VirtualProcessor } from '../../../src/processor/backend.js';
import { IoBus, MmioBus } from '../../../src/platform/bus.js';
import { VirtualClock } from '../../../src/platform/clock.js';
import type { KvmVirtualProcessor } from '../../../src/processor/kvm/processor.js';

const PORT = 0x10;
const CODE = 0x1000;

let kvm: typeof import('../../../src/processor/kvm/processor.js') | null = null;
let skip: string | false = false;
try {
  kvm = await import('../../../src/processor/kvm/processor.js');
  new kvm.KvmBackend({ irqchip: 'user' }).destroy();
} catch (e) {
  skip = `KVM not usable on this host: ${(e as Error).message.split('\n')[0]}`;
}

async function oneVcpu(onOut: (v: number) => void, runStub = true, onIn: () => number = () => 0): Promise<{ backend: ProcessorBackend; vp: VirtualProcessor; write(gpa: number, b: number[]): void }> {
  const memory = kvm!.allocateGuestMemory(0x10000);
  const io = new IoBus();
  io.register(PORT, 1, { pioRead: () => onIn(), pioWrite: (_o, _s, v) => onOut(v) }, 'test');
  const platform: PlatformServices = {
    memory, io, mmio: new MmioBus(), clock: new VirtualClock('realtime'),
    cpuid: { cpuid: () => ({ eax: 0, ebx: 0, ecx: 0, edx: 0 }) },
    msr: { read: () => false, write: () => false }, hypercall: null, interrupts: [], tscHz: 1e9,
    onReset: () => {}, onShutdown: () => {},
  };
  const backend = new kvm!.KvmBackend({ irqchip: 'user', runStub });
  const vp = await backend.createVcpu(0, platform);
  return { backend, vp, write: (gpa, b) => memory.write(gpa, new Uint8Array(b)) };
}

test('kvm: a vCPU kicked out of KVM_RUN by its budget runs again on the next run()', { skip }, async () => {
  const outs: number[] = [];
  const { backend, vp, write } = await oneVcpu((v) => outs.push(v));
  try {
    write(CODE, [0xeb, 0xfe]); // jmp . : never exits, so only a kick can end run()
    vp.setBootState({ mode: 'real', rip: CODE, cs: 0, ds: 0, gpr: { 0: 0x5a } });
    for (let i = 0; i < 3; i++) assert.equal((await vp.run(5)).kind, 'yield');
    assert.deepEqual(outs, []);
    write(CODE, [0xe6, PORT, 0xf4]); // out %al, $PORT; hlt (the vCPU is parked at CODE)
    // A bound on slices, not on time: a vCPU still stuck on the old kick never gets here.
    for (let i = 0; i < 200 && outs.length === 0; i++) await vp.run(20);
    assert.deepEqual(outs, [0x5a]);
  } finally {
    backend.destroy();
  }
});

test('kvm: requestExit while the guest runs ends run() and the guest continues after it', { skip }, async () => {
  const outs: number[] = [];
  let vp: VirtualProcessor | null = null;
  const { backend, vp: v, write } = await oneVcpu((x) => { outs.push(x); if (outs.length % 2 === 0) vp!.requestExit(); });
  vp = v;
  try {
    // inc %al; out %al, $PORT; jmp back: every second OUT asks for an exit.
    write(CODE, [0xfe, 0xc0, 0xe6, PORT, 0xeb, 0xfa]);
    vp.setBootState({ mode: 'real', rip: CODE, cs: 0, ds: 0, gpr: { 0: 0 } });
    for (let i = 0; i < 5; i++) {
      const before = outs.length;
      for (let j = 0; j < 200 && outs.length < before + 2; j++) await vp.run(1000);
      assert.ok(outs.length >= before + 2, `slice ${i}: the guest made progress`);
    }
    assert.deepEqual(outs.slice(0, 10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  } finally {
    backend.destroy();
  }
});

for (const runStub of [true, false]) {
  const path = runStub ? 'the KVM_RUN stub' : "libc's ioctl";
  test(`kvm: a guest that exits on every instruction still yields when its budget ends (also a zero or NaN budget), through ${path}`, { skip }, async () => {
    // A 5 ms slice is a few thousand exits even on fast hosts; the cap only turns a missed kick into a
    // failure instead of a hang (run() is synchronous, so a test timeout could not fire).
    const CAP = 2_000_000;
    let outs = 0;
    let sliceStart = 0;
    let vp: VirtualProcessor | null = null;
    const { backend, vp: v, write } = await oneVcpu(() => { if (++outs - sliceStart >= CAP) vp!.requestExit(); }, runStub);
    vp = v;
    try {
      // On x86-64 Linux the stub is the default; where it could not be made, this says so rather than pass twice.
      assert.equal((vp as KvmVirtualProcessor).nativeRunStub, runStub, `KVM_RUN goes through ${path}`);
      // 1: out %al, $PORT; jmp 1b. No handler asks for an exit, so only the budget's kick can end run():
      // the backend reads no clock per exit, and a kick that expires while an exit is handled must still count.
      write(CODE, [0xe6, PORT, 0xeb, 0xfc]);
      vp.setBootState({ mode: 'real', rip: CODE, cs: 0, ds: 0, gpr: {} });
      // Zero and NaN budgets still end (the backend clamps them to a short slice rather than arming no kick).
      const budgets = [5, 5, 5, 0, Number.NaN];
      for (let i = 0; i < budgets.length; i++) {
        const first = outs;
        // A loaded host may spend a whole short slice before the guest runs: progress is asked of some slice, not each.
        for (let tries = 0; tries < (budgets[i] > 0 ? 200 : 1) && outs === first; tries++) {
          sliceStart = outs;
          assert.equal((await vp.run(budgets[i])).kind, 'yield');
          assert.ok(outs - sliceStart < CAP, `slice ${i}: the budget's kick ended the slice`);
        }
        if (budgets[i] > 0) assert.ok(outs > first, `slice ${i}: the guest made progress`);
      }
    } finally {
      backend.destroy();
    }
  });
}

test('kvm: saving a vCPU finishes the IN it stopped after (KVM_RUN with immediate_exit through the stub)', { skip }, async () => {
  const outs: number[] = [];
  let vp: VirtualProcessor | null = null;
  const { backend, vp: v, write } = await oneVcpu((x) => outs.push(x), true, () => { vp!.requestExit(); return 0x42; });
  vp = v;
  try {
    write(CODE, [0xe4, PORT, 0xfe, 0xc0, 0xe6, PORT, 0xf4]); // in $PORT, %al; inc %al; out %al, $PORT; hlt
    vp.setBootState({ mode: 'real', rip: CODE, cs: 0, ds: 0, gpr: { 0: 0 } });
    assert.equal((await vp.run(1000)).kind, 'yield'); // stopped with the IN's answer still in kvm_run
    const kvp = vp as KvmVirtualProcessor;
    const regs = new DataView(kvp.saveState().regs.buffer);
    assert.equal(regs.getUint8(0), 0x42, 'AL holds the IN data');
    assert.equal(regs.getUint32(128, true), CODE + 2, 'RIP is past the IN');
    assert.equal((await vp.run(1000)).kind, 'halted');
    assert.deepEqual(outs, [0x43]);
  } finally {
    backend.destroy();
  }
});
