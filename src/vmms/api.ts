/**
 * The service's REST API (described by openapi.ts), WebSockets for consoles and live state, and the web
 * console's static files. A unix socket needs no token (its file mode guards it); a TCP listener always
 * requires the bearer token, on every /api request and WebSocket.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { VmmsError, badRequest } from './errors.js';
import type { VmmsService } from './service.js';
import { openApiDocument } from './openapi.js';

const MAX_BODY = 1024 * 1024;
const API = '/api/v1';

type Handler = (p: { params: string[]; body: unknown; query: URLSearchParams }) => Promise<unknown> | unknown;
interface Route { method: string; re: RegExp; handler: Handler; status?: number }

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface ApiServerOptions { token?: string; webRoot?: string }

export class ApiServer {
  private readonly routes: Route[] = [];
  private readonly servers: Server[] = [];
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private readonly sockets = new Set<Socket>();
  private readonly unixPaths: string[] = [];
  private readonly webRoot: string;
  private readonly xtermRoot: string | null;

  constructor(private readonly service: VmmsService, private readonly o: ApiServerOptions = {}) {
    this.webRoot = o.webRoot ?? join(repoRoot, 'src', 'web');
    let xterm: string | null = null;
    try { xterm = dirname(createRequire(import.meta.url).resolve('@xterm/xterm/package.json')); } catch { /* console page says so */ }
    this.xtermRoot = xterm;
    this.defineRoutes();
  }

  private route(method: string, path: string, handler: Handler, status?: number): void {
    const re = new RegExp(`^${API}${path.replace(/\{[^}]+\}/g, '([^/]+)')}$`);
    this.routes.push({ method, re, handler, status });
  }

  private defineRoutes(): void {
    const s = this.service;
    const obj = (b: unknown): Record<string, unknown> => {
      if (b === undefined) return {};
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw badRequest('the request body must be a JSON object');
      return b as Record<string, unknown>;
    };
    const flag = (b: Record<string, unknown>, k: string): boolean | undefined => {
      const v = b[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'boolean') throw badRequest(`${k} must be true or false`);
      return v;
    };
    this.route('GET', '/openapi.json', () => openApiDocument());
    this.route('GET', '/host', () => s.host());
    this.route('GET', '/vms', () => s.list());
    this.route('POST', '/vms', ({ body }) => s.create(body), 201);
    this.route('GET', '/vms/{name}', ({ params }) => s.get(params[0]));
    this.route('PATCH', '/vms/{name}', ({ params, body }) => s.update(params[0], body));
    this.route('DELETE', '/vms/{name}', ({ params }) => { s.remove(params[0]); return null; }, 204);
    this.route('POST', '/vms/{name}/start', ({ params, body }) => { obj(body); return s.start(params[0]); });
    this.route('POST', '/vms/{name}/stop', ({ params, body }) => {
      const b = obj(body);
      const t = b.timeoutSeconds;
      if (t !== undefined && (typeof t !== 'number' || !(t > 0) || t > 3600)) throw badRequest('timeoutSeconds must be a number of seconds between 0 and 3600');
      return s.stop(params[0], { turnOff: flag(b, 'turnOff'), force: flag(b, 'force'), wait: flag(b, 'wait'), timeoutMs: t !== undefined ? (t as number) * 1000 : undefined });
    });
    this.route('POST', '/vms/{name}/suspend', ({ params, body }) => { obj(body); return s.suspend(params[0]); });
    this.route('POST', '/vms/{name}/resume', ({ params, body }) => { obj(body); return s.resume(params[0]); });
    this.route('POST', '/vms/{name}/save', ({ params, body }) => { obj(body); return s.save(params[0]); });
    this.route('DELETE', '/vms/{name}/saved-state', ({ params }) => s.discardSavedState(params[0]));
    this.route('GET', '/vms/{name}/snapshots', ({ params }) => s.checkpoints(params[0]));
    this.route('POST', '/vms/{name}/snapshots', ({ params, body }) => s.checkpoint(params[0], obj(body).name), 201);
    this.route('GET', '/vms/{name}/snapshots/{snapshot}', ({ params }) => s.getCheckpoint(params[0], params[1]));
    this.route('PATCH', '/vms/{name}/snapshots/{snapshot}', ({ params, body }) => s.renameCheckpoint(params[0], params[1], obj(body).name));
    this.route('DELETE', '/vms/{name}/snapshots/{snapshot}', ({ params }) => { s.removeCheckpoint(params[0], params[1]); return null; }, 204);
    this.route('POST', '/vms/{name}/snapshots/{snapshot}/restore', ({ params, body }) => { obj(body); return s.restoreCheckpoint(params[0], params[1]); });
    this.route('POST', '/vms/{name}/restart', ({ params, body }) => { obj(body); return s.restart(params[0]); });
    this.route('GET', '/vms/{name}/integration-services', ({ params }) => s.integrationServices(params[0]));
    this.route('PUT', '/vms/{name}/integration-services/{service}', ({ params, body }) => {
      const enabled = flag(obj(body), 'enabled');
      if (enabled === undefined) throw badRequest('the body must be {"enabled": true} or {"enabled": false}');
      return s.setIntegrationService(params[0], params[1], enabled);
    });
    this.route('GET', '/vms/{name}/kvp', ({ params }) => s.kvp(params[0]));
    this.route('PUT', '/vms/{name}/kvp/{key}', async ({ params, body }) => { await s.setKvp(params[0], params[1], obj(body).value); return null; }, 204);
    this.route('DELETE', '/vms/{name}/kvp/{key}', async ({ params }) => { await s.removeKvp(params[0], params[1]); return null; }, 204);
    this.route('GET', '/vms/{name}/events', ({ params, query }) => s.events({ name: params[0], limit: intParam(query, 'limit'), after: intParam(query, 'after') }));
    this.route('GET', '/events', ({ query }) => s.events({ limit: intParam(query, 'limit'), after: intParam(query, 'after') }));
    this.route('GET', '/switches', () => s.listSwitches());
    this.route('POST', '/switches', ({ body }) => s.newSwitch(body), 201);
    this.route('GET', '/switches/{switch}', ({ params }) => s.getSwitch(params[0]));
    this.route('DELETE', '/switches/{switch}', ({ params }) => { s.removeSwitch(params[0]); return null; }, 204);
    this.route('GET', '/vms/{name}/network-adapters', ({ params }) => s.networkAdapters(params[0]));
    this.route('POST', '/vms/{name}/network-adapters', ({ params, body }) => s.addNetworkAdapter(params[0], obj(body)), 201);
    this.route('DELETE', '/vms/{name}/network-adapters/{adapter}', ({ params }) => { s.removeNetworkAdapter(params[0], params[1]); return null; }, 204);
    this.route('PUT', '/vms/{name}/network-adapters/{adapter}/switch', ({ params, body }) => {
      const sw = obj(body).switchName;
      if (sw !== null && typeof sw !== 'string') throw badRequest('the body must be {"switchName": "NAME"} to connect or {"switchName": null} to disconnect');
      return s.connectNetworkAdapter(params[0], params[1], sw);
    });
  }

  private authorized(req: IncomingMessage, requireToken: boolean, url: URL): boolean {
    if (!requireToken) return true;
    const want = this.o.token;
    if (!want) return false;
    const h = req.headers.authorization;
    const got = h?.startsWith('Bearer ') ? h.slice(7) : url.searchParams.get('token');
    if (!got) return false;
    // Equal-length digests, so the comparison time says nothing about the token.
    const d = (x: string): Buffer => createHash('sha256').update(x).digest();
    return timingSafeEqual(d(got), d(want));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, requireToken: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith(`${API}/`)) { this.serveStatic(url.pathname, res); return; }
    if (!this.authorized(req, requireToken, url)) {
      sendJson(res, 401, { error: { code: 'Unauthorized', message: 'missing or wrong API token: send "Authorization: Bearer <token>" (the token is in the service\'s data directory, file api-token)' } });
      return;
    }
    const route = this.routes.find((r) => r.method === req.method && r.re.test(url.pathname));
    if (!route) {
      const pathKnown = this.routes.some((r) => r.re.test(url.pathname));
      sendJson(res, pathKnown ? 405 : 404, { error: { code: pathKnown ? 'MethodNotAllowed' : 'NotFound', message: pathKnown ? `${req.method} is not allowed on ${url.pathname}` : `no API endpoint ${url.pathname} (see ${API}/openapi.json)` } });
      return;
    }
    try {
      const params = route.re.exec(url.pathname)!.slice(1).map((p) => {
        try { return decodeURIComponent(p); } catch { throw badRequest(`malformed URL component '${p}'`); }
      });
      const body = await readBody(req);
      const out = await route.handler({ params, body, query: url.searchParams });
      if (route.status === 204) { res.writeHead(204).end(); return; }
      sendJson(res, route.status ?? 200, out);
    } catch (e) {
      if (e instanceof VmmsError) sendJson(res, e.status, { error: { code: e.code, message: e.message } });
      else sendJson(res, 500, { error: { code: 'InternalError', message: (e as Error).message } });
    }
  }

  private serveStatic(pathname: string, res: ServerResponse): void {
    let file: string | null = null;
    if (pathname === '/' || pathname === '/index.html') file = join(this.webRoot, 'index.html');
    else if (pathname.startsWith('/vendor/xterm/') && this.xtermRoot) file = safeJoin(this.xtermRoot, pathname.slice('/vendor/xterm/'.length));
    else file = safeJoin(this.webRoot, pathname.slice(1));
    if (!file || !existsSync(file)) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return; }
    const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.map': 'application/json', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json' };
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' }).end(readFileSync(file));
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer, requireToken: boolean): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reject = (code: number, text: string): void => {
      socket.end(`HTTP/1.1 ${code} ${text}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${text}\n`);
    };
    if (!this.authorized(req, requireToken, url)) { reject(401, 'Unauthorized'); return; }
    const m = new RegExp(`^${API}/vms/([^/]+)/console$`).exec(url.pathname);
    if (url.pathname === `${API}/live`) {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.live(ws));
    } else if (m) {
      let name: string;
      try { name = decodeURIComponent(m[1]); this.service.get(name); } catch { reject(404, 'Not Found'); return; }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.console(ws, name));
    } else reject(404, 'Not Found');
  }

  /** Live state: the VM list on connect and after every change (metrics at most once a second), plus events. */
  private live(ws: WebSocket): void {
    const s = this.service;
    let timer: NodeJS.Timeout | null = null;
    const push = (): void => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'vms', vms: s.list() }));
      }, 100);
    };
    const onEvent = (event: unknown): void => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'event', event })); };
    s.on('changed', push); s.on('metrics', push); s.on('removed', push); s.on('event', onEvent);
    ws.send(JSON.stringify({ type: 'vms', vms: s.list() }));
    ws.on('close', () => {
      if (timer) clearTimeout(timer);
      s.off('changed', push); s.off('metrics', push); s.off('removed', push); s.off('event', onEvent);
    });
    ws.on('message', () => { /* nothing to receive */ });
  }

  /** COM1: recent output, then live output as binary frames; whatever the client sends is typed into the guest. */
  private console(ws: WebSocket, name: string): void {
    let c: ReturnType<VmmsService['attachConsole']>;
    try {
      c = this.service.attachConsole(name, (b) => { if (ws.readyState === ws.OPEN) ws.send(b); });
    } catch (e) {
      ws.close(4409, (e as Error).message.slice(0, 120));
      return;
    }
    if (c.history.length) ws.send(c.history);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const b = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      void isBinary;
      c.write(b);
    });
    const onRemoved = (n: string): void => { if (n.toLowerCase() === name.toLowerCase()) ws.close(4404, 'VM removed'); };
    this.service.on('removed', onRemoved);
    ws.on('close', () => { c.detach(); this.service.off('removed', onRemoved); });
  }

  private makeServer(requireToken: boolean): Server {
    const srv = createServer((req, res) => { void this.handle(req, res, requireToken); });
    srv.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Socket, head, requireToken));
    srv.on('connection', (sock) => { this.sockets.add(sock); sock.on('close', () => this.sockets.delete(sock)); });
    this.servers.push(srv);
    return srv;
  }

  /** Listens on a unix socket only the owner can use. */
  async listenUnix(path: string): Promise<void> {
    if (existsSync(path)) rmSync(path);
    const srv = this.makeServer(false);
    await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(path, () => { srv.off('error', reject); resolve(); }); });
    chmodSync(path, 0o600);
    this.unixPaths.push(path);
  }

  /** Listens on TCP; every API request must then carry the token. */
  async listenTcp(host: string, port: number): Promise<AddressInfo> {
    if (!this.o.token) throw new Error('a TCP listener needs an API token');
    const srv = this.makeServer(true);
    await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(port, host, () => { srv.off('error', reject); resolve(); }); });
    return srv.address() as AddressInfo;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const p of this.unixPaths) rmSync(p, { force: true });
  }
}

function intParam(q: URLSearchParams, k: string): number | undefined {
  const v = q.get(k);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw badRequest(`query parameter ${k} must be a non-negative integer`);
  return n;
}

function safeJoin(root: string, rel: string): string | null {
  const p = normalize(join(root, rel));
  return p.startsWith(root.endsWith('/') ? root : `${root}/`) ? p : null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(`${JSON.stringify(body, null, 2)}\n`);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new VmmsError(413, 'BodyTooLarge', `the request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return undefined;
  try { return JSON.parse(text); } catch (e) {
    throw new VmmsError(400, 'MalformedBody', `the request body is not valid JSON (${(e as Error).message})`);
  }
}
