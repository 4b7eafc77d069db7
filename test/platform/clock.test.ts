import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../src/platform/clock.js';

test('realtime clock follows the host, stops while paused, fires timers in order', () => {
  let host = 1000;
  const c = new VirtualClock('realtime', () => host);
  assert.equal(c.now(), 0);
  host += 500;
  assert.equal(c.now(), 500);
  const fired: number[] = [];
  c.at(800, () => fired.push(800));
  c.at(600, () => fired.push(600));
  host += 200;
  assert.equal(c.poll(), 1);
  assert.deepEqual(fired, [600]);
  c.pause();
  host += 10_000;
  assert.equal(c.now(), 700);
  c.resume();
  assert.equal(c.now(), 700);
  assert.equal(c.idle(), 100, 'realtime idle waits for the deadline');
  host += 100;
  c.poll();
  assert.deepEqual(fired, [600, 800]);
});

test('warp clock jumps over idle time to the next deadline', () => {
  let host = 0;
  const c = new VirtualClock('warp', () => host);
  let hit = false;
  c.at(1e9, () => { hit = true; });
  assert.equal(c.idle(), 0);
  assert.equal(c.now(), 1e9);
  c.poll();
  assert.ok(hit);
});

test('icount clock counts retired instructions, ignores host time, and warps when idle', () => {
  let host = 0;
  let insns = 0;
  const c = new VirtualClock('icount', () => host);
  c.useInstructionCount(() => insns);
  host += 1e9;
  assert.equal(c.now(), 0, 'host time does not move an icount clock');
  insns = 5000;
  assert.equal(c.now(), 5000);
  let at = -1;
  c.at(20_000, (t) => { at = t; });
  assert.equal(c.idle(), 0);
  assert.equal(c.now(), 20_000);
  c.poll();
  assert.equal(at, 20_000);
  insns = 6000;
  assert.equal(c.now(), 21_000, 'time keeps counting from the warped point');
  assert.throws(() => new VirtualClock('warp').useInstructionCount(() => 0), /icount/);
});

test('no idle warp while host I/O the guest waits for is held; warping resumes after the last release', () => {
  let insns = 0;
  const c = new VirtualClock('icount', () => 0);
  c.useInstructionCount(() => insns);
  c.at(180e9, () => {}); // e.g. a guest SCSI command timeout
  const a = c.holdWarp(), b = c.holdWarp();
  assert.equal(c.idle(), 180e9, 'the partition waits on the host instead');
  assert.equal(c.now(), 0);
  a(); a(); // a release counts once
  assert.equal(c.idle(), 180e9);
  b();
  assert.equal(c.idle(), 0);
  assert.equal(c.now(), 180e9);
});

test('icount clock starts at 0 whatever host time passes before instructions drive it (boots repeat exactly)', () => {
  let host = 123_456_789;
  const c = new VirtualClock('icount', () => host);
  host += 5e9; // the host took long to assemble the partition
  assert.equal(c.now(), 0);
  c.pause(); host += 1e9; c.resume();
  assert.equal(c.now(), 0, 'pausing before the processor starts does not move it either');
  let insns = 0;
  c.useInstructionCount(() => insns);
  insns = 42;
  assert.equal(c.now(), 42);
});
