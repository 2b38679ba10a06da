/**
 * The message bus as a client sees it: connecting to a bus (handshake and `Hello`), and the bus
 * driver's methods berth needs: RequestName/ReleaseName, AddMatch/RemoveMatch, GetNameOwner and
 * GetConnectionCredentials (who sent a message, as the broker vouches for it).
 */
import { Connection, type ConnectionOptions } from './connection.js';
import { systemBusAddress } from './address.js';
import { DBusError, DBusErrors } from './errors.js';
import { closeFd } from './unix-socket.js';
import { Variant } from './variant.js';

const DRIVER = { destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus' };

export const NameFlags = { AllowReplacement: 1, ReplaceExisting: 2, DoNotQueue: 4 } as const;

export const RequestNameReply = { PrimaryOwner: 1, InQueue: 2, Exists: 3, AlreadyOwner: 4 } as const;
export const ReleaseNameReply = { Released: 1, NonExistent: 2, NotOwner: 3 } as const;

export type BusOptions = Partial<ConnectionOptions>;

/** Connects to a bus (default: the system bus) and says Hello; `uniqueName` is then set. */
export async function connectBus(options: BusOptions = {}): Promise<Connection> {
  const conn = await Connection.connect({ ...options, address: options.address ?? systemBusAddress() });
  try {
    const reply = await conn.call({ ...DRIVER, member: 'Hello' });
    conn.uniqueName = reply.body[0] as string;
  } catch (e) {
    conn.close();
    throw e;
  }
  return conn;
}

/** Asks for a well-known name; resolves with a RequestNameReply value. */
export async function requestName(conn: Connection, name: string, flags = 0): Promise<number> {
  const r = await conn.call({ ...DRIVER, member: 'RequestName', signature: 'su', body: [name, flags] });
  return r.body[0] as number;
}

/** Gives a well-known name up; resolves with a ReleaseNameReply value. */
export async function releaseName(conn: Connection, name: string): Promise<number> {
  const r = await conn.call({ ...DRIVER, member: 'ReleaseName', signature: 's', body: [name] });
  return r.body[0] as number;
}

/** Adds a match rule, e.g. "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'". */
export async function addMatch(conn: Connection, rule: string): Promise<void> {
  await conn.call({ ...DRIVER, member: 'AddMatch', signature: 's', body: [rule] });
}

export async function removeMatch(conn: Connection, rule: string): Promise<void> {
  await conn.call({ ...DRIVER, member: 'RemoveMatch', signature: 's', body: [rule] });
}

/** The unique name owning `name`, or undefined when no one does. */
export async function getNameOwner(conn: Connection, name: string): Promise<string | undefined> {
  try {
    return (await conn.call({ ...DRIVER, member: 'GetNameOwner', signature: 's', body: [name] })).body[0] as string;
  } catch (e) {
    if (e instanceof DBusError && e.type === DBusErrors.NameHasNoOwner) return undefined;
    throw e;
  }
}

export interface Credentials {
  uid?: number;
  pid?: number;
  /** A pidfd of the sender's process (the caller must close it); only where the broker offers it. */
  pidfd?: number;
  gids?: number[];
  /** The LSM label (e.g. SELinux context), NUL stripped. */
  securityLabel?: string;
}

/** What the broker knows of the connection `name` (a unique name, usually a message's sender). */
export async function getConnectionCredentials(conn: Connection, name: string): Promise<Credentials> {
  const r = await conn.call({ ...DRIVER, member: 'GetConnectionCredentials', signature: 's', body: [name] });
  const dict = r.body[0] as Map<string, Variant>;
  const out: Credentials = {};
  const pick = (k: string) => dict.get(k)?.value;
  if (typeof pick('UnixUserID') === 'number') out.uid = pick('UnixUserID') as number;
  if (typeof pick('ProcessID') === 'number') out.pid = pick('ProcessID') as number;
  if (typeof pick('ProcessFD') === 'number') out.pidfd = pick('ProcessFD') as number;
  if (Array.isArray(pick('UnixGroupIDs'))) out.gids = pick('UnixGroupIDs') as number[];
  const label = pick('LinuxSecurityLabel');
  if (Buffer.isBuffer(label)) out.securityLabel = label.toString('utf8').replace(/\0+$/, '');
  // Any other descriptor the reply carried is not ours to keep.
  for (const fd of r.fds) if (fd !== out.pidfd) closeFd(fd);
  return out;
}
