import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, lstatSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpioWriter } from '../../src/image/cpio.js';

function sample(): { archive: Buffer; payload: Buffer } {
  const w = new CpioWriter();
  const payload = Buffer.alloc(5001);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
  w.add({ type: 'dir', path: 'etc', mode: 0o700 });
  w.add({ type: 'file', path: '/bin/tool', data: payload, mode: 0o755 });
  w.add({ type: 'file', path: 'etc/a', data: Buffer.from('x'), mode: 0o644 });
  w.add({ type: 'file', path: 'empty', data: new Uint8Array(0) });
  w.add({ type: 'symlink', path: 'usr/bin/tool', target: '/bin/tool' });
  w.add({ type: 'char', path: 'dev/console', major: 5, minor: 1 });
  return { archive: w.finish(), payload };
}

test('cpio: system cpio lists every entry with parents first', () => {
  const { archive } = sample();
  const r = spawnSync('cpio', ['-itv', '--quiet'], { input: archive });
  assert.equal(r.status, 0, r.stderr.toString());
  const lines = r.stdout.toString().trim().split('\n');
  const names = spawnSync('cpio', ['-it', '--quiet'], { input: archive }).stdout.toString().trim().split('\n');
  assert.deepEqual(names, ['etc', 'bin', 'bin/tool', 'etc/a', 'empty', 'usr', 'usr/bin', 'usr/bin/tool', 'dev', 'dev/console']);
  assert.match(lines[7], /usr\/bin\/tool -> \/bin\/tool$/);
  assert.match(lines[0], /^drwx------/);
  assert.match(lines[2], /^-rwxr-xr-x .* 5001 /);
  assert.match(lines[9], /^crw------- .* 5,\s+1 /);
});

test('cpio: system cpio extracts identical contents', () => {
  const { archive, payload } = sample();
  const dir = mkdtempSync(join(tmpdir(), 'cpio-'));
  try {
    // No device nodes without privileges everywhere: extract everything but dev/.
    const r = spawnSync('cpio', ['-id', '--quiet', '--no-absolute-filenames', '-f', 'dev*'], { input: archive, cwd: dir });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual(readFileSync(join(dir, 'bin/tool')), payload);
    assert.equal(readFileSync(join(dir, 'etc/a'), 'utf8'), 'x');
    assert.equal(readFileSync(join(dir, 'empty')).length, 0);
    assert.equal(readlinkSync(join(dir, 'usr/bin/tool')), '/bin/tool');
    assert.equal(lstatSync(join(dir, 'bin/tool')).mode & 0o777, 0o755);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cpio: alignment and trailer follow newc', () => {
  const { archive } = sample();
  assert.equal(archive.length % 4, 0);
  assert.equal(archive.subarray(0, 6).toString(), '070701');
  assert.ok(archive.includes(Buffer.from('TRAILER!!!\0')));
});

test('cpio: duplicate and escaping paths are rejected', () => {
  const w = new CpioWriter();
  w.add({ type: 'file', path: 'a', data: Buffer.from('1') });
  assert.throws(() => w.add({ type: 'file', path: '/a', data: Buffer.from('2') }), /duplicate/);
  assert.throws(() => w.add({ type: 'dir', path: '../x' }), /bad path/);
  assert.throws(() => w.add({ type: 'dir', path: '/' }), /bad path/);
});
