/**
 * The VM commands in Hyper-V's vocabulary (new-vm, get-vm, start-vm, stop-vm...). Each one is a thin client
 * of the management service (`hyperts serve`), over its unix socket unless --url names a TCP listener.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs, UsageError, type OptionSpec } from './args.js';
import { ApiError, VmmsClient } from '../vmms/client.js';
import { defaultDataDir, socketPath, tokenPath } from '../vmms/paths.js';
import type { CheckpointView, VmView, IntegrationServiceView } from '../vmms/service.js';
import type { VmEvent } from '../vmms/store.js';

const CONNECTION: OptionSpec = { 'data-dir': 'string', url: 'string', 'token-file': 'string', help: 'boolean' };

export interface Ctx { client: VmmsClient; opts: Record<string, string | boolean>; positional: string[] }
type Body = (c: Ctx) => Promise<number>;

export const CONNECTION_HELP = `connection options (all commands):
  --data-dir DIR   the service's data directory (default $XDG_DATA_HOME/hyperts); its socket is DIR/vmms.sock
  --url URL        talk to a service listening on TCP (hyperts serve --listen), e.g. http://127.0.0.1:8006
  --token-file F   file holding the API token for --url (default: $HYPERTS_TOKEN, else DIR/api-token);
                   a token is never given on the command line, where other users could read it in /proc
`;

function clientFrom(opts: Record<string, string | boolean>): VmmsClient {
  const dataDir = (opts['data-dir'] as string | undefined) ?? process.env.HYPERTS_DATA_DIR ?? defaultDataDir();
  const url = (opts.url as string | undefined) ?? process.env.HYPERTS_URL;
  if (url) {
    const file = opts['token-file'] as string | undefined;
    let token: string | undefined;
    if (file) {
      try { token = readFileSync(file, 'utf8').trim(); } catch (e) { throw new UsageError(`cannot read the token file ${file}: ${(e as Error).message}`); }
    } else token = process.env.HYPERTS_TOKEN;
    if (!token && existsSync(tokenPath(dataDir))) token = readFileSync(tokenPath(dataDir), 'utf8').trim();
    return new VmmsClient({ url, token });
  }
  return new VmmsClient({ socketPath: socketPath(dataDir) });
}

/** Wraps a command body: parses options, builds the client, turns errors into messages and exit codes. */
export function command(name: string, usage: string, spec: OptionSpec, body: Body): (args: string[]) => Promise<number> {
  return async (args) => {
    try {
      const { opts, positional } = parseArgs(args, { ...spec, ...CONNECTION }, name);
      if (opts.help || args.includes('-h')) { process.stdout.write(`usage: hyperts ${name} ${usage}\n\n${CONNECTION_HELP}`); return 0; }
      return await body({ client: clientFrom(opts), opts, positional });
    } catch (e) {
      if (e instanceof UsageError) { process.stderr.write(`hyperts: ${e.message}\nusage: hyperts ${name} ${usage}\n`); return 2; }
      if (e instanceof ApiError) { process.stderr.write(`hyperts ${name}: ${e.message}\n`); return 1; }
      throw e;
    }
  };
}

export const vmPath = (n: string): string => `/vms/${encodeURIComponent(n)}`;

export function oneName(c: Ctx, cmd: string): string {
  const n = (c.opts.name as string | undefined) ?? c.positional[0];
  if (!n) throw new UsageError(`${cmd}: name the VM (e.g. hyperts ${cmd} demo)`);
  return n;
}

function names(c: Ctx, cmd: string): string[] {
  const n = c.positional.length ? c.positional : c.opts.name ? [c.opts.name as string] : [];
  if (!n.length) throw new UsageError(`${cmd}: name at least one VM`);
  return n;
}

// ---- formatting -----------------------------------------------------------------------------------------

/** PowerShell-style table: header, dashes, left-aligned columns. */
export function table(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(w[i]))).join(' ').trimEnd();
  return [line(headers), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n') + '\n';
}

/** Hyper-V's uptime format: hh:mm:ss, with d. in front past a day. */
export function formatUptime(s: number): string {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, x = s % 60;
  const hms = [h, m, x].map((v) => String(v).padStart(2, '0')).join(':');
  return d ? `${d}.${hms}` : hms;
}

