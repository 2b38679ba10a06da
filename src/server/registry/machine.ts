// The Machine object model: what the registry holds for a machine, the typed requests its operations
// take (a validated registration, a lookup), and the `Result`/`RegistryError` values they answer with.
// Nothing here knows about a wire: each API binding turns its own parameters into these requests
// (src/server/machine-params.ts for Varlink) and RegistryError values into its own errors.

/** Classes a client may register. `host` only exists for the synthetic `.host` entry. */
export type MachineClass = 'container' | 'vm';

/** Why an operation of the registry failed, in a form the API layer maps onto Varlink errors. */
export type MachineErrorName =
  | 'io.systemd.Machine.MachineExists'
  | 'io.systemd.Machine.NoSuchMachine'
  | 'io.systemd.Machine.NotSupported'
  | 'io.systemd.Machine.NotAvailable'
  | 'io.systemd.Machine.NoPrivateNetworking'
  | 'io.systemd.Machine.NoUIDShift';

export type RegistryError =
  | { error: MachineErrorName }
  | { invalidParameter: string }
  | { errno: number }
  | { permissionDenied: true };

export type Result<T> = { ok: true; value: T } | { ok: false; error: RegistryError };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(error: RegistryError): Result<T> => ({ ok: false, error });

/** Linux errno values the registry reports. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  EOPNOTSUPP: 95,
} as const;

/** A reference to a process as clients send it (`ProcessId` in the IDL). */
export interface ProcessRef {
  pid: number;
  pidfdId?: number;
  bootId?: string;
}

/** The leader as the registry tracks it. `starttime` is field 22 of /proc/PID/stat (clock ticks since boot). */
export interface LeaderInfo {
  pid: number;
  pidfdId?: number;
  starttime?: number;
}

export interface Timestamp {
  /** µs, CLOCK_REALTIME */
  realtime: number;
  /** µs, CLOCK_MONOTONIC */
  monotonic: number;
}

/** The process that registered a machine (machined 262's "supervisor"), as far as it can be told apart later. */
export interface SupervisorInfo {
  pid: number;
  pidfdId?: number;
  /** Field 22 of /proc/PID/stat, when read at registration. */
  starttime?: number;
}

export interface Machine {
  name: string;
  /** 32 lowercase hex digits, absent when the client sent none (or all zeros). */
  id?: string;
  service?: string;
  class: MachineClass | 'host';
  leader: LeaderInfo;
  rootDirectory?: string;
  ifIndices: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  /** Absolute path of the socket the machine's own io.systemd.MachineInstance service listens on. */
  controlAddress?: string;
  /** The caller of Register; absent for `.host` and when the caller's PID was unknown. */
  supervisor?: SupervisorInfo;
  /** The unit the machine lives in, e.g. `machine-foo.scope` or `systemd-nspawn@foo.service`. */
  unit?: string;
  /** The cgroup path of that unit, relative to the hierarchy root (`/machine.slice/machine-foo.scope`). */
  unitCgroup?: string;
  /** The leader's cgroup below the unit's (`payload`), when it is not the unit's own cgroup. */
  subgroup?: string;
  /** True when berth created the scope cgroup itself and should remove it on teardown. */
  ownsScope: boolean;
  timestamp: Timestamp;
  /** UID of the peer that registered the machine (0 for root). */
  registeredBy: number;
  allocateUnit: boolean;
}

/** A validated Register call, before the registry has looked at its own state. */
export interface RegistrationSpec {
  name: string;
  id?: string;
  service?: string;
  class: MachineClass | 'host';
  leader?: ProcessRef;
  rootDirectory?: string;
  ifIndices?: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
  controlAddress?: string;
  allocateUnit: boolean;
  allowInteractiveAuthentication: boolean;
  /**
   * Unit properties the caller wants on its scope (D-Bus CreateMachine's scope_properties, D-Bus variants):
   * where systemd makes the scope they follow machined's own in StartTransientUnit, as machined sends them.
   */
  scopeProperties?: ReadonlyArray<readonly [string, unknown]>;
}

/** What the checks need to know about processes; injectable so the checks stay testable. */
export interface ProcessProbe {
  /** Does a process with this PID exist (zombies included)? */
  exists(pid: number): boolean;
  /** The inode number of a pidfd for this PID, if pidfd inode numbers identify processes on this kernel. */
  pidfdId?(pid: number): number | undefined;
  /** The boot ID of this system, 32 lowercase hex digits. */
  bootId?(): string | undefined;
}

/** A validated lookup (Unregister, Terminate, Kill, List, Open): by name, by process, or both. */
export interface LookupSpec {
  name?: string;
  pid?: ProcessRef;
}

export type KillWhom = 'leader' | 'supervisor' | 'all';

/** Current time as machined records it: µs on CLOCK_REALTIME and CLOCK_MONOTONIC. */
export function now(): Timestamp {
  const realtime = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const monotonic = Number(process.hrtime.bigint() / 1000n);
  return { realtime, monotonic };
}

/**
 * Where a machine's file system is reachable from the host: the leader's root, as /proc shows it
 * (open files there with openInRoot, never by plain path), or / for the host.
 */
export function machineRoot(m: Pick<Machine, 'class' | 'leader'>): string {
  return m.class === 'host' ? '/' : `/proc/${m.leader.pid}/root`;
}
