/**
 * Writer for the "newc" (SVR4, magic 070701) cpio format, the only one the kernel's initramfs unpacker reads.
 * Parent directories are emitted automatically before their children, since the unpacker does not create them.
 */
export type CpioEntry =
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char' | 'block'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000, S_IFBLK = 0o060000;

export class CpioWriter {
  private chunks: Buffer[] = [];
  private size = 0;
  private ino = 1;
  private seen = new Set<string>();
  private finished = false;

  /** Number of entries written so far (including implied directories). */
  get count(): number { return this.ino - 1; }

  add(e: CpioEntry): void {
    if (this.finished) throw new Error('cpio archive already finished');
    const path = normalize(e.path);
    if (this.seen.has(path)) throw new Error(`cpio: duplicate path '${path}'`);
    this.ensureParents(path);
    this.seen.add(path);
    switch (e.type) {
      case 'file': this.entry(path, S_IFREG | (e.mode ?? 0o644), e.data, 0, 0); break;
      case 'dir': this.entry(path, S_IFDIR | (e.mode ?? 0o755), EMPTY, 0, 0); break;
      case 'symlink': this.entry(path, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8'), 0, 0); break;
      case 'char':
      case 'block':
        this.entry(path, (e.type === 'char' ? S_IFCHR : S_IFBLK) | (e.mode ?? 0o600), EMPTY, e.major, e.minor);
        break;
    }
  }

  /** Has `path` (normalized, no leading slash) been written? */
  has(path: string): boolean { return this.seen.has(normalize(path)); }

  /** Append the trailer and return the whole archive. */
  finish(): Buffer {
    if (!this.finished) {
      this.entry('TRAILER!!!', 0, EMPTY, 0, 0, 0);
      this.finished = true;
    }
    return Buffer.concat(this.chunks, this.size);
  }

  private ensureParents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.seen.has(dir)) {
        this.seen.add(dir);
        this.entry(dir, S_IFDIR | 0o755, EMPTY, 0, 0);
      }
    }
  }

  private entry(name: string, mode: number, data: Uint8Array, rmaj: number, rmin: number, nlinkOverride?: number): void {
    const nameBytes = Buffer.from(name + '\0', 'utf8');
    const isDir = (mode & 0o170000) === S_IFDIR;
    const fields = [
      name === 'TRAILER!!!' ? 0 : this.ino++, mode, 0, 0, nlinkOverride ?? (isDir ? 2 : 1), 0,
      data.length, 0, 0, rmaj, rmin, nameBytes.length, 0,
    ];
    let hdr = '070701';
    for (const f of fields) {
      if (f < 0 || f > 0xffffffff) throw new RangeError(`cpio: field out of range in '${name}'`);
      hdr += f.toString(16).padStart(8, '0');
    }
    this.push(Buffer.from(hdr, 'ascii'));
    this.push(nameBytes);
    this.pad();
    if (data.length) { this.push(Buffer.from(data.buffer, data.byteOffset, data.length)); this.pad(); }
  }

  private push(b: Buffer): void { this.chunks.push(b); this.size += b.length; }
  private pad(): void {
    const n = (4 - (this.size & 3)) & 3;
    if (n) this.push(Buffer.alloc(n));
  }
}

const EMPTY = new Uint8Array(0);

function normalize(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`cpio: bad path '${p}'`);
  return parts.join('/');
}
