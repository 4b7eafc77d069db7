/** BAT geometry (payload and sector-bitmap entries interleaved by chunk ratio) and entry access. */
import { MiB } from './format.js';

export interface BatGeometry {
  blockSize: number;
  sectorSize: number;
  /** Payload blocks per chunk. */
  chunkRatio: number;
  payloadBlocks: number;
  /** Sector-bitmap blocks (chunks). */
  bitmapBlocks: number;
  totalEntries: number;
  /** Virtual sectors covered by one sector-bitmap block. */
  sectorsPerBitmap: number;
}

export function batGeometry(virtualSize: number, blockSize: number, sectorSize: number, differencing: boolean): BatGeometry {
  const chunkRatio = (2 ** 23 * sectorSize) / blockSize;
  const payloadBlocks = Math.ceil(virtualSize / blockSize);
  const bitmapBlocks = Math.ceil(payloadBlocks / chunkRatio);
  const totalEntries = differencing ? bitmapBlocks * (chunkRatio + 1) : payloadBlocks + Math.floor((payloadBlocks - 1) / chunkRatio);
  return { blockSize, sectorSize, chunkRatio, payloadBlocks, bitmapBlocks, totalEntries, sectorsPerBitmap: 2 ** 23 };
}

export function payloadIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

export function bitmapIndex(g: BatGeometry, chunk: number): number {
  return (chunk + 1) * g.chunkRatio + chunk;
}

/** The BAT as an in-memory byte image, with entry accessors. */
export class Bat {
  private readonly dv: DataView;
  constructor(readonly bytes: Uint8Array, readonly entries: number) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  state(i: number): number { return this.dv.getUint32(i * 8, true) & 7; }
  /** File offset in bytes of the entry's block (0 when none). */
  offset(i: number): number {
    const lo = this.dv.getUint32(i * 8, true);
    const hi = this.dv.getUint32(i * 8 + 4, true);
    return (hi * 4096 + (lo >>> 20)) * MiB;
  }
  set(i: number, state: number, fileOffset: number): void {
    const mb = fileOffset / MiB;
    this.dv.setUint32(i * 8, ((mb % 4096) << 20 | state) >>> 0, true);
    this.dv.setUint32(i * 8 + 4, Math.floor(mb / 4096), true);
  }
  /** Whether any bit other than state and offset is set (reserved bits must be zero). */
  reserved(i: number): boolean { return (this.dv.getUint32(i * 8, true) & 0xffff8) !== 0; }
}
