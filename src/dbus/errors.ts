/**
 * The error types of the D-Bus module: `DBusError` is an error reply (a name and a message, as it
 * travels on the bus); `DBusProtocolError` is malformed wire data or a broken peer, never sent as a
 * reply; `DBusErrors` lists the standard error names as the reference bus library spells them, and
 * `StandardErrors` builds the routing errors with sd-bus's wording.
 */

/** Standard error names (org.freedesktop.DBus.Error.*). */
export const DBusErrors = {
  Failed: 'org.freedesktop.DBus.Error.Failed',
  NoMemory: 'org.freedesktop.DBus.Error.NoMemory',
  ServiceUnknown: 'org.freedesktop.DBus.Error.ServiceUnknown',
  NameHasNoOwner: 'org.freedesktop.DBus.Error.NameHasNoOwner',
  NoReply: 'org.freedesktop.DBus.Error.NoReply',
  IOError: 'org.freedesktop.DBus.Error.IOError',
  BadAddress: 'org.freedesktop.DBus.Error.BadAddress',
  NotSupported: 'org.freedesktop.DBus.Error.NotSupported',
  LimitsExceeded: 'org.freedesktop.DBus.Error.LimitsExceeded',
  AccessDenied: 'org.freedesktop.DBus.Error.AccessDenied',
  AuthFailed: 'org.freedesktop.DBus.Error.AuthFailed',
  NoServer: 'org.freedesktop.DBus.Error.NoServer',
  Timeout: 'org.freedesktop.DBus.Error.Timeout',
  NoNetwork: 'org.freedesktop.DBus.Error.NoNetwork',
  Disconnected: 'org.freedesktop.DBus.Error.Disconnected',
  InvalidArgs: 'org.freedesktop.DBus.Error.InvalidArgs',
  FileNotFound: 'org.freedesktop.DBus.Error.FileNotFound',
  FileExists: 'org.freedesktop.DBus.Error.FileExists',
  UnknownMethod: 'org.freedesktop.DBus.Error.UnknownMethod',
  UnknownObject: 'org.freedesktop.DBus.Error.UnknownObject',
  UnknownInterface: 'org.freedesktop.DBus.Error.UnknownInterface',
  UnknownProperty: 'org.freedesktop.DBus.Error.UnknownProperty',
  PropertyReadOnly: 'org.freedesktop.DBus.Error.PropertyReadOnly',
  InconsistentMessage: 'org.freedesktop.DBus.Error.InconsistentMessage',
  MatchRuleNotFound: 'org.freedesktop.DBus.Error.MatchRuleNotFound',
  MatchRuleInvalid: 'org.freedesktop.DBus.Error.MatchRuleInvalid',
  InteractiveAuthorizationRequired: 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired',
} as const;

/**
 * An error reply: what a handler throws to answer a call with an error, and what a failed call
 * rejects with. `name` (and its alias `type`) is the D-Bus error name, e.g.
 * `org.freedesktop.DBus.Error.InvalidArgs`, so that a printed error shows it.
 */
export class DBusError extends Error {
  override name: string;

  constructor(
    /** The error name, e.g. `org.freedesktop.DBus.Error.InvalidArgs`. */
    readonly type: string,
    message = '',
    /** The error reply's whole body (usually just the message). */
    readonly body: unknown[] = [message],
  ) {
    super(message);
    this.name = type;
  }
}

/** The errors the object server answers for calls it cannot route, worded as sd-bus words them. */
export const StandardErrors = {
  unknownObject: (path: string) => new DBusError(DBusErrors.UnknownObject, `Unknown object '${path}'.`),
  unknownMethod: (member: string, iface: string) => new DBusError(DBusErrors.UnknownMethod, `Unknown method ${member} or interface ${iface}.`),
  invalidArgs: (got: string, iface: string, member: string, want: string) =>
    new DBusError(DBusErrors.InvalidArgs, `Invalid arguments '${got}' to call ${iface}.${member}(), expecting '${want}'.`),
};

/** Wire data that breaks the specification, or a peer that broke the protocol. */
export class DBusProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DBusProtocolError';
  }
}
