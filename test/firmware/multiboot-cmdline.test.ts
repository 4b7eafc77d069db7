import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../../src/platform/memory.js';
import { loadMultiboot } from '../../src/firmware/multiboot.js';

/** Smallest a.out-kludge multiboot image: header at 0, loaded whole at 1 MiB, entry right after it. */
function aoutKernel(): Buffer {
  const k = Buffer.alloc(8192);
  k.writeUInt32LE(0x1badb002, 0); k.writeUInt32LE(0x10000, 4); k.writeUInt32LE((-(0x1badb002 + 0x10000)) >>> 0, 8);
  k.writeUInt32LE(0x100000, 12); k.writeUInt32LE(0x100000, 16); k.writeUInt32LE(0, 20); k.writeUInt32LE(0, 24); k.writeUInt32LE(0x100020, 28);
  return k;
}

function cmdlineOf(mem: GuestMemory, info: number): string {
  let p = mem.view.getUint32(info + 16, true);
  let s = '';
  while (mem.bytes[p] !== 0) s += String.fromCharCode(mem.bytes[p++]);
  return s;
}

test('multiboot: the kernel name comes first on the command line, as GRUB and QEMU pass it (argv[0])', () => {
  const mem = new GuestMemory(64 * 1024 * 1024);
  const r = loadMultiboot(mem, { kernel: aoutKernel(), kernelName: '/tmp/x86/vmexit.flat', cmdline: 'cpuid' });
  assert.equal(cmdlineOf(mem, r.infoAddr), '/tmp/x86/vmexit.flat cpuid');
  const r2 = loadMultiboot(mem, { kernel: aoutKernel(), kernelName: 'k.flat' });
  assert.equal(cmdlineOf(mem, r2.infoAddr), 'k.flat', 'no trailing space without arguments');
  const r3 = loadMultiboot(mem, { kernel: aoutKernel(), cmdline: 'a b' });
  assert.equal(cmdlineOf(mem, r3.infoAddr), 'a b', 'without a name the line is passed as is');
});
