/**
 * A VM's hardware description: controllers, drives and network adapters, in Hyper-V's terms. The partition
 * is assembled from this one description (Partition.create), and the management service stores it per VM.
 * Plain data (JSON-safe), so it travels from the service to the worker and into saved state unchanged.
 */

/** Hyper-V limits: 4 synthetic SCSI controllers x 64 locations; 2 IDE controllers x 2 locations. */
export const MAX_SCSI_CONTROLLERS = 4;
export const SCSI_LOCATIONS = 64;
export const IDE_CONTROLLERS = 2;
export const IDE_LOCATIONS = 2;

export interface DriveConfig {
  controllerType: 'scsi' | 'ide';
  controllerNumber: number;
  controllerLocation: number;
  /** 'disk': a virtual hard disk (VHDX or raw). 'dvd': an ISO image in a DVD drive (IDE or SCSI). */
  kind: 'disk' | 'dvd';
  /** Absolute path of the VHDX, raw image or ISO; null for an empty DVD drive. */
  path: string | null;
  readOnly?: boolean;
}

export interface NetworkAdapterConfig {
  /** Hyper-V's adapter name ("Network Adapter"). */
  name: string;
  /** Legacy (emulated DEC 21140) instead of synthetic (netvsp). */
  legacy: boolean;
  /** 00:15:5d:xx:xx:xx unless set statically. */
  macAddress: string;
  /** Virtual switch it connects to; null = not connected (link down). */
  switchName: string | null;
}

export interface HardwareConfig {
  /** Synthetic SCSI controllers present (0-4). */
  scsiControllers: number;
  drives: DriveConfig[];
  networkAdapters: NetworkAdapterConfig[];
}

export function emptyHardware(): HardwareConfig { return { scsiControllers: 0, drives: [], networkAdapters: [] }; }
