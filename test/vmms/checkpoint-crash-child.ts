/**
 * Runs the management service in this process and one checkpoint operation, for the crash tests: the parent
 * sets HYPERTS_CRASH_AT so the process kills itself (SIGKILL) at that step, or kills this process or its VM's
 * worker at a random moment after the line "op-start". HYPERTS_TEST_WORKER: the worker module to run VMs
 * with (the fast test worker); the line "worker PID" names its process once the VM runs.
 * Usage: node checkpoint-crash-child.js DATADIR checkpoint|apply|remove|start-checkpoint|start-remove VM SNAPSHOT [ACKFILE]
 */
import { VmmsService } from '../../src/vmms/service.js';
import { ackedRecord } from './disk-writer-records.js';
import { testBootRoots } from './helpers.js';
import { crashIsolation } from './checkpoint-crash-random.js';

const [dir, op, vm, snap, ackFile] = process.argv.slice(2);
const service = new VmmsService({ dataDir: dir, bootRoots: testBootRoots(), isolation: crashIsolation(), workerPath: process.env.HYPERTS_TEST_WORKER || undefined, turnOffGraceMs: 5000 });
await service.checkpointDisksSettled();
const say = (line: string): Promise<void> => new Promise((r) => process.stdout.write(`${line}\n`, () => r()));

async function startVm(): Promise<void> {
  await service.start(vm);
  await say(`worker ${service.workerPid(vm)}`);
  // The writer is under way before the operation starts.
  if (ackFile) {
    const from = ackedRecord(ackFile);
    while (ackedRecord(ackFile) < from + 20) await new Promise((r) => setTimeout(r, 10));
  }
}

if (op === 'start-checkpoint' || op === 'start-remove') await startVm();
await say('op-start');
if (op === 'checkpoint' || op === 'start-checkpoint') await service.checkpoint(vm, snap);
else if (op === 'apply') await service.restoreCheckpoint(vm, snap);
else if (op === 'remove' || op === 'start-remove') await service.removeCheckpoint(vm, snap);
else throw new Error(`unknown op ${op}`);
await say('op-done');
await service.close();
