/**
 * Contract for driving the emulated processor from tests (differential tests against the host CPU,
 * focused paging/exception tests, guest-program tests). Implemented by the core in `testing.ts`:
 *
 *   export function createTestMachine(opts?: { memoryBytes?: number; stringVendor?: 'amd' | 'intel' }): TestMachine
 *
 * `stringVendor: 'intel'` makes the processor follow Intel's string-instruction corners (see
 * CpuState.intelStrings) so it can be compared against an Intel host; the default is AMD, as CPUID presents.
 *
 * The machine starts in 64-bit long mode, CPL 3 or 0 as chosen, flat segments, paging on, with a page-table
 * area managed by the machine itself; tests map the virtual ranges they use.
 */
export interface TestMachine {
  /** Map [virt, virt+length) (page aligned) to fresh zeroed guest-physical pages; `user` sets U/S, `writable` R/W, `exec` clears NX. */
  map(virt: number, length: number, flags?: { user?: boolean; writable?: boolean; exec?: boolean }): void;
  /** Remove a mapping (to provoke page faults). */
  unmap(virt: number, length: number): void;
  writeVirt(virt: number, bytes: Uint8Array): void;
  readVirt(virt: number, length: number): Uint8Array;

  /** Registers: 64-bit values as bigint for test convenience (tests are not the hot path). */
  getReg(i: number): bigint;
  setReg(i: number, v: bigint): void;
  rip: bigint;
  rflags: bigint;
  getXmm(i: number): bigint; // 128-bit
  setXmm(i: number, v: bigint): void;
  /** x87 / MXCSR access for SSE and x87 differential tests. */
  mxcsr: number;
  fpuControlWord: number;
  setCpl(cpl: 0 | 3): void;
  setSegmentBase(seg: 'fs' | 'gs', base: bigint): void;

  /**
   * Run until `stopAt` RIP is reached, an exception is raised that is not handled by a guest IDT
   * (reported, not delivered), or `maxInsns` retire. Interrupt delivery through a test IDT is available with `installIdt`.
   */
  run(opts: { stopAt?: bigint; maxInsns?: number }): TestRunResult;
  /** Optional: install an IDT so exceptions are delivered to guest handlers instead of reported. */
  installIdt?(handlers: Partial<Record<number, bigint>>): void;
}

export type TestRunResult =
  | { kind: 'stopped'; insns: number }
  | { kind: 'exception'; vector: number; errorCode?: number; rip: bigint; cr2?: bigint; insns: number }
  | { kind: 'limit'; insns: number }
  | { kind: 'halt'; insns: number };

/** Register indices (as in ModRM/REX numbering). */
export const REG = { rax: 0, rcx: 1, rdx: 2, rbx: 3, rsp: 4, rbp: 5, rsi: 6, rdi: 7, r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15 } as const;
