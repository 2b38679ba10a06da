// Signalling a registered machine: Terminate (SIGTERM and SIGCONT to its unit, SIGKILL to what is left
// after a grace period) and Kill (a signal to the leader or to the whole unit). A non-root caller reaches
// only the processes it could signal itself (`asUid`, see killScope and uidMaySignal).

import { Errno, fail, ok, type KillWhom, type Result } from './machine.js';
import { uidMaySignal } from '../../domain/process.js';
import { signalLeader } from './leader.js';
import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import { killScope } from './scope.js';
import { signalSupervisor } from './supervisor.js';
import type { Entry } from './machine-index.js';

export interface TerminateOptions {
  cgroups: CgroupLayout;
  asUid?: number;
  stopTimeoutMs: number;
  /** Is the entry still registered when the grace period ends? */
  isCurrent(e: Entry): boolean;
}

/** Returns true when this call started the termination (a second Terminate only signals again). */
export function terminateMachine(e: Entry, o: TerminateOptions): Result<boolean> {
  const unitCgroup = e.machine.unitCgroup;
  if (!unitCgroup) return fail({ errno: Errno.EOPNOTSUPP });
  killScope(o.cgroups, unitCgroup, 'SIGTERM', o.asUid);
  killScope(o.cgroups, unitCgroup, 'SIGCONT', o.asUid);
  if (e.stopTimer) return ok(false);
  e.stopTimer = setTimeout(() => {
    if (o.isCurrent(e)) killScope(o.cgroups, unitCgroup, 'SIGKILL', o.asUid);
  }, o.stopTimeoutMs);
  e.stopTimer.unref();
  return ok(true);
}

/** Send `signal` to the leader, the supervisor, or every process of the machine's unit. */
export function killMachine(e: Entry, whom: KillWhom, signal: number, cgroups: CgroupLayout, asUid?: number): Result<void> {
  if (whom === 'supervisor') return signalSupervisor(e.machine.supervisor, signal, e.machine.timestamp.realtime, asUid);
  if (whom === 'leader') {
    if (asUid !== undefined && !uidMaySignal(asUid, e.leader.pid)) return fail({ errno: Errno.EPERM });
    const r = signalLeader(e.leader, signal);
    return r < 0 ? fail({ errno: -r }) : ok(undefined);
  }
  if (!e.machine.unitCgroup) return fail({ errno: Errno.ESRCH });
  killScope(cgroups, e.machine.unitCgroup, signal, asUid);
  return ok(undefined);
}