export function vmTable(vms: VmView[]): string {
  return table(['Name', 'State', 'CPUUsage(%)', 'MemoryAssigned(M)', 'Uptime', 'Status', 'Heartbeat', 'OSName', 'ProcessorCount', 'IPAddresses'],
    vms.map((v) => [v.name, v.state, String(v.cpuUsage), String(Math.round(v.memoryAssignedBytes / 1048576)), formatUptime(v.uptimeSeconds),
      v.status, v.heartbeat ?? '', v.osName ?? '', String(v.config.cpus), (v.ipAddresses ?? []).join(', ')]));
}

export const out = (s: string): void => { process.stdout.write(s); };
export const printJson = (v: unknown): void => out(`${JSON.stringify(v, null, 2)}\n`);

// ---- settings shared by new-vm and set-vm -------------------------------------------------------------

const SETTINGS: OptionSpec = {
  memory: 'string', cpus: 'string', processor: 'string', kernel: 'string', initrd: 'string', cmdline: 'string',
  enlightened: 'string', com1: 'string', notes: 'string', 'checkpoint-type': 'string',
};

function settingsFrom(opts: Record<string, string | boolean>): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  if (opts.memory !== undefined) s.memory = opts.memory;
  if (opts.cpus !== undefined) s.cpus = Number(opts.cpus);
  if (opts.processor !== undefined) s.processor = opts.processor;
  for (const k of ['kernel', 'initrd'] as const) {
    const v = opts[k] as string | undefined;
    if (v === undefined) continue;
    // Paths are the caller's: the service runs elsewhere, so they travel absolute.
    s[k] = v === 'default' || v === '' ? null : resolve(v);
  }
  if (opts.cmdline !== undefined) s.cmdline = opts.cmdline;
  if (opts.enlightened !== undefined) {
    const v = String(opts.enlightened);
    if (!['on', 'off', 'true', 'false'].includes(v)) throw new UsageError('--enlightened must be on or off');
    s.enlightened = v === 'on' || v === 'true';
  }
  if (opts.com1 !== undefined) s.com1 = opts.com1;
  if (opts.notes !== undefined) s.notes = opts.notes;
  if (opts['checkpoint-type'] !== undefined) s.checkpointType = opts['checkpoint-type'];
  return s;
}

const SETTINGS_HELP = `[--memory 512M] [--cpus 1] [--processor auto|kvm|emulated] [--enlightened on|off]
    [--kernel FILE|default] [--initrd FILE] [--cmdline STRING] [--com1 console|none] [--notes TEXT]
    [--checkpoint-type Production|ProductionOnly|Standard|Disabled]`;

// ---- commands -----------------------------------------------------------------------------------------

export const newVm = command('new-vm', `NAME ${SETTINGS_HELP} [--disable-ic SERVICE,...]
    [--new-vhd-path FILE.vhdx --new-vhd-size-bytes 10GB | --vhd-path FILE] [--json]`,
  { ...SETTINGS, name: 'string', 'disable-ic': 'string', json: 'boolean', 'new-vhd-path': 'string', 'new-vhd-size-bytes': 'string', 'vhd-path': 'string' }, async (c) => {
    const name = oneName(c, 'new-vm');
    const body: Record<string, unknown> = { name, ...settingsFrom(c.opts) };
    // A new disk (dynamic VHDX) or an existing one, at SCSI 0:0; paths travel absolute.
    if (c.opts['new-vhd-path'] !== undefined) body.newVhdPath = resolve(String(c.opts['new-vhd-path']));
    if (c.opts['new-vhd-size-bytes'] !== undefined) body.newVhdSizeBytes = c.opts['new-vhd-size-bytes'];
    if (c.opts['vhd-path'] !== undefined) body.vhdPath = resolve(String(c.opts['vhd-path']));
    if (c.opts['disable-ic']) body.integrationServices = Object.fromEntries(String(c.opts['disable-ic']).split(',').map((n) => [n.trim(), false]));
    const vm = await c.client.call<VmView>('POST', '/vms', body);
    if (c.opts.json) printJson(vm); else out(vmTable([vm]));
    return 0;
  });

