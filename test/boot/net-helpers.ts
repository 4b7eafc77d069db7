/**
 * Helpers the network boot tests share (netvsc in synthetic-devices.test.ts, the legacy adapter in ide.test.ts):
 * polling waits, a free host port, and an HTTP server on the host's loopback that serves one file (the
 * guest reaches it through passt's gateway mapping). Wait limits are safety nets, not timing assertions.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

export async function until<T>(what: string, f: () => T | Promise<T>, limitMs = 10 * 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** A TCP port nobody listens on right now (for passt's -t). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

/** Serves `payload` at /file (404 elsewhere) on 127.0.0.1, on a port of the system's choosing. */
export async function fileServer(payload: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => { res.writeHead(req.url === '/file' ? 200 : 404); res.end(req.url === '/file' ? payload : 'no'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}
