/**
 * `hyperts console-url --url URL`: a one-time link to the web console. It carries a login ticket (single use,
 * 30 s) in the URL fragment, which browsers never send to a server or in a Referer; the API token stays in its
 * file. The browser exchanges the ticket for a session of its own.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs, UsageError } from './args.js';
import { ApiError, VmmsClient } from '../vmms/client.js';
import { defaultDataDir, tokenPath } from '../vmms/paths.js';

const help = `usage: hyperts console-url [--url URL] [--data-dir DIR] [--token-file FILE]

  --url URL          the service's TCP listener (hyperts serve --listen), default $HYPERTS_URL
  --token-file FILE  the API token (default $HYPERTS_TOKEN, else DIR/api-token)

Prints a link that signs a browser in to the web console once, within 30 seconds.
`;

export default async function consoleUrl(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) { process.stdout.write(help); return 0; }
  try {
    const { opts, positional } = parseArgs(args, { url: 'string', 'data-dir': 'string', 'token-file': 'string' }, 'console-url');
    if (positional.length) throw new UsageError(`console-url: unexpected argument '${positional[0]}'`);
    const url = (opts.url as string | undefined) ?? process.env.HYPERTS_URL;
    if (!url) throw new UsageError('console-url: give the web console\'s address with --url URL (as printed by hyperts serve --listen)');
    const dataDir = (opts['data-dir'] as string | undefined) ?? process.env.HYPERTS_DATA_DIR ?? defaultDataDir();
    const file = (opts['token-file'] as string | undefined) ?? (process.env.HYPERTS_TOKEN ? undefined : tokenPath(dataDir));
    let token = process.env.HYPERTS_TOKEN;
    if (file) {
      if (!existsSync(file)) throw new UsageError(`console-url: no token file ${file} (give --token-file FILE)`);
      token = readFileSync(file, 'utf8').trim();
    }
    const { ticket } = await new VmmsClient({ url, token }).call<{ ticket: string }>('POST', '/tickets', { purpose: 'login' });
    process.stdout.write(`${new URL('/', url).href}#ticket=${encodeURIComponent(ticket)}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`hyperts: ${e.message}\n`); return 2; }
    if (e instanceof ApiError) { process.stderr.write(`hyperts console-url: ${e.message}\n`); return 1; }
    throw e;
  }
}
