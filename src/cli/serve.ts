/**
 * `hyperts serve`: the management service in the foreground (run it with & or under a service manager).
 * Unix socket DATA_DIR/vmms.sock always; TCP only with --listen, and then every request needs the token.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs, UsageError } from './args.js';
import { defaultDataDir, defaultVirtualDiskDir, socketPath, tokenPath } from '../vmms/paths.js';
import { writeFileAtomic } from '../platform/state-files.js';
import { checkPrivateDirectory, checkSecretFile, UnsafePermissionsError } from '../vmms/file-checks.js';

const help = `usage: hyperts serve [--data-dir DIR] [--listen HOST:PORT] [--token-file FILE] [--quiet] ...

  --data-dir DIR         inventory, event log, socket and token (default $XDG_DATA_HOME/hyperts); it must
                         belong to you and be writable by no one else (chmod 700 DIR)
  --listen HOST:PORT     also serve the API and the web console on TCP (token required; port 0 picks one)
  --tls-cert FILE        PEM certificate for HTTPS on --listen (needed beyond 127.0.0.1/::1)
  --tls-key FILE         its PEM private key
  --insecure-http        allow plain HTTP on a non-loopback --listen anyway (the token crosses the network in clear)
  --allowed-host NAMES   comma-separated host names clients use to reach --listen (DNS rebinding guard)
  --token-file FILE      the API token for --listen (default: DIR/api-token, created mode 0600 when missing)
  --path-root DIRS       comma-separated folders API clients may name files in (virtual disks, ISOs, exports,
                         kernels and initrds); default: DIR and DIR/Virtual Hard Disks (boot files also from
                         the guest image cache)
  --no-isolation         run VM workers without the bubblewrap sandbox (recorded in each VM's event log)
  --quiet                do not log state transitions to stderr

With --listen the web console is at http(s)://HOST:PORT/: sign in with the API token from the token file,
or open the one-time link 'hyperts console-url --url http(s)://HOST:PORT' prints.
The token is never taken on the command line; clients read it from a file or $HYPERTS_TOKEN.
`;

function answers(sock: string): Promise<boolean> {
  return new Promise((r) => {
    const req = request({ socketPath: sock, path: '/api/v1/vms', method: 'GET' }, (res) => { res.resume(); r(true); });
    req.on('error', () => r(false));
    req.end();
  });
}

function tlsPairOk(o: Record<string, string | boolean>): boolean { return (o['tls-cert'] === undefined) === (o['tls-key'] === undefined); }

export default async function serve(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) { process.stdout.write(help); return 0; }
  let opts: Record<string, string | boolean>;
  try {
    const p = parseArgs(args, {
      'data-dir': 'string', listen: 'string', 'token-file': 'string', quiet: 'boolean', 'tls-cert': 'string', 'tls-key': 'string',
      'insecure-http': 'boolean', 'allowed-host': 'string', 'path-root': 'string', 'no-isolation': 'boolean',
    }, 'serve');
    if (!tlsPairOk(p.opts)) throw new UsageError('serve: --tls-cert and --tls-key go together');
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
  // Errors are always logged (an internal error's id in a response points here), quiet or not.
  const errorLog = (m: string): void => { process.stderr.write(`${new Date().toISOString()} ${m}\n`); };
  const list = (k: string): string[] => ((opts[k] as string | undefined) ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  let token: string | undefined;
  let tls: { cert: Buffer; key: Buffer } | undefined;
  const tokenFile = resolve((opts['token-file'] as string | undefined) ?? tokenPath(dataDir));
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    checkPrivateDirectory(dataDir);
    if (listen) {
      if (opts['tls-cert']) tls = { cert: readFileSync(opts['tls-cert'] as string), key: readFileSync(opts['tls-key'] as string) };
      if (existsSync(tokenFile)) { checkSecretFile(tokenFile); token = readFileSync(tokenFile, 'utf8').trim(); }
      if (!token) {
        token = randomBytes(32).toString('base64url');
        writeFileAtomic(tokenFile, `${token}\n`, 0o600);
      }
    }
  } catch (e) {
    if (e instanceof UnsafePermissionsError || (e as NodeJS.ErrnoException).code) { process.stderr.write(`hyperts: serve: ${(e as Error).message}\n`); return 1; }
    throw e;
  }
  const { VmmsService } = await import('../vmms/service.js');
  const { ApiServer } = await import('../vmms/api.js');
  const roots = opts['path-root'] !== undefined ? list('path-root').map((r) => resolve(r)) : [dataDir, defaultVirtualDiskDir(dataDir)];
  const service = new VmmsService({ dataDir, log, pathRoots: roots, isolation: opts['no-isolation'] === true ? 'off' : 'auto' });
  const api = new ApiServer(service, { token, log: errorLog });
  await api.listenUnix(sock);
  process.stderr.write(`hyperts serve: listening on unix:${sock} (data directory ${dataDir})\n`);
  if (listen) {
    let a;
    try {
      a = await api.listenTcp(listen.host, listen.port, { tls, insecureHttp: opts['insecure-http'] === true, allowedHosts: list('allowed-host') });
    } catch (e) {
      process.stderr.write(`hyperts: serve: ${(e as Error).message}\n`);
      await api.close(); await service.close();
      return 1;
    }
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    // Only a fingerprint of the token: logs and terminals are read by more people than the token's owner.
    process.stderr.write(`hyperts serve: listening on ${tls ? 'https' : 'http'}://${host}:${a.port}/ (web console; sign in with the API token in ${tokenFile}, which starts ${token!.slice(0, 4)}...)\n`);
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
