/**
 * Network benchmark, one run, side by side: guest<->host TCP throughput and small HTTP requests per second
 * through the synthetic NIC (netvsp) and through the legacy NIC (emulated DEC 21140, tulip, generic-kernel
 * image, unenlightened), both on passt; QEMU TCG with virtio-net on passt booting the same cloud kernel as the
 * reference; and two host processes on loopback for scale.
 *   download: the guest wgets a file from an HTTP server on the host's loopback (passt's gateway mapping);
 *   upload:   the guest pipes dd into busybox nc towards a host TCP sink;
 *   requests: the guest wgets a 1 KiB file in a loop.
 * Every time is taken on the host (the download's request to the guest's console marker after wget ends, the
 * upload's first byte to the sender's end, first to last small request), so the guests are measured alike.
 *
 *   npm run bench:net [-- --mib N] [--requests N] [--processor emulated|kvm|auto] [--console] [--no-legacy] [--no-qemu]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Partition } from '../src/platform/partition.js';
import { natNetwork } from '../src/platform/assemble-network.js';
import { defaultImagePaths, imagePaths } from '../src/image/builder.js';
import { QemuGuest, qemuAvailable } from './qemu-guest.js';
import { VIRTIO_NET, virtioInitrd } from './virtio-initrd.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string): string => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const mib = Number(opt('--mib', '16'));
const requests = Number(opt('--requests', '100'));
const processor = opt('--processor', 'emulated') as 'emulated' | 'kvm' | 'auto';
if (!(mib >= 1) || !(requests >= 2)) { console.error('bench:net: --mib takes at least 1 and --requests at least 2'); process.exit(2); }
const bytes = mib * 1024 * 1024;
const big = Buffer.alloc(bytes, 0x5a);
const small = Buffer.alloc(1024, 0x61);

interface Sink { port: number; done: Promise<{ bytes: number; ms: number }> }

/**
 * A TCP server that counts what one client sends, from its first byte to its end. It greets the client with
 * one byte first: bookworm's passt resets a guest-opened connection whose peer never sent anything once it has
 * lasted ~24 s (see the header of src/net/passt.ts), and a slow guest's upload takes longer than that.
 */
function sink(): Promise<Sink> {
  return new Promise((resolve) => {
    let finish!: (r: { bytes: number; ms: number }) => void;
    const done = new Promise<{ bytes: number; ms: number }>((r) => { finish = r; });
    const s = createTcpServer((c) => {
      c.write('\n');
      let n = 0, t0 = 0;
      c.on('data', (d) => { if (!t0) t0 = performance.now(); n += d.length; });
      c.on('end', () => { finish({ bytes: n, ms: performance.now() - t0 }); c.end(); s.close(); });
      c.on('error', () => { finish({ bytes: n, ms: NaN }); s.close(); });
    });
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as AddressInfo).port, done }));
  });
}

/** The host's HTTP server: /big once (timed to the client's close), /small many times (first to last). */
class HostHttp {
  port = 0;
  downloadStart = NaN;
  downloadMs = NaN;
  smallTimes: number[] = [];
  private readonly server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    if (req.url === '/big') {
      this.downloadStart = t0;
      res.writeHead(200, { 'content-length': String(big.length) });
      res.end(big);
    } else {
      this.smallTimes.push(t0);
      res.writeHead(200, { 'content-length': String(small.length) });
      res.end(small);
    }
  });
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  /** The guest printed its download marker (console output arrives on the host as it is written). */
  consoleSaw(text: string): void {
    if (Number.isNaN(this.downloadMs) && !Number.isNaN(this.downloadStart) && text.includes('bench-download-done')) this.downloadMs = performance.now() - this.downloadStart;
  }
  requestsPerSecond(): number {
    const t = this.smallTimes;
    return t.length < 2 ? NaN : (t.length - 1) / ((t[t.length - 1] - t[0]) / 1000);
  }
  close(): void { this.server.close(); }
}

