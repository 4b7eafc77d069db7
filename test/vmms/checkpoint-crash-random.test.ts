/** A few random crash runs (npm run crash:checkpoints runs many): see checkpoint-crash-random.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crashRuns } from './checkpoint-crash-random.js';
import { isolationSupport } from '../../src/vmms/sandbox.js';

test('the service or the worker killed at random moments of checkpoint, apply and merge: before or after, no data lost', async () => {
  const lines: string[] = [];
  const results = await crashRuns(8, 20261203, (l) => lines.push(l));
  const bad = results.filter((r) => r.problems.length);
  assert.deepEqual(bad.map((r) => `${r.op} (${r.victim} killed after ${r.delayMs} ms): ${r.problems.join('; ')}`), [], lines.join('\n'));
});

const support = isolationSupport();
test('the same with the worker isolated (its new files and the merge\'s parent handed over as descriptors)', { skip: !support.available && `bubblewrap cannot sandbox here: ${support.notes.join('; ')}` }, async () => {
  const lines: string[] = [];
  process.env.HYPERTS_CRASH_ISOLATION = 'required';
  try {
    const results = await crashRuns(6, 20261204, (l) => lines.push(l));
    const bad = results.filter((r) => r.problems.length);
    assert.deepEqual(bad.map((r) => `${r.op} (${r.victim} killed after ${r.delayMs} ms): ${r.problems.join('; ')}`), [], lines.join('\n'));
  } finally { delete process.env.HYPERTS_CRASH_ISOLATION; }
});
