/**
 * User-mode NAT through Debian's passt (network-notes §1): no root, no TAP. passt speaks the qemu stream
 * framing (4-byte big-endian length + Ethernet frame) on a socket pair we hand it as fd 3, answers ARP,
 * DHCP, NDP and DNS itself and NATs TCP/UDP/ICMP to the host. Its gateway address reaches the host's
 * loopback (passt's default mapping), and `-t HOST:GUEST` forwards host ports into the guest.
 *
 * passt is the switch's uplink. If it dies the switch's adapters see their link go down, the exit is logged,
 * and passt is started again with a growing delay; nothing here throws into the worker.
 *
 * Known limitation of bookworm's passt (0.0~git20230309, tcp.c): a TCP connection the guest opens keeps the
 * ACK_FROM_TAP_DUE flag its SYN,ACK set until the guest acknowledges a byte from the host, so if the host
 * peer sends nothing, passt's timer fires after SYN_TIMEOUT (10 s), "retransmits" nothing every ACK_TIMEOUT
 * (2 s) and resets the connection after TCP_MAX_RETRANS (7): 24 s after the SYN, mid-transfer, for both
 * sides. Seen on a one-way upload (nc to a silent sink) and confirmed with strace of passt and a frame
 * capture; nothing in this relay can avoid it. A peer that sends at least one byte first is not affected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { NetworkEndpoint, SwitchPort, VirtualSwitch } from './switch.js';
import { RestartBackoff } from './restart-backoff.js';
import { passtSocketPair, closeFd } from './passt-socket.js';
import { Socket } from 'node:net';

export interface PortForward { protocol: 'tcp' | 'udp'; hostPort: number; guestPort: number }

export interface PasstOptions {
  forwards?: PortForward[];
  /** MTU handed out by DHCP; passt's own default (65520) is too big for 1514-byte receive slots. */
  mtu?: number;
  /** The passt binary (default: passt on PATH). */
  binary?: string;
  log?: (message: string) => void;
  /** Link-affecting news for the VM's event log: passt died (link down) or runs again (link up). */
  event?: (message: string) => void;
  /** First restart delay; doubles per consecutive failure up to 30 s. */
  restartDelayMs?: number;
}

export interface PasstStats { toPasst: number; fromPasst: number; dropped: number; restarts: number; pauses: number }

/** Frames bigger than this or smaller than an Ethernet header are a broken stream. */
const MAX_FRAME = 65535;
/** Bytes queued towards passt beyond which frames are dropped (a flooding guest must not grow memory). */
const MAX_QUEUED_BYTES = 4 << 20;
/**
 * Largest single write to passt. passt (bookworm's version) loses its place in the stream when a read ends
 * inside a frame, and Linux queues an AF_UNIX stream write as pieces of at most ~32 KiB that a reader may
 * see separately. So frames go out in writes of whole frames no bigger than this, one write at a time.
 */
const MAX_WRITE = 32 * 1024;
/**
 * Send buffer asked for on passt's end of the socket (the kernel caps it at net.core.wmem_max, 4 MiB on
 * Debian): what passt can write while the switch holds it back. QEMU's passt sets the same for itself.
 */
const PASST_SEND_BUFFER = 4 << 20;

/** `-t 8080:80` style arguments, checked. */
export function parseForward(text: string, protocol: 'tcp' | 'udp' = 'tcp'): PortForward {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text.trim());
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (!m || !ok(Number(m[1])) || !ok(Number(m[2]))) throw new Error(`"${text}" is not a port mapping; use HOSTPORT:GUESTPORT, e.g. 8080:80`);
  return { protocol, hostPort: Number(m[1]), guestPort: Number(m[2]) };
}

