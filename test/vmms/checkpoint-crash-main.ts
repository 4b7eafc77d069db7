/**
 * npm run crash:checkpoints [COUNT] [SEED]: random kills of the service or the worker during checkpoint disk
 * work (checkpoint-crash-random.ts); exits 1 when any run found a problem.
 */
import { crashRuns } from './checkpoint-crash-random.js';

const count = Number(process.argv[2] ?? 50);
const seed = Number(process.argv[3] ?? Date.now() % 1e9);
if (!Number.isInteger(count) || count < 1) { console.error('usage: crash:checkpoints [COUNT] [SEED]'); process.exit(2); }
console.log(`${count} runs, seed ${seed}`);
const results = await crashRuns(count, seed, (l) => console.log(l));
const bad = results.filter((r) => r.problems.length);
const killed = results.filter((r) => r.killed);
const by = (o: string): number => killed.filter((r) => r.outcome === o).length;
console.log(`${results.length} runs: ${killed.length} killed mid-operation (${by('before')} came back as before, ${by('after')} as after), ` +
  `${results.length - killed.length} finished before the kill; ${results.filter((r) => r.removed.length).length} runs had leftovers removed at start; ${bad.length} with problems`);
process.exit(bad.length ? 1 : 0);
