// The Registry's path through systemd where systemd is PID 1: a registration that allocates a unit gets its
// scope from PID 1 (the name held meanwhile, the leader pinned so systemd is only handed the process meant),
// Terminate and Kill of such a machine go to systemd as StopUnit and KillUnit, and its unit is stopped once
// the leader is gone. The Registry decides when this path applies; the cgroup walking stays in the Registry.

import { Errno, fail, type Machine, type RegistrationSpec, type Result } from './machine.js';
import { processUid } from '../../domain/process.js';
import { closeLeader, leaderAlive, pinLeader } from './leader.js';
import type { Entry, MachineIndex } from './machine-index.js';
import type { Placement } from './placement.js';
import type { SystemdScopes } from './systemd-scope.js';
import { machineScopeUnit } from '../../domain/unit-names.js';
import type { CallerContext, RegistryLogger } from './registry-types.js';

/** What the systemd path needs of the Registry. */
export interface RegistrationHost {
  readonly index: MachineIndex;
  readonly log: RegistryLogger;
  /** The Registry's synchronous registration, with the placement systemd made (or none: its own checks). */
  registerSpec(spec: RegistrationSpec, caller: CallerContext, preset?: Placement): Result<Machine>;
}

export class SystemdRegistration {
  /** names whose scope systemd is making, taken for every other registration meanwhile */
  #pending = new Set<string>();

  constructor(
    readonly scopes: SystemdScopes,
    private readonly host: RegistrationHost,
  ) {}

  /** Is systemd making a scope for this name right now? */
  holds(name: string): boolean {
    return this.#pending.has(name);
  }

  /**
   * Register with a scope from systemd (for a spec that allocates a unit). A refused call never makes a
   * unit; a leader that died before its scope exists gets ESRCH and leaves no unit behind.
   */
  async register(spec: RegistrationSpec, caller: CallerContext): Promise<Result<Machine>> {
    // The checks that need no unit first, so that a refused call never makes one; the leader is pinned
    // (pidfd, and the pidfd id the caller named) so that systemd is only ever handed the process meant.
    const ref = spec.leader ?? (caller.pid !== undefined ? { pid: caller.pid } : undefined);
    const pinned = ref ? pinLeader(ref.pid, ref.pidfdId !== undefined ? { pidfdId: ref.pidfdId } : undefined) : -3;
    if (typeof pinned === 'number') return this.host.registerSpec(spec, caller); // answers with the leader's error
    const { index, log } = this.host;
    try {
      if (caller.uid !== 0 && processUid(pinned.pid) !== caller.uid) return fail({ permissionDenied: true });
      if (index.hasName(spec.name) || this.#pending.has(spec.name)) return fail({ error: 'io.systemd.Machine.MachineExists' });
      if (index.hasLeader(pinned.pid)) return fail({ errno: Errno.EEXIST });
      this.#pending.add(spec.name);
      let made;
      try {
        made = await this.scopes.start(spec.name, pinned.pid, spec.class, spec.scopeProperties);
      } finally {
        this.#pending.delete(spec.name);
      }
      if ('errno' in made) {
        log.warn({ machine: spec.name, err: made.message }, 'systemd did not create the scope');
        return fail({ errno: made.errno });
      }
      const r = this.host.registerSpec(spec, caller, { ...made, ownsScope: false });
      // A leader gone meanwhile leaves no unit behind (one still running keeps it, as under machined).
      if (!r.ok && !leaderAlive(pinned)) void this.scopes.stop(made.unit).catch(() => undefined);
      return r;
    } finally {
      closeLeader(pinned);
    }
  }

  /** Whether a machine's unit is systemd's to stop and signal: one it made for the machine, for root callers. */
  handles(e: Entry, asUid: number | undefined): boolean {
    return asUid === undefined && !e.machine.ownsScope && e.machine.unit === machineScopeUnit(e.machine.name);
  }

  /** As machined terminates: systemd stops the unit (SIGTERM, then SIGKILL after its own timeout). */
  terminate(e: Entry, fallback: () => void): void {
    const name = e.machine.name;
    const unit = e.machine.unit!;
    this.host.log.debug({ machine: name, unit }, 'terminating machine (StopUnit)');
    e.unitStopping = true;
    void this.scopes.stop(unit).catch((err: Error) => {
      e.unitStopping = false;
      this.host.log.warn({ machine: name, unit, err: err.message }, 'systemd did not stop the unit; signalling it directly');
      fallback();
    });
  }

  /** Every process of the unit gets the signal from systemd (KillUnit); `fallback` when systemd refuses. */
  kill(e: Entry, signal: number, fallback: () => void): void {
    void this.scopes.kill(e.machine.unit!, 'all', signal).catch(() => fallback());
  }

  /** As machined: a scope systemd made for the machine is stopped once its leader is gone (unless a Terminate already asked). */
  leaderExited(m: Machine): void {
    void this.scopes.stop(m.unit!).catch(() => undefined);
  }

  /**
   * The unit of a machine being replaced (its leader is dead) is stopped, and its stop job waited for, before
   * a new one of the same name is asked for: systemd would answer UnitExists while it still holds what is
   * left of the old one. The name stays held meanwhile.
   */
  async stopReplaced(m: Machine): Promise<void> {
    this.#pending.add(m.name);
    try {
      await this.scopes.stopAndWait(m.unit!).catch(() => undefined);
    } finally {
      this.#pending.delete(m.name);
    }
  }

  close(): void {
    this.scopes.close();
  }
}
