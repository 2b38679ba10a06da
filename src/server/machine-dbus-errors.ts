/**
 * What the D-Bus binding of org.freedesktop.machine1 shares between its Manager and Machine objects: the
 * object paths, the caller as the broker vouches for it, the error replies named and worded as machined
 * gives them, and the operation failures (machine-operations.ts) turned into those replies.
 */
import { DBusError, DBusErrors, errnoError, pathForLabel, type CallContext } from '../dbus/index.js';
import type { OperationError, OpResult, Caller } from './machine-operations.js';

export const BUS_NAME = 'org.freedesktop.machine1';
export const MANAGER_PATH = '/org/freedesktop/machine1';
export const MACHINE_PREFIX = '/org/freedesktop/machine1/machine';
export const IMAGE_PREFIX = '/org/freedesktop/machine1/image';

const E = {
  NoSuchMachine: 'org.freedesktop.machine1.NoSuchMachine',
  MachineExists: 'org.freedesktop.machine1.MachineExists',
  NoMachineForPID: 'org.freedesktop.machine1.NoMachineForPID',
  NoPrivateNetworking: 'org.freedesktop.machine1.NoPrivateNetworking',
  NoUIDShift: 'org.freedesktop.machine1.NoUIDShift',
  NoSuchUserMapping: 'org.freedesktop.machine1.NoSuchUserMapping',
  NoSuchGroupMapping: 'org.freedesktop.machine1.NoSuchGroupMapping',
} as const;

/** The object path of a machine: its name label-escaped (`.host` is `_2ehost`). */
export const machinePath = (name: string): string => pathForLabel(MACHINE_PREFIX, name);

export const noSuchMachine = (name: string) => new DBusError(E.NoSuchMachine, `No machine '${name}' known`);
export const noMachineForPid = (pid: number) => new DBusError(E.NoMachineForPID, `PID ${pid} does not belong to any known machine`);
export const invalidArgs = (message: string) => new DBusError(DBusErrors.InvalidArgs, message);
export const notSupported = (message = 'Not supported') => new DBusError(DBusErrors.NotSupported, message);

/** The sender, as the broker vouches for it (never a field of the message). An unknown uid counts as unprivileged. */
export async function callerOf(ctx: CallContext): Promise<Caller> {
  // berth decides by uid and pid (the object server keeps no pidfd the broker offered).
  const creds = await ctx.credentials();
  return { uid: creds.uid ?? -1, ...(creds.pid !== undefined ? { pid: creds.pid } : {}) };
}

/** Words for the failures whose message names what was asked. */
export interface ErrorSubject {
  /** The machine's name. */
  name: string;
  /** The uid or gid a mapping was asked for. */
  id?: number;
}

/** The D-Bus error for an operation failure, as machined names and words it. */
export function toDBusError(e: OperationError, subject: ErrorSubject): DBusError {
  const { name, id } = subject;
  if ('permissionDenied' in e) return new DBusError(DBusErrors.AccessDenied, 'Access denied');
  if ('errno' in e) return errnoError(e.errno);
  if ('invalidParameter' in e) return invalidArgs(`Invalid ${e.invalidParameter}`);
  switch (e.error) {
    case 'io.systemd.Machine.NoSuchMachine':
      return noSuchMachine(name);
    case 'io.systemd.Machine.MachineExists':
      return new DBusError(E.MachineExists, `Machine '${name}' already exists`);
    case 'io.systemd.Machine.NoPrivateNetworking':
      return new DBusError(E.NoPrivateNetworking, `Machine ${name} does not use private networking`);
    case 'io.systemd.Machine.NoUIDShift':
      return new DBusError(E.NoUIDShift, `Machine ${name} uses a complex UID/GID mapping, cannot determine shift`);
    case 'io.systemd.Machine.NoSuchUser':
      return new DBusError(E.NoSuchUserMapping, id === undefined ? `Machine '${name}' has no matching user mappings.` : `No matching user mapping for ${id}.`);
    case 'io.systemd.Machine.NoSuchGroup':
      return new DBusError(E.NoSuchGroupMapping, id === undefined ? `Machine '${name}' has no matching group mappings.` : `No matching group mapping for ${id}.`);
    case 'io.systemd.Machine.UserInHostRange':
      return new DBusError(E.NoSuchUserMapping, `User ${id} belongs to host UID range`);
    case 'io.systemd.Machine.GroupInHostRange':
      return new DBusError(E.NoSuchGroupMapping, `Group ${id} belongs to host GID range`);
    case 'io.systemd.Machine.NotSupported':
    case 'io.systemd.Machine.NotAvailable':
      return notSupported(`Not supported for machine ${name}`);
  }
  return new DBusError(DBusErrors.Failed, String((e as { error: string }).error));
}

/** The value of a Result, or its failure thrown as the D-Bus error. */
export function unwrap<T>(r: OpResult<T>, subject: ErrorSubject): T {
  if (!r.ok) throw toDBusError(r.error, subject);
  return r.value;
}
