/** Heartbeat IC (contract §8.4): periodic sequence numbers the guest increments; the host's "is it alive". */
import { IntegrationComponent, IcMsgType, ICMSG_HDR, versionsOf, type IcContext, type IcOptions, type IcStatus } from './framework.js';

export const HEARTBEAT_GUID = '57164f39-9115-4e78-ab55-382f3bd5422d';

export interface HeartbeatOptions extends IcOptions {
  /** Virtual ms between heartbeats. Default 1000. */
  intervalMs?: number;
  /** Virtual ms without a correct answer after which the guest counts as lost. Default 5000. */
  lostAfterMs?: number;
}

export class HeartbeatIc extends IntegrationComponent {
  readonly interfaceType = HEARTBEAT_GUID;
  readonly name = 'Heartbeat';
  readonly maxPacketSize = 4096;
  protected readonly icType = IcMsgType.HEARTBEAT;
  protected readonly frameworkVersions = versionsOf('3.0', '1.0');
  protected readonly messageVersions = versionsOf('3.0', '1.0');
  private seq = 0n;
  private inFlight = false;
  /** Virtual ns of the last correct answer, -1 before the first. */
  lastAnswerNs = -1;
  /** Answers received (for status displays and tests). */
  answers = 0;
  private readonly intervalMs: number;
  private readonly lostAfterMs: number;

  constructor(ctx: IcContext, o: HeartbeatOptions = {}) {
    super(ctx, o);
    this.intervalMs = o.intervalMs ?? 1000;
    this.lostAfterMs = o.lostAfterMs ?? 5000;
  }

  override get status(): IcStatus {
    const s = super.status;
    if (s !== 'OK') return s;
    return this.ctx.clock.now() - this.lastAnswerNs > this.lostAfterMs * 1e6 ? 'Lost Communication' : 'OK';
  }

  protected override negotiatedHook(): void {
    // Negotiation is itself an answer: the countdown to Lost Communication starts here.
    this.lastAnswerNs = this.ctx.clock.now();
    this.beat();
    this.every(this.intervalMs, () => this.beat());
  }

  /** Send one heartbeat unless the previous one is still unanswered. */
  beat(): void {
    if (!this.ready || this.inFlight) return;
    const f = this.frame(IcMsgType.HEARTBEAT, 40);
    const seq = this.seq;
    f.view.setBigUint64(ICMSG_HDR, seq, true);
    this.inFlight = true;
    this.transact(f.bytes, IcMsgType.HEARTBEAT, this.lostAfterMs * 4).then((r) => this.answered(r, seq), () => { this.inFlight = false; });
  }

  private answered(r: DataView, seq: bigint): void {
    this.inFlight = false;
    if (r.byteLength < ICMSG_HDR + 8) { this.channel?.fault('heartbeat reply too short'); return; }
    const got = r.getBigUint64(ICMSG_HDR, true);
    if (got !== seq + 1n) { this.ctx.log(`Heartbeat: guest answered sequence ${got}, expected ${seq + 1n}`); return; }
    this.seq = got;
    this.lastAnswerNs = this.ctx.clock.now();
    this.answers++;
  }

  protected override saveExtra(): Record<string, unknown> {
    return { seq: this.seq, inFlight: this.inFlight, lastAnswerNs: this.lastAnswerNs, answers: this.answers };
  }

  protected override restoreExtra(s: Record<string, unknown>): void {
    if (typeof s.seq === 'bigint') this.seq = s.seq;
    this.inFlight = s.inFlight === true;
    if (typeof s.lastAnswerNs === 'number') this.lastAnswerNs = s.lastAnswerNs;
    if (typeof s.answers === 'number') this.answers = s.answers;
  }

  protected override resumedHook(): void { this.every(this.intervalMs, () => this.beat()); }

  /** The guest answers the heartbeat sent before the save: count it like any other. */
  protected override resumeReply(type: IcMsgType, reply: Promise<DataView>): Promise<unknown> {
    const seq = this.seq;
    return reply.then((r) => { if (type === IcMsgType.HEARTBEAT) this.answered(r, seq); else this.inFlight = false; },
      () => { this.inFlight = false; });
  }

  protected override closed(): void { this.inFlight = false; }
}
