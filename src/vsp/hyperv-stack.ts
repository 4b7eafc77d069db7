/**
 * One call that assembles a partition's Hyper-V stack: hypervisor interface (CPUID, MSRs, hypercalls,
 * SynIC) -> VMBus host -> integration services. The partition hands `cpuid(base)`, `msr` and `hypercall`
 * to PlatformServices and calls `reset()` on machine reset.
 */
import type { GuestMemory } from '../platform/memory.js';
import type { VirtualClock } from '../platform/clock.js';
import type { CpuidProvider, HypercallHandler, MsrHandler } from '../processor/backend.js';
import { Hypervisor, type HypervisorOptions, type HypervisorState } from '../hypervisor/hypervisor.js';
import type { InterruptInjector } from '../hypervisor/synic.js';
import type { FaultLogger } from '../hypervisor/guest-memory-access.js';
import { VmbusHost, type VmbusHostState } from '../vmbus/host.js';
import { IntegrationServices, type IntegrationServicesOptions, type IntegrationServicesState } from './ic/integration-services.js';

export interface HyperVStackOptions {
  memory: GuestMemory;
  clock: VirtualClock;
  vpCount: number;
  tscHz: number;
  /** LAPIC delivery: (vp, vector, autoEoi). */
  inject: InterruptInjector;
  /** false = unenlightened partition: no Hyper-V leaves, MSRs, hypercalls, VMBus or ICs. */
  enlightened?: boolean;
  hypervisor?: Partial<Omit<HypervisorOptions, 'memory' | 'clock' | 'vpCount' | 'tscHz' | 'inject' | 'enlightened' | 'log'>>;
  maxVmbusVersion?: number;
  integrationServices?: Omit<IntegrationServicesOptions, 'vmbus' | 'clock' | 'referenceTime' | 'log'>;
  log?: FaultLogger;
}

export interface HyperVStackState { hypervisor: HypervisorState; vmbus: VmbusHostState | null; ics: IntegrationServicesState | null }

export class HyperVStack {
  readonly hypervisor: Hypervisor;
  readonly vmbus: VmbusHost | null;
  readonly ics: IntegrationServices | null;

  constructor(o: HyperVStackOptions) {
    const enlightened = o.enlightened ?? true;
    this.hypervisor = new Hypervisor({ ...o.hypervisor, memory: o.memory, clock: o.clock, vpCount: o.vpCount, tscHz: o.tscHz, inject: o.inject, enlightened, log: o.log });
    if (!enlightened) { this.vmbus = null; this.ics = null; return; }
    this.vmbus = new VmbusHost({ memory: o.memory, synic: this.hypervisor.synic, vpCount: o.vpCount, maxVersion: o.maxVmbusVersion, log: o.log });
    this.hypervisor.connect(this.vmbus);
    const log = o.log;
    this.ics = new IntegrationServices({
      ...o.integrationServices, vmbus: this.vmbus, clock: o.clock,
      referenceTime: () => this.hypervisor.referenceTime.count(),
      log: log ? (m) => log('ic', m) : undefined,
    });
  }

  cpuid(base: CpuidProvider): CpuidProvider { return this.hypervisor.cpuid(base); }
  get msr(): MsrHandler { return this.hypervisor; }
  get hypercall(): HypercallHandler | null { return this.hypervisor.hypercall; }

  /** Saved state (Save-VM) of the hypervisor interface, the VMBus host and the integration services. */
  saveState(): HyperVStackState {
    return { hypervisor: this.hypervisor.saveState(), vmbus: this.vmbus?.saveState() ?? null, ics: this.ics?.saveState() ?? null };
  }

  /** Restore into a freshly built stack (nothing has run yet). */
  restoreState(s: HyperVStackState): void {
    if ((s.vmbus === null) !== (this.vmbus === null) || (s.ics === null) !== (this.ics === null)) {
      throw new Error(`the saved state is of an ${s.vmbus ? 'enlightened' : 'unenlightened'} VM, this one is ${this.vmbus ? 'enlightened' : 'unenlightened'}`);
    }
    this.hypervisor.restoreState(s.hypervisor);
    if (this.ics && s.ics) this.ics.restoreIdentity(s.ics);
    if (this.vmbus && s.vmbus) this.vmbus.restoreState(s.vmbus);
    if (this.ics && s.ics) this.ics.restoreState(s.ics);
  }

  /** Machine reset: synthetic MSRs and SynIC to reset values, VMBus back to "waiting for contact". */
  reset(): void {
    this.vmbus?.reset();
    this.hypervisor.reset();
  }
}
