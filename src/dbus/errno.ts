/**
 * Errors named after errno values the way sd-bus names them when a method fails with one: a few
 * errnos have a standard D-Bus error (EINVAL is InvalidArgs, EACCES and EPERM are AccessDenied, …),
 * every other is `System.Error.<ENAME>`, and the message is the C library's text for it.
 */
import { constants } from 'node:os';
import { DBusError, DBusErrors } from './errors.js';
import { errnoName, strerror } from './unix-socket.js';

const STANDARD: Record<string, string> = {
  ENOMEM: DBusErrors.NoMemory,
  EPERM: DBusErrors.AccessDenied,
  EACCES: DBusErrors.AccessDenied,
  EINVAL: DBusErrors.InvalidArgs,
  ESRCH: 'org.freedesktop.DBus.Error.UnixProcessIdUnknown',
  ENOENT: DBusErrors.FileNotFound,
  EEXIST: DBusErrors.FileExists,
  ETIMEDOUT: DBusErrors.Timeout,
  ETIME: DBusErrors.Timeout,
  EIO: DBusErrors.IOError,
  ENETRESET: DBusErrors.Disconnected,
  ECONNABORTED: DBusErrors.Disconnected,
  ECONNRESET: DBusErrors.Disconnected,
  EOPNOTSUPP: DBusErrors.NotSupported,
  EADDRNOTAVAIL: DBusErrors.BadAddress,
  ENOBUFS: DBusErrors.LimitsExceeded,
  EADDRINUSE: 'org.freedesktop.DBus.Error.AddressInUse',
  EBADMSG: DBusErrors.InconsistentMessage,
};

/** The D-Bus error for an errno (a number like 2, or a name like 'ENOENT'); `message` overrides libc's text. */
export function errnoError(errno: number | string, message?: string): DBusError {
  const name = typeof errno === 'number' ? errnoName(errno) : errno;
  const number = typeof errno === 'number' ? errno : (constants.errno as Record<string, number>)[errno];
  if (!name || number === undefined) return new DBusError(DBusErrors.Failed, message ?? `errno ${errno}`);
  return new DBusError(STANDARD[name] ?? `System.Error.${name}`, message ?? strerror(number));
}
