/**
 * Client-given paths confined to the host's roots (src/vmms/confined-path.ts): `..`, absolute and symlinked
 * escapes, /proc/self tricks, FIFOs and devices, and a symlink swapped in while the path is being opened
 * (a second process flips it thousands of times; no open may ever reach the outside file).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openConfined, resolveConfinedPath } from '../../src/vmms/confined-path.js';
import { VmmsError } from '../../src/vmms/errors.js';

const base = mkdtempSync(join(tmpdir(), 'hyperts-confine-'));
after(() => rmSync(base, { recursive: true, force: true }));
const root = join(base, 'root');
const disks = join(base, 'disks');
const outside = join(base, 'outside');
for (const d of [root, disks, outside, join(root, 'sub')]) mkdirSync(d, { recursive: true });
writeFileSync(join(root, 'good.vhdx'), 'INSIDE');
writeFileSync(join(disks, 'second.vhdx'), 'INSIDE2');
writeFileSync(join(outside, 'secret'), 'OUTSIDE');
const roots = [root, disks];

const refused = (fn: () => unknown, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof VmmsError && e.status === 400 && re.test(e.message), String(re));
};

test('inside the roots: absolute, relative to the first root, through an inner symlink', () => {
  assert.equal(resolveConfinedPath(join(root, 'good.vhdx'), roots), join(root, 'good.vhdx'));
  assert.equal(resolveConfinedPath('good.vhdx', roots), join(root, 'good.vhdx'));
  assert.equal(resolveConfinedPath(join(disks, 'second.vhdx'), roots), join(disks, 'second.vhdx'));
  assert.equal(resolveConfinedPath(join(root, 'sub', '..', 'good.vhdx'), roots), join(root, 'good.vhdx'));
  symlinkSync(join(root, 'good.vhdx'), join(root, 'alias.vhdx'));
  assert.equal(resolveConfinedPath(join(root, 'alias.vhdx'), roots), join(root, 'good.vhdx'), 'resolved to the real file');
  const r = openConfined(join(root, 'good.vhdx'), roots);
  const b = Buffer.alloc(6); readSync(r.fd!, b, 0, 6, 0); closeSync(r.fd!);
  assert.equal(b.toString(), 'INSIDE');
});

test('escapes are refused with the allowed folders named: .., absolute, symlinks out, /proc/self', () => {
  refused(() => resolveConfinedPath('../outside/secret', roots), /outside the folders this host allows; allowed folders: .*root/);
  refused(() => resolveConfinedPath(join(root, '..', 'outside', 'secret'), roots), /outside/);
  refused(() => resolveConfinedPath('/etc/passwd', roots), /outside/);
  symlinkSync(join(outside, 'secret'), join(root, 'link-out.vhdx'));
  refused(() => resolveConfinedPath(join(root, 'link-out.vhdx'), roots), /outside/);
  symlinkSync(outside, join(root, 'dir-out'));
  refused(() => resolveConfinedPath(join(root, 'dir-out', 'secret'), roots), /outside/);
  refused(() => resolveConfinedPath('/proc/self/root/etc/passwd', roots), /outside/);
  const fd = openSync(join(outside, 'secret'), 'r');
  try { refused(() => resolveConfinedPath(`/proc/self/fd/${fd}`, roots), /outside/); } finally { closeSync(fd); }
  refused(() => resolveConfinedPath('/proc/self/environ', roots), /outside/);
  refused(() => resolveConfinedPath(join(root, 'missing.vhdx'), roots), /does not exist/);
  refused(() => resolveConfinedPath('', roots), /non-empty/);
  refused(() => resolveConfinedPath('a\0b', roots), /non-empty/);
  refused(() => resolveConfinedPath(join(root, 'good.vhdx'), [join(base, 'nowhere')]), /no folder is configured/);
});

test('only regular files: a FIFO is refused at once (no hang), a folder, a device link too', () => {
  const fifo = join(root, 'pipe.vhdx');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  refused(() => resolveConfinedPath(fifo, roots), /not a regular file/);
  refused(() => resolveConfinedPath(join(root, 'sub'), roots), /not a regular file/);
  assert.equal(resolveConfinedPath(join(root, 'sub'), roots, { kind: 'directory' }), join(root, 'sub'));
  refused(() => resolveConfinedPath(join(root, 'good.vhdx'), roots, { kind: 'directory' }), /not a folder/);
  // A root that contains a device through a symlink: /dev/null is outside every root anyway.
  symlinkSync('/dev/null', join(root, 'null.vhdx'));
  refused(() => resolveConfinedPath(join(root, 'null.vhdx'), roots), /outside/);
});

test('a new file may be named in an existing folder under a root, not elsewhere', () => {
  assert.deepEqual(openConfined(join(root, 'new.vhdx'), roots, { mayCreate: true }), { path: join(root, 'new.vhdx'), fd: null });
  refused(() => openConfined(join(outside, 'new.vhdx'), roots, { mayCreate: true }), /outside/);
  refused(() => openConfined(join(root, 'nodir', 'new.vhdx'), roots, { mayCreate: true }), /folder that does not exist/);
  refused(() => openConfined(join(root, 'dir-out', 'new.vhdx'), roots, { mayCreate: true }), /outside/);
});

test('a symlink swapped in after the check never lets an open reach the outside file', async () => {
  // A second process flips root/race.vhdx between a regular file and a symlink out, as fast as it can.
  const target = join(root, 'race.vhdx');
  writeFileSync(target, 'INSIDE');
  const flipper = spawn(process.execPath, ['-e', `
    const fs = require('fs');
    const t = ${JSON.stringify(target)}, out = ${JSON.stringify(join(outside, 'secret'))};
    for (let i = 0; ; i++) {
      const tmp = t + '.new' + (i & 1);
      try { fs.rmSync(tmp, { force: true }); if (i & 1) fs.symlinkSync(out, tmp); else fs.writeFileSync(tmp, 'INSIDE'); fs.renameSync(tmp, t); } catch {}
    }`], { stdio: 'ignore' });
  try {
    let opened = 0; let refusedCount = 0;
    for (let i = 0; i < 20_000; i++) {
      let r;
      try { r = openConfined(target, roots); } catch (e) { assert.ok(e instanceof VmmsError, String(e)); refusedCount++; continue; }
      const b = Buffer.alloc(16);
      const n = readSync(r.fd!, b, 0, 16, 0);
      closeSync(r.fd!);
      assert.equal(b.subarray(0, n).toString(), 'INSIDE', `attempt ${i} opened ${r.path}`);
      opened++;
      if (i % 500 === 0) await new Promise((res) => setImmediate(res));
    }
    assert.ok(opened > 0 && refusedCount > 0, `both outcomes occurred (opened ${opened}, refused ${refusedCount}): the race was real`);
  } finally { flipper.kill('SIGKILL'); }
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'OUTSIDE');
});
