/** The public surface of the D-Bus module (it knows nothing of machines; see each file for its job). */
export { DBusError, DBusErrors, DBusProtocolError, StandardErrors } from './errors.js';
export { Variant, variant } from './variant.js';
export { parseSignature, isValidSignature, type DBusType } from './signature.js';
export { isBusName, isErrorName, isInterfaceName, isMemberName, isObjectPath } from './names.js';
export { marshal } from './marshal.js';
export { unmarshal } from './unmarshal.js';
export { createMessage, decodeMessage, encodeMessage, MessageFlags, MessageType, MAX_MESSAGE_SIZE, type Message } from './message.js';
export { MessageFramer } from './framer.js';
export { parseBusAddress, systemBusAddress, DEFAULT_SYSTEM_BUS_ADDRESS, type BusAddress } from './address.js';
export { Transport, type TransportOptions } from './transport.js';
export { Connection, DEFAULT_CALL_TIMEOUT_MS, type CallRequest, type ConnectionOptions } from './connection.js';
export {
  addMatch, connectBus, getConnectionCredentials, getNameOwner, NameFlags, releaseName, ReleaseNameReply, removeMatch,
  requestName, RequestNameReply, type BusOptions, type Credentials,
} from './bus.js';
export { ObjectServer, type ObjectServerOptions, type SubtreeSpec } from './object-server.js';
export type { CallContext, EmitsChange, InterfaceSpec, MethodHandler, MethodSpec, PropertySpec, SignalSpec } from './interface.js';
export { escapeLabel, unescapeLabel, pathForLabel, labelFromPath } from './label.js';
export { closeFd, dupFd, SystemCallError } from './unix-socket.js';
export { errnoError } from './errno.js';
