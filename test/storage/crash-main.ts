/** npm run crash:vhdx [cases]: >= 200 SIGKILL points and >= 200 simulated power losses, with counts. */
import { fileURLToPath } from 'node:url';
import { powerLossCase, sigkillCase } from './crash-harness.js';

const n = Number(process.argv[2] ?? 200);
const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));
const problems: string[] = [];
let power = 0, kills = 0;
for (let s = 1000; s < 1000 + n; s++) {
  problems.push(...await powerLossCase(s, s % 2 ? 'dynamic' : 'differencing', s % 4 < 2));
  power++;
}
console.log(`power losses: ${power} cases, ${problems.length} problems`);
for (let s = 1000; s < 1000 + n; s++) {
  problems.push(...await sigkillCase(s, s % 2 ? 'dynamic' : 'differencing', child));
  kills++;
}
console.log(`SIGKILL points: ${kills} cases; total problems: ${problems.length}`);
for (const p of problems.slice(0, 20)) console.log(p);
process.exit(problems.length ? 1 : 0);
