/**
 * A VHDX file (fixed, dynamic or differencing) as a Disk.
 *
 * Write ordering (what makes a completed flush durable and a crash harmless):
 * - the first change of a session updates both headers (sequence+1, new FileWriteGuid and DataWriteGuid);
 * - payload goes straight to the file; a new block is always placed at the end of the file, so its unwritten
 *   sectors are fresh zeros and never another block's old data;
 * - BAT and sector-bitmap changes stay in memory until flush(), which flushes the payload, writes the changed
 *   4 KiB pages to the log, flushes, sets the LogGuid in the headers (first time only) and applies the pages in
 *   place; the next flush (or close, before the LogGuid is cleared) makes the apply durable. A crash at any point
 *   leaves either the old or the new metadata (replay re-applies the newest entry).
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkRange, DiskError, type Disk } from '../disk.js';
import { NodeFile, OverlayFile, readFull, type BlockFile } from '../file-io.js';
import { lockDisk, type HeldLock } from '../lock.js';
import { Bat, batGeometry, bitmapIndex, payloadIndex, type BatGeometry } from './bat.js';
import {
  FILE_SIGNATURE, guidToBytes, HEADER_OFFSETS, HEADER_SIZE, MiB, PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT,
  PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_UNMAPPED, PAYLOAD_ZERO, REGION_OFFSETS, REGION_TABLE_SIZE,
  SB_NOT_PRESENT, SB_PRESENT, VhdxFormatError, ZERO_GUID, roundUp,
} from './format.js';
import { checkRegions, chooseHeader, parseRegionTable, serializeHeader, type Regions, type VhdxHeader } from './header.js';
import { applyReplay, LogWriter, planReplay } from './log.js';
import { parseMetadata, type VhdxParams } from './metadata.js';

export interface OpenVhdxOptions {
  readOnly?: boolean;
  /** Open through this file instead of the path (tests: power-loss layer). */
  file?: BlockFile;
  /** Opens parents (tests); default opens them from disk read-only. */
  openFile?: (path: string, readOnly: boolean) => Promise<BlockFile>;
  /** Take the file lock (default true). describe/check pass false. */
  lock?: boolean;
  /** Named in lock errors: what holds the disk ("VM web01", "merge"). */
  purpose?: string;
  /** Whether openFile can open a path that does not exist here (a descriptor handed to a VM worker), so a
   *  parent locator may name it. */
  hasFile?: (path: string) => boolean;
  /** Real paths of the children already open (loop detection). */
  chain?: string[];
  /** Accept a parent whose DataWriteGuid differs from the recorded linkage (finishing an interrupted merge
   *  into that parent, which changed it on purpose). */
  trustParent?: boolean;
}

const MAX_METADATA_REGION = 16 * MiB;
const DONE: Promise<void> = Promise.resolve();

export class VhdxDisk implements Disk {
  readonly canUnmap = true;
  readonly diskId: Uint8Array;
  readonly sizeBytes: number;
  readonly logicalSectorSize: 512 | 4096;
  readonly physicalSectorSize: 512 | 4096;
  readonly geometry: BatGeometry;
  /** Warnings met while opening (one bad header or region table copy). */
  readonly warnings: string[] = [];

  private closed = false;
  private sessionStarted = false;
  private logInHeader = false;
  /** In-place metadata writes of the last commit not yet flushed (its log entry still covers them). */
  private applyPending = false;
  /** The last header write is not flushed yet (the other copy, one sequence number lower, is durable). */
  private headerUnflushed = false;
  private readonly dirty = new Map<number, Uint8Array>();
  private readonly bitmaps = new Map<number, Uint8Array>();
  private fileEnd: number;
  private queue: Promise<unknown> = Promise.resolve();
  private log: LogWriter | null = null;

  private constructor(
    readonly path: string,
    readonly file: BlockFile,
    readonly readOnly: boolean,
    public header: VhdxHeader,
    private headerSlot: 0 | 1,
    readonly regions: Regions,
    readonly params: VhdxParams,
    readonly bat: Bat,
    readonly parent: Disk | null,
    private readonly lock: HeldLock | null,
    fileSize: number,
  ) {
    this.sizeBytes = params.virtualSize;
    this.logicalSectorSize = params.logicalSectorSize;
    this.physicalSectorSize = params.physicalSectorSize;
    this.diskId = guidToBytes(params.diskId);
    this.geometry = batGeometry(params.virtualSize, params.blockSize, params.logicalSectorSize, params.hasParent);
    this.fileEnd = roundUp(fileSize, MiB);
  }

