/**
 * The service's record of one VM: its inventory row, and while it runs, its worker process (Runtime) with the
 * requests in flight and the console history.
 */
import type { ChildProcess } from 'node:child_process';
import type { VmRecord } from './store.js';
import type { VmState } from './states.js';
import type { WorkerStatus } from './worker-protocol.js';
import type { FileChannel } from './worker-grants.js';

export interface Runtime {
  child: ChildProcess;
  /** Disk files whose lock-holder records the service wrote for this worker. */
  heldDisks: string[];
  pid: number;
  startedAt: number;
  backend: string | null;
  status: WorkerStatus | null;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>;
  nextId: number;
  /** Why the worker is ending, when the service or the guest decided it (otherwise it crashed). */
  exitReason: string | null;
  /** Runs under bubblewrap (its file view is fixed at start: later files reach it as descriptors, through `files`). */
  isolated: boolean;
  /** Hands the worker files it opens after start (worker-grants.ts); null where descriptors cannot be passed. */
  files: FileChannel | null;
  /** Online merges under way: child -> parent (mergeFinish opens the parent). */
  mergeParents: Map<string, string>;
  stderrTail: string;
  exited: Promise<void>;
  cpuTicks: number;
  cpuAt: number;
  cpuUsage: number;
  /** State the VM takes when the worker ends: Off, or Saved after a Save-VM / a failed restore. */
  finalState: VmState;
}

export interface Entry {
  rec: VmRecord;
  rt: Runtime | null;
  lastError: string | null;
  history: Buffer[];
  historyBytes: number;
  consoleListeners: Set<(b: Uint8Array) => void>;
}

export function newEntry(rec: VmRecord): Entry {
  return { rec, rt: null, lastError: null, history: [], historyBytes: 0, consoleListeners: new Set() };
}
