/** Client of the service's REST API and WebSockets, over its unix socket or TCP (with the token). */
import { request } from 'node:http';
import WebSocket from 'ws';

export interface ClientTarget { socketPath?: string; url?: string; token?: string }

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

export class VmmsClient {
  constructor(readonly target: ClientTarget) {
    if (!target.socketPath && !target.url) throw new Error('VmmsClient needs a socket path or a URL');
  }

  private where(): string { return this.target.url ?? `unix socket ${this.target.socketPath}`; }

  call<T = unknown>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = String(payload.length); }
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    const fullPath = `/api/v1${path}`;
    const opts = this.target.url
      ? (() => { const u = new URL(fullPath, this.target.url); return { hostname: u.hostname, port: u.port, path: u.pathname + u.search }; })()
      : { socketPath: this.target.socketPath, path: fullPath };
    return new Promise<T>((resolve, reject) => {
      const req = request({ ...opts, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let data: unknown = null;
          if (text.trim()) {
            try { data = JSON.parse(text); } catch { data = text; }
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) { resolve(data as T); return; }
          const e = (data as { error?: { code?: string; message?: string } } | null)?.error;
          reject(new ApiError(status, e?.code ?? 'HttpError', e?.message ?? `HTTP ${status} from the management service`));
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the service closed (e.g. it restarted) fails on first use: the request never
        // reached it, so send it once more on a fresh connection.
        if (req.reusedSocket && !retried && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
          this.call<T>(method, path, body, true).then(resolve, reject);
          return;
        }
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
          reject(new ApiError(0, 'ServiceUnavailable', `the management service is not running (no answer on ${this.where()}): start it with 'hyperts serve &'`));
        } else reject(new ApiError(0, 'ConnectionError', `cannot reach the management service on ${this.where()}: ${err.message}`));
      });
      if (payload) req.end(payload); else req.end();
    });
  }

  /** A WebSocket to an API path (e.g. /live, /vms/NAME/console). */
  webSocket(path: string): WebSocket {
    const full = `/api/v1${path}`;
    if (this.target.url) {
      const u = new URL(full, this.target.url.replace(/^http/, 'ws'));
      return new WebSocket(u, { headers: this.target.token ? { authorization: `Bearer ${this.target.token}` } : {} });
    }
    return new WebSocket(`ws+unix://${this.target.socketPath}:${full}`);
  }
}