/**
 * Counts TCP data segments a NIC was offered that repeat bytes already offered on that flow (IPv4 only):
 * each one is a retransmission by the sender (passt, for downloads), so this shows the cost of drops.
 */
class RetransmitCounter {
  offered = 0;
  retransmitted = 0;
  private readonly highest = new Map<string, number>();
  see(f: Uint8Array): void {
    if (f.length < 54 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 6) return;
    const ihl = (f[14] & 15) * 4, tcp = 14 + ihl;
    if (f.length < tcp + 20) return;
    const total = (f[16] << 8) | f[17];
    const data = total - ihl - ((f[tcp + 12] >> 4) * 4);
    if (data <= 0) return;
    this.offered++;
    const key = `${f.subarray(26, 34).join('.')}:${f.subarray(tcp, tcp + 4).join('.')}`;
    const end = (((f[tcp + 4] << 24) | (f[tcp + 5] << 16) | (f[tcp + 6] << 8) | f[tcp + 7]) + data) >>> 0;
    const h = this.highest.get(key);
    if (h !== undefined && ((end - h) | 0) <= 0) { this.retransmitted++; return; }
    this.highest.set(key, end);
  }
}

interface GuestResult { down: number; up: number; rps: number; backend: string; stats: string }

/** The guest's workload: wait for DHCP, download, upload, then the request loop; markers tell the host. */
function workloadScript(httpPort: number, upPort: number): string[] {
  return [
    'for i in $(seq 1 100); do ip route | grep -q default && break; sleep 0.2; done',
    "GW=$(ip route | sed -n 's/^default via \\([^ ]*\\).*/\\1/p')",
    `wget -q -O /dev/null http://$GW:${httpPort}/big && echo bench-download-done`,
    `dd if=/dev/zero bs=64k count=${mib * 16} 2>/dev/null | nc $GW ${upPort} >/dev/null; echo bench-upload-status=$?`,
    `i=0; while [ $i -lt ${requests} ]; do wget -q -O /dev/null http://$GW:${httpPort}/small || break; i=$((i+1)); done; echo bench-requests=$i`,
    // The guest's TCP counters: RetransSegs is the upload's retransmissions.
    "echo bench-tcp=$(grep '^Tcp:' /proc/net/snmp | tail -1 | cut -d' ' -f12,13,14)",
  ];
}

async function finishUpload(up: Sink, out: string, kind: string, detail: string): Promise<number> {
  const upload = await Promise.race([up.done, new Promise<{ bytes: number; ms: number }>((r) => setTimeout(() => r({ bytes: 0, ms: NaN }), 5000))]);
  if (!out.includes('bench-upload-status=0')) console.log(`${kind}: upload failed in the guest: ${/nc: [^\n]*/.exec(out)?.[0] ?? '?'}; ${detail}`);
  if (upload.bytes !== bytes) console.log(`${kind}: the host sink received ${upload.bytes} of ${bytes} bytes`);
  return upload.bytes === bytes ? upload.bytes / 1048576 / (upload.ms / 1000) : NaN;
}