export const getVm = command('get-vm', '[NAME...] [--json] [--names]', { json: 'boolean', names: 'boolean' }, async (c) => {
  const vms = c.positional.length
    ? await Promise.all(c.positional.map((n) => c.client.call<VmView>('GET', vmPath(n))))
    : await c.client.call<VmView[]>('GET', '/vms');
  if (c.opts.names) out(vms.map((v) => `${v.name}\n`).join(''));
  else if (c.opts.json) printJson(c.positional.length === 1 ? vms[0] : vms);
  else out(vmTable(vms));
  return 0;
});

export const setVm = command('set-vm', `NAME ${SETTINGS_HELP} [--new-name NAME]`, { ...SETTINGS, name: 'string', 'new-name': 'string', json: 'boolean' }, async (c) => {
  const name = oneName(c, 'set-vm');
  const body = settingsFrom(c.opts);
  if (c.opts['new-name']) body.name = c.opts['new-name'];
  if (!Object.keys(body).length) throw new UsageError('set-vm: nothing to change (give at least one setting, e.g. --memory 1G)');
  const vm = await c.client.call<VmView>('PATCH', vmPath(name), body);
  if (c.opts.json) printJson(vm); else out(vmTable([vm]));
  return 0;
});

/** Set-VMProcessor NAME -Count N: the processor count (VM off), as set-vm --cpus. */
export const setVmProcessor = command('set-vmprocessor', 'NAME --count N [--json]', { count: 'string', json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'set-vmprocessor');
  if (c.opts.count === undefined) throw new UsageError('set-vmprocessor: give the processor count, e.g. --count 2');
  const n = Number(c.opts.count);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`set-vmprocessor: --count must be a whole number from 1 to 64, not '${String(c.opts.count)}'`);
  const vm = await c.client.call<VmView>('PATCH', vmPath(name), { cpus: n });
  if (c.opts.json) printJson(vm); else out(vmTable([vm]));
  return 0;
});

function simpleAction(cmd: string, action: string): (args: string[]) => Promise<number> {
  return command(cmd, 'NAME... [--json]', { json: 'boolean', name: 'string' }, async (c) => {
    const results: VmView[] = [];
    for (const n of names(c, cmd)) results.push(await c.client.call<VmView>('POST', `${vmPath(n)}/${action}`, {}));
    if (c.opts.json) printJson(results.length === 1 ? results[0] : results); else out(vmTable(results));
    return 0;
  });
}

export const startVm = simpleAction('start-vm', 'start');
export const suspendVm = simpleAction('suspend-vm', 'suspend');
export const resumeVm = simpleAction('resume-vm', 'resume');
export const restartVm = simpleAction('restart-vm', 'restart');
export const saveVm = simpleAction('save-vm', 'save');

export const removeVmSavedState = command('remove-vmsavedstate', 'NAME... [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const results: VmView[] = [];
  for (const n of names(c, 'remove-vmsavedstate')) results.push(await c.client.call<VmView>('DELETE', `${vmPath(n)}/saved-state`));
  if (c.opts.json) printJson(results.length === 1 ? results[0] : results); else out(vmTable(results));
  return 0;
});

// ---- checkpoints --------------------------------------------------------------------------------------

const snapshotPath = (vm: string, s: string): string => `${vmPath(vm)}/snapshots/${encodeURIComponent(s)}`;

export function checkpointTable(list: CheckpointView[]): string {
  return table(['VMName', 'Name', 'SnapshotType', 'CreationTime', 'ParentSnapshotName'],
    list.map((c) => [c.vmName, c.name, c.snapshotType, new Date(c.creationTime).toLocaleString('en-US'), c.parentSnapshotName ?? '']));
}

function vmAndSnapshot(c: Ctx, cmd: string): [string, string] {
  const [vm, snap] = c.positional;
  if (!vm || !snap) throw new UsageError(`${cmd}: name the VM and the checkpoint (hyperts get-vmsnapshot VM lists them)`);
  return [vm, snap];
}

export const checkpointVm = command('checkpoint-vm', 'NAME [--snapshot-name NAME] [--json]', { 'snapshot-name': 'string', json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'checkpoint-vm');
  const body = c.opts['snapshot-name'] !== undefined ? { name: c.opts['snapshot-name'] } : {};
  const cp = await c.client.call<CheckpointView>('POST', `${vmPath(name)}/snapshots`, body);
  if (c.opts.json) printJson(cp); else out(checkpointTable([cp]));
  return 0;
});

