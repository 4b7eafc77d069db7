/**
 * Runs the management service in this process and one checkpoint operation, for the crash tests: the parent
 * sets HYPERTS_CRASH_AT so the process kills itself (SIGKILL) at that step.
 * Usage: node checkpoint-crash-child.js DATADIR checkpoint|apply|remove VM SNAPSHOT
 */
import { VmmsService } from '../../src/vmms/service.js';

const [dir, op, vm, snap] = process.argv.slice(2);
const service = new VmmsService({ dataDir: dir, isolation: 'off' });
await service.checkpointDisksSettled();
if (op === 'checkpoint') await service.checkpoint(vm, snap);
else if (op === 'apply') await service.restoreCheckpoint(vm, snap);
else if (op === 'start-checkpoint') { await service.start(vm); await service.checkpoint(vm, snap); }
else if (op === 'remove') await service.removeCheckpoint(vm, snap);
else throw new Error(`unknown op ${op}`);
await service.close();
