/**
 * Network benchmark: guest<->host TCP throughput through the synthetic NIC (netvsp) and passt, and through
 * the legacy NIC (emulated DEC 21140, tulip, generic-kernel image, unenlightened), against the same transfer
 * between two host processes on loopback (the reference), in one run; netvsc/legacy ratios.
 *   download: the guest wgets a file from an HTTP server on the host's loopback (passt's gateway mapping);
 *   upload:   the guest pipes dd into busybox nc towards a host TCP sink.
 *
 *   npm run bench:net [-- --mib N] [--processor emulated|kvm|auto] [--console] [--no-legacy]
 */
import { createServer } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { Partition } from '../src/platform/partition.js';
import { natNetwork } from '../src/platform/assemble-network.js';
import { defaultImagePaths, imagePaths } from '../src/image/builder.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string): string => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const mib = Number(opt('--mib', '16'));
const processor = opt('--processor', 'emulated') as 'emulated' | 'kvm' | 'auto';
const bytes = mib * 1024 * 1024;
const big = Buffer.alloc(bytes, 0x5a);

interface Sink { port: number; done: Promise<{ bytes: number; ms: number }> }

/** A TCP server that counts what one client sends, from its first byte to its end. */
function sink(): Promise<Sink> {
  return new Promise((resolve) => {
    let finish!: (r: { bytes: number; ms: number }) => void;
    const done = new Promise<{ bytes: number; ms: number }>((r) => { finish = r; });
    const s = createTcpServer((c) => {
      let n = 0, t0 = 0;
      c.on('data', (d) => { if (!t0) t0 = performance.now(); n += d.length; });
      c.on('end', () => { finish({ bytes: n, ms: performance.now() - t0 }); c.end(); s.close(); });
    });
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as AddressInfo).port, done }));
  });
}

async function loopbackReference(): Promise<{ down: number; up: number }> {
  const s = await sink();
  const t0 = performance.now();
  const c = connect(s.port, '127.0.0.1');
  c.end(big);
  const r = await s.done;
  const ms = Math.max(r.ms, performance.now() - t0 > 0 ? r.ms : 1);
  const mbs = r.bytes / 1048576 / (ms / 1000);
  return { down: mbs, up: mbs };
}

interface GuestResult { down: number; up: number; backend: string; stats: string }

/** One boot that downloads then uploads `mib` MiB through a NAT switch, on netvsp or on the legacy NIC. */
async function guestRun(kind: 'netvsp' | 'legacy'): Promise<GuestResult> {
  const legacy = kind === 'legacy';
  const img = legacy ? imagePaths('generic') : defaultImagePaths();
  if (!existsSync(img.kernel)) throw new Error(`guest image missing: run 'hyperts image build${legacy ? ' --generic' : ''}' first`);
  let dlStart = 0;
  const http = createServer((req, res) => {
    dlStart = performance.now();
    res.writeHead(200, { 'content-length': String(big.length) });
    res.end(big);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as AddressInfo).port;
  const up = await sink();
  // Wait for DHCP, then download, print a marker, then upload.
  const script = [
    'for i in $(seq 1 100); do ip route | grep -q default && break; sleep 0.2; done',
    "GW=$(ip route | sed -n 's/^default via \\([^ ]*\\).*/\\1/p')",
    `wget -q -O /dev/null http://$GW:${httpPort}/big && echo bench-download-done`,
    `dd if=/dev/zero bs=64k count=${mib * 16} 2>/dev/null | nc $GW ${up.port}; echo bench-upload-status=$?`,
  ].join('; ');
  let out = '', dlMs = NaN;
  const dec = new TextDecoder();
  const vm = await Partition.create({
    processor, memoryBytes: 512 * 1024 * 1024, cpus: 1, enlightened: !legacy, kernel: img.kernel, initrd: img.initrd,
    cmdline: `${img.cmdline} hyperts.run64=${Buffer.from(script).toString('base64')}`, clockMode: 'realtime',
    ...natNetwork(legacy ? '00:15:5d:be:9c:02' : '00:15:5d:be:9c:01', [], legacy),
    onConsoleOutput: (b) => {
      if (args.includes('--console')) process.stderr.write(b);
      out += dec.decode(b, { stream: true });
      if (Number.isNaN(dlMs) && out.includes('bench-download-done')) dlMs = performance.now() - dlStart;
    },
  });
  const exit = await vm.start();
  http.close();
  const st = legacy ? vm.network.legacyAdapters[0].nic.stats : vm.network.adapters[0].adapter.stats;
  const stats = `${st.rxFrames} frames in, ${st.txFrames} out, ${st.rxDropped} dropped in` +
    ('rxNoBuffer' in st ? ` (${st.rxNoBuffer} with no free receive descriptor)` : '');
  if (exit.code !== 0 || !out.includes('bench-download-done')) throw new Error(`${kind}: guest run failed: ${exit.reason}\n${out.slice(-1500)}\nadapter ${JSON.stringify(st)}`);
  const upload = await Promise.race([up.done, new Promise<{ bytes: number; ms: number }>((r) => setTimeout(() => r({ bytes: 0, ms: NaN }), 5000))]);
  if (!out.includes('bench-upload-status=0')) console.log(`${kind}: upload failed in the guest: ${/nc: [^\n]*/.exec(out)?.[0] ?? '?'}; adapter ${JSON.stringify(st)}`);
  return { down: bytes / 1048576 / (dlMs / 1000), up: upload.bytes / 1048576 / (upload.ms / 1000), backend: vm.backendKind, stats };
}

async function main(): Promise<void> {
  const c0 = process.cpuUsage();
  const n = await guestRun('netvsp');
  const cpu = process.cpuUsage(c0);
  const ref = await loopbackReference();
  console.log(`netvsp + passt (${n.backend} processor), ${mib} MiB each way:`);
  console.log(`  download (host -> guest, wget): ${n.down.toFixed(1)} MiB/s; reference loopback ${ref.down.toFixed(0)} MiB/s; ratio ${(ref.down / n.down).toFixed(1)}x`);
  console.log(`  upload   (guest -> host, nc):   ${n.up.toFixed(1)} MiB/s; ratio ${(ref.up / n.up).toFixed(1)}x`);
  console.log(`  adapter: ${n.stats}; host CPU for the whole run ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s`);
  if (args.includes('--no-legacy')) return;
  const l = await guestRun('legacy');
  console.log(`legacy NIC (DEC 21140, tulip) + passt (${l.backend} processor, generic kernel, unenlightened):`);
  console.log(`  download: ${l.down.toFixed(1)} MiB/s; netvsc/legacy ${(n.down / l.down).toFixed(1)}x (goal >= 3x)`);
  console.log(`  upload:   ${l.up.toFixed(1)} MiB/s; netvsc/legacy ${(n.up / l.up).toFixed(1)}x`);
  console.log(`  adapter: ${l.stats}`);
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
