/**
 * Drive and VHD commands in Hyper-V's vocabulary: add-/remove-/get-vmharddiskdrive, add-vmscsicontroller,
 * set-/get-vmdvddrive (through the service), and new-/get-/resize-/merge-/convert-/optimize-/test-vhd.
 * The VHD commands work on files in this process, so they need no service; they ask a running service
 * which VMs use a disk (Get-VHD's Attached, and refusing work on a running VM's disk). With --url the
 * service is on another host, so they run there instead, through its operation resources.
 */
import { resolve } from 'node:path';
import { UsageError } from './args.js';
import { command, oneName, out, printJson, table, vmPath, type Ctx } from './vm-commands.js';
import { ApiError } from '../vmms/client.js';
import { clientPath, type DriveView } from '../vmms/drives.js';
import { VmmsError } from '../vmms/errors.js';
import { ProgressMeter, type OperationView } from '../vmms/operations.js';
import { VhdCommands, type Attachment, type VhdTestResult, type VhdView } from '../vmms/vhd-commands.js';
import type { Progress } from '../vmms/vhd-engine.js';
import type { VmView } from '../vmms/service.js';

// ---- drives (through the service) ----------------------------------------------------------------------

const SLOT_OPTS = { 'controller-type': 'string', 'controller-number': 'string', 'controller-location': 'string' } as const;

function slotBody(c: Ctx): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (c.opts['controller-type'] !== undefined) b.controllerType = c.opts['controller-type'];
  if (c.opts['controller-number'] !== undefined) b.controllerNumber = c.opts['controller-number'];
  if (c.opts['controller-location'] !== undefined) b.controllerLocation = c.opts['controller-location'];
  return b;
}

export function driveTable(list: DriveView[]): string {
  return table(['VMName', 'ControllerType', 'ControllerNumber', 'ControllerLocation', 'Path'],
    list.map((d) => [d.vmName, d.controllerType, String(d.controllerNumber), String(d.controllerLocation), d.path ?? '']));
}

export const addVmHardDiskDrive = command('add-vmharddiskdrive', 'NAME --path FILE [--controller-type SCSI|IDE] [--controller-number N] [--controller-location L] [--json]',
  { path: 'string', ...SLOT_OPTS, json: 'boolean', name: 'string' }, async (c) => {
    const name = oneName(c, 'add-vmharddiskdrive');
    const path = (c.opts.path as string | undefined) ?? c.positional[1];
    if (!path) throw new UsageError('add-vmharddiskdrive: give the disk with --path FILE');
    const d = await c.client.call<DriveView>('POST', `${vmPath(name)}/hard-disk-drives`, { path: resolve(path), ...slotBody(c) });
    if (c.opts.json) printJson(d); else out(driveTable([d]));
    return 0;
  });

export const getVmHardDiskDrive = command('get-vmharddiskdrive', '[NAME] [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = (c.opts.name as string | undefined) ?? c.positional[0];
  const list = await c.client.call<DriveView[]>('GET', name ? `${vmPath(name)}/hard-disk-drives` : '/hard-disk-drives');
  if (c.opts.json) printJson(list); else out(driveTable(list));
  return 0;
});

export const removeVmHardDiskDrive = command('remove-vmharddiskdrive', 'NAME --controller-type SCSI|IDE --controller-number N --controller-location L   (the file stays)',
  { ...SLOT_OPTS, name: 'string' }, async (c) => {
    const name = oneName(c, 'remove-vmharddiskdrive');
    const b = slotBody(c);
    if (b.controllerType === undefined || b.controllerNumber === undefined || b.controllerLocation === undefined) {
      throw new UsageError('remove-vmharddiskdrive: give --controller-type, --controller-number and --controller-location (get-vmharddiskdrive NAME shows them)');
    }
    await c.client.call('DELETE', `${vmPath(name)}/hard-disk-drives/${encodeURIComponent(String(b.controllerType))}/${encodeURIComponent(String(b.controllerNumber))}/${encodeURIComponent(String(b.controllerLocation))}`);
    return 0;
  });

