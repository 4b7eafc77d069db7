/** A few random crash runs (npm run crash:checkpoints runs many): see checkpoint-crash-random.ts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crashRuns } from './checkpoint-crash-random.js';

test('the service or the worker killed at random moments of checkpoint, apply and merge: before or after, no data lost', async () => {
  const lines: string[] = [];
  const results = await crashRuns(8, 20261203, (l) => lines.push(l));
  const bad = results.filter((r) => r.problems.length);
  assert.deepEqual(bad.map((r) => `${r.op} (${r.victim} killed after ${r.delayMs} ms): ${r.problems.join('; ')}`), [], lines.join('\n'));
});
