/** Child process of the SIGKILL crash test: runs the workload, printing each completed op's index synchronously. */
import { writeSync } from 'node:fs';
import { openDisk } from '../../src/storage/open.js';
import { genOps, runOp } from './crash-harness.js';

const [path, seed, count] = process.argv.slice(2);
const ops = genOps(Number(seed), Number(count));
const d = await openDisk(path!, { purpose: 'crash test' });
for (let i = 0; i < ops.length; i++) {
  await runOp(d, ops[i]!);
  writeSync(1, `${i}\n`);
}
await d.close();
