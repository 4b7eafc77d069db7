export { IntegrationServices, IC_NAMES, type IcName, type IntegrationServicesOptions, type IntegrationServiceInfo } from './integration-services.js';
export { IntegrationComponent, IcError, type IcStatus, S_OK, E_FAIL, S_CONT } from './framework.js';
export { HeartbeatIc, HEARTBEAT_GUID } from './heartbeat.js';
export { ShutdownIc, SHUTDOWN_GUID, type ShutdownRequest } from './shutdown.js';
export { TimeSyncIc, TIMESYNC_GUID, WLTIMEDELTA, type TimeSample } from './timesync.js';
export { KvpIc, KVP_GUID, KvpPool, KVP_INTRINSIC_KEYS } from './kvp.js';
export { VssIc, VSS_GUID, type VssResult } from './vss.js';
