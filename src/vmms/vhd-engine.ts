/**
 * What the VHD commands (New-VHD, Get-VHD, Resize-VHD, Merge-VHD, Convert-VHD, Optimize-VHD, Test-VHD) need
 * from the virtual-disk code, as one interface. The service and the CLI call only this; the engine behind it
 * is swappable (vhd-native.ts: the project's own VHDX code).
 */
import { NativeVhdEngine } from './vhd-native.js';

export type VhdType = 'Fixed' | 'Dynamic' | 'Differencing';

/** Get-VHD's fields. Sizes in bytes; null where the engine cannot tell. */
export interface VhdInfo {
  path: string;
  vhdFormat: 'VHDX' | 'VHD' | 'RAW';
  vhdType: VhdType;
  fileSize: number;
  size: number;
  minimumSize: number | null;
  logicalSectorSize: number;
  physicalSectorSize: number;
  blockSize: number;
  parentPath: string | null;
  diskIdentifier: string | null;
  fragmentationPercentage: number | null;
}

export interface NewVhdOptions {
  path: string;
  sizeBytes: number;
  type: VhdType;
  parentPath?: string;
  blockSizeBytes?: number;
  logicalSectorSizeBytes?: 512 | 4096;
  physicalSectorSizeBytes?: 512 | 4096;
}

/** Called as work proceeds: `done` of `total` units (bytes where the engine knows them). */
export type Progress = (done: number, total: number) => void;

export interface VhdCheck { ok: boolean; problems: string[] }

export interface VhdEngine {
  readonly name: string;
  create(o: NewVhdOptions, progress?: Progress): Promise<void>;
  describe(path: string): Promise<VhdInfo>;
  resize(path: string, sizeBytes: number, progress?: Progress): Promise<void>;
  /** Merges a differencing disk into its parent (or into `destination`, an ancestor). */
  merge(path: string, destination: string | undefined, progress?: Progress): Promise<void>;
  convert(path: string, destination: string, type: VhdType | undefined, progress?: Progress): Promise<void>;
  /** Gives unused space back (compacts a dynamic disk). */
  optimize(path: string, progress?: Progress): Promise<void>;
  check(path: string): Promise<VhdCheck>;
}

/** Raised for a request the engine understands but cannot carry out (bad file, unsupported kind). */
export class VhdEngineError extends Error {
  /** 'locked': another user (a VM, a merge...) holds the file. */
  constructor(message: string, readonly reason: 'locked' | 'failed' = 'failed') { super(message); this.name = 'VhdEngineError'; }
}

let current: VhdEngine | null = null;

/** The engine in use: the native one (src/storage) unless a test or embedder set another. */
export function vhdEngine(): VhdEngine { return (current ??= new NativeVhdEngine()); }
export function setVhdEngine(e: VhdEngine): void { current = e; }
