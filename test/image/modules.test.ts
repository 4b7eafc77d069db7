import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveModules, modulesDep, readModinfo, GUEST_MODULES, type ModuleTree } from '../../src/image/modules.js';
import { defaultImagePaths } from '../../src/image/builder.js';

/** A minimal ELF64 relocatable file with a .modinfo section holding `info`. */
function fakeKo(info: string[]): Buffer {
  const modinfo = Buffer.from(info.map((s) => s + '\0').join(''));
  const shstr = Buffer.from('\0.modinfo\0.shstrtab\0');
  const modOff = 64, strOff = modOff + modinfo.length, shOff = (strOff + shstr.length + 7) & ~7;
  const b = Buffer.alloc(shOff + 3 * 64);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  b.writeUInt16LE(1, 16); b.writeUInt16LE(62, 18); b.writeUInt32LE(1, 20);
  b.writeUInt32LE(shOff, 40); b.writeUInt16LE(64, 52); b.writeUInt16LE(64, 58); b.writeUInt16LE(3, 60); b.writeUInt16LE(2, 62);
  modinfo.copy(b, modOff); shstr.copy(b, strOff);
  const sh = (i: number, name: number, type: number, off: number, size: number): void => {
    const o = shOff + i * 64;
    b.writeUInt32LE(name, o); b.writeUInt32LE(type, o + 4); b.writeUInt32LE(off, o + 24); b.writeUInt32LE(size, o + 32);
  };
  sh(1, 1, 1, modOff, modinfo.length);
  sh(2, 10, 3, strOff, shstr.length);
  return b;
}

function fakeTree(mods: Record<string, string>, builtin: string[] = []): { tree: ModuleTree; read: (rel: string) => Buffer } {
  const files = new Map(Object.keys(mods).map((n) => [n, `kernel/x/${n.replace(/_/g, '-')}.ko`]));
  const byPath = new Map(Object.entries(mods).map(([n, d]) => [files.get(n)!, fakeKo([`name=${n}`, `depends=${d}`, 'license=GPL'])]));
  return { tree: { root: '/nonexistent', version: 'v', files, builtin: new Set(builtin) }, read: (rel) => byPath.get(rel)! };
}

test('modules: .modinfo keys are parsed', () => {
  const m = readModinfo(fakeKo(['alias=a', 'alias=b', 'depends=x,y', 'vermagic=6.1']));
  assert.deepEqual(m.get('alias'), ['a', 'b']);
  assert.deepEqual(m.get('depends'), ['x,y']);
});

test('modules: dependencies load first, shared ones once, built-ins skipped', () => {
  const { tree, read } = fakeTree({ top: 'mid,base', mid: 'base', base: '', other: 'base-dash' , base_dash: '' }, ['ext4']);
  const r = resolveModules(tree, ['top', 'other', 'ext4'], read);
  assert.deepEqual(r.order, ['base', 'mid', 'top', 'base_dash', 'other']);
  assert.deepEqual(r.builtin, ['ext4']);
  const dep = modulesDep(tree, r).trim().split('\n');
  assert.equal(dep[2], 'kernel/x/top.ko: kernel/x/mid.ko kernel/x/base.ko');
  assert.equal(dep[0], 'kernel/x/base.ko:');
});

test('modules: unknown modules and cycles are clear errors', () => {
  const { tree, read } = fakeTree({ a: 'missing', b: 'c', c: 'b' });
  assert.throws(() => resolveModules(tree, ['a'], read), /'missing' \(needed by a\)/);
  assert.throws(() => resolveModules(tree, ['b'], read), /cycle/);
});

test('modules: the built image matches depmod on its own module tree', (t) => {
  const { initrd } = defaultImagePaths();
  if (!existsSync(initrd)) { t.skip('no default image (run: hyperts image build)'); return; }
  if (spawnSync('depmod', ['--version']).status !== 0) { t.skip('depmod (kmod) not installed'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'initrd-'));
  try {
    const cpio = spawnSync('sh', ['-c', `zcat '${initrd}' | cpio -id --quiet --no-absolute-filenames -f 'dev/*'`], { cwd: dir });
    assert.equal(cpio.status, 0, cpio.stderr.toString());
    const ver = readFileSync(join(dir, 'init'), 'utf8').match(/^KVER=(\S+)$/m)![1];
    const ours = parseDep(readFileSync(join(dir, 'lib/modules', ver, 'modules.dep'), 'utf8'));
    const d = spawnSync('depmod', ['-b', dir, ver]); // rewrites modules.dep in place (ours was read above)
    assert.equal(d.status, 0, d.stderr.toString());
    const theirs = parseDep(readFileSync(join(dir, 'lib/modules', ver, 'modules.dep'), 'utf8'));
    assert.deepEqual(ours, theirs);
    const list = readFileSync(join(dir, 'etc/hyperts/modules'), 'utf8').trim().split('\n');
    for (const want of GUEST_MODULES.filter((m) => m !== 'ext4')) assert.ok(list.some((p) => p.endsWith(`/${want}.ko`)), want);
    // Load order: every module after all of its dependencies.
    list.forEach((p, i) => { for (const dep of theirs[p]) assert.ok(list.indexOf(dep) < i, `${dep} before ${p}`); });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function parseDep(text: string): Record<string, string[]> {
  const r: Record<string, string[]> = {};
  for (const l of text.trim().split('\n')) {
    const [k, v] = l.split(':');
    r[k] = v.trim() ? v.trim().split(/\s+/).sort() : [];
  }
  return r;
}
