/**
 * Frames waiting for one switch port whose endpoint is full: a bounded FIFO per source port, emptied in
 * turn (round robin), so a flooding source fills only its own queue and cannot starve the others feeding
 * the same port.
 */

interface SourceQueue { frames: Uint8Array[]; head: number; bytes: number }

export class EgressQueues {
  /** Bound per source: frames beyond it are dropped (a real switch's buffer is finite too). */
  static readonly MAX_FRAMES = 2048;
  static readonly MAX_BYTES = 4 << 20;
  /**
   * A source is asked to pause once its queue here holds this many frames and to resume below RESUME_AT.
   * Deep on purpose: bookworm's passt drops what its socket cannot take and then resends the whole window
   * from the first gap, so the frames it already wrote must fit here and in the socket's buffer.
   */
  static readonly PAUSE_AT = 1024;
  static readonly RESUME_AT = 512;

  private readonly queues = new Map<number, SourceQueue>();
  /** Sources with frames waiting, in turn order. */
  private readonly order: number[] = [];
  private total = 0;

  /** Frames waiting, all sources. */
  get size(): number { return this.total; }

  /** Frames waiting from `source`. */
  count(source: number): number {
    const q = this.queues.get(source);
    return q ? q.frames.length - q.head : 0;
  }

  /** Sources with frames waiting. */
  sources(): number[] { return [...this.order]; }

  /** Queue a frame from `source`; false (not queued) when that source's queue is at its bound. */
  push(source: number, frame: Uint8Array): boolean {
    let q = this.queues.get(source);
    if (!q) { q = { frames: [], head: 0, bytes: 0 }; this.queues.set(source, q); }
    if (q.frames.length - q.head >= EgressQueues.MAX_FRAMES || q.bytes + frame.length > EgressQueues.MAX_BYTES) return false;
    if (q.frames.length === q.head) this.order.push(source);
    q.frames.push(frame);
    q.bytes += frame.length;
    this.total++;
    return true;
  }

  /** The next frame in turn: the first source's oldest frame; that source then goes to the back. */
  shift(): { source: number; frame: Uint8Array } | undefined {
    const source = this.order.shift();
    if (source === undefined) return undefined;
    const q = this.queues.get(source)!;
    const frame = q.frames[q.head];
    q.frames[q.head++] = EMPTY;
    q.bytes -= frame.length;
    this.total--;
    if (q.head === q.frames.length) this.queues.delete(source);
    else {
      if (q.head >= 1024 && q.head * 2 >= q.frames.length) { q.frames = q.frames.slice(q.head); q.head = 0; }
      this.order.push(source);
    }
    return { source, frame };
  }

  clear(): void { this.queues.clear(); this.order.length = 0; this.total = 0; }
}

const EMPTY = new Uint8Array(0);