  get type(): 'fixed' | 'dynamic' | 'differencing' {
    return this.params.hasParent ? 'differencing' : this.params.leaveBlocksAllocated ? 'fixed' : 'dynamic';
  }

  static async open(path: string, opts: OpenVhdxOptions = {}): Promise<VhdxDisk> {
    const readOnly = opts.readOnly ?? false;
    const openFile = opts.openFile ?? ((p: string, ro: boolean) => NodeFile.open(p, ro));
    let file: BlockFile;
    try {
      file = opts.file ?? await openFile(path, readOnly);
    } catch (e) {
      throw new VhdxFormatError(path, `cannot open: ${(e as Error).message}`);
    }
    let lock: HeldLock | null = null;
    try {
      if (opts.lock !== false) lock = lockDisk(file.fd, path, !readOnly, opts.purpose);
      return await VhdxDisk.load(path, file, readOnly, lock, opts, openFile);
    } catch (e) {
      lock?.release();
      await file.close().catch(() => undefined);
      throw e;
    }
  }

  private static async load(path: string, rawFile: BlockFile, readOnly: boolean, lock: HeldLock | null, opts: OpenVhdxOptions, openFile: (p: string, ro: boolean) => Promise<BlockFile>): Promise<VhdxDisk> {
    let file = rawFile;
    let size = await file.size();
    if (size < 1 * MiB) throw new VhdxFormatError(path, `file is too short to be a VHDX (${size} bytes)`);
    const ident = new Uint8Array(8);
    await readFull(file, ident, 0);
    if (Buffer.from(ident).toString('latin1') !== FILE_SIGNATURE) throw new VhdxFormatError(path, 'not a VHDX file (no "vhdxfile" signature)');
    const h0 = new Uint8Array(HEADER_SIZE), h1 = new Uint8Array(HEADER_SIZE);
    await readFull(file, h0, HEADER_OFFSETS[0]);
    await readFull(file, h1, HEADER_OFFSETS[1]);
    const chosen = chooseHeader(path, h0, h1);
    const header = chosen.header;
    if (header.logOffset + header.logLength > size) throw new VhdxFormatError(path, `log region (${header.logOffset}+${header.logLength}) lies past the end of the file (${size} bytes)`);

    let replayed = false;
    if (header.logGuid !== ZERO_GUID) {
      const plan = await planReplay(path, file, header.logOffset, header.logLength, header.logGuid, size);
      if (readOnly) {
        const ov = new OverlayFile(file);
        for (const w of plan.writes) ov.put(w.offset, w.data ?? null, w.data ? w.data.length : w.zeroLength!);
        ov.extendTo(plan.lastFileOffset);
        file = ov;
      } else {
        await applyReplay(file, plan);
        replayed = true;
      }
      size = await file.size();
    }

    let regionEntries: ReturnType<typeof parseRegionTable> = 'unread';
    const regionErrors: string[] = [];
    for (const at of REGION_OFFSETS) {
      const rb = new Uint8Array(REGION_TABLE_SIZE);
      await readFull(file, rb, at);
      const r = parseRegionTable(rb);
      if (typeof r !== 'string') { regionEntries = r; break; }
      regionErrors.push(`region table ${regionErrors.length + 1}: ${r}`);
    }
    if (typeof regionEntries === 'string') throw new VhdxFormatError(path, `no valid region table (${regionErrors.join('; ')})`);
    const regions = checkRegions(path, regionEntries, { offset: header.logOffset, length: header.logLength });
    const md = regions.metadata;
    if (md.length > MAX_METADATA_REGION) throw new VhdxFormatError(path, `metadata region is implausibly large (${md.length} bytes)`);
    if (md.offset + md.length > size) throw new VhdxFormatError(path, 'metadata region lies past the end of the file');
    const mdBuf = new Uint8Array(md.length);
    await readFull(file, mdBuf, md.offset);
    const params = parseMetadata(path, mdBuf);
    const g = batGeometry(params.virtualSize, params.blockSize, params.logicalSectorSize, params.hasParent);
    if (regions.bat.length < g.totalEntries * 8) throw new VhdxFormatError(path, `BAT region (${regions.bat.length} bytes) is too small for ${g.totalEntries} entries`);
    if (regions.bat.offset + regions.bat.length > size) throw new VhdxFormatError(path, 'BAT region lies past the end of the file');
    const batBytes = new Uint8Array(roundUp(g.totalEntries * 8, 4096));
    await readFull(file, batBytes, regions.bat.offset);
    const bat = new Bat(batBytes, g.totalEntries);
    validateBat(path, bat, g, params, regions, header, size);

    let parent: Disk | null = null;
    if (params.hasParent) parent = await openParent(path, params, opts, openFile);
    const disk = new VhdxDisk(path, file, readOnly, header, chosen.slot, regions, params, bat, parent, lock, size);
    disk.warnings.push(...chosen.warnings, ...regionErrors);
    if (replayed) {
      disk.sessionStarted = false;
      await disk.writeHeaders({ logGuid: ZERO_GUID });
    }
    return disk;
  }