export const addVmScsiController = command('add-vmscsicontroller', 'NAME   (while the VM is off; at most 4)', { name: 'string' }, async (c) => {
  const name = oneName(c, 'add-vmscsicontroller');
  const r = await c.client.call<{ scsiControllers: number }>('POST', `${vmPath(name)}/scsi-controllers`, {});
  out(`${name} now has ${r.scsiControllers} SCSI controller(s)\n`);
  return 0;
});

export const setVmDvdDrive = command('set-vmdvddrive', "NAME --path FILE.iso|'' [--controller-number N --controller-location L] [--json]   (IDE; --path '' ejects)",
  { path: 'string', 'controller-number': 'string', 'controller-location': 'string', json: 'boolean', name: 'string' }, async (c) => {
    const name = oneName(c, 'set-vmdvddrive');
    const p = c.opts.path as string | undefined;
    if (p === undefined) throw new UsageError("set-vmdvddrive: give --path FILE.iso, or --path '' to eject");
    const d = await c.client.call<DriveView>('PUT', `${vmPath(name)}/dvd-drive`, { path: p === '' ? null : resolve(p), ...slotBody(c) });
    if (c.opts.json) printJson(d); else out(driveTable([d]));
    return 0;
  });

export const getVmDvdDrive = command('get-vmdvddrive', '[NAME] [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = (c.opts.name as string | undefined) ?? c.positional[0];
  const list = await c.client.call<DriveView[]>('GET', name ? `${vmPath(name)}/dvd-drives` : '/dvd-drives');
  if (c.opts.json) printJson(list); else out(driveTable(list));
  return 0;
});

// ---- VHD commands ----------------------------------------------------------------------------------------

const remote = (c: Ctx): boolean => !!c.client.target.url;

/** Which disks the service's VMs use; null when no service answers (then nothing is known). */
async function attachments(c: Ctx): Promise<Attachment[] | null> {
  try {
    const [disks, dvds, vms] = await Promise.all([
      c.client.call<DriveView[]>('GET', '/hard-disk-drives'), c.client.call<DriveView[]>('GET', '/dvd-drives'), c.client.call<VmView[]>('GET', '/vms')]);
    const state = new Map(vms.map((v) => [v.name, v.state]));
    return [...disks, ...dvds].filter((d) => d.path).map((d) => ({
      vmName: d.vmName, vmState: state.get(d.vmName) ?? 'Off', slot: `${d.controllerType} ${d.controllerNumber}:${d.controllerLocation}`, path: d.path!, kind: d.kind,
    }));
  } catch (e) {
    if (e instanceof ApiError && e.code === 'ServiceUnavailable') return null;
    throw e;
  }
}

/** A progress line on a terminal (percent, rate, time left), nothing otherwise. */
function progressLine(what: string): { progress: Progress; done: () => void } {
  const tty = process.stderr.isTTY;
  const meter = new ProgressMeter();
  let last = 0;
  return {
    progress: (d, t) => {
      meter.update(d, t);
      if (!tty || Date.now() - last < 200) return;
      last = Date.now();
      process.stderr.write(`\r${what}: ${meter.line()}\x1b[K`);
    },
    done: () => { if (tty && last) process.stderr.write(`\r${what}: done\x1b[K\n`); },
  };
}

/** Runs a VHD command here, turning the service-style errors into the CLI's. */
async function local<T>(c: Ctx, what: string, fn: (v: VhdCommands, p: Progress) => Promise<T>): Promise<T> {
  const v = new VhdCommands(() => attachments(c), (p, field) => clientPath(p, field, process.cwd()));
  const p = progressLine(what);
  try { return await fn(v, p.progress); } catch (e) {
    if (e instanceof VmmsError) throw new ApiError(e.status, e.code, e.message);
    throw e;
  } finally { p.done(); }
}