/** One hyperts boot that runs the workload through a NAT switch, on netvsp or on the legacy NIC. */
async function hypertsRun(kind: 'netvsp' | 'legacy'): Promise<GuestResult> {
  const legacy = kind === 'legacy';
  const img = legacy ? imagePaths('generic') : defaultImagePaths();
  if (!existsSync(img.kernel)) throw new Error(`guest image missing: run 'hyperts image build${legacy ? ' --generic' : ''}' first`);
  const http = new HostHttp();
  await http.listen();
  const up = await sink();
  const script = workloadScript(http.port, up.port).join('; ');
  let out = '';
  const dec = new TextDecoder();
  const vm = await Partition.create({
    processor, memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: !legacy, kernel: img.kernel, initrd: img.initrd,
    cmdline: `${img.cmdline} hyperts.run64=${Buffer.from(script).toString('base64')}`, clockMode: 'realtime',
    log: args.includes('--console') ? (m) => process.stderr.write(`[hyperts] ${m}\n`) : undefined,
    ...natNetwork(legacy ? '00:15:5d:be:9c:02' : '00:15:5d:be:9c:01', [], legacy),
    onConsoleOutput: (b) => {
      if (args.includes('--console')) process.stderr.write(b);
      out += dec.decode(b, { stream: true });
      http.consoleSaw(out.slice(-200));
    },
  });
  // Every frame the switch offers the NIC passes here first (drops included): count the retransmissions.
  const rtx = new RetransmitCounter();
  const nic: { deliver(f: Uint8Array): void } = legacy ? vm.network.legacyAdapters[0].nic : vm.network.adapters[0].adapter;
  const deliver = nic.deliver.bind(nic);
  nic.deliver = (f) => { rtx.see(f); deliver(f); };
  if (process.env.BENCH_TRACE_TO_PASST) {
    const b = vm.network.backends[0] as unknown as { deliver(f: Uint8Array): void };
    const d = b.deliver.bind(b);
    b.deliver = (f) => { process.stderr.write(`[to-passt] ${f.length} ${Buffer.from(f.subarray(12, Math.min(f.length, 80))).toString('hex')}\n`); d(f); };
  }
  const exit = await vm.start();
  http.close();
  const st = legacy ? vm.network.legacyAdapters[0].nic.stats : vm.network.adapters[0].adapter.stats;
  const sw = [...vm.network.switches.values()][0];
  const ch = legacy ? null : vm.hyperv.vmbus?.channelOf(vm.network.adapters[0].device);
  const tcp = /bench-tcp=([^\n]*)/.exec(out)?.[1]?.trim() ?? '?';
  const stats = `${st.rxFrames} frames in, ${st.txFrames} out, ${st.rxDropped} dropped in; ` +
    `TCP data segments offered ${rtx.offered}, of them retransmitted ${rtx.retransmitted}; guest TCP OutSegs/RetransSegs/InErrs ${tcp}\n` +
    `    adapter ${JSON.stringify(st)}${ch ? `\n    channel ${JSON.stringify(ch.stats)}` : ''}\n    switch ${JSON.stringify(sw?.stats)}; passt ${JSON.stringify(vm.network.backends[0]?.stats)}`;
  if (exit.code !== 0 || !out.includes('bench-download-done')) throw new Error(`${kind}: guest run failed: ${exit.reason}\n${out.slice(-1500)}\nadapter ${JSON.stringify(st)}`);
  const upMbs = await finishUpload(up, out, kind, `adapter ${JSON.stringify(st)}`);
  return { down: bytes / 1048576 / (http.downloadMs / 1000), up: upMbs, rps: requestsDone(out, http, kind), backend: vm.backendKind, stats };
}

function requestsDone(out: string, http: HostHttp, kind: string): number {
  const n = Number(/bench-requests=(\d+)/.exec(out)?.[1] ?? 0);
  if (n !== requests) console.log(`${kind}: only ${n} of ${requests} small requests succeeded`);
  return http.requestsPerSecond();
}

