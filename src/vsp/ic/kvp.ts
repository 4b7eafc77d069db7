/**
 * Key-Value Pair Exchange IC (contract §8.4): read the guest's pools (OS identification in pool 2,
 * "Auto") and push host keys into pool 0 ("External"). Linux only answers once hv_kvp_daemon runs.
 */
import { isIP } from 'node:net';
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

/**
 * struct hv_kvp_ip_msg (Linux include/uapi/linux/hyperv.h), after the IC header: operation, pool, then
 * hv_kvp_ipaddr_value (packed, UTF-16 strings of fixed size, several values joined by ';').
 */
const IP = { adapterId: 2, family: 258, dhcp: 259, addresses: 260, subnets: 2308, gateways: 4356, dns: 5380, end: 7428 } as const;
const IP_ADAPTER_ID_BYTES = 256;
const IP_LIST_BYTES = 2048;
const IP_GATEWAY_BYTES = 1024;
/** Entries kept per list: a guest cannot make the host hold more than this whatever it writes. */
const MAX_IP_ENTRIES = 64;
export const ADDR_FAMILY_IPV4 = 1;
export const ADDR_FAMILY_IPV6 = 2;

/** What the guest's KVP daemon reports for one adapter (KVP_OP_GET_IP_INFO), checked and normalised. */
export interface GuestIpInfo {
  /** IPv4 and IPv6 addresses of the guest interface with the adapter's MAC. */
  addresses: string[];
  /** Subnet masks (IPv4 dotted, IPv6 as "/64"), in the order of the addresses the daemon listed them for. */
  subnets: string[];
  gateways: string[];
  dnsServers: string[];
  dhcpEnabled: boolean;
}

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

  /**
   * KVP_OP_GET_IP_INFO: the addresses the guest has on the adapter with `mac` (hv_kvp_daemon matches it
   * against /sys/class/net/<if>/address). Null when the guest has no interface with that MAC (yet).
   * Everything in the answer is untrusted: only well-formed IP addresses survive, in bounded numbers.
   */
  async getIpInfo(mac: string): Promise<GuestIpInfo | null> {
    this.check('Cannot read the guest\'s IP addresses');
    if (!/^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$/.test(mac)) throw new IcError(`"${mac}" is not a MAC address`);
    const f = this.frame(IcMsgType.KVPEXCHANGE, KVP_MSG_SIZE);
    f.view.setUint8(ICMSG_HDR, KvpOp.GET_IP_INFO);
    f.view.setUint8(ICMSG_HDR + 1, KvpPool.EXTERNAL);
    f.bytes.set(utf16(mac.toUpperCase().replace(/-/g, ':'), IP_ADAPTER_ID_BYTES), ICMSG_HDR + IP.adapterId);
    f.view.setUint8(ICMSG_HDR + IP.family, ADDR_FAMILY_IPV4 | ADDR_FAMILY_IPV6);
    const r = await this.transact(f.bytes, IcMsgType.KVPEXCHANGE, 30_000);
    const status = r.getUint32(20, true);
    // HV_E_FAIL / HV_GUID_NOTFOUND: no interface with that MAC, or the daemon could not read it.
    if (status !== S_OK) return null;
    if (r.byteLength < ICMSG_HDR + IP.end) { this.channel?.fault('KVP IP-info reply too short'); throw new IcError('malformed KVP reply'); }
    return parseIpInfo(new Uint8Array(r.buffer, r.byteOffset + ICMSG_HDR, IP.end));
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

/** The hv_kvp_ipaddr_value part of a guest's GET_IP_INFO answer (`b` starts at the operation byte). */
export function parseIpInfo(b: Uint8Array): GuestIpInfo {
  if (b.length < IP.end) throw new RangeError(`IP info of ${b.length} bytes (need ${IP.end})`);
  const list = (off: number, bytes: number, ok: (s: string) => boolean): string[] => {
    const out: string[] = [];
    for (const x of fromUtf16(b, off, bytes).split(';')) {
      const s = x.trim();
      if (s && ok(s) && !out.includes(s)) out.push(s);
      if (out.length >= MAX_IP_ENTRIES) break;
    }
    return out;
  };
  const ip = (s: string): boolean => isIP(s.replace(/%[\w.-]{1,16}$/, '')) !== 0;
  return {
    addresses: list(IP.addresses, IP_LIST_BYTES, ip),
    subnets: list(IP.subnets, IP_LIST_BYTES, (s) => isIP(s) === 4 || /^\/(\d|[1-9]\d|1[01]\d|12[0-8])$/.test(s)),
    gateways: list(IP.gateways, IP_GATEWAY_BYTES, ip),
    dnsServers: list(IP.dns, IP_LIST_BYTES, ip),
    dhcpEnabled: b[IP.dhcp] === 1,
  };
}

function validate(key: string, value: string): void {
  if (key.length === 0) throw new IcError('a KVP key must not be empty');
  if ((key.length + 1) * 2 > MAX_KEY_BYTES) throw new IcError(`KVP key "${key.slice(0, 20)}…" is longer than ${MAX_KEY_BYTES / 2 - 1} characters`);
  if ((value.length + 1) * 2 > MAX_VALUE_BYTES) throw new IcError(`KVP value is longer than ${MAX_VALUE_BYTES / 2 - 1} characters`);
  if (key.includes('\0') || value.includes('\0')) throw new IcError('KVP keys and values must not contain NUL characters');
}
