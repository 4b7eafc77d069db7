/**
 * The Debian mirror the host's apt already uses (one-line `.list` files and deb822 `.sources` files), so the
 * root file system comes from the same place as the kernel and needs no other host to be reachable.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export interface AptSource { uri: string; suites: string[]; components: string[] }

/** `deb [options] uri suite component...` lines; deb-src and comments are skipped. */
export function parseSourcesList(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ uri: m[1], suites: [m[2]], components: m[3].split(/\s+/).filter(Boolean) });
  }
  return out;
}

/** deb822 stanzas (blank-line separated `Key: value` fields); only Types including `deb`, not disabled. */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const f = new Map<string, string>();
    let last = '';
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) { f.set(last, `${f.get(last)} ${raw.trim()}`); continue; }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) { last = m[1].toLowerCase(); f.set(last, m[2].trim()); }
    }
    const words = (k: string): string[] => (f.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!words('types').includes('deb') || /^(no|false)$/i.test(f.get('enabled') ?? 'yes')) continue;
    for (const uri of words('uris')) out.push({ uri, suites: words('suites'), components: words('components') });
  }
  return out;
}

export function hostAptSources(etc = '/etc/apt'): AptSource[] {
  const out: AptSource[] = [];
  const list = join(etc, 'sources.list');
  if (existsSync(list)) out.push(...parseSourcesList(readFileSync(list, 'utf8')));
  const dir = join(etc, 'sources.list.d');
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const text = readFileSync(join(dir, name), 'utf8');
      if (name.endsWith('.list')) out.push(...parseSourcesList(text));
      else if (name.endsWith('.sources')) out.push(...parseDeb822Sources(text));
    }
  }
  return out;
}

/** The first source that serves `suite` with the main component (a plain http(s) mirror, as debootstrap needs). */
export function debianMirror(suite: string, sources: AptSource[] = hostAptSources()): string {
  const s = sources.find((x) => x.suites.includes(suite) && x.components.includes('main') && /^https?:\/\//.test(x.uri));
  if (!s) {
    throw new Error(`no apt source serves Debian ${suite} main over http(s) (read /etc/apt/sources.list and sources.list.d); ` +
      `add one, e.g. "deb http://deb.debian.org/debian ${suite} main", or pass --mirror URL`);
  }
  return s.uri.replace(/\/+$/, '');
}
