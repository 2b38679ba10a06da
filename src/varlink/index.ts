/** A Varlink implementation for Node: IDL, generated types, server, client. */
export * from './errors.js';
export * from './interface.js';
export * from './call.js';
export { VarlinkServer, parameterName, type ServerOptions, type ImplementOptions, type ListenOptions } from './server.js';
export { VarlinkClient, DEFAULT_TIMEOUT_MS, type CallOptions, type ClientOptions, type Proxy, type ProxyMethod } from './client.js';
export { parseAddress, formatAddress, connectAddress, AddressError, type Address } from './address.js';
export { activatedSockets, type ActivatedSocket } from './activation.js';
export { peerCredentials, socketFd, type PeerCredentials } from './peer.js';
export { serveSystemdService } from './systemd-service.js';
export { MessageReader, DEFAULT_MAX_MESSAGE_SIZE } from './wire.js';
