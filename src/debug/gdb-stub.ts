/**
 * GDB remote serial protocol server (like QEMU's -gdb): lets `gdb vmlinux` attach to a running partition,
 * read/write registers and memory, set breakpoints, single-step and continue.
 * The stub is backend-neutral: it drives a `DebugTarget` supplied by the partition.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** amd64 core registers in GDB's order (the 'g' packet without FP/SSE state). */
export const GDB_REGS = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'eflags', 'cs', 'ss', 'ds', 'es', 'fs', 'gs',
] as const;
export type GdbRegName = (typeof GDB_REGS)[number];
const REG_BYTES = (i: number): number => (i < 17 ? 8 : 4);

/** `vcpu`: index of the vCPU that stopped (GDB thread vcpu+1); absent means vCPU 0. */
export type StopReason = { signal: number; breakpoint?: boolean; vcpu?: number } | { exited: number };

/**
 * What the stub debugs. Each vCPU is a GDB thread (thread id = vCPU index + 1); the `vcpu` arguments are
 * always in 0..vcpuCount-1 (the stub checks the client's thread ids).
 */
export interface DebugTarget {
  /** Number of vCPUs; absent means one. */
  readonly vcpuCount?: number;
  /** qThreadExtraInfo text for a vCPU (e.g. "CPU#1 [halted]"). */
  describeVcpu?(vcpu: number): string;
  readRegister(name: GdbRegName, vcpu: number): bigint;
  writeRegister(name: GdbRegName, value: bigint, vcpu: number): void;
  /** Read guest-virtual memory through that vCPU's page tables; null when unmapped. */
  readMemory(addr: bigint, length: number, vcpu: number): Uint8Array | null;
  writeMemory(addr: bigint, data: Uint8Array, vcpu: number): boolean;
  /** Breakpoints hit on every vCPU; `vcpu` is whose page tables translate the address. */
  insertBreakpoint(addr: bigint, vcpu: number): boolean;
  removeBreakpoint(addr: bigint): boolean;
  /** Execute one instruction on that vCPU while the others stay stopped. */
  step(vcpu: number): Promise<StopReason>;
  /** Run every vCPU until a breakpoint, an interrupt request (`interrupt()`), or the guest ends (all-stop). */
  resume(): Promise<StopReason>;
  interrupt(): void;
  /** GDB's kill: end the VM (as QEMU does). */
  kill?(): void;
}

const SIGINT = 2, SIGTRAP = 5;

function checksum(s: string): string {
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum = (sum + s.charCodeAt(i)) & 0xff;
  return sum.toString(16).padStart(2, '0');
}

function leHex(v: bigint, bytes: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++) { out += Number((v >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, '0'); }
  return out;
}

function parseLeHex(h: string): bigint {
  let v = 0n;
  for (let i = h.length / 2 - 1; i >= 0; i--) v = (v << 8n) | BigInt(parseInt(h.substr(2 * i, 2), 16));
  return v;
}

const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Parses a hex number of at most `digits` digits; null when malformed. */
function hexNum(s: string, digits = 8): number | null {
  return new RegExp(`^[0-9a-fA-F]{1,${digits}}$`).test(s) ? parseInt(s, 16) : null;
}
function hexAddr(s: string): bigint | null {
  return /^[0-9a-fA-F]{1,16}$/.test(s) ? BigInt('0x' + s) : null;
}

/** GDB thread id of a vCPU (threads count from 1). */
const tid = (vcpu: number): string => (vcpu + 1).toString(16).padStart(2, '0');

const E_INVAL = 'E22';

/** Handles one GDB connection: packet framing, acks, and command dispatch. All-stop mode: one vCPU stops, all stop. */
export class GdbSession {
  private buf = '';
  private noAck = false;
  private running = false;
  private readonly vcpus: number;
  /** The vCPU that stopped last (GDB's current thread). */
  private stopVcpu = 0;
  /** Hg: the vCPU that register and memory packets address. */
  private gVcpu = 0;
  /** Hc: the vCPU a step runs; null = the one that stopped. */
  private cVcpu: number | null = null;

  constructor(private readonly target: DebugTarget, private readonly send: (data: string) => void, private readonly log: (msg: string) => void = () => {}) {
    this.vcpus = Math.max(1, target.vcpuCount ?? 1);
  }

  /** Feed raw bytes from the connection. */
  feed(data: string): void {
    for (const ch of data) {
      if (ch === '\x03' && this.buf === '') { if (this.running) this.target.interrupt(); continue; }
      this.buf += ch;
    }
    for (;;) {
      const start = this.buf.indexOf('$');
      if (start < 0) { this.buf = ''; return; }
      const hash = this.buf.indexOf('#', start);
      if (hash < 0 || this.buf.length < hash + 3) { this.buf = this.buf.slice(start); return; }
      const body = this.buf.slice(start + 1, hash);
      const sum = this.buf.slice(hash + 1, hash + 3);
      this.buf = this.buf.slice(hash + 3);
      if (!this.noAck) {
        if (checksum(body) !== sum.toLowerCase()) { this.send('-'); continue; }
        this.send('+');
      }
      void this.handle(unescape(body));
    }
  }