export function passtArguments(o: PasstOptions): string[] {
  const args = ['--foreground', '--quiet', '--fd', '3', '--mtu', String(o.mtu ?? 1500)];
  for (const f of o.forwards ?? []) args.push(f.protocol === 'tcp' ? '-t' : '-u', `${f.hostPort}:${f.guestPort}`);
  // Debugging aid: e.g. HYPERTS_PASST_ARGS="--debug --log-file /tmp/passt.log" (--quiet is dropped then).
  const extra = process.env.HYPERTS_PASST_ARGS?.trim();
  return extra ? [...args.filter((a) => a !== '--quiet'), ...extra.split(/\s+/)] : args;
}

export class PasstBackend implements NetworkEndpoint {
  readonly stats: PasstStats = { toPasst: 0, fromPasst: 0, dropped: 0, restarts: 0, pauses: 0 };
  /** The switch asked us to stop reading (every VM we feed is full): passt's writes then wait in its socket. */
  private paused = false;
  private child: ChildProcess | null = null;
  private sock: Duplex | null = null;
  private port: SwitchPort | null = null;
  private pending: Buffer = Buffer.alloc(0);
  private stopped = false;
  private readonly backoff: RestartBackoff;
  private readonly log: (m: string) => void;
  private stderrTail = '';
  /** Framed frames waiting for the write in flight to finish. */
  private outQueue: Buffer[] = [];
  private outBytes = 0;
  private writing = false;
  /** Resolves each time passt is (re)started and its socket is ready. */
  private startedWaiters: Array<() => void> = [];

  constructor(private readonly sw: VirtualSwitch, private readonly o: PasstOptions = {}) {
    this.log = o.log ?? ((m) => console.warn(`[passt] ${m}`));
    this.backoff = new RestartBackoff(o.restartDelayMs ?? 500);
  }

  /** Plug into the switch as its uplink and start passt. */
  start(): void {
    if (this.port) return;
    this.stopped = false;
    this.port = this.sw.attach(this, 'passt', { uplink: true });
    this.sw.setUplinkState(false);
    this.spawn();
  }

  /** Wait until passt runs (tests). */
  whenRunning(): Promise<void> {
    if (this.sock) return Promise.resolve();
    return new Promise((r) => this.startedWaiters.push(r));
  }

  get running(): boolean { return this.sock !== null; }
  get pid(): number | undefined { return this.child?.pid; }

  /** Stop passt for good and unplug. */
  stop(): void {
    this.stopped = true;
    this.backoff.cancel();
    const c = this.child;
    this.child = null;
    this.closeSocket();
    c?.kill('SIGTERM');
    this.port?.detach();
    this.port = null;
    this.sw.setUplinkState(false);
  }

