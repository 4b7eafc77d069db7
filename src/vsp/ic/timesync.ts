/** Time Synchronization IC (contract §8.4): host UTC samples tied to the partition reference counter. */
import { IntegrationComponent, IcMsgType, ICMSG_HDR, versionsOf, type IcContext, type IcOptions } from './framework.js';

export const TIMESYNC_GUID = '9527e630-d0ae-497b-adce-e80ab0175caf';
/** 100 ns intervals between 1601-01-01 and 1970-01-01. */
export const WLTIMEDELTA = 116444736000000000n;
export const ICTIMESYNCFLAG_PROBE = 0;
export const ICTIMESYNCFLAG_SYNC = 1;
export const ICTIMESYNCFLAG_SAMPLE = 2;

export interface TimeSyncOptions extends IcOptions {
  /** Partition reference counter now (Hypervisor.referenceTime.count()). */
  referenceTime: () => bigint;
  /** Host UTC in 100 ns units since 1601. Default: Date.now(). */
  hostTime?: () => bigint;
  /** Virtual ms between SAMPLE messages. Default 5000. */
  sampleIntervalMs?: number;
}

export interface TimeSample { parentTime: bigint; referenceTime: bigint; flags: number; acknowledged: boolean }

export class TimeSyncIc extends IntegrationComponent {
  readonly interfaceType = TIMESYNC_GUID;
  readonly name = 'Time Synchronization';
  readonly maxPacketSize = 4096;
  protected readonly icType = IcMsgType.TIMESYNC;
  protected readonly frameworkVersions = versionsOf('3.0', '1.0');
  protected readonly messageVersions = versionsOf('4.0', '3.0', '1.0');
  /** Recent samples, newest last. */
  readonly samples: TimeSample[] = [];
  private readonly hostTime: () => bigint;

  constructor(ctx: IcContext, private readonly o: TimeSyncOptions) {
    super(ctx, o);
    this.hostTime = o.hostTime ?? (() => BigInt(Date.now()) * 10_000n + WLTIMEDELTA);
  }

  protected override negotiatedHook(): void {
    void this.send(ICTIMESYNCFLAG_SYNC).catch(() => undefined);
    this.every(this.o.sampleIntervalMs ?? 5000, () => { void this.send(ICTIMESYNCFLAG_SAMPLE).catch(() => undefined); });
  }

  protected override resumedHook(): void {
    this.every(this.o.sampleIntervalMs ?? 5000, () => { void this.send(ICTIMESYNCFLAG_SAMPLE).catch(() => undefined); });
  }

  /** Step the guest clock to the host's now (after resume or restore). */
  syncNow(): Promise<TimeSample> {
    if (!this.ready) return Promise.reject(this.unavailable('Cannot synchronize the guest clock'));
    return this.send(ICTIMESYNCFLAG_SYNC);
  }

  private async send(flags: number): Promise<TimeSample> {
    const v4 = this.messageVersion?.major === 4;
    const f = this.frame(IcMsgType.TIMESYNC, v4 ? 22 : 25);
    const parentTime = this.hostTime(), referenceTime = this.o.referenceTime();
    f.view.setBigUint64(ICMSG_HDR, parentTime, true);
    if (v4) {
      f.view.setBigUint64(ICMSG_HDR + 8, referenceTime, true);
      f.view.setUint8(ICMSG_HDR + 16, flags);
      f.view.setUint8(ICMSG_HDR + 18, 2); // stratum
    } else {
      f.view.setUint8(ICMSG_HDR + 24, flags); // childtime/roundtrip unused by Linux
    }
    const sample: TimeSample = { parentTime, referenceTime, flags, acknowledged: false };
    this.samples.push(sample);
    if (this.samples.length > 32) this.samples.shift();
    await this.transact(f.bytes, IcMsgType.TIMESYNC, 30_000);
    sample.acknowledged = true;
    return sample;
  }
}
