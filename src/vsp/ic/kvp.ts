/**
 * Key-Value Pair Exchange IC (contract §8.4): read the guest's pools (OS identification in pool 2,
 * "Auto") and push host keys into pool 0 ("External"). Linux only answers once hv_kvp_daemon runs.
 */
import { IntegrationComponent, IcMsgType, ICMSG_HDR, versionsOf, hresult, IcError, S_OK, S_CONT, utf16, fromUtf16 } from './framework.js';

export const KVP_GUID = 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6';

export const enum KvpOp { GET = 0, SET = 1, DELETE = 2, ENUMERATE = 3, GET_IP_INFO = 4, SET_IP_INFO = 5 }
export const enum KvpPool { EXTERNAL = 0, GUEST = 1, AUTO = 2, AUTO_EXTERNAL = 3, AUTO_INTERNAL = 4 }
export const REG_SZ = 1;
/** sizeof(struct hv_kvp_msg): every request is this big because the guest answers in place. */
const KVP_MSG_SIZE = 7432;
const MAX_KEY_BYTES = 512;
const MAX_VALUE_BYTES = 2048;
const MAX_ENUMERATE = 1024;

/** The intrinsic keys of pool 2, in the daemon's index order. */
export const KVP_INTRINSIC_KEYS = ['FullyQualifiedDomainName', 'IntegrationServicesVersion', 'NetworkAddressIPv4',
  'NetworkAddressIPv6', 'OSBuildNumber', 'OSName', 'OSMajorVersion', 'OSMinorVersion', 'OSVersion', 'ProcessorArchitecture'] as const;

export class KvpIc extends IntegrationComponent {
  readonly interfaceType = KVP_GUID;
  readonly name = 'Key-Value Pair Exchange';
  readonly maxPacketSize = 16384;
  protected readonly icType = IcMsgType.KVPEXCHANGE;
  protected readonly frameworkVersions = versionsOf('3.0', '1.0');
  protected readonly messageVersions = versionsOf('4.0', '3.0', '1.0');
  /** Host keys the host set (pool 0), as the host intends them. */
  readonly hostKeys = new Map<string, string>();

  protected override saveExtra(): Record<string, unknown> { return { hostKeys: [...this.hostKeys] }; }
  protected override restoreExtra(s: Record<string, unknown>): void {
    this.hostKeys.clear();
    if (Array.isArray(s.hostKeys)) for (const e of s.hostKeys) if (Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'string') this.hostKeys.set(e[0], e[1]);
  }

  private request(op: KvpOp, pool: KvpPool): { bytes: Uint8Array; view: DataView } {
    const f = this.frame(IcMsgType.KVPEXCHANGE, KVP_MSG_SIZE);
    f.view.setUint8(ICMSG_HDR, op);
    f.view.setUint8(ICMSG_HDR + 1, pool);
    return f;
  }

  private check(what: string): void {
    if (!this.ready) throw this.unavailable(what);
  }

  /** Every key/value of a guest pool (ENUMERATE until the guest says "no more items"). */
  async readPool(pool: KvpPool): Promise<Map<string, string>> {
    this.check('Cannot read the guest\'s key-value pairs');
    const out = new Map<string, string>();
    for (let index = 0; index < MAX_ENUMERATE; index++) {
      const f = this.request(KvpOp.ENUMERATE, pool);
      f.view.setUint32(ICMSG_HDR + 4, index, true);
      const r = await this.transact(f.bytes, IcMsgType.KVPEXCHANGE, 30_000);
      const status = r.getUint32(20, true);
      if (status === S_CONT) break;
      if (status !== S_OK) throw new IcError(`KVP enumerate of pool ${pool} failed at index ${index} (status ${hresult(status)})`);
      if (r.byteLength < ICMSG_HDR + 2608) { this.channel?.fault('KVP enumerate reply too short'); throw new IcError('malformed KVP reply'); }
      const b = new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
      const keySize = Math.min(r.getUint32(ICMSG_HDR + 12, true), MAX_KEY_BYTES);
      const valueSize = Math.min(r.getUint32(ICMSG_HDR + 16, true), MAX_VALUE_BYTES);
      out.set(fromUtf16(b, ICMSG_HDR + 20, keySize), fromUtf16(b, ICMSG_HDR + 532, valueSize));
    }
    return out;
  }

  /** The guest's OS identification and addresses (pool 2), e.g. OSName, OSVersion, NetworkAddressIPv4. */
  async guestIntrinsics(): Promise<Record<string, string>> {
    return Object.fromEntries(await this.readPool(KvpPool.AUTO));
  }

  /** Add or change a host key in the guest's pool 0 (/var/lib/hyperv/.kvp_pool_0). */
  async setHostKey(key: string, value: string): Promise<void> {
    this.check('Cannot write a key-value pair');
    validate(key, value);
    const f = this.request(KvpOp.SET, KvpPool.EXTERNAL);
    const k = utf16(key, MAX_KEY_BYTES), v = utf16(value, MAX_VALUE_BYTES);
    f.view.setUint32(ICMSG_HDR + 4, REG_SZ, true);
    f.view.setUint32(ICMSG_HDR + 8, k.length, true);
    f.view.setUint32(ICMSG_HDR + 12, v.length, true);
    f.bytes.set(k, ICMSG_HDR + 16);
    f.bytes.set(v, ICMSG_HDR + 16 + MAX_KEY_BYTES);
    const r = await this.transact(f.bytes, IcMsgType.KVPEXCHANGE, 30_000);
    const status = r.getUint32(20, true);
    if (status !== S_OK) throw new IcError(`the guest did not store key "${key}" (status ${hresult(status)})`);
    this.hostKeys.set(key, value);
  }

  /** Remove a host key from pool 0. */
  async removeHostKey(key: string): Promise<void> {
    this.check('Cannot remove a key-value pair');
    validate(key, '');
    const f = this.request(KvpOp.DELETE, KvpPool.EXTERNAL);
    const k = utf16(key, MAX_KEY_BYTES);
    f.view.setUint32(ICMSG_HDR + 4, k.length, true);
    f.bytes.set(k, ICMSG_HDR + 8);
    const r = await this.transact(f.bytes, IcMsgType.KVPEXCHANGE, 30_000);
    const status = r.getUint32(20, true);
    if (status !== S_OK) throw new IcError(`the guest did not remove key "${key}" (status ${hresult(status)})`);
    this.hostKeys.delete(key);
  }
}

function validate(key: string, value: string): void {
  if (key.length === 0) throw new IcError('a KVP key must not be empty');
  if ((key.length + 1) * 2 > MAX_KEY_BYTES) throw new IcError(`KVP key "${key.slice(0, 20)}…" is longer than ${MAX_KEY_BYTES / 2 - 1} characters`);
  if ((value.length + 1) * 2 > MAX_VALUE_BYTES) throw new IcError(`KVP value is longer than ${MAX_VALUE_BYTES / 2 - 1} characters`);
  if (key.includes('\0') || value.includes('\0')) throw new IcError('KVP keys and values must not contain NUL characters');
}
