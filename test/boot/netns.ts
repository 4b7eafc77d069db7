/**
 * Test helper: run a synchronous block with the main thread in another network namespace (setns through
 * koffi), then come back. TAP devices created and `ip` commands spawned inside land in that namespace; the
 * descriptors stay usable after the return. Only for tests that made the namespace themselves.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';

const CLONE_NEWNET = 0x40000000;

export function inNetns<T>(name: string, f: () => T): T {
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const setns = koffi.load('libc.so.6').func('int setns(int fd, int nstype)');
  const home = openSync('/proc/thread-self/ns/net', 'r');
  const there = openSync(`/run/netns/${name}`, 'r');
  try {
    if ((setns(there, CLONE_NEWNET) as number) !== 0) throw new Error(`setns into ${name} failed (errno ${koffi.errno()})`);
    try { return f(); } finally {
      if ((setns(home, CLONE_NEWNET) as number) !== 0) throw new Error(`setns back failed (errno ${koffi.errno()}): the test process is stuck in ${name}`);
    }
  } finally { closeSync(there); closeSync(home); }
}
