/**
 * The API's defences for TCP clients and browsers: console tickets and sessions (so the long-lived token never
 * travels in a URL or lives in a browser), the Host allowlist (DNS rebinding), Origin checks (cross-site
 * WebSockets and requests), the JSON-only rule for bodies and the security headers of every response.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { networkInterfaces, hostname } from 'node:os';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

/** A console ticket opens one WebSocket (or one browser login) within this time, once. */
export const TICKET_TTL_MS = 30_000;
/** A browser session ends after this long without a request, and in any case after SESSION_MAX_MS. */
export const SESSION_IDLE_MS = 60 * 60_000;
export const SESSION_MAX_MS = 12 * 60 * 60_000;

export type TicketPurpose = { kind: 'login' } | { kind: 'websocket'; path: string };

const digest = (x: string): Buffer => createHash('sha256').update(x).digest();
/** Equal-length digests, so the comparison time says nothing about the secret. */
export const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/**
 * Short-lived single-use tickets (as Proxmox's console tickets) and browser sessions, both in memory: a
 * restarted service forgets them and the browser signs in again. Stored as digests, looked up by digest.
 */
export class Tickets {
  private readonly tickets = new Map<string, { purpose: TicketPurpose; expires: number }>();
  private readonly sessions = new Map<string, { lastUsed: number; created: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  private sweep(): void {
    const t = this.now();
    for (const [k, v] of this.tickets) if (v.expires <= t) this.tickets.delete(k);
    for (const [k, v] of this.sessions) if (t - v.lastUsed > SESSION_IDLE_MS || t - v.created > SESSION_MAX_MS) this.sessions.delete(k);
  }

  issue(purpose: TicketPurpose): { ticket: string; expiresInSeconds: number } {
    this.sweep();
    if (this.tickets.size > 10_000) throw new Error('too many outstanding tickets');
    const ticket = randomBytes(32).toString('base64url');
    this.tickets.set(digest(ticket).toString('hex'), { purpose, expires: this.now() + TICKET_TTL_MS });
    return { ticket, expiresInSeconds: TICKET_TTL_MS / 1000 };
  }

  /** Uses a ticket up: true only once, within its lifetime, for what it was issued for. */
  redeem(ticket: string | null, want: TicketPurpose): boolean {
    if (!ticket) return false;
    const k = digest(ticket).toString('hex');
    const t = this.tickets.get(k);
    if (!t) return false;
    this.tickets.delete(k);
    if (t.expires <= this.now()) return false;
    if (t.purpose.kind !== want.kind) return false;
    return t.purpose.kind === 'login' || t.purpose.path === (want as { path: string }).path;
  }

  newSession(): { session: string; idleSeconds: number } {
    this.sweep();
    const session = randomBytes(32).toString('base64url');
    const t = this.now();
    this.sessions.set(digest(session).toString('hex'), { lastUsed: t, created: t });
    return { session, idleSeconds: SESSION_IDLE_MS / 1000 };
  }

  /** A live session (its idle timer restarts). */
  session(s: string): boolean {
    const k = digest(s).toString('hex');
    const v = this.sessions.get(k);
    if (!v) return false;
    const t = this.now();
    if (t - v.lastUsed > SESSION_IDLE_MS || t - v.created > SESSION_MAX_MS) { this.sessions.delete(k); return false; }
    v.lastUsed = t;
    return true;
  }

  endSession(s: string): void { this.sessions.delete(digest(s).toString('hex')); }
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

/** Host names a TCP listener answers to: its address, loopback names for a loopback listener, every local address and the host name for a wildcard one, plus --allowed-host names. */
export function defaultAllowedHosts(listenHost: string, extra: string[] = []): Set<string> {
  const h = listenHost.replace(/^\[|\]$/g, '').toLowerCase();
  const out = new Set<string>([h, ...extra.map((x) => x.toLowerCase())]);
  if (isLoopbackHost(h)) for (const x of ['localhost', '127.0.0.1', '::1']) out.add(x);
  if (h === '0.0.0.0' || h === '::' || h === '') {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address.toLowerCase());
    out.add(hostname().toLowerCase());
    out.add('localhost');
  }
  return out;
}

/** The host name of a Host header ("name:port", "[v6]:port"), lower case, or null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(header.trim());
  if (!m) return null;
  const h = m[1].replace(/^\[|\]$/g, '').toLowerCase();
  if (m[1].startsWith('[') && isIP(h) !== 6) return null;
  return h;
}

/**
 * A browser's Origin must be this very service (scheme, host and port of the request). Requests without one
 * (curl, the CLI, the ws library) are not cross-site: browsers always send Origin on WebSockets and on
 * state-changing fetches.
 */
export function originAllowed(req: IncomingMessage, tls: boolean): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  let u: URL;
  try { u = new URL(origin); } catch { return false; }
  return u.protocol === (tls ? 'https:' : 'http:') && u.host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
}

/** The media type of a Content-Type header, lower case, without parameters. */
export function mediaType(h: string | undefined): string | null {
  if (!h) return null;
  return h.split(';')[0].trim().toLowerCase();
}

/** Headers of every response: no framing, no sniffing, no referrers, no script but our own files. */
export function securityHeaders(o: { api: boolean; tls: boolean }): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {
    'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; " +
      "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'cache-control': o.api ? 'no-store' : 'no-cache',
  };
  if (o.tls) h['strict-transport-security'] = 'max-age=31536000';
  return h;
}
