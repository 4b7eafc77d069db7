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

export type StopReason = { signal: number; breakpoint?: boolean } | { exited: number };

export interface DebugTarget {
  readRegister(name: GdbRegName): bigint;
  writeRegister(name: GdbRegName, value: bigint): void;
  /** Read guest-virtual memory through the current page tables; null when unmapped. */
  readMemory(addr: bigint, length: number): Uint8Array | null;
  writeMemory(addr: bigint, data: Uint8Array): boolean;
  insertBreakpoint(addr: bigint): boolean;
  removeBreakpoint(addr: bigint): boolean;
  /** Execute one instruction. */
  step(): Promise<StopReason>;
  /** Run until a breakpoint, an interrupt request (`interrupt()`), or the guest ends. */
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

/** Handles one GDB connection: packet framing, acks, and command dispatch. */
export class GdbSession {
  private buf = '';
  private noAck = false;
  private running = false;

  constructor(private readonly target: DebugTarget, private readonly send: (data: string) => void, private readonly log: (msg: string) => void = () => {}) {}

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

  private stopReply(r: StopReason): string {
    if ('exited' in r) return `W${(r.exited & 0xff).toString(16).padStart(2, '0')}`;
    const sig = r.signal.toString(16).padStart(2, '0');
    return r.breakpoint ? `T${sig}swbreak:;thread:01;` : `T${sig}thread:01;`;
  }

  private async handle(p: string): Promise<void> {
    const t = this.target;
    try {
      switch (p[0]) {
        case '?': return this.reply(`T${SIGTRAP.toString(16).padStart(2, '0')}thread:01;`);
        case 'g': return this.reply(GDB_REGS.map((r, i) => leHex(t.readRegister(r), REG_BYTES(i))).join(''));
        case 'G': {
          let off = 1;
          for (let i = 0; i < GDB_REGS.length && off < p.length; i++) {
            const n = REG_BYTES(i) * 2;
            t.writeRegister(GDB_REGS[i], parseLeHex(p.substr(off, n)));
            off += n;
          }
          return this.reply('OK');
        }
        case 'p': {
          const i = parseInt(p.slice(1), 16);
          return this.reply(i < GDB_REGS.length ? leHex(t.readRegister(GDB_REGS[i]), REG_BYTES(i)) : 'E00');
        }
        case 'P': {
          const [n, v] = p.slice(1).split('=');
          const i = parseInt(n, 16);
          if (i >= GDB_REGS.length) return this.reply('E00');
          t.writeRegister(GDB_REGS[i], parseLeHex(v));
          return this.reply('OK');
        }
        case 'm': {
          const [a, l] = p.slice(1).split(',');
          const data = t.readMemory(BigInt('0x' + a), Math.min(parseInt(l, 16), 0x10000));
          return this.reply(data ? toHex(data) : 'E14');
        }
        case 'M': {
          const [hdr, hex] = p.slice(1).split(':');
          const [a] = hdr.split(',');
          return this.reply(t.writeMemory(BigInt('0x' + a), Buffer.from(hex, 'hex')) ? 'OK' : 'E14');
        }
        case 'X': {
          const colon = p.indexOf(':');
          const [a] = p.slice(1, colon).split(',');
          const bytes = Buffer.from(p.slice(colon + 1), 'latin1');
          return this.reply(t.writeMemory(BigInt('0x' + a), bytes) ? 'OK' : 'E14');
        }
        case 'Z': case 'z': {
          const [type, a] = p.slice(1).split(',');
          if (type !== '0' && type !== '1') return this.reply('');
          const addr = BigInt('0x' + a);
          const ok = p[0] === 'Z' ? t.insertBreakpoint(addr) : t.removeBreakpoint(addr);
          return this.reply(ok ? 'OK' : 'E22');
        }
        case 'c': return this.run(() => t.resume());
        case 's': return this.run(() => t.step());
        case 'v': {
          if (p === 'vCont?') return this.reply('vCont;c;s;t');
          if (p.startsWith('vCont;')) {
            const action = p.slice(6).split(';')[0][0];
            if (action === 's') return this.run(() => t.step());
            if (action === 'c') return this.run(() => t.resume());
            if (action === 't') { t.interrupt(); return; }
          }
          if (p.startsWith('vKill')) { this.reply('OK'); t.kill?.(); return; }
          return this.reply('');
        }
        case 'H': return this.reply('OK');
        case 'T': return this.reply('OK');
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

  private query(p: string): void {
    if (p.startsWith('qSupported')) return this.reply('PacketSize=4000;swbreak+;QStartNoAckMode+;vContSupported+');
    if (p === 'qAttached') return this.reply('1');
    if (p === 'qC') return this.reply('QC01');
    if (p === 'qfThreadInfo') return this.reply('m01');
    if (p === 'qsThreadInfo') return this.reply('l');
    if (p.startsWith('qThreadExtraInfo')) return this.reply(toHex(Buffer.from('vCPU 0')));
    if (p === 'qOffsets') return this.reply('Text=0;Data=0;Bss=0');
    return this.reply('');
  }

  private async run(fn: () => Promise<StopReason>): Promise<void> {
    this.running = true;
    const r = await fn();
    this.running = false;
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
