import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { createVhdx, openDisk, VhdxDisk, RawDisk, DiskLockedError } from '../../src/storage/open.js';
import { convertVhd, describeVhd, checkVhd, mergeVhd, optimizeVhd, resizeVhd } from '../../src/storage/vhdx/ops.js';
import type { Disk } from '../../src/storage/disk.js';
import { haveLibvhdi, pattern, PY, qemuSkip, rng, run, tempDir } from './helpers.js';

const MiB = 1 << 20;

/** Random writes/unmaps applied to a disk and to a raw reference file. */
async function randomWorkload(disk: Disk, ref: string, seed: number, ops: number): Promise<void> {
  const r = rng(seed);
  const fd = openSync(ref, 'r+');
  try {
    for (let k = 0; k < ops; k++) {
      const ss = disk.logicalSectorSize;
      const sectors = disk.sizeBytes / ss;
      const len = Math.min(sectors, 1 + Math.floor(r() * (r() < 0.2 ? 4096 * 512 / ss : 64))) * ss;
      const off = Math.floor(r() * (sectors - len / ss + 1)) * ss;
      if (r() < 0.15) {
        await disk.unmap(off, len);
        writeAt(fd, new Uint8Array(len), off);
      } else {
        const d = pattern(seed * 1000 + k, off, len);
        await disk.write(off, d);
        writeAt(fd, d, off);
      }
      if (r() < 0.1) await disk.flush();
    }
  } finally {
    closeSync(fd);
  }
}
function writeAt(fd: number, d: Uint8Array, off: number): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require_fs();
  fs.writeSync(fd, d, 0, d.length, off);
}
import * as fsMod from 'node:fs';
function require_fs(): typeof fsMod { return fsMod; }

async function readAll(disk: Disk): Promise<Uint8Array> {
  const b = new Uint8Array(disk.sizeBytes);
  await disk.read(0, b);
  return b;
}

for (const type of ['dynamic', 'fixed'] as const) {
  for (const bs of [1, 32]) {
    test(`hyperts ${type} VHDX (${bs} MiB blocks) passes qemu-img check and compares identical to a raw reference`, { skip: qemuSkip }, async () => {
      const t = tempDir('vhdx-interop');
      try {
        const p = join(t.dir, 'd.vhdx'), ref = join(t.dir, 'ref.raw');
        await createVhdx({ path: p, sizeBytes: 40 * MiB + 512 * 3, type, blockSizeBytes: bs * MiB });
        writeFileSync(ref, new Uint8Array(40 * MiB + 512 * 3));
        const d = await openDisk(p);
        await randomWorkload(d, ref, bs + (type === "fixed" ? 100 : 0), 150);
        await d.close();
        const c = run('qemu-img', ['check', '-f', 'vhdx', p]);
        assert.equal(c.status, 0, c.out);
        const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', ref, p]);
        assert.equal(cmp.status, 0, cmp.out);
        assert.deepEqual(await checkVhd(p), []);
        // Read back through our own reader after reopen.
        const r2 = await openDisk(p, { readOnly: true });
        assert.ok(Buffer.from(await readAll(r2)).equals(readFileSync(ref)));
        await r2.close();
      } finally { t.cleanup(); }
    });
  }
}

// QEMU 7.2 opens only 512-byte-sector VHDX (ENOTSUP otherwise): libvhdi is the outside reader here.
test('4096-byte logical sectors: libvhdi reads what hyperts writes', { skip: haveLibvhdi ? false : 'python3-libvhdi missing (see .ci/packages.txt)' }, async () => {
  const t = tempDir('vhdx-4k');
  try {
    const p = join(t.dir, 'd.vhdx'), ref = join(t.dir, 'ref.raw');
    await createVhdx({ path: p, sizeBytes: 24 * MiB, type: 'dynamic', blockSizeBytes: MiB, logicalSectorSize: 4096, physicalSectorSize: 4096 });
    writeFileSync(ref, new Uint8Array(24 * MiB));
    const d = await openDisk(p);
    assert.equal(d.logicalSectorSize, 4096);
    await randomWorkload(d, ref, 44, 100);
    await d.close();
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(PY, ['-c', 'import pyvhdi,sys\nf=pyvhdi.file(); f.open(sys.argv[1])\nsys.stdout.buffer.write(f.read_buffer_at_offset(f.get_media_size(), 0))', p], { maxBuffer: 64 * MiB });
    assert.equal(r.status, 0, String(r.stderr));
    assert.ok(Buffer.from(r.stdout).equals(readFileSync(ref)), 'libvhdi reads the same bytes');
    assert.deepEqual(await checkVhd(p), []);
    const info = await describeVhd(p);
    assert.equal(info.LogicalSectorSize, 4096);
    assert.equal(info.PhysicalSectorSize, 4096);
  } finally { t.cleanup(); }
});

