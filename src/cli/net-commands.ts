/**
 * Virtual switch and network adapter commands in Hyper-V's vocabulary (new-vmswitch, get-vmswitch,
 * remove-vmswitch, add-/get-/remove-vmnetworkadapter, connect-/disconnect-vmnetworkadapter): thin clients
 * of the management service, like the VM commands.
 */
import { UsageError } from './args.js';
import { command, out, printJson, table, vmPath, type Ctx } from './vm-commands.js';
import type { AdapterView, SwitchView } from '../vmms/service.js';

const swPath = (n: string): string => `/switches/${encodeURIComponent(n)}`;
const adPath = (vm: string, a: string): string => `${vmPath(vm)}/network-adapters/${encodeURIComponent(a)}`;

function switchTable(list: SwitchView[]): string {
  return table(['Name', 'SwitchType', 'NetAdapterName', 'HostBridge', 'NatForwards', 'ConnectedAdapters', 'Notes'],
    list.map((s) => [s.name, s.type, s.netAdapterName ?? '-', s.bridge ?? '-', (s.forwards ?? []).map((f) => `${f.hostPort}:${f.guestPort}`).join(',') || '-', String(s.adapters.length), s.notes]));
}

function adapterTable(list: AdapterView[]): string {
  return table(['VMName', 'Name', 'IsLegacy', 'MacAddress', 'SwitchName', 'Status', 'IPAddresses'],
    list.map((a) => [a.vmName, a.name, a.legacy ? 'True' : 'False', a.macAddress, a.switchName ?? '', a.status ? (a.status.linkUp ? 'Connected' : 'Disconnected') : '', a.ipAddresses.join(', ')]));
}

export const newVmSwitch = command('new-vmswitch', 'NAME [--switch-type NAT|Private|Internal|External] [--net-adapter-name IF] [--nat-forward HOSTPORT:GUESTPORT,...] [--notes TEXT] [--json]   (Internal and External need a root service)',
  { 'switch-type': 'string', 'nat-forward': 'string', 'net-adapter-name': 'string', notes: 'string', json: 'boolean', name: 'string' }, async (c) => {
    const name = (c.opts.name as string | undefined) ?? c.positional[0];
    if (!name) throw new UsageError('new-vmswitch: name the switch (e.g. hyperts new-vmswitch lab --switch-type Private)');
    const body: Record<string, unknown> = { name, switchType: (c.opts['switch-type'] as string | undefined) ?? 'Private' };
    if (c.opts['net-adapter-name'] !== undefined) {
      body.netAdapterName = c.opts['net-adapter-name'];
      // Hyper-V: naming a host adapter makes the switch External.
      if (c.opts['switch-type'] === undefined) body.switchType = 'External';
    }
    if (c.opts['nat-forward'] !== undefined) body.natForwards = String(c.opts['nat-forward']).split(',').filter(Boolean);
    if (c.opts.notes !== undefined) body.notes = c.opts.notes;
    const s = await c.client.call<SwitchView>('POST', '/switches', body);
    if (c.opts.json) printJson(s); else out(switchTable([s]));
    return 0;
  });

export const getVmSwitch = command('get-vmswitch', '[NAME] [--json]', { json: 'boolean', name: 'string' }, async (c) => {
  const name = (c.opts.name as string | undefined) ?? c.positional[0];
  const list = name ? [await c.client.call<SwitchView>('GET', swPath(name))] : await c.client.call<SwitchView[]>('GET', '/switches');
  if (c.opts.json) printJson(list); else out(switchTable(list));
  return 0;
});

export const removeVmSwitch = command('remove-vmswitch', 'NAME...', { name: 'string' }, async (c) => {
  const list = c.positional.length ? c.positional : c.opts.name ? [c.opts.name as string] : [];
  if (!list.length) throw new UsageError('remove-vmswitch: name at least one switch');
  for (const n of list) await c.client.call('DELETE', swPath(n));
  return 0;
});