  // ---------------------------------------------------------------- reads

  read(offset: number, buf: Uint8Array): Promise<void> {
    try { this.check(offset, buf.length, false); } catch (e) { return Promise.reject(e); }
    // Most requests lie in one block: no loop, no views, no promise of our own when nothing is read from a file.
    const block = Math.floor(offset / this.params.blockSize);
    if (offset + buf.length <= (block + 1) * this.params.blockSize) return this.readPiece(block, offset, buf);
    return this.readRange(offset, buf);
  }

  private async readRange(offset: number, buf: Uint8Array): Promise<void> {
    const bs = this.params.blockSize;
    let done = 0;
    while (done < buf.length) {
      const off = offset + done;
      const block = Math.floor(off / bs);
      const n = Math.min(buf.length - done, (block + 1) * bs - off);
      await this.readPiece(block, off, buf.subarray(done, done + n));
      done += n;
    }
  }

  /** Reads `piece` (inside `block`) from wherever the block's state says its data lives. */
  private readPiece(block: number, off: number, piece: Uint8Array): Promise<void> {
    const i = payloadIndex(this.geometry, block);
    const state = this.bat.state(i);
    if (state === PAYLOAD_FULLY_PRESENT) return readFull(this.file, piece, this.bat.offset(i) + off - block * this.params.blockSize);
    if (state === PAYLOAD_PARTIALLY_PRESENT) return this.readPartial(block, off, piece);
    if (state === PAYLOAD_NOT_PRESENT && this.parent) return this.readParent(off, piece);
    piece.fill(0);
    return DONE;
  }

  private async readParent(off: number, piece: Uint8Array): Promise<void> {
    const p = this.parent!;
    const n = Math.max(0, Math.min(piece.length, p.sizeBytes - off));
    if (n > 0) await p.read(off, piece.subarray(0, n));
    piece.fill(0, n);
  }

  private async readPartial(block: number, off: number, piece: Uint8Array): Promise<void> {
    const ss = this.logicalSectorSize;
    const bm = await this.bitmap(Math.floor(block / this.geometry.chunkRatio));
    const fileBase = this.bat.offset(payloadIndex(this.geometry, block)) - block * this.params.blockSize;
    let s = 0;
    const total = piece.length / ss;
    while (s < total) {
      const present = this.bitSet(bm, off + s * ss);
      let e = s + 1;
      while (e < total && this.bitSet(bm, off + e * ss) === present) e++;
      const sub = piece.subarray(s * ss, e * ss);
      if (present) await readFull(this.file, sub, fileBase + off + s * ss);
      else await this.readParent(off + s * ss, sub);
      s = e;
    }
  }

  private bitNumber(virtualOffset: number): number {
    return (virtualOffset / this.logicalSectorSize) % this.geometry.sectorsPerBitmap;
  }
  private bitSet(bm: Uint8Array, virtualOffset: number): boolean {
    const k = this.bitNumber(virtualOffset);
    return (bm[k >> 3]! & (1 << (k & 7))) !== 0;
  }

  /** The sector bitmap of a chunk (zeros when not allocated yet). */
  private async bitmap(chunk: number): Promise<Uint8Array> {
    let bm = this.bitmaps.get(chunk);
    if (bm) return bm;
    bm = new Uint8Array(MiB);
    const i = bitmapIndex(this.geometry, chunk);
    if (this.bat.state(i) === SB_PRESENT) await readFull(this.file, bm, this.bat.offset(i));
    this.bitmaps.set(chunk, bm);
    return bm;
  }

  // ---------------------------------------------------------------- writes

