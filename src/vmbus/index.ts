export { VmbusHost, VmbusDevice, type VmbusHostOptions, type DeviceState, type ConnectionState } from './host.js';
export { Channel, ChannelClosedError, type ChannelProvider, type VmbusPacket, type CloseReason, type SendOptions } from './channel.js';
export { Gpadl } from './gpadl.js';
export { guidToBytes, guidFromBytes, randomGuid } from './guid.js';
export * as vmbusProtocol from './protocol.js';
