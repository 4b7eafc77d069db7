/**
 * Decoding of the GUEST_OS_ID MSR (TLFS "Reporting the Guest OS Identity"): the partition's low-level
 * OS identification, next to the KVP-reported one.
 */
export interface GuestOsIdentity {
  /** Raw MSR value as 16 hex digits. */
  raw: string;
  openSource: boolean;
  /** 'Linux', 'FreeBSD', 'Xen', 'Illumos', 'Windows' or 'unknown (n)'. */
  osType: string;
  /** Open-source: kernel version as a.b.c (Linux: LINUX_VERSION_CODE); proprietary: major.minor. */
  version: string;
  /** Open-source: distribution-specific id byte; proprietary: OS id byte. */
  osId: number;
  build: number;
  /** Proprietary only: vendor id (1 = Microsoft) and service version. */
  vendorId?: number;
  serviceVersion?: number;
}

const OPEN_SOURCE_TYPES: Record<number, string> = { 1: 'Linux', 2: 'FreeBSD', 3: 'Xen', 4: 'Illumos' };

export function decodeGuestOsId(lo: number, hi: number): GuestOsIdentity | null {
  lo >>>= 0; hi >>>= 0;
  if (lo === 0 && hi === 0) return null;
  const raw = hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
  if (hi & 0x80000000) {
    // bit 63 open source; 62:56 OS type; 55:48 OS id; 47:16 version; 15:0 build.
    const type = (hi >>> 24) & 0x7f;
    const version = ((hi & 0xffff) * 0x10000 + (lo >>> 16)) >>> 0;
    return {
      raw, openSource: true, osType: OPEN_SOURCE_TYPES[type] ?? `unknown (${type})`, osId: (hi >>> 16) & 0xff,
      version: `${(version >>> 16) & 0xffff}.${(version >>> 8) & 0xff}.${version & 0xff}`, build: lo & 0xffff,
    };
  }
  // 63:48 vendor; 47:40 OS id; 39:32 major; 31:24 minor; 23:16 service version; 15:0 build.
  const vendorId = hi >>> 16;
  return {
    raw, openSource: false, osType: vendorId === 1 ? 'Windows' : `unknown (vendor ${vendorId})`, osId: (hi >>> 8) & 0xff,
    version: `${hi & 0xff}.${lo >>> 24}`, build: lo & 0xffff, vendorId, serviceVersion: (lo >>> 16) & 0xff,
  };
}
