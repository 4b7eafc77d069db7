/** Shutdown IC (contract §8.4): the host asks the guest to power off, reboot or hibernate. */
import { IntegrationComponent, IcMsgType, ICMSG_HDR, versionsOf, hresult, IcError, S_OK, utf16 } from './framework.js';

export const SHUTDOWN_GUID = '0e0b6031-5213-4934-818b-38d90ced39db';

export interface ShutdownRequest {
  /** Reboot instead of power off. */
  reboot?: boolean;
  /** Hyper-V's "force" flag (Linux always proceeds anyway). */
  force?: boolean;
  /** Shown by guests that display it. */
  message?: string;
  /** Seconds the guest is given (informational for Linux). Default 30. */
  timeoutSeconds?: number;
}

export class ShutdownIc extends IntegrationComponent {
  readonly interfaceType = SHUTDOWN_GUID;
  readonly name = 'Shutdown';
  readonly maxPacketSize = 4096;
  protected readonly icType = IcMsgType.SHUTDOWN;
  protected readonly frameworkVersions = versionsOf('3.0', '1.0');
  protected readonly messageVersions = versionsOf('3.2', '3.1', '3.0', '1.0');

  /**
   * Ask the guest to shut down (Stop-VM semantics). Resolves once the guest accepted; the power-off itself
   * follows through ACPI. Rejects with a clear IcError when the guest has no Shutdown service.
   */
  async request(r: ShutdownRequest = {}): Promise<void> {
    if (!this.ready) throw this.unavailable('Cannot shut down the guest');
    const f = this.frame(IcMsgType.SHUTDOWN, 2060);
    f.view.setUint32(ICMSG_HDR, 0, true); // reason code: informational only
    f.view.setUint32(ICMSG_HDR + 4, r.timeoutSeconds ?? 30, true);
    f.view.setUint32(ICMSG_HDR + 8, (r.reboot ? 2 : 0) | (r.force ? 1 : 0), true);
    f.bytes.set(utf16(r.message ?? 'The host is shutting down this virtual machine.', 2048), ICMSG_HDR + 12);
    const reply = await this.transact(f.bytes, IcMsgType.SHUTDOWN, 60_000);
    const status = reply.getUint32(20, true);
    if (status !== S_OK) throw new IcError(`the guest refused to ${r.reboot ? 'reboot' : 'shut down'} (status ${hresult(status)})`);
  }
}
