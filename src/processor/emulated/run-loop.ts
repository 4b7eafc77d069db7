/**
 * The execution loop: fetch decoded blocks from the cache, run their handlers, deliver interrupts at block
 * boundaries, turn faults into exception delivery, poll the virtual clock.
 */
import type { Cpu } from './cpu.js';
import { F } from './cpu-state.js';
import { deliverFault, deliverInterrupt, deliverNmi } from './exceptions.js';

/** Instructions between polls of the virtual clock's timers. */
const POLL_INTERVAL = 4096;

/**
 * Run until `maxInsns` instructions retired, the CPU halts with nothing pending, or an exit is requested.
 * Returns the number of instructions retired.
 */
export function runCpu(cpu: Cpu, maxInsns: number): number {
  const plat = cpu.platform;
  const ic = plat.interrupts[cpu.vp];
  const cache = cpu.blocks;
  let n = 0;
  let nextPoll = POLL_INTERVAL;
  while (n < maxInsns) {
    try {
      if (cpu.exitRequested) break;
      if (n >= nextPoll) { plat.clock.poll(); nextPoll = n + POLL_INTERVAL; }
      let limit = maxInsns - n;
      if (cpu.intShadow) {
        limit = 1; // the instruction after STI / MOV SS runs before any interrupt
      } else if (ic !== undefined) {
        if (!cpu.nmiBlocked && ic.nmiPending()) {
          ic.acknowledgeNmi();
          cpu.halted = false;
          deliverNmi(cpu);
        } else if ((cpu.flagsRest & F.IF) !== 0) {
          if (ic.pendingVector() >= 0) {
            const v = ic.acknowledge();
            if (v >= 0) { cpu.halted = false; deliverInterrupt(cpu, v); }
          }
        }
      }
      if (cpu.halted) break;
      const lin = cpu.mode === 3 ? cpu.rip : (cpu.segBase[1] + cpu.rip) >>> 0;
      const b = cache.lookup(lin);
      const insns = b.insns;
      const cnt = b.count < limit ? b.count : limit;
      cpu.intShadow = false;
      for (let k = 0; k < cnt; k++) {
        const i = insns[k];
        cpu.nextRip = cpu.rip + i.len;
        i.fn(cpu, i);
        cpu.rip = cpu.nextRip;
        n++;
        if (!b.valid || cpu.halted) break; // code of this block was overwritten / HLT
      }
    } catch (e) {
      if (e !== cpu.fault) throw e;
      if (cpu.stopOnFault) { cpu.faultStopped = true; break; }
      deliverFault(cpu);
    }
  }
  cpu.insnCount += n;
  return n;
}
