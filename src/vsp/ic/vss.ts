/** VSS IC (contract §8.4): ask the guest (hv_vss_daemon) to freeze and thaw its file systems. */
import { IntegrationComponent, IcMsgType, ICMSG_HDR, versionsOf, hresult, S_OK } from './framework.js';

export const VSS_GUID = '35fa2e29-ea23-4236-96ae-3a6ebacba440';
export const enum VssOp { CREATE = 0, DELETE = 1, HOT_BACKUP = 2, GET_DM_INFO = 3, BU_COMPLETE = 4, FREEZE = 5, THAW = 6, AUTO_RECOVER = 7 }

export interface VssResult { ok: boolean; status: number; statusText: string; flags: number }

export class VssIc extends IntegrationComponent {
  readonly interfaceType = VSS_GUID;
  readonly name = 'VSS';
  readonly maxPacketSize = 8192;
  protected readonly icType = IcMsgType.VSS;
  protected readonly frameworkVersions = versionsOf('3.0');
  protected readonly messageVersions = versionsOf('5.0');

  /** Freeze the guest's mounted file systems (writes block until thaw). */
  freeze(): Promise<VssResult> { return this.op(VssOp.FREEZE, 15 * 60_000); }
  thaw(): Promise<VssResult> { return this.op(VssOp.THAW, 30_000); }
  /** Ask whether the guest supports a hot backup (reply flags carry its capabilities). */
  hotBackup(): Promise<VssResult> { return this.op(VssOp.HOT_BACKUP, 30_000); }

  private async op(op: VssOp, timeoutMs: number): Promise<VssResult> {
    if (!this.ready) throw this.unavailable(op === VssOp.FREEZE ? 'Cannot freeze the guest file systems' : 'Cannot talk to the guest VSS service');
    const f = this.frame(IcMsgType.VSS, 12);
    f.view.setUint8(ICMSG_HDR, op);
    const r = await this.transact(f.bytes, IcMsgType.VSS, timeoutMs);
    const status = r.getUint32(20, true);
    const flags = r.byteLength >= ICMSG_HDR + 12 ? r.getUint32(ICMSG_HDR + 8, true) : 0;
    return { ok: status === S_OK, status, statusText: status === S_OK ? 'OK' : `failed (${hresult(status)})`, flags };
  }
}
