import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createVhdx, openDisk, DiskLockedError } from '../../src/storage/open.js';
import { holderRecordPath } from '../../src/storage/lock.js';
import { tempDir } from './helpers.js';

test('a lock-holder record left by a dead process (SIGKILLed worker) does not name it', async () => {
  const t = tempDir('lock');
  try {
    const p = join(t.dir, 'd.vhdx');
    await createVhdx({ path: p, sizeBytes: 4 << 20, type: 'dynamic', blockSizeBytes: 1 << 20 });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    assert.ok(deadPid > 0);
    const reader = await openDisk(p, { readOnly: true });
    try {
      const stale = { pid: deadPid, host: hostname(), purpose: 'VM ghost', since: new Date(0).toISOString() };
      writeFileSync(holderRecordPath(p), JSON.stringify(stale));
      await assert.rejects(openDisk(p, { purpose: 'VM beta' }), (e: unknown) => e instanceof DiskLockedError && !/ghost|pid/.test((e as Error).message) && /another process/.test((e as Error).message));
      // A live holder is still named.
      writeFileSync(holderRecordPath(p), JSON.stringify({ ...stale, pid: process.pid, purpose: 'VM alive' }));
      await assert.rejects(openDisk(p, { purpose: 'VM beta' }), (e: unknown) => e instanceof DiskLockedError && /VM alive \(pid \d+/.test((e as Error).message));
    } finally { await reader.close(); }
  } finally { t.cleanup(); }
});