function vmName(c: Ctx, cmd: string): string {
  const n = (c.opts['vm-name'] as string | undefined) ?? c.positional[0];
  if (!n) throw new UsageError(`${cmd}: name the VM (e.g. hyperts ${cmd} demo)`);
  return n;
}

export const addVmNetworkAdapter = command('add-vmnetworkadapter', 'VMNAME [--name NAME] [--switch-name SWITCH] [--static-mac-address MAC] [--is-legacy] [--json]   (also while it runs:\n  the guest gets a new interface; --is-legacy: the emulated DEC 21140 for guests without Hyper-V drivers, VM Off only)',
  { name: 'string', 'switch-name': 'string', 'static-mac-address': 'string', 'is-legacy': 'boolean', 'vm-name': 'string', json: 'boolean' }, async (c) => {
    const vm = vmName(c, 'add-vmnetworkadapter');
    const body: Record<string, unknown> = {};
    if (c.opts.name !== undefined) body.name = c.opts.name;
    if (c.opts['switch-name'] !== undefined) body.switchName = c.opts['switch-name'];
    if (c.opts['static-mac-address'] !== undefined) body.staticMacAddress = c.opts['static-mac-address'];
    if (c.opts['is-legacy'] === true) body.isLegacy = true;
    const a = await c.client.call<AdapterView>('POST', `${vmPath(vm)}/network-adapters`, body);
    if (c.opts.json) printJson(a); else out(adapterTable([a]));
    return 0;
  });

export const getVmNetworkAdapter = command('get-vmnetworkadapter', 'VMNAME [--json]', { json: 'boolean', 'vm-name': 'string' }, async (c) => {
  const list = await c.client.call<AdapterView[]>('GET', `${vmPath(vmName(c, 'get-vmnetworkadapter'))}/network-adapters`);
  if (c.opts.json) printJson(list); else out(adapterTable(list));
  return 0;
});

export const removeVmNetworkAdapter = command('remove-vmnetworkadapter', 'VMNAME ADAPTER   (also while it runs: the guest loses the interface)', { 'vm-name': 'string', name: 'string' }, async (c) => {
  const vm = vmName(c, 'remove-vmnetworkadapter');
  const a = (c.opts.name as string | undefined) ?? c.positional[1];
  if (!a) throw new UsageError('remove-vmnetworkadapter: name the VM and the adapter (get-vmnetworkadapter VMNAME lists them)');
  await c.client.call('DELETE', adPath(vm, a));
  return 0;
});

function connectCommand(cmd: string, connect: boolean): (args: string[]) => Promise<number> {
  return command(cmd, connect ? 'VMNAME ADAPTER --switch-name SWITCH [--json]' : 'VMNAME ADAPTER [--json]',
    { 'vm-name': 'string', name: 'string', 'switch-name': 'string', json: 'boolean' }, async (c) => {
      const vm = vmName(c, cmd);
      const a = (c.opts.name as string | undefined) ?? c.positional[1] ?? 'Network Adapter';
      const sw = connect ? c.opts['switch-name'] as string | undefined : null;
      if (connect && !sw) throw new UsageError(`${cmd}: give --switch-name SWITCH (get-vmswitch lists them)`);
      const r = await c.client.call<AdapterView>('PUT', `${adPath(vm, a)}/switch`, { switchName: sw });
      if (c.opts.json) printJson(r); else out(adapterTable([r]));
      return 0;
    });
}
export const connectVmNetworkAdapter = connectCommand('connect-vmnetworkadapter', true);
export const disconnectVmNetworkAdapter = connectCommand('disconnect-vmnetworkadapter', false);

export const NET_COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  'new-vmswitch': newVmSwitch, 'get-vmswitch': getVmSwitch, 'remove-vmswitch': removeVmSwitch,
  'add-vmnetworkadapter': addVmNetworkAdapter, 'get-vmnetworkadapter': getVmNetworkAdapter, 'remove-vmnetworkadapter': removeVmNetworkAdapter,
  'connect-vmnetworkadapter': connectVmNetworkAdapter, 'disconnect-vmnetworkadapter': disconnectVmNetworkAdapter,
};
