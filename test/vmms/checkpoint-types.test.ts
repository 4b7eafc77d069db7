/**
 * Set-VM -CheckpointType: Production by default; a guest that cannot freeze its file systems (the test kernel
 * runs no VSS daemon) gives a standard checkpoint and an event saying why under Production, a clear error
 * under ProductionOnly; Disabled refuses. Bad values are rejected with the accepted ones.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { CheckpointView, VmView } from '../../src/vmms/service.js';
import type { VmEvent } from '../../src/vmms/store.js';
import { rejects, startService, testVm, type Fixture } from './helpers.js';

let f: Fixture;
before(async () => { f = await startService(undefined, { isolation: 'off' }); });
after(async () => { await f?.close(); });

const get = (name: string): Promise<VmView> => f.client.call<VmView>('GET', `/vms/${name}`);
const patch = (name: string, body: unknown): Promise<VmView> => f.client.call<VmView>('PATCH', `/vms/${name}`, body);
const snaps = (name: string): Promise<CheckpointView[]> => f.client.call<CheckpointView[]>('GET', `/vms/${name}/snapshots`);
const checkpoint = (name: string, snap: string): Promise<CheckpointView> => f.client.call<CheckpointView>('POST', `/vms/${name}/snapshots`, { name: snap });

test('checkpoint types: default Production, fallback with an event, ProductionOnly error, Disabled, bad values', async () => {
  await f.client.call('POST', '/vms', testVm('ty'));
  assert.equal((await get('ty')).config.checkpointType, 'Production', 'Hyper-V\'s default');
  await rejects(patch('ty', { checkpointType: 'Sometimes' }), 400, /checkpointType must be Production, ProductionOnly, Standard, Disabled/);

  await patch('ty', { checkpointType: 'disabled' });
  assert.equal((await get('ty')).config.checkpointType, 'Disabled');
  await rejects(checkpoint('ty', 'no'), 409, /checkpoints are disabled for it \(set-vm ty --checkpoint-type Production or Standard/);
  assert.deepEqual(await snaps('ty'), []);

  await f.client.call('POST', '/vms/ty/start', {});
  // Changing the type is allowed while the VM runs.
  await patch('ty', { checkpointType: 'ProductionOnly' });
  await rejects(checkpoint('ty', 'po'), 409, /cannot take a production checkpoint of VM 'ty': the guest could not freeze its file systems: .*hv_vss_daemon/);
  assert.deepEqual(await snaps('ty'), [], 'nothing was created');
  assert.equal((await get('ty')).state, 'Running');

  await patch('ty', { checkpointType: 'Production' });
  const c = await checkpoint('ty', 'fallback');
  assert.equal(c.snapshotType, 'Standard', 'fell back to a standard checkpoint');
  assert.equal(c.runningState, true, 'with the running state');
  const events = await f.client.call<VmEvent[]>('GET', '/events?name=ty');
  assert.ok(events.some((e) => /checkpoint 'fallback': a production checkpoint was not possible, so a standard checkpoint was taken: the guest could not freeze/.test(e.message)),
    events.map((e) => e.message).join('\n'));

  await patch('ty', { checkpointType: 'Standard' });
  const s = await checkpoint('ty', 'std');
  assert.equal(s.snapshotType, 'Standard');
  assert.equal(s.runningState, true);
  assert.equal((await get('ty')).state, 'Running');
  await f.client.call('POST', '/vms/ty/stop', { turnOff: true });
});
