export { Hypervisor, type HypervisorOptions } from './hypervisor.js';
export { HyperVCpuid, combineCpuid, isHypervisorLeaf } from './cpuid.js';
export { SynIC, type InterruptInjector } from './synic.js';
export { HypercallDispatcher, decodeControl, type HypervisorConnections } from './hypercall.js';
export { ReferenceTime } from './reference-time.js';
export { decodeGuestOsId, type GuestOsIdentity } from './guest-os-id.js';
export { vmcallPage, vmmcallPage, portIoPage, type HypercallPageWriter } from './hypercall-page.js';
export { type FaultLogger, consoleFaultLogger } from './guest-memory-access.js';
export * as tlfs from './tlfs.js';
