/**
 * The service's REST API (described by openapi.ts), WebSockets for consoles and live state, and the web
 * console's static files. A unix socket needs no token (its file mode guards it); a TCP listener requires the
 * bearer token (or a browser session) in the Authorization header on every /api request, and a WebSocket
 * takes that header or a single-use ticket. web-security.ts holds the checks every TCP request goes through.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { VmmsError, badRequest } from './errors.js';
import type { VmmsService } from './service.js';
import { openApiDocument } from './openapi.js';
import { Tickets, defaultAllowedHosts, hostOf, isLoopbackHost, mediaType, originAllowed, sameSecret, securityHeaders } from './web-security.js';

const MAX_BODY = 1024 * 1024;
const API = '/api/v1';

type Handler = (p: { params: string[]; body: unknown; query: URLSearchParams }) => Promise<unknown> | unknown;
interface Route { method: string; re: RegExp; handler: Handler; status?: number }

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface ApiServerOptions {
  token?: string; webRoot?: string;
  /** Where details of internal errors go (the client sees only an id). Default: stderr. */
  log?: (msg: string) => void;
}

export interface TcpOptions {
  /** PEM certificate and key: HTTPS. Required for a listener beyond loopback unless `insecureHttp`. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Serve plain HTTP on a non-loopback address anyway (the token then crosses the network in clear). */
  insecureHttp?: boolean;
  /** Host names clients may use besides the listen address (a DNS name of this machine). */
  allowedHosts?: string[];
}

/** How a connection reached the API: the unix socket trusts its file mode, TCP checks everything. */
interface Listener { tcp: boolean; tls: boolean; hosts: Set<string> | null }