for (const sub of ['dynamic', 'fixed']) {
  for (const bsz of ['on', 'off']) {
    for (const bs of ['1M', '32M']) {
      test(`hyperts reads and writes what qemu-img writes (${sub}, block_state_zero=${bsz}, ${bs} blocks)`, { skip: qemuSkip }, async () => {
        const t = tempDir('vhdx-qemu');
        try {
          const p = join(t.dir, 'q.vhdx'), raw = join(t.dir, 'q.raw');
          let r = run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', `subformat=${sub},block_state_zero=${bsz},block_size=${bs}`, p, '48M']);
          assert.equal(r.status, 0, r.out);
          r = run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xab 0 4k', '-c', 'write -P 0xcd 9M 1M', '-c', 'write -P 0x5a 47M 512', '-c', 'write -z 9M 4k', p]);
          assert.equal(r.status, 0, r.out);
          r = run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', p, raw]);
          assert.equal(r.status, 0, r.out);
          const d = await openDisk(p);
          const got = await readAll(d);
          assert.ok(Buffer.from(got).equals(readFileSync(raw)), 'same bytes as qemu-img convert');
          // Write over qemu's layout, then qemu must still find the file clean and the data there.
          await d.write(20 * MiB, pattern(7, 20 * MiB, 64 * 1024));
          await d.write(4096, pattern(8, 4096, 4096));
          await d.close();
          r = run('qemu-img', ['check', '-f', 'vhdx', p]);
          assert.equal(r.status, 0, r.out);
          const raw2 = join(t.dir, 'q2.raw');
          run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', p, raw2]);
          const after = readFileSync(raw2);
          assert.ok(after.subarray(20 * MiB, 20 * MiB + 65536).equals(pattern(7, 20 * MiB, 65536)));
          assert.ok(after.subarray(4096, 8192).equals(pattern(8, 4096, 4096)));
          assert.equal(after[0], 0xab);
        } finally { t.cleanup(); }
      });
    }
  }
}

test('differencing chains (3 deep) read back correctly through libvhdi', { skip: qemuSkip || (haveLibvhdi ? false : 'python3-libvhdi missing (see .ci/packages.txt)') }, async () => {
  const t = tempDir('vhdx-diff');
  try {
    const base = join(t.dir, 'base.vhdx'), ref = join(t.dir, 'ref.raw');
    await createVhdx({ path: base, sizeBytes: 24 * MiB, type: 'dynamic', blockSizeBytes: MiB });
    writeFileSync(ref, new Uint8Array(24 * MiB));
    let d: Disk = await openDisk(base);
    await randomWorkload(d, ref, 1, 80);
    await d.close();
    const chain = [base];
    for (let k = 1; k <= 3; k++) {
      const p = join(t.dir, `c${k}.vhdx`);
      await createVhdx({ path: p, type: 'differencing', parentPath: chain[chain.length - 1]!, blockSizeBytes: MiB });
      chain.push(p);
      d = await openDisk(p);
      await randomWorkload(d, ref, 10 + k, 80);
      await d.close();
    }
    const leaf = await openDisk(chain[3]!, { readOnly: true });
    assert.ok(Buffer.from(await readAll(leaf)).equals(readFileSync(ref)), 'hyperts reads the chain');
    await leaf.close();
    const py = `
import pyvhdi, sys
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file(); f.open(p); files.append(f)
for k in range(1, len(files)): files[k].set_parent(files[k-1])
top = files[-1]
sys.stdout.buffer.write(top.read_buffer_at_offset(top.get_media_size(), 0))
`;
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(PY, ['-c', py, ...chain], { maxBuffer: 64 * MiB });
    assert.equal(r.status, 0, String(r.stderr));
    assert.ok(Buffer.from(r.stdout).equals(readFileSync(ref)), 'libvhdi reads the same bytes through the chain');
    const info = await describeVhd(chain[3]!);
    assert.equal(info.VhdType, 'Differencing');
    assert.equal(info.ParentPath, chain[2]);
    // No merge while a VM uses the leaf, or while another differencing disk on the destination is open.
    const vm = await openDisk(chain[3]!, { purpose: 'VM leaf' });
    await assert.rejects(mergeVhd(chain[3]!, { destinationPath: chain[1] }), /VM leaf/);
    await vm.close();
    const other = join(t.dir, 'other.vhdx');
    await createVhdx({ path: other, type: 'differencing', parentPath: chain[1]! });
    const vm2 = await openDisk(other, { purpose: 'VM other' });
    await assert.rejects(mergeVhd(chain[3]!, { destinationPath: chain[1] }), DiskLockedError);
    await vm2.close();
    // Merge the leaf into its grandparent: the result equals the reference.
    const m = await mergeVhd(chain[3]!, { destinationPath: chain[1] });
    assert.deepEqual(m.merged, [chain[3], chain[2]]);
    const merged = await openDisk(chain[1]!, { readOnly: true });
    assert.ok(Buffer.from(await readAll(merged)).equals(readFileSync(ref)), 'merged disk has the chain content');
    await merged.close();
  } finally { t.cleanup(); }
});