/** Runs a VHD operation on the remote service and follows it to the end. */
async function remoteOp(c: Ctx, what: string, path: string, body: unknown): Promise<VhdView> {
  let op = await c.client.call<OperationView>('POST', path, body);
  const tty = process.stderr.isTTY;
  while (op.state === 'Running') {
    if (tty) {
      const left = op.secondsRemaining === null ? '' : ` ${op.secondsRemaining} s left`;
      process.stderr.write(`\r${what}: ${op.percentComplete}%${op.bytesPerSecond ? ` ${(op.bytesPerSecond / 1048576).toFixed(1)} MB/s` : ''}${left}\x1b[K`);
    }
    await new Promise((r) => setTimeout(r, 250));
    op = await c.client.call<OperationView>('GET', `/operations/${op.id}`);
  }
  if (tty) process.stderr.write(`\r\x1b[K`);
  if (op.state === 'Failed') throw new ApiError(409, op.error?.code ?? 'OperationFailed', op.error?.message ?? `${what} failed`);
  return op.result as VhdView;
}

const mb = (n: number | null): string => (n === null ? '' : String(n));

export function vhdList(v: VhdView): string {
  const rows: [string, string][] = [
    ['Path', v.path], ['VhdFormat', v.vhdFormat], ['VhdType', v.vhdType], ['FileSize', String(v.fileSize)], ['Size', String(v.size)],
    ['MinimumSize', mb(v.minimumSize)], ['LogicalSectorSize', String(v.logicalSectorSize)], ['PhysicalSectorSize', String(v.physicalSectorSize)],
    ['BlockSize', String(v.blockSize)], ['ParentPath', v.parentPath ?? ''], ['DiskIdentifier', v.diskIdentifier ?? ''],
    ['FragmentationPercentage', mb(v.fragmentationPercentage)],
    ['Attached', v.attached === null ? '(unknown: the management service is not running)' : v.attached ? `True (${v.attachedTo})` : 'False'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, val]) => `${k.padEnd(w)} : ${val}`.trimEnd()).join('\n')}\n`;
}

function onePath(c: Ctx, cmd: string): string {
  const p = c.positional[0] ?? (c.opts.path as string | undefined);
  if (!p) throw new UsageError(`${cmd}: name the virtual hard disk file (e.g. hyperts ${cmd} disk.vhdx)`);
  return resolve(p);
}

function show(c: Ctx, v: VhdView): number {
  if (c.opts.json) printJson(v); else out(vhdList(v));
  return 0;
}

export const newVhd = command('new-vhd', 'PATH --size-bytes 10GB [--dynamic|--fixed] [--parent-path FILE] [--block-size-bytes 32MB] [--logical-sector-size-bytes 512|4096] [--physical-sector-size-bytes 512|4096] [--json]',
  { path: 'string', 'size-bytes': 'string', dynamic: 'boolean', fixed: 'boolean', 'parent-path': 'string', 'block-size-bytes': 'string', 'logical-sector-size-bytes': 'string', 'physical-sector-size-bytes': 'string', json: 'boolean' },
  async (c) => {
    const path = onePath(c, 'new-vhd');
    if (c.opts.dynamic && c.opts.fixed) throw new UsageError('new-vhd: --dynamic and --fixed exclude each other');
    const body: Record<string, unknown> = { path };
    if (c.opts['size-bytes'] !== undefined) body.sizeBytes = c.opts['size-bytes'];
    if (c.opts.fixed) body.type = 'Fixed';
    if (c.opts.dynamic) body.type = 'Dynamic';
    if (c.opts['parent-path'] !== undefined) { body.parentPath = resolve(String(c.opts['parent-path'])); body.type ??= 'Differencing'; }
    if (c.opts['block-size-bytes'] !== undefined) body.blockSizeBytes = c.opts['block-size-bytes'];
    if (c.opts['logical-sector-size-bytes'] !== undefined) body.logicalSectorSizeBytes = c.opts['logical-sector-size-bytes'];
    if (c.opts['physical-sector-size-bytes'] !== undefined) body.physicalSectorSizeBytes = c.opts['physical-sector-size-bytes'];
    if (remote(c)) return show(c, await remoteOp(c, 'new-vhd', '/vhds', body));
    return show(c, await local(c, 'new-vhd', (v, p) => v.create(v.parseNew(body), p)));
  });

export const getVhd = command('get-vhd', 'PATH [--json]', { path: 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'get-vhd');
  if (remote(c)) return show(c, await c.client.call<VhdView>('GET', `/vhds?path=${encodeURIComponent(path)}`));
  return show(c, await local(c, 'get-vhd', (v) => v.get(path)));
});

export const resizeVhd = command('resize-vhd', 'PATH --size-bytes 20GB [--json]', { path: 'string', 'size-bytes': 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'resize-vhd');
  const size = c.opts['size-bytes'];
  if (size === undefined) throw new UsageError('resize-vhd: give the new size with --size-bytes (e.g. 20GB)');
  if (remote(c)) return show(c, await remoteOp(c, 'resize-vhd', '/vhds/resize', { path, sizeBytes: size }));
  return show(c, await local(c, 'resize-vhd', (v, p) => v.resize(path, size, p)));
});

export const mergeVhd = command('merge-vhd', 'PATH [--destination-path ANCESTOR] [--json]', { path: 'string', 'destination-path': 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'merge-vhd');
  const dest = c.opts['destination-path'] !== undefined ? resolve(String(c.opts['destination-path'])) : undefined;
  if (remote(c)) return show(c, await remoteOp(c, 'merge-vhd', '/vhds/merge', { path, destinationPath: dest }));
  return show(c, await local(c, 'merge-vhd', (v, p) => v.merge(path, dest, p)));
});

export const convertVhd = command('convert-vhd', 'PATH DESTINATION [--vhd-type fixed|dynamic] [--json]', { 'destination-path': 'string', 'vhd-type': 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'convert-vhd');
  const d = (c.opts['destination-path'] as string | undefined) ?? c.positional[1];
  if (!d) throw new UsageError('convert-vhd: give the destination file (hyperts convert-vhd SOURCE DESTINATION)');
  const dest = resolve(d);
  const type = c.opts['vhd-type'];
  if (remote(c)) return show(c, await remoteOp(c, 'convert-vhd', '/vhds/convert', { path, destinationPath: dest, vhdType: type }));
  return show(c, await local(c, 'convert-vhd', (v, p) => v.convert(path, dest, type, p)));
});

export const optimizeVhd = command('optimize-vhd', 'PATH [--json]', { path: 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'optimize-vhd');
  if (remote(c)) return show(c, await remoteOp(c, 'optimize-vhd', '/vhds/optimize', { path }));
  return show(c, await local(c, 'optimize-vhd', (v, p) => v.optimize(path, p)));
});

export const testVhd = command('test-vhd', 'PATH [--json]   (exit status 0: usable)', { path: 'string', json: 'boolean' }, async (c) => {
  const path = onePath(c, 'test-vhd');
  const r = remote(c) ? await c.client.call<VhdTestResult>('POST', '/vhds/test', { path }) : await local(c, 'test-vhd', (v) => v.test(path));
  if (c.opts.json) printJson(r);
  else if (r.ok) out(`${r.message}\n`);
  else process.stderr.write(`hyperts test-vhd: ${r.message}\n`);
  return r.ok ? 0 : 1;
});

export const STORAGE_COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'add-vmharddiskdrive': addVmHardDiskDrive, 'get-vmharddiskdrive': getVmHardDiskDrive, 'remove-vmharddiskdrive': removeVmHardDiskDrive,
  'add-vmscsicontroller': addVmScsiController, 'set-vmdvddrive': setVmDvdDrive, 'get-vmdvddrive': getVmDvdDrive,
  'new-vhd': newVhd, 'get-vhd': getVhd, 'resize-vhd': resizeVhd, 'merge-vhd': mergeVhd, 'convert-vhd': convertVhd, 'optimize-vhd': optimizeVhd, 'test-vhd': testVhd,
};
