import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchDeb, defaultImagePaths, imageCacheDir, DEFAULT_CMDLINE } from '../../src/image/builder.js';
import { createProgress } from '../../src/image/progress.js';

test('builder: an unknown package gives a clear apt error', async (t) => {
  if (spawnSync('apt-cache', ['--version']).status !== 0) { t.skip('not a Debian host'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'debs-'));
  try {
    await assert.rejects(fetchDeb('hyperts-no-such-package-xyz', dir, createProgress(process.stdout, true)),
      /could not download hyperts-no-such-package-xyz: .*check network\/apt sources/s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('builder: cache location follows XDG_CACHE_HOME', () => {
  const old = process.env.XDG_CACHE_HOME;
  try {
    process.env.XDG_CACHE_HOME = '/tmp/xdg-test';
    assert.equal(imageCacheDir(), '/tmp/xdg-test/hyperts/images');
    const p = defaultImagePaths();
    assert.equal(p.kernel, '/tmp/xdg-test/hyperts/images/default/vmlinuz');
    assert.equal(p.initrd, '/tmp/xdg-test/hyperts/images/default/initrd.img');
    assert.equal(p.cmdline, DEFAULT_CMDLINE);
    process.env.XDG_CACHE_HOME = 'relative/ignored';
    assert.match(imageCacheDir(), /^\/.*\/\.cache\/hyperts\/images$/);
  } finally {
    if (old === undefined) delete process.env.XDG_CACHE_HOME; else process.env.XDG_CACHE_HOME = old;
  }
});
