/** Small, strict option parser shared by the subcommands: unknown options are errors that name the fix. */
export interface OptionSpec { [name: string]: 'string' | 'boolean' }

export class UsageError extends Error {}

export function parseArgs(args: string[], spec: OptionSpec, command: string): { opts: Record<string, string | boolean>; positional: string[] } {
  const opts: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const kind = spec[name];
    if (!kind) throw new UsageError(`${command}: unknown option --${name} (see 'hyperts ${command} --help')`);
    if (kind === 'boolean') { opts[name] = true; continue; }
    const v = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined) throw new UsageError(`${command}: option --${name} needs a value`);
    opts[name] = v;
  }
  return { opts, positional };
}

/** Parses sizes like 512M, 1G, 1536MiB, 268435456 into bytes. */
export function parseSize(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`invalid ${what} '${s}': use a number with an optional K, M or G suffix, e.g. 512M`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const v = Math.round(parseFloat(m[1]) * mult);
  return v;
}