test('convert vhdx -> raw -> fixed vhdx -> dynamic vhdx is lossless; optimize gives zero blocks back', { skip: qemuSkip }, async () => {
  const t = tempDir('vhdx-convert');
  try {
    const p = join(t.dir, 'a.vhdx'), ref = join(t.dir, 'ref.raw');
    await createVhdx({ path: p, sizeBytes: 16 * MiB, type: 'dynamic', blockSizeBytes: MiB });
    writeFileSync(ref, new Uint8Array(16 * MiB));
    const d = await openDisk(p);
    await randomWorkload(d, ref, 5, 60);
    await d.write(3 * MiB, new Uint8Array(MiB)); // an allocated all-zero block
    fsMod.writeSync(fsMod.openSync(ref, 'r+'), new Uint8Array(MiB), 0, MiB, 3 * MiB);
    await d.close();
    await convertVhd(p, join(t.dir, 'b.raw'));
    assert.ok(readFileSync(join(t.dir, 'b.raw')).equals(readFileSync(ref)));
    await convertVhd(join(t.dir, 'b.raw'), join(t.dir, 'c.vhdx'), { type: 'fixed' });
    await convertVhd(join(t.dir, 'c.vhdx'), join(t.dir, 'd.vhdx'), { type: 'dynamic', blockSizeBytes: MiB });
    for (const f of ['c.vhdx', 'd.vhdx']) {
      const r = run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', ref, join(t.dir, f)]);
      assert.equal(r.status, 0, `${f}: ${r.out}`);
    }
    assert.equal((await describeVhd(join(t.dir, 'c.vhdx'))).VhdType, 'Fixed');
    const o = await optimizeVhd(p);
    assert.ok(o.blocksFreed >= 1, 'the zero block was freed');
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', ref, p]).status, 0);
    assert.equal(run('qemu-img', ['check', '-f', 'vhdx', p]).status, 0);
  } finally { t.cleanup(); }
});

test('resize grows and shrinks to the minimum size; unmap reads zeros; describe reports Get-VHD fields', { skip: qemuSkip }, async () => {
  const t = tempDir('vhdx-resize');
  try {
    const p = join(t.dir, 'r.vhdx');
    await createVhdx({ path: p, sizeBytes: 8 * MiB, type: 'dynamic', blockSizeBytes: MiB });
    const d = await openDisk(p);
    await d.write(MiB, pattern(1, MiB, 8192));
    await d.write(5 * MiB, pattern(2, 5 * MiB, 4096));
    await d.unmap(5 * MiB, MiB);
    const z = new Uint8Array(4096); await d.read(5 * MiB, z);
    assert.ok(z.every((x) => x === 0));
    await d.close();
    let info = await describeVhd(p);
    assert.equal(info.MinimumSize, 2 * MiB);
    await resizeVhd(p, 20 * MiB);
    assert.equal((await describeVhd(p)).Size, 20 * MiB);
    await assert.rejects(resizeVhd(p, MiB), /minimum size/);
    await resizeVhd(p, 2 * MiB);
    info = await describeVhd(p);
    assert.equal(info.Size, 2 * MiB);
    assert.equal(info.VhdFormat, 'VHDX');
    assert.equal(info.BlockSize, MiB);
    assert.match(info.DiskIdentifier, /^[0-9A-F-]{36}$/);
    assert.equal(run('qemu-img', ['check', '-f', 'vhdx', p]).status, 0);
    const d2 = await openDisk(p, { readOnly: true });
    const b = new Uint8Array(8192); await d2.read(MiB, b);
    assert.ok(Buffer.from(b).equals(pattern(1, MiB, 8192)));
    await d2.close();
  } finally { t.cleanup(); }
});

