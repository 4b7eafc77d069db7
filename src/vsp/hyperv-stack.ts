/**
 * One call that assembles a partition's Hyper-V stack: hypervisor interface (CPUID, MSRs, hypercalls,
 * SynIC) -> VMBus host -> integration services. The partition hands `cpuid(base)`, `msr` and `hypercall`
 * to PlatformServices and calls `reset()` on machine reset.
 */
import type { GuestMemory } from '../platform/memory.js';
import type { VirtualClock } from '../platform/clock.js';
import type { CpuidProvider, HypercallHandler, MsrHandler } from '../processor/backend.js';
import { Hypervisor, type HypervisorOptions } from '../hypervisor/hypervisor.js';
import type { InterruptInjector } from '../hypervisor/synic.js';
import type { FaultLogger } from '../hypervisor/guest-memory-access.js';
import { VmbusHost } from '../vmbus/host.js';
import { IntegrationServices, type IntegrationServicesOptions } from './ic/integration-services.js';

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

  /** Machine reset: synthetic MSRs and SynIC to reset values, VMBus back to "waiting for contact". */
  reset(): void {
    this.vmbus?.reset();
    this.hypervisor.reset();
  }
}