  async write(offset: number, data: Uint8Array, fua?: boolean): Promise<void> {
    this.check(offset, data.length, true);
    await this.serialize(async () => {
      await this.startSession();
      await this.writeRange(offset, data);
      if (fua) await this.commit();
    });
  }

  async flush(): Promise<void> {
    this.check(0, 0, false);
    if (this.readOnly) return;
    await this.serialize(() => this.commit());
  }

  async unmap(offset: number, length: number): Promise<void> {
    this.check(offset, length, true);
    await this.serialize(async () => {
      await this.startSession();
      const bs = this.params.blockSize;
      let done = 0;
      while (done < length) {
        const off = offset + done;
        const block = Math.floor(off / bs);
        const inBlock = off - block * bs;
        const blockLen = Math.min(bs, this.sizeBytes - block * bs);
        const n = Math.min(length - done, blockLen - inBlock);
        await this.unmapInBlock(block, inBlock, n, n === blockLen);
        done += n;
      }
    });
  }

  private async unmapInBlock(block: number, inBlock: number, n: number, whole: boolean): Promise<void> {
    const i = payloadIndex(this.geometry, block);
    const state = this.bat.state(i);
    const off = block * this.params.blockSize + inBlock;
    if (state === PAYLOAD_FULLY_PRESENT) {
      if (whole && !this.params.leaveBlocksAllocated) {
        const old = this.bat.offset(i);
        this.setEntry(i, PAYLOAD_ZERO, 0);
        // The old space is never reused in this session, so giving it back now cannot expose it to another block.
        await this.file.zeroRange(old, n);
      } else {
        await this.file.zeroRange(this.bat.offset(i) + inBlock, n);
      }
    } else if (state === PAYLOAD_PARTIALLY_PRESENT || (state === PAYLOAD_NOT_PRESENT && this.parent)) {
      if (whole) {
        if (state === PAYLOAD_PARTIALLY_PRESENT) await this.file.zeroRange(this.bat.offset(i), n);
        this.setEntry(i, PAYLOAD_ZERO, 0);
      } else {
        await this.writeRange(off, new Uint8Array(n));
      }
    }
    // ZERO, UNMAPPED, UNDEFINED and (without a parent) NOT_PRESENT already read as zeros.
  }

  private async writeRange(offset: number, data: Uint8Array): Promise<void> {
    const bs = this.params.blockSize;
    let done = 0;
    while (done < data.length) {
      const off = offset + done;
      const block = Math.floor(off / bs);
      const inBlock = off - block * bs;
      const n = Math.min(data.length - done, bs - inBlock);
      const piece = data.subarray(done, done + n);
      const i = payloadIndex(this.geometry, block);
      const state = this.bat.state(i);
      if (state === PAYLOAD_FULLY_PRESENT) {
        await this.file.write(piece, this.bat.offset(i) + inBlock);
      } else if (state === PAYLOAD_PARTIALLY_PRESENT) {
        await this.file.write(piece, this.bat.offset(i) + inBlock);
        await this.markPresent(block, off, n);
      } else {
        const blockLen = Math.min(bs, this.sizeBytes - block * bs);
        const at = await this.allocate(bs); // a whole block even at the end, so a later grow never overlaps
        await this.file.write(piece, at + inBlock);
        if (this.parent && state === PAYLOAD_NOT_PRESENT && n < blockLen) {
          await this.clearBlockBits(block);
          await this.markPresent(block, off, n);
          this.setEntry(i, PAYLOAD_PARTIALLY_PRESENT, at);
        } else {
          // No parent shows through: the rest of the fresh block is zeros, as the old state read.
          this.setEntry(i, PAYLOAD_FULLY_PRESENT, at);
        }
      }
      done += n;
    }
  }

  /** Space at the end of the file: fresh zeros, never space another block used. */
  private async allocate(len: number): Promise<number> {
    const at = this.fileEnd;
    this.fileEnd += len;
    await this.file.truncate(this.fileEnd);
    return at;
  }

  private setEntry(i: number, state: number, fileOffset: number): void {
    this.bat.set(i, state, fileOffset);
    const page = Math.floor((i * 8) / 4096);
    this.dirty.set(this.regions.bat.offset + page * 4096, this.bat.bytes.subarray(page * 4096, page * 4096 + 4096));
  }

