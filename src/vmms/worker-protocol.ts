/** Messages between the service and a VM worker process (child_process IPC, 'advanced' serialization). */
import type { IcName, IntegrationServiceInfo } from '../vsp/ic/integration-services.js';
import type { SwitchConfig } from '../platform/assemble-network.js';
import type { DriveConfig, HardwareConfig, NetworkAdapterConfig } from '../platform/hardware.js';
import type { FileGrant } from './worker-files.js';

export interface WorkerStartConfig {
  name: string;
  processor: 'auto' | 'kvm' | 'emulated';
  memoryBytes: number;
  cpus: number;
  enlightened: boolean;
  kernel: string;
  initrd?: string;
  cmdline: string;
  integrationServices: Record<IcName, boolean>;
  com1: boolean;
  /** Controllers, drives and network adapters the partition is assembled from. */
  hardware: HardwareConfig;
  /** SMBIOS UUID (the VM's id, as Hyper-V's BIOSGUID). */
  biosGuid?: string;
  /** Continue from this saved-state file instead of booting (Start-VM of a Saved VM). */
  restoreFrom?: string;
  /** The virtual switches the hardware's network adapters name. */
  switches?: SwitchConfig[];
  /** The worker's end of the file-grant socketpair (fd-passing.ts), when the service made one. */
  fileChannel?: number;
  /** An open /dev/kvm the service handed in (a sandboxed worker has no device node and may run as nobody). */
  kvmDeviceFd?: number;
}

/** Get-VMNetworkAdapter's live part, from the worker. */
export interface AdapterStatus {
  name: string; macAddress: string; switchName: string | null; linkUp: boolean; ready: boolean; rxFrames: number; txFrames: number; rxDropped: number; malformed: number;
  /** The guest's addresses on this adapter, from its KVP daemon (KVP_OP_GET_IP_INFO); empty until it reports. */
  ipAddresses: string[];
  /** The rest of the guest's answer; null until it reported. */
  ipConfiguration: { subnets: string[]; gateways: string[]; dnsServers: string[]; dhcpEnabled: boolean; reportedAt: string } | null;
}

export type WorkerOp =
  | { op: 'turnOff'; reason: string }
  | { op: 'pause' } | { op: 'resume' } | { op: 'reset' }
  | { op: 'shutdown'; reboot: boolean; force: boolean }
  | { op: 'icList' }
  | { op: 'icSet'; name: IcName; enabled: boolean }
  | { op: 'kvpRead' }
  | { op: 'kvpSet'; key: string; value: string }
  | { op: 'kvpRemove'; key: string }
  /** Save-VM: pause, write the saved-state file to `path`, stay paused (the service then turns the worker off). */
  | { op: 'save'; path: string }
  /** Checkpoint-VM: pause at an instruction boundary, write the saved-state file to `path`, then carry on
   *  as before (a paused VM stays paused). */
  | { op: 'checkpoint'; path: string }
  /** Online checkpoint with disks, step 1: pause, write the saved state to `path` (unless null), then flush and
   *  close the disk files `disks` (their I/O waits); the guest stays paused. */
  | { op: 'checkpointDetach'; path: string | null; disks: string[] }
  /** Step 2: open each `to` in place of `from` (the guest does not notice) and carry on as before step 1. */
  | { op: 'checkpointAttach'; swaps: { from: string; to: string }[] }
  /** Online merge (a checkpoint of a running VM deleted), step 1: copy `child`'s own data into its parent while
   *  the guest runs, then hold the disk's I/O with the parent complete and flushed (worker-disks.ts). */
  | { op: 'mergeCopy'; child: string; parent: string }
  /** Step 2: commit (the service recorded the switch): continue on the parent; else continue on the child. */
  | { op: 'mergeFinish'; child: string; commit: boolean }
  /** Production checkpoint: the guest freezes its file systems (VSS IC; fails when it cannot), then thaws them. */
  | { op: 'vssFreeze' } | { op: 'vssThaw' }
  /** Connect-/Disconnect-VMNetworkAdapter while running. */
  | { op: 'netConnect'; adapter: string; switchName: string | null; switchConfig?: SwitchConfig }
  | { op: 'netStatus' }
  /** Add-VMNetworkAdapter / Remove-VMNetworkAdapter while running (VMBus offer / rescind). */
  | { op: 'netAdd'; adapter: NetworkAdapterConfig; switchConfig?: SwitchConfig }
  | { op: 'netRemove'; adapter: string }
  /** Add-VMHardDiskDrive on a running VM: hot-add a SCSI disk (the partition opens the file). */
  | { op: 'attachDrive'; drive: DriveConfig }
  /** Remove-VMHardDiskDrive on a running VM: hot-remove the SCSI disk at that slot (the partition closes the file). */
  | { op: 'detachDrive'; controllerType: DriveConfig['controllerType']; controllerNumber: number; controllerLocation: number }
  /** Set-VMDvdDrive on a running VM: insert another disc (drive.path) or eject (null). */
  | { op: 'changeMedia'; drive: DriveConfig };

export type ToWorker =
  | { t: 'start'; config: WorkerStartConfig }
  /** `files`: descriptors sent over the file channel just before this message, for this request (worker-files.ts). */
  | { t: 'req'; id: number; req: WorkerOp; files?: FileGrant[] }
  | { t: 'console'; data: Uint8Array }
  /** A frame from the service's side of a switch (another VM, or the VM's passt). */
  | { t: 'frame'; switchName: string; data: Uint8Array }
  /** The uplink of a switch came up or went down (the VM's passt, run by the service). */
  | { t: 'link'; switchName: string; up: boolean };

export interface WorkerStatus {
  paused: boolean;
  backend: string;
  heartbeat: string | null;
  ics: IntegrationServiceInfo[] | null;
  /** The guest's KVP pool 2 (OSName, OSVersion, NetworkAddressIPv4...), once the KVP daemon answered. */
  guest: Record<string, string> | null;
  /** Each adapter's addresses as the guest's KVP daemon last reported them (Get-VM's IPAddresses). */
  adapterAddresses?: Array<{ macAddress: string; addresses: string[] }>;
}

export type FromWorker =
  | { t: 'started'; backend: string }
  | { t: 'status'; status: WorkerStatus }
  | { t: 'console'; data: Uint8Array }
  | { t: 'res'; id: number; ok: true; value: unknown }
  | { t: 'res'; id: number; ok: false; error: string; code: string }
  | { t: 'log'; message: string }
  /** A frame for the other VMs on a Private switch. */
  | { t: 'frame'; switchName: string; data: Uint8Array }
  | { t: 'exit'; code: number; reason: string }
  | { t: 'failed'; error: string };
