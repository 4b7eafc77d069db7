/**
 * TAP devices for Internal and External switches (root only): /dev/net/tun with TUNSETIFF (IFF_TAP |
 * IFF_NO_PI, through koffi's ioctl), one Ethernet frame per read and write, no header. The management
 * service owns the descriptor and relays frames to the VM's worker, as it does for passt; a worker thread
 * (tap-reader.ts) reads it.
 *
 * TapBackend is a switch's uplink: it plugs a TAP into the switch's host bridge. If the device fails the
 * switch's adapters see their link go down, the VM's event log says so, and it is set up again with a
 * growing delay; nothing here throws into the service.
 */
import { closeSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { libc, errnoName } from '../processor/kvm/libc.js';
import { HostNetworkError, ip, requireRoot } from './host-bridge.js';
import type { NetworkEndpoint, SwitchPort, VirtualSwitch } from './switch.js';
import { RestartBackoff } from './restart-backoff.js';

const O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002, IFF_NO_PI = 0x1000;
const MAX_FRAME = 65535;

export class TapDevice {
  private reader: Worker | null = null;
  private readerExited: Promise<void> = Promise.resolve();
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private closed = false;
  dropped = 0;

  private constructor(readonly name: string, readonly fd: number) {}

  /** Creates TAP interface `name` in this process's network namespace (it disappears when closed). */
  static open(name: string): TapDevice {
    requireRoot(`TAP device ${name}`);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new HostNetworkError(`'${name}' is not a valid interface name`);
    const c = libc();
    const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw new HostNetworkError(`cannot open /dev/net/tun: ${errnoName(c.errno())} (is the tun module loaded? modprobe tun)`);
    const ifr = new Uint8Array(40);
    ifr.set(Buffer.from(name, 'ascii'), 0);
    new DataView(ifr.buffer).setUint16(16, IFF_TAP | IFF_NO_PI, true);
    if (c.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
      const e = c.errno();
      c.close(fd);
      throw new HostNetworkError(`cannot create TAP device ${name}: ${errnoName(e)}`);
    }
    return new TapDevice(name, fd);
  }

  /** Frames the host sends into the TAP arrive at `onFrames`; `onError` once if the device fails. */
  startReading(onFrames: (frames: Uint8Array[]) => void, onError: (why: string) => void): void {
    if (this.reader || this.closed) return;
    const w = new Worker(new URL('./tap-reader.js', import.meta.url), { workerData: { fd: this.fd, stop: this.stopFlag.buffer } });
    this.reader = w;
    this.readerExited = new Promise((r) => w.once('exit', () => r()));
    w.on('message', (m: { frames?: Uint8Array[]; error?: string }) => {
      if (this.closed) return;
      if (m.frames) onFrames(m.frames);
      if (m.error) onError(m.error);
    });
    w.on('error', (e) => { if (!this.closed) onError(`TAP reader failed: ${e.message}`); });
    w.unref();
  }

  /** One frame to the host side; dropped (counted) when the kernel refuses it. */
  write(frame: Uint8Array): void {
    if (this.closed || frame.length < 14 || frame.length > MAX_FRAME) { this.dropped++; return; }
    try { writeSync(this.fd, frame); } catch { this.dropped++; }
  }

  /** Stops the reader, then closes the descriptor (the interface goes away with it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.stopFlag, 0, 1);
    const w = this.reader;
    this.reader = null;
    if (w) {
      // The reader sees the flag within one poll timeout; terminate() is the fallback.
      const t = setTimeout(() => { void w.terminate(); }, 2000);
      t.unref();
      await this.readerExited;
      clearTimeout(t);
    }
    try { closeSync(this.fd); } catch { /* already closed */ }
  }
}

export interface TapBackendOptions {
  /** The switch's host bridge the TAP joins. */
  bridge: string;
  /** The TAP interface's name. */
  tap: string;
  log?: (message: string) => void;
  /** Link-affecting news for the VM's event log. */
  event?: (message: string) => void;
  restartDelayMs?: number;
}

export class TapBackend implements NetworkEndpoint {
  readonly stats = { toHost: 0, fromHost: 0, restarts: 0 };
  private tap: TapDevice | null = null;
  private port: SwitchPort | null = null;
  private stopped = false;
  private readonly backoff: RestartBackoff;
  private readonly log: (m: string) => void;

  constructor(private readonly sw: VirtualSwitch, private readonly o: TapBackendOptions) {
    this.log = o.log ?? ((m) => console.warn(`[tap] ${m}`));
    this.backoff = new RestartBackoff(o.restartDelayMs ?? 1000);
  }

  get running(): boolean { return this.tap !== null; }

  start(): void {
    if (this.port) return;
    this.stopped = false;
    this.port = this.sw.attach(this, 'tap', { uplink: true });
    this.sw.setUplinkState(false);
    this.open();
  }

  deliver(frame: Uint8Array): void {
    if (!this.tap) return;
    this.stats.toHost++;
    this.tap.write(frame);
  }

  stop(): void {
    this.stopped = true;
    this.backoff.cancel();
    const t = this.tap;
    this.tap = null;
    void t?.close();
    this.port?.detach();
    this.port = null;
    this.sw.setUplinkState(false);
  }

  private open(): void {
    let tap: TapDevice;
    try {
      tap = TapDevice.open(this.o.tap);
      try {
        ip('link', 'set', tap.name, 'master', this.o.bridge);
        ip('link', 'set', tap.name, 'up');
      } catch (e) { void tap.close(); throw e; }
    } catch (e) {
      this.failed(`TAP device ${this.o.tap} on bridge ${this.o.bridge}: ${(e as Error).message}`);
      return;
    }
    this.tap = tap;
    tap.startReading((frames) => {
      for (const f of frames) { this.stats.fromHost++; this.port?.transmit(f); }
    }, (why) => { if (this.tap === tap) { this.tap = null; void tap.close(); this.failed(`TAP device ${tap.name}: ${why}`); } });
    this.sw.setUplinkState(true);
    if (this.stats.restarts > 0) this.o.event?.(`TAP device ${tap.name} set up again on bridge ${this.o.bridge}: network link up`);
    this.backoff.started(() => this.tap === tap);
  }

  private failed(why: string): void {
    if (this.stopped) return;
    this.sw.setUplinkState(false);
    const delay = this.backoff.schedule(() => { if (this.stopped) return; this.stats.restarts++; this.open(); });
    const message = `${why}; network link down, retrying in ${delay} ms`;
    this.log(message);
    this.o.event?.(message);
  }
}
