// Every path below the runtime prefix (default /run, `--runtime-dir` moves it) that more than one program
// knows: the sockets berthd serves, machined's state directory, and berth's own directories under RUNTIME/berth.

import { join } from 'node:path';

export const DEFAULT_RUNTIME_DIR = '/run';

/** The userdb socket's file name and the `service` of its records, unless berthd is told otherwise. */
export const DEFAULT_USERDB_SERVICE = 'io.systemd.Machine';

/** RUNTIME/systemd/machine/io.systemd.Machine: the registry socket (berthctl and berth-spawn talk to it). */
export const machineSocketPath = (runtimeDir: string): string => join(runtimeDir, 'systemd/machine/io.systemd.Machine');

/** RUNTIME/systemd/machine/io.systemd.MachineImage: the same server under the image interface's name. */
export const machineImageSocketPath = (runtimeDir: string): string => join(runtimeDir, 'systemd/machine/io.systemd.MachineImage');

/** Both machine sockets, in the order berthd binds them. */
export const machineSocketPaths = (runtimeDir: string): string[] => [machineSocketPath(runtimeDir), machineImageSocketPath(runtimeDir)];

/** RUNTIME/systemd/userdb/SERVICE: where userdbctl and nss-systemd look for user records. */
export const userdbSocketPath = (runtimeDir: string, service: string = DEFAULT_USERDB_SERVICE): string =>
  join(runtimeDir, 'systemd/userdb', service);

/** RUNTIME/systemd/resolve.hook/io.systemd.Machine: where systemd-resolved finds the machine-name hook. */
export const resolveHookSocketPath = (runtimeDir: string): string => join(runtimeDir, 'systemd/resolve.hook/io.systemd.Machine');

/** RUNTIME/systemd/machines: machined-compatible state files (NAME and unit:UNIT links). */
export const machineStateDir = (runtimeDir: string): string => join(runtimeDir, 'systemd/machines');

/**
 * berth's own directories under RUNTIME/berth: `launched` (the launch service's supervisor records), `machines`
 * (containers' run directories, and berthd's second configuration directory), `uid-leases`, `tree-locks`,
 * `vm` (VM run directories).
 */
export type BerthRuntimeDir = 'launched' | 'machines' | 'uid-leases' | 'tree-locks' | 'vm';

export const berthRuntimeDir = (runtimeDir: string, which: BerthRuntimeDir): string => join(runtimeDir, 'berth', which);