export const getVmSnapshot = command('get-vmsnapshot', 'NAME [SNAPSHOT] [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'get-vmsnapshot');
  const snap = c.opts.name !== undefined ? c.positional[0] : c.positional[1];
  const list = snap !== undefined ? [await c.client.call<CheckpointView>('GET', snapshotPath(name, snap))]
    : await c.client.call<CheckpointView[]>('GET', `${vmPath(name)}/snapshots`);
  if (c.opts.json) printJson(snap !== undefined ? list[0] : list); else out(checkpointTable(list));
  return 0;
});

export const restoreVmSnapshot = command('restore-vmsnapshot', 'NAME SNAPSHOT [--json]   (the VM must be Off or Saved)', { json: 'boolean' }, async (c) => {
  const [vm, snap] = vmAndSnapshot(c, 'restore-vmsnapshot');
  const v = await c.client.call<VmView>('POST', `${snapshotPath(vm, snap)}/restore`, {});
  if (c.opts.json) printJson(v); else out(vmTable([v]));
  return 0;
});

export const removeVmSnapshot = command('remove-vmsnapshot', 'NAME SNAPSHOT...', {}, async (c) => {
  const [vm, ...snaps] = c.positional;
  if (!vm || !snaps.length) throw new UsageError('remove-vmsnapshot: name the VM and at least one checkpoint (hyperts get-vmsnapshot VM lists them)');
  for (const s of snaps) await c.client.call('DELETE', snapshotPath(vm, s));
  return 0;
});

export const renameVmSnapshot = command('rename-vmsnapshot', 'NAME SNAPSHOT NEWNAME [--json]', { json: 'boolean' }, async (c) => {
  const [vm, snap] = vmAndSnapshot(c, 'rename-vmsnapshot');
  const newName = c.positional[2];
  if (newName === undefined) throw new UsageError('rename-vmsnapshot: give the new name');
  const cp = await c.client.call<CheckpointView>('PATCH', snapshotPath(vm, snap), { name: newName });
  if (c.opts.json) printJson(cp); else out(checkpointTable([cp]));
  return 0;
});

export const stopVm = command('stop-vm', 'NAME... [--turn-off] [--force] [--no-wait] [--timeout SECONDS] [--json]',
  { 'turn-off': 'boolean', force: 'boolean', 'no-wait': 'boolean', timeout: 'string', json: 'boolean', name: 'string' }, async (c) => {
    const body: Record<string, unknown> = { turnOff: c.opts['turn-off'] === true, force: c.opts.force === true, wait: c.opts['no-wait'] !== true };
    if (c.opts.timeout !== undefined) {
      const t = Number(c.opts.timeout);
      if (!(t > 0)) throw new UsageError('stop-vm: --timeout must be a positive number of seconds');
      body.timeoutSeconds = t;
    }
    const results: VmView[] = [];
    for (const n of names(c, 'stop-vm')) results.push(await c.client.call<VmView>('POST', `${vmPath(n)}/stop`, body));
    if (c.opts.json) printJson(results.length === 1 ? results[0] : results); else out(vmTable(results));
    return 0;
  });

export const removeVm = command('remove-vm', 'NAME...', { name: 'string' }, async (c) => {
  for (const n of names(c, 'remove-vm')) await c.client.call('DELETE', vmPath(n));
  return 0;
});

export const getVmIntegrationService = command('get-vmintegrationservice', 'NAME [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'get-vmintegrationservice');
  const list = await c.client.call<IntegrationServiceView[]>('GET', `${vmPath(name)}/integration-services`);
  if (c.opts.json) { printJson(list); return 0; }
  out(table(['VMName', 'Name', 'Enabled', 'PrimaryStatusDescription', 'Protocol'],
    list.map((i) => [name, i.name, i.enabled ? 'True' : 'False', i.status ?? '', i.protocol ?? ''])));
  return 0;
});

