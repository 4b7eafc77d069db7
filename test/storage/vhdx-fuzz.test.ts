import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzVhdx } from './vhdx-fuzz.js';

test('mutated VHDX files open with a clear error or read cleanly, never write, throw or hang (2000 cases)', async () => {
  const r = await fuzzVhdx(2000, 0x5eed);
  assert.equal(r.runs, 2000);
  assert.ok(r.opened > 0 && r.rejected > 0, `both outcomes occur (${r.opened} opened, ${r.rejected} rejected)`);
});
