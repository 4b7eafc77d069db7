import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { powerLossCase, sigkillCase } from './crash-harness.js';

const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));

test('simulated power loss (20 cases: dynamic and differencing, unflushed writes lost or partly kept)', async () => {
  const problems: string[] = [];
  for (let s = 1; s <= 20; s++) problems.push(...await powerLossCase(s, s % 2 ? 'dynamic' : 'differencing', s % 4 < 2));
  assert.deepEqual(problems, []);
});

test('SIGKILL at random points (20 cases: dynamic and differencing)', async () => {
  const problems: string[] = [];
  for (let s = 1; s <= 20; s++) problems.push(...await sigkillCase(s, s % 2 ? 'dynamic' : 'differencing', child));
  assert.deepEqual(problems, []);
});