  private async chunkBitmapFileOffset(chunk: number): Promise<number> {
    const i = bitmapIndex(this.geometry, chunk);
    if (this.bat.state(i) !== SB_PRESENT) {
      await this.bitmap(chunk);
      const at = await this.allocate(MiB);
      this.setEntry(i, SB_PRESENT, at);
    }
    return this.bat.offset(i);
  }

  private async markPresent(block: number, off: number, n: number): Promise<void> {
    await this.setBits(block, off, n, true);
  }

  private async clearBlockBits(block: number): Promise<void> {
    const bs = this.params.blockSize;
    await this.setBits(block, block * bs, Math.min(bs, this.sizeBytes - block * bs), false);
  }

  private async setBits(block: number, off: number, n: number, value: boolean): Promise<void> {
    const chunk = Math.floor(block / this.geometry.chunkRatio);
    const bm = await this.bitmap(chunk);
    const first = this.bitNumber(off);
    const count = n / this.logicalSectorSize;
    let changedLo = -1, changedHi = -1;
    for (let k = first; k < first + count; k++) {
      const byte = k >> 3, bit = 1 << (k & 7);
      const cur = (bm[byte]! & bit) !== 0;
      if (cur === value) continue;
      bm[byte] = value ? bm[byte]! | bit : bm[byte]! & ~bit;
      if (changedLo < 0) changedLo = byte;
      changedHi = byte;
    }
    if (changedLo < 0) return;
    const base = await this.chunkBitmapFileOffset(chunk);
    for (let p = Math.floor(changedLo / 4096); p <= Math.floor(changedHi / 4096); p++) {
      this.dirty.set(base + p * 4096, bm.subarray(p * 4096, p * 4096 + 4096));
    }
  }

  // ---------------------------------------------------------------- durability

  /**
   * Makes every completed write durable: payload, then metadata through the log. The in-place apply of a commit is
   * made durable by the next flush (the log entry covers it until then: a crash replays it), which saves one
   * fdatasync per commit; before another entry may become the only one replayed, the apply is flushed.
   */
  private async commit(): Promise<void> {
    if (!this.sessionStarted) return;
    await this.flushFile(); // payload before the log entry that may point at it; also the previous apply
    this.applyPending = false;
    if (this.dirty.size === 0) return;
    const pages = [...this.dirty].sort((a, b) => a[0] - b[0]).map(([offset, d]) => ({ offset, data: d.slice() }));
    this.dirty.clear();
    if (!this.log) this.log = new LogWriter(this.file, this.header.logOffset, this.header.logLength, crypto.randomUUID());
    for (let k = 0; k < pages.length; k += this.log.maxPages) {
      const batch = pages.slice(k, k + this.log.maxPages);
      if (this.applyPending) { await this.flushFile(); this.applyPending = false; }
      await this.log.write(batch, this.fileEnd);
      await this.flushFile();
      if (!this.logInHeader) {
        await this.writeHeaders({ logGuid: this.log.guid });
        this.logInHeader = true;
      }
      for (const p of batch) await this.file.write(p.data, p.offset);
      this.applyPending = true;
    }
  }

  /** Before the first change of a session: new FileWriteGuid and DataWriteGuid in both headers. */
  private async startSession(): Promise<void> {
    if (this.sessionStarted) return;
    await this.writeHeaders({ fileWriteGuid: crypto.randomUUID(), dataWriteGuid: crypto.randomUUID() });
    this.sessionStarted = true;
  }

  /**
   * Writes the header into the non-current slot (flushed: the change is durable on return) and then into the other
   * slot, whose flush is left to the next flush of the file: until then a crash leaves the first copy, the same
   * header one sequence number lower, as the current one. A slot is never overwritten while the other copy's write is
   * unflushed, so one valid copy of the newest durable header always remains.
   */
  private async writeHeaders(change: Partial<VhdxHeader>): Promise<void> {
    let h = { ...this.header, ...change };
    for (let k = 0; k < 2; k++) {
      const slot = (1 - this.headerSlot) as 0 | 1;
      h = { ...h, sequence: this.header.sequence + 1n };
      if (this.headerUnflushed) await this.flushFile();
      await this.file.write(serializeHeader(h), HEADER_OFFSETS[slot]);
      this.headerUnflushed = true;
      if (k === 0) await this.flushFile();
      this.header = h;
      this.headerSlot = slot;
    }
  }

  private async flushFile(): Promise<void> {
    await this.file.flush();
    this.headerUnflushed = false;
  }