export class ApiServer {
  private readonly routes: Route[] = [];
  private readonly servers: Server[] = [];
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private readonly sockets = new Set<Socket>();
  private readonly unixPaths: string[] = [];
  private readonly webRoot: string;
  private readonly xtermRoot: string | null;
  /** Console tickets and browser sessions. */
  readonly tickets = new Tickets();

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
    this.route('POST', '/tickets', ({ body }) => {
      const b = obj(body);
      if (b.purpose === 'login') return this.tickets.issue({ kind: 'login' });
      const path = b.path;
      if (typeof path !== 'string' || !(path === '/live' || /^\/vms\/[^/]+\/console$/.test(path))) {
        throw badRequest('a ticket is for {"purpose": "login"} or for one WebSocket: {"path": "/live"} or {"path": "/vms/NAME/console"}');
      }
      return this.tickets.issue({ kind: 'websocket', path });
    }, 201);
    this.route('GET', '/host', () => s.host());
    this.route('GET', '/vms', () => s.list());
    this.route('POST', '/vms', ({ body }) => s.newVm(body), 201);
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
    this.route('DELETE', '/vms/{name}/snapshots/{snapshot}', async ({ params }) => { await s.removeCheckpoint(params[0], params[1]); return null; }, 204);
    this.route('POST', '/vms/{name}/export', ({ params, body }) => s.exportVm(params[0], obj(body)));
    this.route('POST', '/imports', ({ body }) => s.importVm(obj(body)), 201);
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
    this.route('DELETE', '/vms/{name}/network-adapters/{adapter}', async ({ params }) => { await s.removeNetworkAdapter(params[0], params[1]); return null; }, 204);
    this.route('PUT', '/vms/{name}/network-adapters/{adapter}/switch', ({ params, body }) => {
      const sw = obj(body).switchName;
      if (sw !== null && typeof sw !== 'string') throw badRequest('the body must be {"switchName": "NAME"} to connect or {"switchName": null} to disconnect');
      return s.connectNetworkAdapter(params[0], params[1], sw);
    });
    this.defineStorageRoutes();
  }

  /** Drives of VMs and the VHD commands (long VHD work answers 202 with an operation to poll). */
  private defineStorageRoutes(): void {
    const d = this.service.drives;
    this.route('GET', '/hard-disk-drives', () => d.drives(undefined, 'disk'));
    this.route('GET', '/vms/{name}/hard-disk-drives', ({ params }) => d.drives(params[0], 'disk'));
    this.route('POST', '/vms/{name}/hard-disk-drives', ({ params, body }) => d.addHardDisk(params[0], body), 201);
    this.route('DELETE', '/vms/{name}/hard-disk-drives/{type}/{number}/{location}', async ({ params }) => { await d.removeHardDisk(params[0], params[1], params[2], params[3]); return null; }, 204);
    this.route('POST', '/vms/{name}/scsi-controllers', ({ params }) => ({ scsiControllers: d.addScsiController(params[0]) }), 201);
    this.route('GET', '/dvd-drives', () => d.drives(undefined, 'dvd'));
    this.route('GET', '/vms/{name}/dvd-drives', ({ params }) => d.drives(params[0], 'dvd'));
    this.route('PUT', '/vms/{name}/dvd-drive', ({ params, body }) => d.setDvd(params[0], body));
    this.route('POST', '/vhds', ({ body }) => d.newVhd(body), 202);
    this.route('GET', '/vhds', ({ query }) => d.getVhd(query.get('path') ?? undefined));
    this.route('POST', '/vhds/resize', ({ body }) => d.resizeVhd(body), 202);
    this.route('POST', '/vhds/merge', ({ body }) => d.mergeVhd(body), 202);
    this.route('POST', '/vhds/convert', ({ body }) => d.convertVhd(body), 202);
    this.route('POST', '/vhds/optimize', ({ body }) => d.optimizeVhd(body), 202);
    this.route('POST', '/vhds/test', ({ body }) => d.testVhd((body as { path?: unknown } | undefined)?.path));
    this.route('GET', '/operations', () => d.operations.list());
    this.route('GET', '/operations/{id}', ({ params }) => d.operations.get(params[0]));
  }

  private bearer(req: IncomingMessage): string | null {
    const h = req.headers.authorization;
    return h?.startsWith('Bearer ') ? h.slice(7).trim() : null;
  }

  /** The API token or a browser session, in the Authorization header only (never in the URL). */
  private authorized(req: IncomingMessage, l: Listener): boolean {
    if (!l.tcp) return true;
    const got = this.bearer(req);
    if (!got) return false;
    return (!!this.o.token && sameSecret(got, this.o.token)) || this.tickets.session(got);
  }

  /** The checks every request and upgrade goes through before authentication; a refusal as [status, code, message]. */
  private hostRefusal(req: IncomingMessage, l: Listener): [number, string, string] | null {
    if (!l.tcp) return null;
    const host = hostOf(req.headers.host);
    if (host && l.hosts!.has(host)) return null;
    return [421, 'HostNotAllowed', `this service does not answer to host '${req.headers.host ?? ''}' (use its address, or start it with --allowed-host NAME)`];
  }

  private originRefusal(req: IncomingMessage, l: Listener): [number, string, string] | null {
    if (!l.tcp || originAllowed(req, l.tls)) return null;
    return [403, 'CrossOrigin', `requests from origin '${req.headers.origin}' are not allowed`];
  }

  private async handle(req: IncomingMessage, res: ServerResponse, l: Listener): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const isApi = url.pathname.startsWith(`${API}/`);
    for (const [k, v] of Object.entries(securityHeaders({ api: isApi, tls: l.tls }))) res.setHeader(k, v!);
    const safeMethod = req.method === 'GET' || req.method === 'HEAD';
    const refuse = (r: [number, string, string]): void => { req.resume(); sendJson(res, r[0], { error: { code: r[1], message: r[2] } }); };
    const badHost = this.hostRefusal(req, l);
    if (badHost) { refuse(badHost); return; }
    if (!isApi) { this.serveStatic(url.pathname, res); return; }
    // JSON only, declared as such: a cross-site form or text/plain POST never reaches a handler.
    const type = mediaType(req.headers['content-type']);
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if ((type !== null && type !== 'application/json') || (hasBody && type === null)) {
      req.resume();
      sendJson(res, 415, { error: { code: 'UnsupportedMediaType', message: 'request bodies must be JSON sent with "Content-Type: application/json"' } });
      return;
    }
    const badOrigin = safeMethod ? null : this.originRefusal(req, l);
    if (badOrigin) { refuse(badOrigin); return; }
    if (l.tcp && req.method === 'POST' && url.pathname === `${API}/sessions`) { await this.login(req, res); return; }
    if (!this.authorized(req, l)) {
      req.resume();
      sendJson(res, 401, { error: { code: 'Unauthorized', message: 'missing or wrong API token: send "Authorization: Bearer <token>" (the token is in the service\'s data directory, file api-token); a token in the URL is not accepted' } });
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
      if (e instanceof VmmsError) { sendJson(res, e.status, { error: { code: e.code, message: e.message } }); return; }
      // The details (paths, internals) go to the service log only; the id ties the two together.
      const id = randomBytes(6).toString('hex');
      (this.o.log ?? ((m: string) => process.stderr.write(`${m}\n`)))(`internal error ${id} on ${req.method} ${url.pathname}: ${(e as Error).stack ?? String(e)}`);
      sendJson(res, 500, { error: { code: 'InternalError', message: `internal error (id ${id}); the details are in the service's log` } });
    }
  }

  /**
   * POST /api/v1/sessions: a browser signs in with the API token in the Authorization header (typed into the
   * login form) or with a login ticket in the body, and gets a session for its Authorization header instead.
   */
  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown;
    try { body = await readBody(req); } catch (e) { sendJson(res, (e as VmmsError).status ?? 400, { error: { code: 'MalformedBody', message: (e as Error).message } }); return; }
    const ticket = typeof body === 'object' && body !== null ? (body as { ticket?: unknown }).ticket : undefined;
    const got = this.bearer(req);
    const ok = (got !== null && !!this.o.token && sameSecret(got, this.o.token)) ||
      (typeof ticket === 'string' && this.tickets.redeem(ticket, { kind: 'login' }));
    if (!ok) { sendJson(res, 401, { error: { code: 'Unauthorized', message: 'wrong API token, or a login ticket that is unknown, used or expired' } }); return; }
    sendJson(res, 201, this.tickets.newSession());
  }

  private serveStatic(pathname: string, res: ServerResponse): void {
    if (res.req.method !== 'GET' && res.req.method !== 'HEAD') { res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n'); return; }
    let file: string | null = null;
    if (pathname === '/' || pathname === '/index.html') file = join(this.webRoot, 'index.html');
    else if (pathname.startsWith('/vendor/xterm/') && this.xtermRoot) file = safeJoin(this.xtermRoot, pathname.slice('/vendor/xterm/'.length));
    else file = safeJoin(this.webRoot, pathname.slice(1));
    if (!file || !existsSync(file)) { res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'); return; }
    const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.map': 'application/json', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json' };
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer, l: Listener): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reject = (code: number, text: string): void => {
      socket.end(`HTTP/1.1 ${code} ${text}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${text}\n`);
    };
    // A WebSocket is never "safe": browsers open them cross-site, so the Origin is always checked.
    if (this.hostRefusal(req, l)) { reject(421, 'Misdirected Request'); return; }
    if (this.originRefusal(req, l)) { reject(403, 'Forbidden'); return; }
    const wsPath = url.pathname.startsWith(API) ? url.pathname.slice(API.length) : url.pathname;
    if (!this.authorized(req, l) && !(l.tcp && this.tickets.redeem(url.searchParams.get('ticket'), { kind: 'websocket', path: wsPath }))) {
      reject(401, 'Unauthorized');
      return;
    }
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

  private makeServer(l: Listener, tls?: TcpOptions['tls']): Server {
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => { void this.handle(req, res, l); };
    const srv: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, onRequest) : createServer(onRequest);
    srv.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Socket, head, l));
    srv.on('connection', (sock) => { this.sockets.add(sock); sock.on('close', () => this.sockets.delete(sock)); });
    this.servers.push(srv);
    return srv;
  }

  /**
   * Listens on a unix socket only the owner can use. The socket is created with that mode (umask around the
   * bind, which listen() does synchronously), so there is no moment at which others could connect.
   */
  async listenUnix(path: string): Promise<void> {
    if (existsSync(path)) rmSync(path);
    const srv = this.makeServer({ tcp: false, tls: false, hosts: null });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      const old = process.umask(0o177);
      try { srv.listen(path, () => { srv.off('error', reject); resolve(); }); } finally { process.umask(old); }
    });
    this.unixPaths.push(path);
  }

  /**
   * Listens on TCP; every API request must then carry the token or a session. Beyond loopback only with TLS,
   * unless plain HTTP is forced.
   */
  async listenTcp(host: string, port: number, o: TcpOptions = {}): Promise<AddressInfo> {
    if (!this.o.token) throw new Error('a TCP listener needs an API token');
    if (!o.tls && !o.insecureHttp && !isLoopbackHost(host)) {
      throw new Error(`listening on ${host} would serve plain HTTP to the network, where the API token could be read: give --tls-cert FILE --tls-key FILE, listen on 127.0.0.1, or force it with --insecure-http`);
    }
    const srv = this.makeServer({ tcp: true, tls: !!o.tls, hosts: defaultAllowedHosts(host, o.allowedHosts) }, o.tls);
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
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(`${JSON.stringify(body, null, 2)}\n`);
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
