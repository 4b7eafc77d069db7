/**
 * Get-VMNetworkAdapter's live part, read from a running partition (the worker answers the service with it;
 * boot tests read the same). The guest's addresses are the last KVP answer: reading never waits for the
 * guest, it only asks the monitor for a fresher answer in the background.
 */
import type { Partition } from '../platform/partition.js';
import type { AdapterStatus } from './worker-protocol.js';

export function adapterStatus(p: Partition, o: { refresh?: boolean } = {}): AdapterStatus[] {
  if (o.refresh) p.guestAddresses.request();
  return p.network.adapters.map((a) => {
    const ip = p.guestAddresses.get(a.config.macAddress);
    return {
      name: a.config.name, macAddress: a.config.macAddress, switchName: a.config.switchName, linkUp: a.adapter.linkUp, ready: a.adapter.ready,
      rxFrames: a.adapter.stats.rxFrames, txFrames: a.adapter.stats.txFrames, rxDropped: a.adapter.stats.rxDropped, malformed: a.adapter.stats.malformed,
      ipAddresses: ip?.addresses ?? [],
      ipConfiguration: ip ? { subnets: ip.subnets, gateways: ip.gateways, dnsServers: ip.dnsServers, dhcpEnabled: ip.dhcpEnabled, reportedAt: new Date(ip.at).toISOString() } : null,
    };
  }).concat(p.network.legacyAdapters.map((a) => ({
    // An unenlightened guest has no KVP daemon: no addresses to report.
    name: a.config.name, macAddress: a.config.macAddress, switchName: a.config.switchName, linkUp: a.nic.linkUp, ready: a.nic.receiving,
    rxFrames: a.nic.stats.rxFrames, txFrames: a.nic.stats.txFrames, rxDropped: a.nic.stats.rxDropped, malformed: a.nic.stats.oversize + a.nic.stats.busErrors,
    ipAddresses: [], ipConfiguration: null,
  })));
}