test('a writable disk is locked: a second open fails naming the holder; closing releases it', async () => {
  const t = tempDir('vhdx-lock');
  try {
    const p = join(t.dir, 'l.vhdx');
    await createVhdx({ path: p, sizeBytes: 4 * MiB, type: 'dynamic', blockSizeBytes: MiB });
    const a = await openDisk(p, { purpose: 'VM alpha' });
    await assert.rejects(openDisk(p, { purpose: 'VM beta' }), (e: unknown) => e instanceof DiskLockedError && /VM alpha/.test((e as Error).message));
    await assert.rejects(openDisk(p, { readOnly: true }), DiskLockedError);
    await a.close();
    const b = await openDisk(p);
    await b.close();
    const raw = join(t.dir, 'x.raw');
    writeFileSync(raw, new Uint8Array(MiB));
    const r1 = await RawDisk.open(raw, { purpose: 'VM gamma' });
    await assert.rejects(RawDisk.open(raw), /VM gamma/);
    await r1.write(0, pattern(3, 0, 4096)); await r1.unmap(0, 4096);
    const rb = new Uint8Array(4096); await r1.read(0, rb);
    assert.ok(rb.every((x) => x === 0));
    const id = r1.diskId; await r1.close();
    const r2 = await RawDisk.open(raw); assert.deepEqual(r2.diskId, id); await r2.close();
    // A lock held by a killed process does not block (the kernel drops OFD locks).
    const { spawnSync } = await import('node:child_process');
    const code = `import('${join(process.cwd(), 'dist/src/storage/open.js')}').then(async (m) => { await m.openDisk('${p}', { purpose: 'doomed' }); process.kill(process.pid, 'SIGKILL'); });`;
    spawnSync(process.execPath, ['-e', code]);
    const c = await openDisk(p); await c.close();
    assert.ok(c instanceof VhdxDisk);
  } finally { t.cleanup(); }
});
void ftruncateSync;

test('a dirty log left by a killed qemu-io is replayed the way qemu-img replays it', { skip: qemuSkip }, async () => {
  const t = tempDir('vhdx-qemu-dirty');
  try {
    const { spawn } = await import('node:child_process');
    let dirty: string | null = null;
    for (let i = 0; i < 60 && !dirty; i++) {
      const p = join(t.dir, `q${i}.vhdx`);
      run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', p, '512M']);
      const cmds: string[] = [];
      for (let k = 0; k < 400; k++) cmds.push('-c', `write -P ${k & 255} ${k}M 4k`);
      const c = spawn('qemu-io', ['-f', 'vhdx', ...cmds, p], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 30 + ((i * 37) % 200)));
      c.kill('SIGKILL');
      await new Promise((r) => c.on('close', r));
      const b = readFileSync(p);
      const h = [b.subarray(65536, 65536 + 4096), b.subarray(131072, 131072 + 4096)];
      const cur = h[0]!.readBigUInt64LE(8) > h[1]!.readBigUInt64LE(8) ? h[0]! : h[1]!;
      if (cur.subarray(48, 64).every((x) => x === 0)) continue;
      // Wait for a dirty file whose log holds an entry of that log (QEMU sets the LogGuid before writing the entry).
      const logAt = Number(cur.readBigUInt64LE(72));
      for (let o = 0; o < cur.readUInt32LE(68) && !dirty; o += 4096) {
        const e = b.subarray(logAt + o, logAt + o + 64);
        if (e.readUInt32LE(0) === 0x65676f6c && e.subarray(32, 48).equals(cur.subarray(48, 64))) dirty = p;
      }
      if (!dirty) { const d = await openDisk(p, { readOnly: true }); await d.close(); } // header-only dirty state opens
    }
    assert.ok(dirty, 'a killed qemu-io left a dirty log within 60 tries');
    const before = readFileSync(dirty);
    const ours = await openDisk(dirty, { readOnly: true });
    const got = await readAll(ours);
    await ours.close();
    assert.ok(readFileSync(dirty).equals(before), 'read-only replay does not write');
    const copy = `${dirty}.copy.vhdx`;
    writeFileSync(copy, before);
    assert.equal(run('qemu-img', ['check', '-q', '-r', 'all', '-f', 'vhdx', copy]).status, 0);
    assert.equal(run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', copy, `${copy}.raw`]).status, 0);
    assert.ok(Buffer.from(got).equals(readFileSync(`${copy}.raw`)), 'same bytes as qemu after its own replay');
    const rw = await openDisk(dirty);
    await rw.close();
    const c = run('qemu-img', ['check', '-f', 'vhdx', dirty]);
    assert.equal(c.status, 0, c.out);
  } finally { t.cleanup(); }
});