  /** Changes metadata-region bytes and BAT through the log (resize). Internal to this package. */
  async commitMetadataChange(pages: { offset: number; data: Uint8Array }[]): Promise<void> {
    await this.serialize(async () => {
      await this.startSession();
      for (const p of pages) this.dirty.set(p.offset, p.data);
      await this.commit();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.readOnly) {
        await this.serialize(async () => {
          await this.commit();
          // The applied metadata must be durable before the header stops pointing at the log.
          if (this.applyPending) { await this.flushFile(); this.applyPending = false; }
          if (this.logInHeader) { await this.writeHeaders({ logGuid: ZERO_GUID }); this.logInHeader = false; }
          if (this.headerUnflushed) await this.flushFile();
        });
      }
    } finally {
      this.closed = true;
      this.lock?.release();
      await this.file.close().catch(() => undefined);
      await this.parent?.close();
    }
  }

  private check(offset: number, length: number, writing: boolean): void {
    if (this.closed) throw new DiskError('closed', `${this.path} is closed`);
    checkRange(this, offset, length);
    if (writing && this.readOnly) throw new DiskError('read-only', `${this.path} is read-only`);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run.catch((e: unknown) => {
      if (e instanceof DiskError) throw e;
      throw new DiskError('io', `${this.path}: ${(e as Error).message}`);
    });
  }

  /**
   * Which sectors of a block this file itself defines (data or zeros), as [offset, length] runs of virtual
   * bytes; everything else comes from the parent. For merge.
   */
  async ownRuns(block: number): Promise<[number, number][]> {
    const bs = this.params.blockSize;
    const start = block * bs, len = Math.min(bs, this.sizeBytes - start);
    const state = this.bat.state(payloadIndex(this.geometry, block));
    if (state === PAYLOAD_NOT_PRESENT) return this.parent ? [] : [[start, len]];
    if (state !== PAYLOAD_PARTIALLY_PRESENT) return [[start, len]];
    const bm = await this.bitmap(Math.floor(block / this.geometry.chunkRatio));
    const out: [number, number][] = [];
    const ss = this.logicalSectorSize;
    for (let o = start; o < start + len; o += ss) {
      if (!this.bitSet(bm, o)) continue;
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === o) last[1] += ss; else out.push([o, ss]);
    }
    return out;
  }

  /** Maintenance (resize, optimize): change a BAT entry; committed by the next flush. */
  async setEntryForMaintenance(i: number, state: number, fileOffset: number): Promise<void> {
    await this.serialize(async () => { await this.startSession(); this.setEntry(i, state, fileOffset); });
  }

  /** Allocated payload/bitmap extents (file offset, length) for check, optimize and describe. */
  extents(): { offset: number; length: number; what: string }[] {
    return batExtents(this.bat, this.geometry, this.params);
  }

  /** The in-memory size the file will have after pending metadata is committed. */
  get allocatedEnd(): number { return this.fileEnd; }
}

export function batExtents(bat: Bat, g: BatGeometry, params: VhdxParams): { offset: number; length: number; what: string }[] {
  const out: { offset: number; length: number; what: string }[] = [];
  for (let b = 0; b < g.payloadBlocks; b++) {
    const i = payloadIndex(g, b);
    const s = bat.state(i);
    if (s === PAYLOAD_FULLY_PRESENT || s === PAYLOAD_PARTIALLY_PRESENT) {
      out.push({ offset: bat.offset(i), length: Math.min(params.blockSize, params.virtualSize - b * params.blockSize), what: `block ${b}` });
    }
  }
  if (params.hasParent) {
    for (let c = 0; c < g.bitmapBlocks; c++) {
      const i = bitmapIndex(g, c);
      if (bat.state(i) === SB_PRESENT) out.push({ offset: bat.offset(i), length: MiB, what: `sector bitmap ${c}` });
    }
  }
  return out;
}