  /**
   * Flow control from the switch: stop reading passt's socket while the VMs it feeds are full. Frames
   * already read stay in `pending` and go first when reading resumes.
   */
  setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (paused) { this.stats.pauses++; this.sock?.pause(); return; }
    this.onData(null);
    if (!this.paused) this.sock?.resume();
  }

  /** A frame from the switch (a guest's transmission): to passt, framed. */
  deliver(frame: Uint8Array): void {
    const s = this.sock;
    if (!s || frame.length < 14 || frame.length > MAX_FRAME || this.outBytes > MAX_QUEUED_BYTES) { this.stats.dropped++; return; }
    const out = Buffer.allocUnsafe(4 + frame.length);
    out.writeUInt32BE(frame.length, 0);
    out.set(frame, 4);
    this.outQueue.push(out);
    this.outBytes += out.length;
    this.stats.toPasst++;
    if (!this.writing) this.writeNext(s);
  }

  /** One write of whole frames (up to MAX_WRITE) at a time; the next starts when it completed. */
  private writeNext(s: Duplex): void {
    if (this.sock !== s || this.outQueue.length === 0) { this.writing = false; return; }
    let n = 0, bytes = 0;
    while (n < this.outQueue.length && (n === 0 || bytes + this.outQueue[n].length <= MAX_WRITE)) bytes += this.outQueue[n++].length;
    const batch = n === 1 ? this.outQueue[0] : Buffer.concat(this.outQueue.slice(0, n), bytes);
    this.outQueue.splice(0, n);
    this.outBytes -= bytes;
    this.writing = true;
    s.write(batch, (err) => { if (err) { this.writing = false; return; } this.writeNext(s); });
  }

  private spawn(): void {
    let child: ChildProcess;
    const pair = passtSocketPair(PASST_SEND_BUFFER);
    try {
      child = spawn(this.o.binary ?? 'passt', passtArguments(this.o), { stdio: ['ignore', 'ignore', 'pipe', pair?.child ?? 'pipe'] });
    } catch (e) {
      if (pair) closeFd(pair.parent);
      this.onExit(null, `could not start: ${(e as Error).message}`);
      return;
    } finally {
      if (pair) closeFd(pair.child); // passt has its own copy now
    }
    this.child = child;
    this.stderrTail = '';
    child.stderr?.on('data', (d: Buffer) => { this.stderrTail = (this.stderrTail + d.toString()).slice(-2000); });
    child.on('error', (e) => {
      const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install Debian\'s passt package: apt-get install passt)' : '';
      this.onExit(child, `${e.message}${hint}`);
    });
    child.on('exit', (code, signal) => this.onExit(child, signal ? `killed by ${signal}` : `exited with status ${code}`));
    const sock = pair ? new Socket({ fd: pair.parent, readable: true, writable: true }) : child.stdio[3] as Duplex | null;
    if (!sock) { this.onExit(child, 'no socket to passt'); return; }
    this.sock = sock;
    this.pending = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => this.onData(d));
    if (this.paused) sock.pause();
    sock.on('error', () => { /* the exit handler reports it */ });
    sock.on('close', () => { if (this.sock === sock) this.sock = null; });
    this.sw.setUplinkState(true);
    if (this.stats.restarts > 0) this.o.event?.(`passt restarted (process ${child.pid}): network link up`);
    for (const w of this.startedWaiters.splice(0)) w();
    // A passt that stays up for a while resets the backoff.
    this.backoff.started(() => this.child === child);
  }

  /** Bytes read from passt (null: none, go on with what is pending); whole frames go to the switch. */
  private onData(d: Buffer | null): void {
    if (d) this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    let at = 0;
    // A pause takes effect between frames: the rest waits here, so a paused switch gets nothing more.
    while (!this.paused && this.pending.length - at >= 4) {
      const len = this.pending.readUInt32BE(at);
      if (len < 14 || len > MAX_FRAME) {
        this.log(`passt sent a frame length of ${len}; restarting it`);
        this.child?.kill('SIGTERM');
        this.pending = Buffer.alloc(0);
        return;
      }
      if (this.pending.length - at - 4 < len) break;
      const frame = new Uint8Array(this.pending.subarray(at + 4, at + 4 + len));
      at += 4 + len;
      this.stats.fromPasst++;
      this.port?.transmit(frame);
    }
    this.pending = at === this.pending.length ? Buffer.alloc(0) : Buffer.from(this.pending.subarray(at));
  }

  private closeSocket(): void {
    const s = this.sock;
    this.sock = null;
    this.outQueue = []; this.outBytes = 0; this.writing = false;
    s?.destroy();
  }

  private onExit(child: ChildProcess | null, why: string): void {
    if (child !== null && this.child !== child) return; // an old instance, already handled
    this.child = null;
    this.closeSocket();
    if (this.stopped) return;
    this.sw.setUplinkState(false);
    const tail = this.stderrTail.split('\n').filter((l) => l && !l.startsWith('Failed to send')).slice(-3).join(' | ');
    const delay = this.backoff.schedule(() => { if (this.stopped) return; this.stats.restarts++; this.spawn(); });
    const message = `passt ${why}${tail ? ` (${tail})` : ''}; network link down, restarting in ${delay} ms`;
    this.log(message);
    this.o.event?.(message);
  }
}
