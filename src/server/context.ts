/**
 * Everything the API modules share: the registry, the user database, the policy, the logger and
 * berth's notes about machines (warnings such as overlapping id ranges).
 */
import type { Logger } from 'pino';
import type { Registry } from './registry/registry.js';
import type { UserDb } from './userdb/userdb.js';
import type { Policy } from './policy.js';
import type { ChangeJournal } from './watch.js';

export interface DaemonOptions {
  /** Prefix of every runtime path (default /run). */
  runtimeDir: string;
  /** File name of the userdb socket under RUNTIME/systemd/userdb/; also the records' `service`. */
  userdbService: string;
  /** Exit after this many seconds without connections (0: never). */
  idleExitSeconds: number;
  logLevel: string;
  allowUserRegister: boolean;
  /** Directories searched for machine images. */
  imageDirectories: string[];
  /** Directories searched for NAME.berth machine configurations. */
  configDirectories: string[];
  /** Serve org.freedesktop.machine1 on the system bus: when one is reachable (auto, the default), always, never. */
  dbus?: 'auto' | 'yes' | 'no';
}

export interface BerthContext {
  readonly registry: Registry;
  readonly userdb: UserDb;
  readonly policy: Policy;
  readonly logger: Logger;
  readonly options: DaemonOptions;
  /** Numbered registry changes for io.berth.Machine.Watch. */
  readonly journal: ChangeJournal;
  /** Notes about machines, by name, shown by `berthctl status`. */
  readonly warnings: Map<string, string[]>;
}
