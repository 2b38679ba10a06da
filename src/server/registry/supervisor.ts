// A machine's supervisor, as machined 262 has it: the process that called Register (the VM monitor, the
// container manager). It is recorded by PID, pidfd inode and start time, so that a later Kill with
// `whom: supervisor` reaches that very process or nobody (ESRCH), never a process that reused its PID.

import { Errno, fail, ok, type Result, type SupervisorInfo } from './machine.js';
import { closeLeader, identityOf, pinLeader, signalLeader } from './leader.js';
import { uidMaySignal } from '../../domain/process.js';
import type { CallerContext } from './registry-types.js';

/** What supervisorOf found for a caller, kept while the caller's context object lives. */
const known = new WeakMap<CallerContext, { supervisor?: SupervisorInfo }>();

/**
 * The `supervisor` field of a new machine: the caller, when its PID is known and it still runs. A Varlink
 * connection keeps one context for its peer (machine-operations.ts, callerContext), so a process that
 * registers many machines over one connection is looked up once: its identity is the one it had when it
 * connected, whatever happens to its PID later.
 */
export function supervisorOf(caller: CallerContext): { supervisor?: SupervisorInfo } {
  let r = known.get(caller);
  if (!r) known.set(caller, (r = lookUpSupervisor(caller.pid)));
  return r;
}

function lookUpSupervisor(pid: number | undefined): { supervisor?: SupervisorInfo } {
  if (pid === undefined || pid <= 0) return {};
  const pinned = pinLeader(pid);
  if (typeof pinned === 'number') return {};
  closeLeader(pinned);
  return { supervisor: identityOf(pinned) };
}

/**
 * Signal the recorded supervisor. A supervisor known only by PID (restored from a state file without
 * SUPERVISOR_PIDFDID) must have been running when the machine was registered (`registeredAt`, µs realtime).
 */
export function signalSupervisor(sup: SupervisorInfo | undefined, signal: number, registeredAt: number, asUid?: number): Result<void> {
  if (!sup) return fail({ errno: Errno.ESRCH });
  const pinned = pinLeader(sup.pid, {
    ...(sup.pidfdId !== undefined ? { pidfdId: sup.pidfdId } : {}),
    ...(sup.starttime !== undefined ? { starttime: sup.starttime } : { aliveAtRealtime: registeredAt }),
  });
  if (typeof pinned === 'number') return fail({ errno: Errno.ESRCH });
  try {
    if (asUid !== undefined && !uidMaySignal(asUid, sup.pid)) return fail({ errno: Errno.EPERM });
    const r = signalLeader(pinned, signal);
    return r < 0 ? fail({ errno: -r }) : ok(undefined);
  } finally {
    closeLeader(pinned);
  }
}