/** QEMU TCG, virtio-net on its own passt (QEMU's stream netdev speaks passt's framing), the same kernel. */
async function qemuRun(): Promise<GuestResult | string> {
  if (args.includes('--no-qemu')) return 'not measured (--no-qemu)';
  if (!qemuAvailable()) return 'not measured: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  const img = defaultImagePaths();
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-bench-net-'));
  const sock = join(dir, 'passt.sock');
  chmodSync(dir, 0o777); // passt started as root runs as nobody and must create its socket here
  const passt = spawn('passt', ['-f', '-1', '-q', '-s', sock, '-m', '1500'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let passtErr = '';
  passt.stderr.on('data', (d: Buffer) => { passtErr += d.toString(); });
  let q: QemuGuest | null = null;
  try {
    const initrd = await virtioInitrd(img, dir, VIRTIO_NET);
    if (typeof initrd !== 'object') return `not measured: ${initrd}`;
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sock)) return `not measured: passt did not create its socket: ${passtErr.trim()}`;
    const http = new HostHttp();
    await http.listen();
    const up = await sink();
    q = QemuGuest.boot(img.kernel, initrd.path, img.cmdline, [
      '-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`, '-device', 'virtio-net-pci,netdev=n0,mac=00:15:5d:be:9c:03',
    ]);
    let tail = '';
    q.onOutput((t) => { tail = (tail + t).slice(-200); http.consoleSaw(tail); });
    await q.waitForShell();
    const sh = async (cmd: string): Promise<string> => {
      const r = await q!.run(cmd);
      if (r.status !== 0) throw new Error(`QEMU guest: '${cmd}' failed:\n${r.out}`);
      return r.out;
    };
    await sh('dmesg -n 1');
    await sh(initrd.load);
    await sh('for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.2; done; ip link set eth0 up');
    await sh('udhcpc -i eth0 -s /etc/udhcpc/default.script -b -t 10 -T 1 -A 3 >/dev/null 2>&1');
    let out = '';
    for (const c of workloadScript(http.port, up.port)) out += (await q.run(c)).out;
    http.close();
    if (!out.includes('bench-download-done')) return `failed: the QEMU guest's download did not complete:\n${out.slice(-800)}`;
    const upMbs = await finishUpload(up, out, 'qemu', `passt: ${passtErr.trim()}`);
    return { down: bytes / 1048576 / (http.downloadMs / 1000), up: upMbs, rps: requestsDone(out, http, 'qemu'), backend: 'QEMU TCG', stats: 'virtio-net' };
  } finally {
    await q?.close();
    passt.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function loopbackReference(): Promise<number> {
  const s = await sink();
  const c = connect(s.port, '127.0.0.1');
  c.resume(); // drop the greeting
  c.end(big);
  const r = await s.done;
  return r.bytes / 1048576 / (r.ms / 1000);
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : 'failed');
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}x` : 'n/a');

async function main(): Promise<void> {
  const ref = await loopbackReference();
  const c0 = process.cpuUsage();
  const n = await hypertsRun('netvsp');
  const cpu = process.cpuUsage(c0);
  console.log(`${mib} MiB each way, ${requests} requests of 1 KiB; host loopback reference ${ref.toFixed(0)} MiB/s`);
  console.log(`netvsp + passt (${n.backend} processor, cloud kernel):`);
  console.log(`  download (host -> guest, wget): ${f1(n.down)} MiB/s`);
  console.log(`  upload   (guest -> host, nc):   ${f1(n.up)} MiB/s`);
  console.log(`  requests (wget 1 KiB):          ${f1(n.rps)} /s`);
  console.log(`  adapter: ${n.stats}; host CPU for the boot ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
  if (!args.includes('--no-legacy')) {
    const l = await hypertsRun('legacy');
    console.log(`legacy NIC (DEC 21140, tulip) + passt (${l.backend} processor, generic kernel, unenlightened):`);
    console.log(`  download: ${f1(l.down)} MiB/s; netvsc/legacy ${ratio(n.down, l.down)} (goal >= 3x)`);
    console.log(`  upload:   ${f1(l.up)} MiB/s; netvsc/legacy ${ratio(n.up, l.up)} (goal >= 3x)`);
    console.log(`  requests: ${f1(l.rps)} /s; netvsc/legacy ${ratio(n.rps, l.rps)} (goal >= 3x)`);
    console.log(`  adapter: ${l.stats}`);
  }
  const q = await qemuRun();
  if (typeof q === 'string') { console.log(`QEMU TCG virtio-net + passt: ${q}`); return; }
  console.log('QEMU TCG, virtio-net + passt (same cloud kernel), the reference:');
  console.log(`  download: ${f1(q.down)} MiB/s; netvsc/QEMU ${ratio(n.down, q.down)} (goal >= 0.5x)`);
  console.log(`  upload:   ${f1(q.up)} MiB/s; netvsc/QEMU ${ratio(n.up, q.up)} (goal >= 0.5x)`);
  console.log(`  requests: ${f1(q.rps)} /s; netvsc/QEMU ${ratio(n.rps, q.rps)} (goal >= 0.5x)`);
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