  private reply(s: string): void { this.send(`$${s}#${checksum(s)}`); }

  /**
   * A client's thread id: a vCPU index, 'any' (0) or 'all' (-1); null when malformed or no such vCPU.
   * Accepts the multiprocess form p<pid>.<tid> too.
   */
  private parseThread(s: string): number | 'any' | 'all' | null {
    const dot = s.startsWith('p') ? s.indexOf('.') : -1;
    if (dot >= 0) s = s.slice(dot + 1);
    if (s === '-1') return 'all';
    const n = hexNum(s);
    if (n === null) return null;
    if (n === 0) return 'any';
    return n <= this.vcpus ? n - 1 : null;
  }

  private stopReply(r: StopReason): string {
    if ('exited' in r) return `W${(r.exited & 0xff).toString(16).padStart(2, '0')}`;
    const sig = r.signal.toString(16).padStart(2, '0');
    const thread = `thread:${tid(this.stopVcpu)};`;
    return r.breakpoint ? `T${sig}swbreak:;${thread}` : `T${sig}${thread}`;
  }

  private async handle(p: string): Promise<void> {
    const t = this.target;
    if (this.running) { this.log(`gdb: ignoring '${p.slice(0, 20)}' while the VM runs`); return; }
    try {
      const g = this.gVcpu;
      switch (p[0]) {
        case '?': return this.reply(`T${SIGTRAP.toString(16).padStart(2, '0')}thread:${tid(this.stopVcpu)};`);
        case 'g': return this.reply(GDB_REGS.map((r, i) => leHex(t.readRegister(r, g), REG_BYTES(i))).join(''));
        case 'G': {
          if (!/^[0-9a-fA-F]*$/.test(p.slice(1))) return this.reply(E_INVAL);
          let off = 1;
          for (let i = 0; i < GDB_REGS.length && off + REG_BYTES(i) * 2 <= p.length; i++) {
            const n = REG_BYTES(i) * 2;
            t.writeRegister(GDB_REGS[i], parseLeHex(p.substr(off, n)), g);
            off += n;
          }
          return this.reply('OK');
        }
        case 'p': {
          const i = hexNum(p.slice(1));
          return this.reply(i !== null && i < GDB_REGS.length ? leHex(t.readRegister(GDB_REGS[i], g), REG_BYTES(i)) : 'E00');
        }
        case 'P': {
          const [n, v] = p.slice(1).split('=');
          const i = hexNum(n);
          if (i === null || i >= GDB_REGS.length || v === undefined || !/^([0-9a-fA-F]{2}){1,8}$/.test(v)) return this.reply('E00');
          t.writeRegister(GDB_REGS[i], parseLeHex(v), g);
          return this.reply('OK');
        }
        case 'm': {
          const [a, l] = p.slice(1).split(',');
          const addr = hexAddr(a), len = hexNum(l ?? '');
          if (addr === null || len === null) return this.reply(E_INVAL);
          const data = len === 0 ? new Uint8Array(0) : t.readMemory(addr, Math.min(len, 0x10000), g);
          return this.reply(data ? toHex(data) : 'E14');
        }
        case 'M': {
          const [hdr, hex = ''] = p.slice(1).split(':');
          const [a, l] = hdr.split(',');
          const addr = hexAddr(a), len = hexNum(l ?? '');
          if (addr === null || len === null || hex.length !== 2 * len || !/^[0-9a-fA-F]*$/.test(hex)) return this.reply(E_INVAL);
          return this.reply(t.writeMemory(addr, Buffer.from(hex, 'hex'), g) ? 'OK' : 'E14');
        }
        case 'X': {
          const colon = p.indexOf(':');
          if (colon < 0) return this.reply(E_INVAL);
          const [a, l] = p.slice(1, colon).split(',');
          const bytes = Buffer.from(p.slice(colon + 1), 'latin1');
          const addr = hexAddr(a), len = hexNum(l ?? '');
          if (addr === null || len !== bytes.length) return this.reply(E_INVAL);
          return this.reply(len === 0 || t.writeMemory(addr, bytes, g) ? 'OK' : 'E14');
        }
        case 'Z': case 'z': {
          const [type, a] = p.slice(1).split(',');
          if (type !== '0' && type !== '1') return this.reply('');
          const addr = hexAddr(a ?? '');
          if (addr === null) return this.reply(E_INVAL);
          const ok = p[0] === 'Z' ? t.insertBreakpoint(addr, g) : t.removeBreakpoint(addr);
          return this.reply(ok ? 'OK' : E_INVAL);
        }
        case 'c': return this.run(() => t.resume(), this.stopVcpu);
        case 's': { const v = this.cVcpu ?? this.stopVcpu; return this.run(() => t.step(v), v); }
        case 'v': {
          if (p === 'vCont?') return this.reply('vCont;c;C;s;S;t');
          if (p.startsWith('vCont;')) return this.vCont(p.slice(6));
          if (p.startsWith('vKill')) { this.reply('OK'); t.kill?.(); return; }
          return this.reply('');
        }
        case 'H': {
          const th = this.parseThread(p.slice(2));
          if (th === null || (p[1] !== 'g' && p[1] !== 'c')) return this.reply(E_INVAL);
          if (p[1] === 'g') this.gVcpu = typeof th === 'number' ? th : this.stopVcpu;
          else this.cVcpu = typeof th === 'number' ? th : null;
          return this.reply('OK');
        }
        case 'T': return this.reply(typeof this.parseThread(p.slice(1)) === 'number' ? 'OK' : E_INVAL);
        case 'k': t.kill?.(); return;
        case 'D': this.reply('OK'); return;
        case 'q': return this.query(p);
        case 'Q':
          if (p === 'QStartNoAckMode') { this.reply('OK'); this.noAck = true; return; }
          return this.reply('');
        default: return this.reply('');
      }
    } catch (e) {
      this.log(`gdb: error handling '${p.slice(0, 20)}': ${e instanceof Error ? e.message : e}`);
      this.reply('E01');
    }
  }

