// The types around the Registry (registry.ts): its options, its logger, who is calling, and the events it
// emits; apart so that the Registry's helpers (systemd-registration.ts) can name them without importing it.

import type { Machine } from './machine.js';
import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import type { SystemdScopes } from './systemd-scope.js';

/** The subset of a pino logger the registry uses. */
export interface RegistryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RegistryOptions {
  /** Runtime prefix (default `/run`); state goes to RUNTIME/systemd/machines. */
  runtimeDir?: string;
  /** Overrides the state directory itself. */
  stateDir?: string;
  logger?: RegistryLogger;
  /** Cgroup hierarchies (default: detected under /sys/fs/cgroup). */
  cgroups?: CgroupLayout;
  /** Serve the synthetic `.host` machine (default true; false for a per-user instance). */
  host?: boolean;
  /** After SIGTERM from Terminate, SIGKILL what is left of the unit after this long (default 90 s). */
  stopTimeoutMs?: number;
  /** PID 1's scopes (default: over the system bus when systemd is PID 1; `null`: never ask systemd). */
  systemdScopes?: SystemdScopes | null;
}

/** Who is asking: the peer's credentials. */
export interface CallerContext {
  uid: number;
  /** The peer's PID: the default leader for Register and the meaning of `{pid: 0}` in lookups. */
  pid?: number;
}

export type RegistryEventType = 'added' | 'removed' | 'changed';

export interface RegistryEvent {
  /** Increases by one with every event; a watcher that sees a gap missed something. */
  seq: number;
  type: RegistryEventType;
  machine: Machine;
  /** Why (for `removed`: `unregistered`, `leader-exited`, `replaced`, ...). */
  reason: string;
}
