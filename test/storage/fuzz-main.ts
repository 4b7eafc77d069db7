/** npm run fuzz:vhdx [runs] [firstSeed] [seeds]: long mutation fuzzing over a fixed seed range. */
import { fuzzVhdx } from './vhdx-fuzz.js';

const runs = Number(process.argv[2] ?? 100_000);
const first = Number(process.argv[3] ?? 1);
const seeds = Number(process.argv[4] ?? 10);
let total = 0;
for (let s = first; s < first + seeds; s++) total += (await fuzzVhdx(Math.ceil(runs / seeds), s, true)).runs;
console.log(`fuzz:vhdx done: ${total} cases over seeds ${first}..${first + seeds - 1}, no failures`);
