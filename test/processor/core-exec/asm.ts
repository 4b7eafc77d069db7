/** Test helper: assemble Intel-syntax snippets with binutils (`as` + `objcopy`), cached per source text. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cache = new Map<string, Uint8Array>();

export function assemble(src: string, bits: 16 | 32 | 64 = 64): Uint8Array {
  const key = `${bits}\n${src}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-asm-'));
  try {
    const s = join(dir, 'a.s'), o = join(dir, 'a.o'), b = join(dir, 'a.bin');
    writeFileSync(s, `.intel_syntax noprefix\n.code${bits}\n${src}\n`);
    execFileSync('as', [bits === 64 ? '--64' : '--32', '-o', o, s]);
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', o, b]);
    const out = new Uint8Array(readFileSync(b));
    cache.set(key, out);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Assemble many snippets in one `as` run; returns each one's bytes (for decoder tables). */
export function assembleMany(srcs: string[], bits: 16 | 32 | 64 = 64): Uint8Array[] {
  const dir = mkdtempSync(join(tmpdir(), 'hyperts-asm-'));
  try {
    const s = join(dir, 'a.s'), o = join(dir, 'a.o'), b = join(dir, 'a.bin');
    let text = `.intel_syntax noprefix\n.code${bits}\n`;
    srcs.forEach((x, k) => { text += `m${k}:\n${x}\n`; });
    text += `m${srcs.length}:\n`;
    writeFileSync(s, text);
    execFileSync('as', [bits === 64 ? '--64' : '--32', '-o', o, s]);
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', o, b]);
    const all = new Uint8Array(readFileSync(b));
    const syms = execFileSync('nm', ['-n', o]).toString().trim().split('\n').map((l) => l.split(' '));
    const addr = new Map<string, number>();
    for (const [a, , n] of syms) addr.set(n, parseInt(a, 16));
    const out: Uint8Array[] = [];
    for (let k = 0; k < srcs.length; k++) out.push(all.slice(addr.get(`m${k}`)!, addr.get(`m${k + 1}`)!));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
