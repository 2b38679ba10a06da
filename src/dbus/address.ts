/**
 * D-Bus server addresses as this module supports them: `unix:path=…` and `unix:abstract=…`, values
 * percent-decoded, several addresses separated by `;` (tried in order); the system bus address from
 * DBUS_SYSTEM_BUS_ADDRESS with the specification's default.
 */
import { DBusError, DBusErrors } from './errors.js';

export const DEFAULT_SYSTEM_BUS_ADDRESS = 'unix:path=/run/dbus/system_bus_socket';

export type BusAddress = { kind: 'path'; path: string } | { kind: 'abstract'; name: string };

/** Parses an address list; unsupported transports are skipped, none left is an error. */
export function parseBusAddress(text: string): BusAddress[] {
  const out: BusAddress[] = [];
  for (const one of text.split(';')) {
    if (!one) continue;
    const colon = one.indexOf(':');
    if (colon < 0) throw new DBusError(DBusErrors.BadAddress, `address '${one}' has no transport`);
    if (one.slice(0, colon) !== 'unix') continue;
    const params = new Map<string, string>();
    for (const kv of one.slice(colon + 1).split(',')) {
      const eq = kv.indexOf('=');
      if (eq < 0) continue;
      try {
        params.set(kv.slice(0, eq), decodeURIComponent(kv.slice(eq + 1)));
      } catch {
        throw new DBusError(DBusErrors.BadAddress, `address '${one}' has a bad escape`);
      }
    }
    const path = params.get('path');
    const abstract = params.get('abstract');
    if (path) out.push({ kind: 'path', path });
    else if (abstract) out.push({ kind: 'abstract', name: abstract });
  }
  if (out.length === 0) throw new DBusError(DBusErrors.BadAddress, `no usable unix address in '${text}'`);
  return out;
}

/** The system bus's address: $DBUS_SYSTEM_BUS_ADDRESS, or the default socket. */
export function systemBusAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || DEFAULT_SYSTEM_BUS_ADDRESS;
}

/** The struct sockaddr_un for an address: family, then the path with NUL, or NUL and the abstract name. */
export function socketAddress(a: BusAddress): Buffer {
  const name = Buffer.from(a.kind === 'path' ? a.path : a.name, 'utf8');
  if (name.length + 1 > 108) throw new DBusError(DBusErrors.BadAddress, 'socket name too long');
  const addr = Buffer.alloc(2 + 1 + name.length);
  addr.writeUInt16LE(1 /* AF_UNIX */, 0);
  if (a.kind === 'path') name.copy(addr, 2);
  else name.copy(addr, 3);
  return addr;
}

/**
 * Tries the addresses of a list in order with `open` and gives what the first that accepts gave; when none
 * does, DBusError NoServer with the last failure.
 */
export async function connectFirst<T>(address: string, open: (a: BusAddress) => T | Promise<T>): Promise<T> {
  let last: unknown;
  for (const a of parseBusAddress(address)) {
    try {
      return await open(a);
    } catch (e) {
      last = e;
    }
  }
  const why = last instanceof Error ? last.message : String(last);
  throw new DBusError(DBusErrors.NoServer, `cannot connect to ${address}: ${why}`);
}
