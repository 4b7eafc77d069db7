import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSourcesList, parseDeb822Sources, hostAptSources, debianMirror } from '../../src/image/apt-sources.js';

test('apt sources: one-line format with options and comments; deb-src skipped', () => {
  const s = parseSourcesList('# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib # tail\ndeb-src http://m.example/debian bookworm main\n\n');
  assert.deepEqual(s, [{ uri: 'http://m.example/debian', suites: ['bookworm'], components: ['main', 'contrib'] }]);
});

test('apt sources: deb822 stanzas, several suites, disabled and deb-src-only stanzas skipped', () => {
  const text = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no
`;
  assert.deepEqual(parseDeb822Sources(text), [{ uri: 'http://deb.debian.org/debian', suites: ['bookworm', 'bookworm-updates'], components: ['main'] }]);
});

test('apt sources: the mirror is the first http(s) source serving the suite with main', () => {
  const etc = mkdtempSync(join(tmpdir(), 'apt-'));
  try {
    mkdirSync(join(etc, 'sources.list.d'));
    writeFileSync(join(etc, 'sources.list'), 'deb http://security.example/debian-security bookworm-security main\n');
    writeFileSync(join(etc, 'sources.list.d', 'a.list'), 'deb cdrom:[Debian]/ bookworm main\ndeb http://other.example/x bookworm contrib\n');
    writeFileSync(join(etc, 'sources.list.d', 'b.sources'), 'Types: deb\nURIs: https://mirror.example/debian/\nSuites: bookworm\nComponents: main\n');
    writeFileSync(join(etc, 'sources.list.d', 'c.list.disabled'), 'deb http://never.example/debian bookworm main\n');
    const sources = hostAptSources(etc);
    assert.equal(sources.length, 4);
    assert.equal(debianMirror('bookworm', sources), 'https://mirror.example/debian');
    assert.throws(() => debianMirror('trixie', sources), /no apt source serves Debian trixie main.*--mirror URL/);
  } finally {
    rmSync(etc, { recursive: true, force: true });
  }
});
