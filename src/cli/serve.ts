/**
 * `hyperts serve`: the management service in the foreground (run it with & or under a service manager).
 * Unix socket DATA_DIR/vmms.sock always; TCP only with --listen, and then every request needs the token.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs, UsageError } from './args.js';
import { defaultDataDir, socketPath, tokenPath } from '../vmms/paths.js';

const help = `usage: hyperts serve [--data-dir DIR] [--listen HOST:PORT] [--token-file FILE] [--quiet]

  --data-dir DIR       inventory, event log, socket and token (default $XDG_DATA_HOME/hyperts)
  --listen HOST:PORT   also serve the API and the web console on TCP (token required; port 0 picks one)
  --token-file FILE    the API token for --listen (default: DIR/api-token, created when missing)
  --quiet              do not log state transitions to stderr

The web console is at http://HOST:PORT/?token=TOKEN with --listen.
`;

function answers(sock: string): Promise<boolean> {
  return new Promise((r) => {
    const req = request({ socketPath: sock, path: '/api/v1/vms', method: 'GET' }, (res) => { res.resume(); r(true); });
    req.on('error', () => r(false));
    req.end();
  });
}

export default async function serve(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) { process.stdout.write(help); return 0; }
  let opts: Record<string, string | boolean>;
  try {
    const p = parseArgs(args, { 'data-dir': 'string', listen: 'string', 'token-file': 'string', quiet: 'boolean' }, 'serve');
    if (p.positional.length) throw new UsageError(`serve: unexpected argument '${p.positional[0]}'`);
    opts = p.opts;
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`hyperts: ${e.message}\n`); return 2; }
    throw e;
  }
  const dataDir = resolve((opts['data-dir'] as string | undefined) ?? process.env.HYPERTS_DATA_DIR ?? defaultDataDir());
  let listen: { host: string; port: number } | null = null;
  if (opts.listen !== undefined) {
    const m = /^(.*):(\d+)$/.exec(String(opts.listen));
    const port = m ? Number(m[2]) : NaN;
    if (!m || !m[1] || port > 65535) { process.stderr.write(`hyperts: serve: --listen needs HOST:PORT, e.g. 127.0.0.1:8006\n`); return 2; }
    listen = { host: m[1].replace(/^\[|\]$/g, ''), port };
  }
  const sock = socketPath(dataDir);
  if (existsSync(sock) && await answers(sock)) {
    process.stderr.write(`hyperts: serve: a management service already runs with data directory ${dataDir} (socket ${sock})\n`);
    return 1;
  }
  const quiet = opts.quiet === true;
  const log = (m: string): void => { if (!quiet) process.stderr.write(`${new Date().toISOString()} ${m}\n`); };
  const { VmmsService } = await import('../vmms/service.js');
  const { ApiServer } = await import('../vmms/api.js');
  const service = new VmmsService({ dataDir, log });
  let token: string | undefined;
  if (listen) {
    const file = (opts['token-file'] as string | undefined) ?? tokenPath(dataDir);
    if (existsSync(file)) token = readFileSync(file, 'utf8').trim();
    if (!token) {
      token = randomBytes(24).toString('base64url');
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
    }
  }
  const api = new ApiServer(service, { token });
  await api.listenUnix(sock);
  process.stderr.write(`hyperts serve: listening on unix:${sock} (data directory ${dataDir})\n`);
  if (listen) {
    const a = await api.listenTcp(listen.host, listen.port);
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    process.stderr.write(`hyperts serve: listening on http://${host}:${a.port}/ (API token in ${(opts['token-file'] as string | undefined) ?? tokenPath(dataDir)}; web console: http://${host}:${a.port}/?token=${token})\n`);
  }
  return await new Promise<number>((done) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      log(`${sig}: stopping; running VMs are turned off`);
      void api.close().then(() => service.close()).then(() => done(0), (e: unknown) => { process.stderr.write(`hyperts serve: ${(e as Error).message}\n`); done(1); });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}
