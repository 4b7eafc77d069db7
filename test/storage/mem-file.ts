/**
 * In-memory files for the VHDX tests: MemFile (fuzzing without disk I/O) and PowerLossFile, which keeps what a
 * flush made durable apart from what was only written, and on "power loss" keeps only the durable image (or
 * that plus a random subset of the unflushed writes: a disk may have written some of them).
 */
import type { BlockFile } from '../../src/storage/file-io.js';

export class MemFile implements BlockFile {
  bytes: Uint8Array;
  len: number;
  writes = 0;
  constructor(readonly path: string, init: Uint8Array) { this.bytes = new Uint8Array(init); this.len = init.length; }
  protected grow(n: number): void {
    if (n <= this.bytes.length) return;
    const b = new Uint8Array(Math.max(n, this.bytes.length * 2));
    b.set(this.bytes.subarray(0, this.len));
    this.bytes = b;
  }
  async read(buf: Uint8Array, pos: number): Promise<number> {
    const n = Math.max(0, Math.min(buf.length, this.len - pos));
    buf.set(this.bytes.subarray(pos, pos + n));
    return n;
  }
  async write(data: Uint8Array, pos: number): Promise<void> {
    this.writes++;
    this.grow(pos + data.length);
    this.bytes.set(data, pos);
    this.len = Math.max(this.len, pos + data.length);
  }
  async size(): Promise<number> { return this.len; }
  async truncate(n: number): Promise<void> {
    this.writes++;
    this.grow(n);
    if (n < this.len) this.bytes.fill(0, n, this.len);
    this.len = n;
  }
  async flush(): Promise<void> { /* memory */ }
  async zeroRange(pos: number, len: number): Promise<void> {
    this.writes++;
    const end = Math.min(this.len, pos + len);
    if (end > pos) this.bytes.fill(0, pos, end);
  }
  async close(): Promise<void> { /* memory */ }
  image(): Uint8Array { return this.bytes.slice(0, this.len); }
}

export class PowerLost extends Error { constructor() { super('simulated power loss'); } }

type Pending = { kind: 'write'; pos: number; data: Uint8Array } | { kind: 'truncate'; len: number } | { kind: 'zero'; pos: number; len: number };

/** Reads see every write; `durable` holds only what flushes made durable. Fails every call from call `crashAt` on. */
export class PowerLossFile extends MemFile {
  readonly durable: MemFile;
  private pending: Pending[] = [];
  calls = 0;
  lost = false;
  constructor(path: string, init: Uint8Array, public crashAt = Infinity) {
    super(path, init);
    this.durable = new MemFile(path, init);
  }
  private tick(): void {
    if (this.lost || ++this.calls >= this.crashAt) { this.lost = true; throw new PowerLost(); }
  }
  override async write(data: Uint8Array, pos: number): Promise<void> {
    this.tick();
    await super.write(data, pos);
    this.pending.push({ kind: 'write', pos, data: data.slice() });
  }
  override async truncate(n: number): Promise<void> {
    this.tick();
    await super.truncate(n);
    this.pending.push({ kind: 'truncate', len: n });
  }
  override async zeroRange(pos: number, len: number): Promise<void> {
    this.tick();
    await super.zeroRange(pos, len);
    this.pending.push({ kind: 'zero', pos, len });
  }
  override async flush(): Promise<void> {
    this.tick();
    for (const p of this.pending) await applyTo(this.durable, p);
    this.pending = [];
  }
  /** The image after the power loss: durable data plus, when `keep` says so, some unflushed writes (in order). */
  async afterPowerLoss(keep: (i: number) => boolean = () => false): Promise<Uint8Array> {
    const img = new MemFile(this.path, this.durable.image());
    for (let i = 0; i < this.pending.length; i++) if (keep(i)) await applyTo(img, this.pending[i]!);
    return img.image();
  }
}

async function applyTo(f: MemFile, p: Pending): Promise<void> {
  if (p.kind === 'write') await f.write(p.data, p.pos);
  else if (p.kind === 'truncate') await f.truncate(p.len);
  else await f.zeroRange(p.pos, p.len);
}
