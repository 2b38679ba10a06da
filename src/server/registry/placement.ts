// Where a new machine lives: the unit (and its cgroup) a registration puts the machine in. With
// `allocateUnit` a scope `machine-NAME.scope` is made for the leader (by systemd when it is PID 1, as for
// machined: Registry.register asks it and passes the result in; else by berth itself, which then owns and
// removes it); without, the machine is the unit the
// leader already runs in. The checks keep machined's order of errors.

import { Errno, fail, ok, type RegistrationSpec, type Result } from './machine.js';
import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import { createScope } from './scope.js';
import { systemdIsPid1 } from './systemd-scope.js';
import { unitPlaceOfPid } from './pid-cgroup.js';

export interface Placement {
  unit: string;
  unitCgroup: string;
  /** True when berth made the scope cgroup itself and removes it when the machine goes. */
  ownsScope: boolean;
  /** Where the leader sits below the unit's cgroup (pid-cgroup.ts, subgroupOf), when not in it itself. */
  subgroup?: string;
}

export interface PlacementContext {
  cgroups: CgroupLayout;
  /** The mark berth's own scopes get (scope.ts, berthdScopeMaker). */
  scopeMaker: string;
  /** Is this PID already some machine's leader? */
  leaderTaken(pid: number): boolean;
  warn(obj: object, msg: string): void;
}

/**
 * Find or make the unit of a machine led by `pid`. EEXIST when the leader already leads a machine (for
 * allocateUnit before anything is made, otherwise after the unit was found, as machined orders them);
 * ENXIO when the leader sits in no unit; the errno of a failed scope creation.
 */
export function placeMachine(spec: RegistrationSpec, pid: number, ctx: PlacementContext): Result<Placement> {
  if (!spec.allocateUnit) {
    const u = unitPlaceOfPid(pid, ctx.cgroups);
    if (!u) return fail({ errno: Errno.ENXIO });
    if (ctx.leaderTaken(pid)) return fail({ errno: Errno.EEXIST });
    return ok({ ...u, ownsScope: false });
  }
  if (ctx.leaderTaken(pid)) return fail({ errno: Errno.EEXIST });
  // Where systemd is PID 1, Registry.register has asked it for the scope before this (systemd-scope.ts).
  if (systemdIsPid1()) ctx.warn({ machine: spec.name }, 'creating the scope cgroup without systemd');
  const s = createScope(ctx.cgroups, spec.name, pid, ctx.scopeMaker);
  if (typeof s === 'number') return fail({ errno: -s });
  return ok({ ...s, ownsScope: true });
}