function validateBat(path: string, bat: Bat, g: BatGeometry, params: VhdxParams, regions: Regions, header: VhdxHeader, fileSize: number): void {
  const allowed = new Set([PAYLOAD_NOT_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_ZERO, PAYLOAD_UNMAPPED, PAYLOAD_FULLY_PRESENT]);
  if (params.hasParent) allowed.add(PAYLOAD_PARTIALLY_PRESENT);
  for (let b = 0; b < g.payloadBlocks; b++) {
    const i = payloadIndex(g, b);
    const s = bat.state(i);
    if (!allowed.has(s)) throw new VhdxFormatError(path, `BAT entry for block ${b} has invalid state ${s}`);
    if ((s === PAYLOAD_FULLY_PRESENT || s === PAYLOAD_PARTIALLY_PRESENT) && bat.offset(i) < MiB) {
      throw new VhdxFormatError(path, `BAT entry for block ${b} points into the header area`);
    }
  }
  if (params.hasParent) {
    for (let c = 0; c < g.bitmapBlocks; c++) {
      const s = bat.state(bitmapIndex(g, c));
      if (s !== SB_NOT_PRESENT && s !== SB_PRESENT) throw new VhdxFormatError(path, `BAT sector-bitmap entry ${c} has invalid state ${s}`);
    }
  }
  const spans = batExtents(bat, g, params).map((e) => ({ name: e.what, start: e.offset, end: e.offset + e.length }));
  for (const s of spans) {
    if (s.end > fileSize) throw new VhdxFormatError(path, `BAT entry for ${s.name} points past the end of the file (${s.start}+${s.end - s.start} > ${fileSize})`);
  }
  spans.push({ name: 'header area', start: 0, end: MiB }, { name: 'log', start: header.logOffset, end: header.logOffset + header.logLength },
    { name: 'BAT region', start: regions.bat.offset, end: regions.bat.offset + regions.bat.length },
    { name: 'metadata region', start: regions.metadata.offset, end: regions.metadata.offset + regions.metadata.length });
  spans.sort((a, b) => a.start - b.start);
  for (let k = 1; k < spans.length; k++) {
    if (spans[k]!.start < spans[k - 1]!.end) throw new VhdxFormatError(path, `${spans[k]!.name} overlaps ${spans[k - 1]!.name}`);
  }
}

/** Candidate parent paths from a locator: relative path first, then absolute ones. */
export function parentCandidates(childPath: string, loc: Map<string, string>): string[] {
  const out: string[] = [];
  const norm = (p: string): string => p.replace(/\\/g, '/');
  const rel = loc.get('relative_path');
  if (rel) out.push(resolve(dirname(childPath), norm(rel)));
  for (const k of ['absolute_win32_path', 'volume_path']) {
    const v = loc.get(k);
    if (v && isAbsolute(norm(v))) out.push(norm(v));
  }
  return out;
}

export function normalizeLinkage(s: string): string {
  return s.replace(/[{}]/g, '').toLowerCase();
}

async function openParent(path: string, params: VhdxParams, opts: OpenVhdxOptions, openFile: (p: string, ro: boolean) => Promise<BlockFile>): Promise<Disk> {
  const loc = params.parentLocator!;
  const candidates = parentCandidates(path, loc);
  if (candidates.length === 0) throw new VhdxFormatError(path, 'parent locator names no usable parent path (relative_path or absolute path)');
  let me = path;
  try { me = realpathSync(path); } catch { /* test files, or a descriptor handed over */ }
  const chain = [...(opts.chain ?? []), me];
  const tried: string[] = [];
  for (const c of candidates) {
    let real = c;
    try { real = realpathSync(c); } catch {
      if (!opts.hasFile?.(c)) { tried.push(`${c} (not found)`); continue; }
    }
    if (chain.includes(real)) throw new VhdxFormatError(path, `the parent chain loops back to ${real}`);
    let parent: VhdxDisk;
    try {
      parent = await VhdxDisk.open(c, { readOnly: true, openFile, hasFile: opts.hasFile, chain, lock: opts.lock, purpose: opts.purpose });
    } catch (e) {
      if (e instanceof VhdxFormatError) throw new VhdxFormatError(path, `in its parent chain: ${e.message}`);
      throw e;
    }
    const linkage = normalizeLinkage(loc.get('parent_linkage')!);
    if (!opts.trustParent && normalizeLinkage(parent.header.dataWriteGuid) !== linkage) {
      await parent.close();
      throw new VhdxFormatError(path, `parent ${c} has changed since this differencing disk was created (its DataWriteGuid ${parent.header.dataWriteGuid} is not the recorded parent_linkage ${linkage})`);
    }
    if (parent.logicalSectorSize !== params.logicalSectorSize) {
      await parent.close();
      throw new VhdxFormatError(path, `parent ${c} has ${parent.logicalSectorSize}-byte sectors, this disk ${params.logicalSectorSize}`);
    }
    return parent;
  }
  throw new VhdxFormatError(path, `parent disk not found (tried ${tried.join(', ')})`);
}
