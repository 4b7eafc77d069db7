import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootfsPaths } from '../../src/image/rootfs.js';

const cli = (args: string[], cache: string) => spawnSync(process.execPath, ['dist/src/cli/main.js', 'image', ...args], { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: cache } });

test('image path --rootfs: the cached disk path alone on stdout; a clear message when not built', () => {
  const cache = mkdtempSync(join(tmpdir(), 'image-cli-'));
  try {
    let r = cli(['path', '--rootfs'], cache);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /root disk is not built yet .*run: hyperts image build --rootfs/);
    const p = rootfsPaths(join(cache, 'hyperts', 'images'));
    mkdirSync(p.dir, { recursive: true });
    writeFileSync(p.disk, '');
    r = cli(['path', '--rootfs'], cache);
    assert.equal(r.status, 1, 'a disk without its manifest is an unfinished build');
    writeFileSync(p.manifest, JSON.stringify({ key: 'k', packages: [] }));
    r = cli(['path', '--rootfs'], cache);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${p.disk}\n`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('image: option errors say what to do', () => {
  const cache = mkdtempSync(join(tmpdir(), 'image-cli-'));
  try {
    let r = cli(['build', '--mirror'], cache);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--mirror needs an http\(s\) URL/);
    r = cli(['build', '--mirror', 'http://m.example/debian'], cache);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--mirror applies to --rootfs only/);
    r = cli(['path', '--force'], cache);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option '--force'/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
