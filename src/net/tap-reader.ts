/**
 * Worker thread that reads one TAP device (tap.ts): Node has no event-loop watcher for a character
 * device, so this thread waits in poll() (koffi) with a short timeout, drains the non-blocking descriptor
 * and posts the frames to the service's main thread. It ends when the stop flag is set or the device fails.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readSync } from 'node:fs';
import { nativeLibc } from '../host/native-libc.js';

const POLLIN = 1, POLLERR = 8, POLLHUP = 16, POLLNVAL = 32;
const { fd, stop } = workerData as { fd: number; stop: SharedArrayBuffer };
const flag = new Int32Array(stop);
const { koffi, lib } = nativeLibc();
const poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)');
const pfd = new Uint8Array(8);
const pv = new DataView(pfd.buffer);
pv.setInt32(0, fd, true);
pv.setInt16(4, POLLIN, true);
const buf = Buffer.alloc(65536);

function main(): void {
  while (Atomics.load(flag, 0) === 0) {
    pv.setInt16(6, 0, true);
    const n = poll(pfd, 1, 200) as number;
    if (n < 0) { if (koffi.errno() === 4) continue; return fail(`poll failed (errno ${koffi.errno()})`); }
    if (n === 0) continue;
    const rev = pv.getInt16(6, true);
    if (rev & (POLLERR | POLLHUP | POLLNVAL)) return fail('the TAP device failed or went away');
    const frames: Uint8Array[] = [];
    // Bounded drain: the main thread gets frames in batches, and the stop flag is seen soon.
    for (let i = 0; i < 256; i++) {
      let len: number;
      try { len = readSync(fd, buf, 0, buf.length, null); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') break;
        return fail(`reading the TAP device failed: ${(e as Error).message}`);
      }
      if (len === 0) return fail('the TAP device was closed');
      if (len >= 14) frames.push(Uint8Array.from(buf.subarray(0, len)));
    }
    if (frames.length) parentPort!.postMessage({ frames });
  }
}

function fail(error: string): void { parentPort!.postMessage({ error }); }

main();