function icSwitch(cmd: string, enabled: boolean): (args: string[]) => Promise<number> {
  return command(cmd, 'NAME SERVICE... (Heartbeat, Shutdown, "Time Synchronization", "Key-Value Pair Exchange", VSS; or kvp, timesync)',
    { name: 'string', json: 'boolean' }, async (c) => {
      const [name, ...services] = c.positional;
      if (!name || !services.length) throw new UsageError(`${cmd}: name the VM and at least one integration service`);
      let list: IntegrationServiceView[] = [];
      for (const s of services) list = await c.client.call('PUT', `${vmPath(name)}/integration-services/${encodeURIComponent(s)}`, { enabled });
      if (c.opts.json) printJson(list);
      else out(table(['VMName', 'Name', 'Enabled', 'PrimaryStatusDescription'], list.map((i) => [name, i.name, i.enabled ? 'True' : 'False', i.status ?? ''])));
      return 0;
    });
}
export const enableVmIntegrationService = icSwitch('enable-vmintegrationservice', true);
export const disableVmIntegrationService = icSwitch('disable-vmintegrationservice', false);

export const getVmKvp = command('get-vmkvp', 'NAME [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'get-vmkvp');
  const kvp = await c.client.call<{ guest: Record<string, string>; host: Record<string, string> }>('GET', `${vmPath(name)}/kvp`);
  if (c.opts.json) { printJson(kvp); return 0; }
  const rows = [...Object.entries(kvp.guest).map(([k, v]) => ['Guest (intrinsic)', k, v]), ...Object.entries(kvp.host).map(([k, v]) => ['Host', k, v])];
  out(table(['Pool', 'Key', 'Value'], rows));
  return 0;
});

export const setVmKvp = command('set-vmkvp', 'NAME KEY VALUE | NAME KEY --remove', { remove: 'boolean', name: 'string' }, async (c) => {
  const [name, key, value] = c.positional;
  if (!name || !key) throw new UsageError('set-vmkvp: give the VM, the key and the value');
  if (c.opts.remove) await c.client.call('DELETE', `${vmPath(name)}/kvp/${encodeURIComponent(key)}`);
  else {
    if (value === undefined) throw new UsageError('set-vmkvp: give a value (or --remove)');
    await c.client.call('PUT', `${vmPath(name)}/kvp/${encodeURIComponent(key)}`, { value });
  }
  return 0;
});

export const getVmEvent = command('get-vmevent', '[NAME] [--limit N] [--json]', { limit: 'string', json: 'boolean', name: 'string' }, async (c) => {
  const name = (c.opts.name as string | undefined) ?? c.positional[0];
  const limit = c.opts.limit !== undefined ? `?limit=${encodeURIComponent(String(c.opts.limit))}` : '';
  const events = await c.client.call<VmEvent[]>('GET', `${name ? `${vmPath(name)}/events` : '/events'}${limit}`);
  if (c.opts.json) { printJson(events); return 0; }
  out(table(['Time', 'VM', 'From', 'To', 'Message'], events.map((e) => [new Date(e.time).toISOString(), e.vmName ?? '(service)', e.from ?? '', e.to ?? '', e.message])));
  return 0;
});

export const getVmHost = command('get-vmhost', '[--json]', { json: 'boolean' }, async (c) => {
  const h = await c.client.call<Record<string, unknown> & { check: { items: { name: string; status: string; detail: string }[]; choice: string | null; why: string } }>('GET', '/host');
  if (c.opts.json) { printJson(h); return 0; }
  const mb = (b: unknown): string => `${Math.round(Number(b) / 1048576)} MB`;
  const rows = [
    ['ComputerName', String(h.name)], ['LogicalProcessorCount', String(h.logicalProcessorCount)], ['Processor', String(h.processorModel ?? '')],
    ['MemoryCapacity', mb(h.memoryCapacityBytes)], ['MemoryAvailable', mb(h.memoryAvailableBytes)], ['MemoryAssignedToVMs', mb(h.memoryAssignedToVmsBytes)],
    ['VirtualMachines', `${h.virtualMachines} (${h.runningVirtualMachines} running)`], ['DataDirectory', String(h.dataDirectory)],
    ['ProcessorBackend (auto)', h.check.choice ? `${h.check.choice}: ${h.check.why}` : `none: ${h.check.why}`],
  ];
  out(table(['Property', 'Value'], rows));
  out('\nHost check:\n');
  out(table(['Check', 'Result', 'Detail'], h.check.items.map((i) => [i.name, i.status, i.detail])));
  return 0;
});

