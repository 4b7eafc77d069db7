/**
 * IDENTIFY DEVICE and IDENTIFY PACKET DEVICE data (ATA8-ACS 7.16/7.17): 256 little-endian words that tell
 * libata what the drive can do. Only features the command set in channel.ts implements are advertised
 * (LBA28/48, multiple mode, MWDMA/UDMA, write cache, FLUSH CACHE (EXT), power management).
 */

/** Largest READ/WRITE MULTIPLE block (sectors), word 47. */
export const MAX_MULTIPLE_SECTORS = 128;
export const LBA28_MAX_SECTORS = 0x0fff_ffff;

export interface DriveIdentity {
  model: string;
  serial: string;
  firmware: string;
}

/** ATA strings: space padded, two characters per word with the first in the high byte. */
function putString(w: Uint16Array, word: number, words: number, s: string): void {
  const text = s.padEnd(words * 2, ' ').slice(0, words * 2);
  for (let i = 0; i < words; i++) w[word + i] = ((text.charCodeAt(2 * i) & 0x7f) << 8) | (text.charCodeAt(2 * i + 1) & 0x7f);
}

/** Integrity word 255: signature 0xA5 and a checksum making all 512 bytes sum to zero. */
function seal(w: Uint16Array): Uint8Array {
  w[255] = 0xa5;
  const b = new Uint8Array(512);
  for (let i = 0; i < 256; i++) { b[2 * i] = w[i] & 0xff; b[2 * i + 1] = w[i] >>> 8; }
  let sum = 0;
  for (let i = 0; i < 511; i++) sum = (sum + b[i]) & 0xff;
  b[511] = (256 - sum) & 0xff;
  return b;
}

export interface DiskGeometry { cylinders: number; heads: number; sectors: number }

/** The default CHS translation of a disk of `total` sectors (16 heads, 63 sectors per track). */
export function defaultGeometry(total: number): DiskGeometry {
  return { cylinders: Math.max(1, Math.min(16383, Math.floor(total / (16 * 63)))), heads: 16, sectors: 63 };
}

export interface AtaIdentifyOptions {
  id: DriveIdentity;
  totalSectors: number;
  physicalSectorSize: number;
  /** Current multiple-mode block size (0 = disabled). */
  multiple: number;
  /** Current CHS translation (INITIALIZE DEVICE PARAMETERS). */
  geometry: DiskGeometry;
  /** Selected transfer mode as set by SET FEATURES 03h: 0x08+n PIO n, 0x20+n MWDMA n, 0x40+n UDMA n. */
  xferMode: number;
  writeCache: boolean;
}

export function ataIdentify(o: AtaIdentifyOptions): Uint8Array {
  const w = new Uint16Array(256);
  const def = defaultGeometry(o.totalSectors);
  w[0] = 0x0040; // fixed device, not removable
  w[1] = def.cylinders; w[3] = def.heads; w[6] = def.sectors;
  putString(w, 10, 10, o.id.serial);
  putString(w, 23, 4, o.id.firmware);
  putString(w, 27, 20, o.id.model);
  w[47] = 0x8000 | MAX_MULTIPLE_SECTORS;
  w[49] = 0x0300; // LBA, DMA
  w[50] = 0x4000;
  w[51] = 0x0200; // PIO mode 2 timing (obsolete field, still read by some drivers)
  w[53] = 0x0007; // words 54-58, 64-70 and 88 are valid
  const g = o.geometry;
  const chsCap = Math.min(o.totalSectors, g.cylinders * g.heads * g.sectors);
  w[54] = g.cylinders; w[55] = g.heads; w[56] = g.sectors;
  w[57] = chsCap & 0xffff; w[58] = chsCap >>> 16;
  w[59] = o.multiple > 0 ? 0x0100 | o.multiple : 0;
  const lba28 = Math.min(o.totalSectors, LBA28_MAX_SECTORS);
  w[60] = lba28 & 0xffff; w[61] = lba28 >>> 16;
  const mode = o.xferMode;
  w[63] = 0x0007 | ((mode >> 3) === 4 ? 1 << (8 + (mode & 7)) : 0); // MWDMA 0-2 supported, selected
  w[64] = 0x0003; // PIO 3 and 4
  w[65] = 120; w[66] = 120; w[67] = 120; w[68] = 120;
  w[80] = 0x00f0; // ATA/ATAPI-4 to -7
  w[82] = 0x0028; // write cache, power management (NOP is not offered)
  w[83] = 0x4000 | 0x2000 | 0x1000 | 0x0400; // FLUSH CACHE EXT, FLUSH CACHE, 48-bit addressing
  w[84] = 0x4000;
  w[85] = 0x0008 | (o.writeCache ? 0x0020 : 0);
  w[86] = w[83] & 0x3fff;
  w[87] = 0x4000;
  w[88] = 0x0007 | ((mode >> 3) === 8 ? 1 << (8 + (mode & 7)) : 0); // UDMA 0-2 (PIIX4: UDMA/33), selected
  w[93] = 0x4001 | 0x0008; // device 0 passed diagnostics (bits set as a device jumpered by cable select)
  const total = o.totalSectors;
  w[100] = total & 0xffff; w[101] = Math.floor(total / 0x10000) & 0xffff;
  w[102] = Math.floor(total / 0x1_0000_0000) & 0xffff; w[103] = 0;
  const perPhysical = Math.max(1, o.physicalSectorSize / 512);
  w[106] = perPhysical > 1 ? 0x6000 | Math.log2(perPhysical) : 0x4000;
  return seal(w);
}

/** IDENTIFY PACKET DEVICE of a CD/DVD drive: ATAPI, removable, 12-byte packets, DMA capable. */
export function atapiIdentify(id: DriveIdentity, xferMode: number): Uint8Array {
  const w = new Uint16Array(256);
  w[0] = 0x8000 | (0x05 << 8) | 0x80 | 0x40; // ATAPI, CD-ROM class, removable, accelerated DRQ
  putString(w, 10, 10, id.serial);
  putString(w, 23, 4, id.firmware);
  putString(w, 27, 20, id.model);
  w[49] = 0x0300; // LBA, DMA (no overlap, no queuing)
  w[50] = 0x4000;
  w[53] = 0x0006;
  w[63] = 0x0007 | ((xferMode >> 3) === 4 ? 1 << (8 + (xferMode & 7)) : 0);
  w[64] = 0x0003;
  w[65] = 120; w[66] = 120; w[67] = 120; w[68] = 120;
  w[71] = 30; w[72] = 30; // PACKET to bus release, SERVICE to BSY cleared (ns)
  w[80] = 0x0070; // ATA/ATAPI-4 to -6
  w[82] = 0x0010; // PACKET command set
  w[83] = 0x4000;
  w[84] = 0x4000;
  w[85] = 0x0010;
  w[86] = 0;
  w[87] = 0x4000;
  w[88] = 0x0007 | ((xferMode >> 3) === 8 ? 1 << (8 + (xferMode & 7)) : 0);
  w[93] = 0x4001 | 0x0008;
  return seal(w);
}
