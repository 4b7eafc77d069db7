/**
 * The five integration services of a VM (Hyper-V's names), each enabled or disabled per VM, offered on the
 * VM's VMBus, with Get-VMIntegrationService-style status.
 */
import type { VirtualClock } from '../../platform/clock.js';
import type { VmbusHost, VmbusDevice } from '../../vmbus/host.js';
import { IcError, type IcContext, type IcState, type IcStatus, type IntegrationComponent } from './framework.js';
import { HeartbeatIc, type HeartbeatOptions } from './heartbeat.js';
import { ShutdownIc } from './shutdown.js';
import { TimeSyncIc, type TimeSyncOptions } from './timesync.js';
import { KvpIc } from './kvp.js';
import { VssIc } from './vss.js';
import { nameGuid } from '../../vmbus/guid.js';

export const IC_NAMES = ['Heartbeat', 'Shutdown', 'Time Synchronization', 'Key-Value Pair Exchange', 'VSS'] as const;
export type IcName = typeof IC_NAMES[number];

export interface IntegrationServicesOptions {
  vmbus: VmbusHost;
  clock: VirtualClock;
  /** Partition reference counter now (Hypervisor.referenceTime.count()), for Time Synchronization. */
  referenceTime: () => bigint;
  hostTime?: () => bigint;
  /** Per-service switch; all enabled by default (Hyper-V's defaults for these five). */
  enabled?: Partial<Record<IcName, boolean>>;
  /** Instance GUIDs per service (the guest names the devices after them). Default: fixed per service. */
  instances?: Partial<Record<IcName, string>>;
  heartbeat?: Omit<HeartbeatOptions, 'instance'>;
  timeSync?: Omit<TimeSyncOptions, 'instance' | 'referenceTime' | 'hostTime'>;
  log?: (message: string) => void;
}

export interface IntegrationServicesState { enabled: IcName[]; ics: Record<string, IcState> }

export interface IntegrationServiceInfo {
  name: IcName;
  enabled: boolean;
  /** Hyper-V's PrimaryStatusDescription ("OK", "No Contact", "Lost Communication") or "Protocol Mismatch". */
  status: IcStatus | 'Disabled';
  /** Negotiated framework/message versions, e.g. "3.0/4.0". */
  protocol: string | null;
}

export class IntegrationServices {
  readonly heartbeat: HeartbeatIc;
  readonly shutdown: ShutdownIc;
  readonly timeSync: TimeSyncIc;
  readonly kvp: KvpIc;
  readonly vss: VssIc;
  private readonly byName: Map<IcName, IntegrationComponent>;
  private readonly devices = new Map<IcName, VmbusDevice>();

  constructor(private readonly o: IntegrationServicesOptions) {
    const ctx: IcContext = { clock: o.clock, log: o.log ?? ((m) => console.warn(`[ic] ${m}`)) };
    const inst = (n: IcName): { instance: string } => ({ instance: o.instances?.[n] ?? nameGuid(`ic:${n}`) });
    this.heartbeat = new HeartbeatIc(ctx, { ...o.heartbeat, ...inst('Heartbeat') });
    this.shutdown = new ShutdownIc(ctx, inst('Shutdown'));
    this.timeSync = new TimeSyncIc(ctx, { ...o.timeSync, ...inst('Time Synchronization'), referenceTime: o.referenceTime, hostTime: o.hostTime });
    this.kvp = new KvpIc(ctx, inst('Key-Value Pair Exchange'));
    this.vss = new VssIc(ctx, inst('VSS'));
    this.byName = new Map<IcName, IntegrationComponent>([
      ['Heartbeat', this.heartbeat], ['Shutdown', this.shutdown], ['Time Synchronization', this.timeSync],
      ['Key-Value Pair Exchange', this.kvp], ['VSS', this.vss],
    ]);
    for (const n of IC_NAMES) if (o.enabled?.[n] ?? true) this.enable(n);
  }

  private ic(name: string): [IcName, IntegrationComponent] {
    const n = IC_NAMES.find((x) => x.toLowerCase() === name.toLowerCase());
    if (!n) throw new IcError(`unknown integration service "${name}"; known: ${IC_NAMES.join(', ')}`);
    return [n, this.byName.get(n)!];
  }

  isEnabled(name: IcName): boolean { return this.devices.has(name); }

  /** Enable-VMIntegrationService: offer the service (at once if the guest's VMBus is up). */
  enable(name: IcName | string): void {
    const [n, ic] = this.ic(name);
    if (!this.devices.has(n)) this.devices.set(n, this.o.vmbus.addDevice(ic));
  }

  /** Disable-VMIntegrationService: rescind the service's channel. */
  disable(name: IcName | string): void {
    const [n] = this.ic(name);
    const d = this.devices.get(n);
    if (!d) return;
    this.devices.delete(n);
    this.o.vmbus.removeDevice(d);
  }

  /** Saved state: which services are offered and each one's negotiation and pending transaction. */
  saveState(): IntegrationServicesState {
    return { enabled: IC_NAMES.filter((n) => this.devices.has(n)), ics: Object.fromEntries(IC_NAMES.map((n) => [n, this.byName.get(n)!.saveState()])) };
  }

  /** Restore step 1, before the VMBus host: instance GUIDs and the enabled set as the guest knew them. */
  restoreIdentity(s: IntegrationServicesState): void {
    if (!Array.isArray(s.enabled) || typeof s.ics !== 'object' || s.ics === null) throw new Error('integration services state is malformed');
    for (const n of IC_NAMES) {
      if (!s.ics[n]) throw new Error(`integration service '${n}' is missing from the saved state`);
      this.byName.get(n)!.restoreIdentity(s.ics[n]);
    }
    for (const n of IC_NAMES) if (s.enabled.includes(n)) this.enable(n); else this.disable(n);
  }

  /** Restore step 2, after the VMBus host reopened the channels. */
  restoreState(s: IntegrationServicesState): void {
    for (const n of IC_NAMES) {
      const ic = this.byName.get(n)!;
      const d = this.devices.get(n);
      ic.restoreState(s.ics[n], d ? this.o.vmbus.channelOf(d) : null);
    }
  }

  /** Get-VMIntegrationService. */
  list(): IntegrationServiceInfo[] {
    return IC_NAMES.map((n) => {
      const ic = this.byName.get(n)!;
      const enabled = this.devices.has(n);
      return {
        name: n, enabled, status: enabled ? ic.status : 'Disabled',
        protocol: ic.frameworkVersion && ic.messageVersion && ic.ready
          ? `${ic.frameworkVersion.major}.${ic.frameworkVersion.minor}/${ic.messageVersion.major}.${ic.messageVersion.minor}` : null,
      };
    });
  }

  /** Stop-VM (graceful): through the Shutdown service; a clear error when the guest cannot do it. */
  async requestShutdown(o: { reboot?: boolean; force?: boolean; message?: string } = {}): Promise<void> {
    if (!this.devices.has('Shutdown')) {
      throw new IcError('Cannot shut down the guest: the Shutdown integration service is disabled for this VM. ' +
        'Enable it, or turn the VM off instead (data may be lost).');
    }
    return this.shutdown.request(o);
  }
}
