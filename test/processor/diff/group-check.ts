/** Shared body of the per-group differential tests. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReport, runGroup } from './harness.js';
import { GROUPS } from './groups.js';

export function groupTest(group: string): void {
  test(`difftest ${group}: ${GROUPS[group].describe} (${GROUPS[group].defaultCases} cases, host vs emulator)`, async () => {
    const r = await runGroup(group, { seed: 1 });
    const ran = r.total - r.notRun;
    assert.ok(ran > 0, `no case of group ${group} could run natively: ${r.notRunReason}`);
    if (r.passed !== ran) assert.fail(`\n${formatReport(r, 8)}`);
  });
}
