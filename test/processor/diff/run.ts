/**
 * Debugging CLI: node dist/test/processor/diff/run.js <group|all> [--cases N] [--seed S] [--show K]
 * Runs a group natively and on the emulator with many cases and prints the divergences.
 */
import { formatReport, runGroup } from './harness.js';
import { GROUPS } from './groups.js';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const opt = (name: string): number | undefined => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = Number(args[i + 1]);
    if (!Number.isFinite(v)) throw new Error(`${name} needs a number`);
    args.splice(i, 2);
    return v;
  };
  const cases = opt('--cases'), seed = opt('--seed'), show = opt('--show') ?? 12;
  const group = args[0];
  if (!group || !(group in GROUPS || group === 'all')) {
    console.error(`usage: run.js <group|all> [--cases N] [--seed S] [--show K]\ngroups:\n${Object.entries(GROUPS).map(([k, g]) => `  ${k.padEnd(10)} ${g.describe}`).join('\n')}`);
    return 2;
  }
  let failed = false;
  for (const g of group === 'all' ? Object.keys(GROUPS) : [group]) {
    const r = await runGroup(g, { cases, seed });
    console.log(formatReport(r, show));
    if (r.passed !== r.total - r.notRun) failed = true;
  }
  return failed ? 1 : 0;
}
main().then((c) => process.exit(c), (e) => { console.error(e instanceof Error ? e.message : e); process.exit(2); });