  /**
   * vCont in all-stop mode: a step action (for one thread, or for all meaning the current one) steps just
   * that vCPU while the others stay stopped; otherwise a continue action resumes every vCPU.
   */
  private vCont(actions: string): Promise<void> | void {
    let step: number | null = null, cont = false, stop = false;
    for (const a of actions.split(';')) {
      const colon = a.indexOf(':');
      const op = colon < 0 ? a : a.slice(0, colon);
      const th = colon < 0 ? 'all' : this.parseThread(a.slice(colon + 1));
      if (th === null) return this.reply(E_INVAL);
      if (op === 's' || /^S[0-9a-fA-F]{2}$/.test(op)) {
        const v = typeof th === 'number' ? th : this.cVcpu ?? this.stopVcpu;
        if (step === null) step = v;
      } else if (op === 'c' || /^C[0-9a-fA-F]{2}$/.test(op)) cont = true;
      else if (op === 't') stop = true;
      else return this.reply(E_INVAL);
    }
    const t = this.target;
    if (step !== null) { const v = step; return this.run(() => t.step(v), v); }
    if (cont) return this.run(() => t.resume(), this.stopVcpu);
    if (stop) { t.interrupt(); return this.reply('OK'); }
    return this.reply(E_INVAL);
  }

  private query(p: string): void {
    if (p.startsWith('qSupported')) return this.reply('PacketSize=4000;swbreak+;QStartNoAckMode+;vContSupported+');
    if (p === 'qAttached') return this.reply('1');
    if (p === 'qC') return this.reply(`QC${tid(this.stopVcpu)}`);
    if (p === 'qfThreadInfo') return this.reply('m' + Array.from({ length: this.vcpus }, (_, i) => tid(i)).join(','));
    if (p === 'qsThreadInfo') return this.reply('l');
    if (p.startsWith('qThreadExtraInfo,')) {
      const th = this.parseThread(p.slice(17));
      if (typeof th !== 'number') return this.reply(E_INVAL);
      return this.reply(toHex(Buffer.from(this.target.describeVcpu?.(th) ?? `CPU#${th}`)));
    }
    if (p === 'qOffsets') return this.reply('Text=0;Data=0;Bss=0');
    return this.reply('');
  }

  /** Runs a step or continue; the stopped vCPU (or `vcpu` when the target names none) becomes current. */
  private async run(fn: () => Promise<StopReason>, vcpu: number): Promise<void> {
    this.running = true;
    let r: StopReason;
    try {
      r = await fn();
    } catch (e) {
      this.log(`gdb: running the VM failed: ${e instanceof Error ? e.message : e}`);
      return this.reply('E01');
    } finally {
      this.running = false;
    }
    if (!('exited' in r)) {
      const v = r.vcpu ?? vcpu;
      this.stopVcpu = v >= 0 && v < this.vcpus ? v : 0;
      this.gVcpu = this.stopVcpu;
      this.cVcpu = null;
    }
    this.reply(this.stopReply(r));
  }
}

function unescape(body: string): string {
  if (!body.includes('}')) return body;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    if (body[i] === '}' && i + 1 < body.length) { out += String.fromCharCode(body.charCodeAt(++i) ^ 0x20); } else out += body[i];
  }
  return out;
}

/** Listen on `port` (loopback) and serve one GDB connection at a time. */
export function serveGdb(target: DebugTarget, port: number, log: (msg: string) => void, onConnect?: () => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock: Socket) => {
      sock.setEncoding('latin1');
      // The ack and the reply are separate small writes: with Nagle's algorithm each reply would wait for the
      // client's delayed ACK (~40 ms per packet; GDB sends hundreds of packets for one `info threads`).
      sock.setNoDelay(true);
      log(`gdb: connection from ${sock.remoteAddress}:${sock.remotePort}`);
      onConnect?.(); // like QEMU: the VM stops when a debugger attaches
      const session = new GdbSession(target, (d) => sock.write(d, 'latin1'), log);
      sock.on('data', (d: string) => session.feed(d));
      sock.on('error', () => {});
    });
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'EADDRINUSE' ? `gdb port ${port} is in use; pick another with --gdb PORT` : e.message)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

export { SIGINT, SIGTRAP };