/** Detach key of connect-vm: Ctrl-] as in telnet and virsh console (Ctrl-A stays free for the guest). */
export const DETACH_BYTE = 0x1d;

export const connectVm = command('connect-vm', 'NAME   (serial console COM1; Ctrl-] detaches, the VM keeps running)', { name: 'string' }, async (c) => {
  const name = oneName(c, 'connect-vm');
  await c.client.call('GET', vmPath(name)); // a clear error for an unknown VM before the terminal goes raw
  const ws = c.client.webSocket(`${vmPath(name)}/console`);
  const stdin = process.stdin;
  return await new Promise<number>((resolveExit) => {
    let raw = false;
    const onInput = (d: Buffer): void => {
      const i = d.indexOf(DETACH_BYTE);
      if (i >= 0) { if (i > 0) ws.send(d.subarray(0, i)); ws.close(1000); return; }
      ws.send(d);
    };
    const cleanup = (): void => {
      stdin.off('data', onInput);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    };
    ws.on('open', () => {
      process.stderr.write(`hyperts: connected to ${name}'s COM1 (Ctrl-] detaches)\r\n`);
      if (stdin.isTTY) { stdin.setRawMode(true); raw = true; }
      stdin.on('data', onInput);
      stdin.resume();
    });
    ws.on('message', (data: Buffer) => { process.stdout.write(data); });
    ws.on('close', (code, reason) => {
      cleanup();
      if (code >= 4000) { process.stderr.write(`\r\nhyperts connect-vm: ${reason.toString() || 'console closed'}\n`); resolveExit(1); return; }
      process.stderr.write(`\r\nhyperts: detached from ${name}\n`);
      resolveExit(0);
    });
    ws.on('error', (e) => { cleanup(); process.stderr.write(`hyperts connect-vm: ${e.message}\n`); resolveExit(1); });
  });
});

/** Command name -> implementation, for main.ts and the completion script. */
export const exportVmCommand = command('export-vm', 'NAME --path DIR [--json]', { path: 'string', json: 'boolean', name: 'string' }, async (c) => {
  const name = oneName(c, 'export-vm');
  if (typeof c.opts.path !== 'string') throw new UsageError('export-vm NAME --path DIR: give the folder to export into');
  const r = await c.client.call<{ path: string }>('POST', `${vmPath(name)}/export`, { path: resolve(c.opts.path) });
  if (c.opts.json) printJson(r); else out(`${r.path}\n`);
  return 0;
});

export const importVmCommand = command('import-vm', 'PATH [--copy] [--generate-new-id] [--json]', { copy: 'boolean', 'generate-new-id': 'boolean', json: 'boolean' }, async (c) => {
  const path = c.positional[0];
  if (!path) throw new UsageError('import-vm PATH: give the folder export-vm wrote (DIR/NAME)');
  const v = await c.client.call<VmView>('POST', '/imports', { path: resolve(path), copy: c.opts.copy === true, generateNewId: c.opts['generate-new-id'] === true });
  if (c.opts.json) printJson(v); else out(`${v.name} (${v.id}) imported, ${v.state}\n`);
  return 0;
});

export const VM_COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'new-vm': newVm, 'get-vm': getVm, 'set-vm': setVm, 'set-vmprocessor': setVmProcessor, 'start-vm': startVm, 'stop-vm': stopVm, 'suspend-vm': suspendVm,
  'resume-vm': resumeVm, 'restart-vm': restartVm, 'save-vm': saveVm, 'remove-vmsavedstate': removeVmSavedState, 'remove-vm': removeVm, 'get-vmintegrationservice': getVmIntegrationService,
  'enable-vmintegrationservice': enableVmIntegrationService, 'disable-vmintegrationservice': disableVmIntegrationService,
  'get-vmkvp': getVmKvp, 'set-vmkvp': setVmKvp, 'connect-vm': connectVm, 'get-vmhost': getVmHost, 'get-vmevent': getVmEvent,
  'checkpoint-vm': checkpointVm, 'get-vmsnapshot': getVmSnapshot, 'restore-vmsnapshot': restoreVmSnapshot,
  'remove-vmsnapshot': removeVmSnapshot, 'rename-vmsnapshot': renameVmSnapshot,
  'export-vm': exportVmCommand, 'import-vm': importVmCommand,
};
