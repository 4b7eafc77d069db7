/** VM states in Hyper-V's vocabulary (Microsoft.HyperV.PowerShell.VMState), the subset hyperts reaches. */
export const VM_STATES = ['Off', 'Starting', 'Running', 'Pausing', 'Paused', 'Resuming', 'Reset', 'Stopping', 'Saving', 'Saved'] as const;
export type VmState = typeof VM_STATES[number];

/** States in which a worker process exists. */
export const ACTIVE_STATES: ReadonlySet<VmState> = new Set(['Starting', 'Running', 'Pausing', 'Paused', 'Resuming', 'Reset', 'Stopping']);
