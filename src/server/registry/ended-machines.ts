// Machines that ended on their own a moment ago (leader exited, terminated), remembered with the process that
// registered them, so that this process's Unregister right afterwards succeeds.
//
// Why: berthd drops a machine as soon as its leader dies. systemd-nspawn 262 calls Unregister when its
// container has ended, i.e. always after that, gets NoSuchMachine over Varlink, falls back to D-Bus and, with no
// bus (or a bus where berth also answers NoSuchMachine), prints "Failed to unregister machine ... ignoring" to
// its user. nspawn counts any Varlink reply without an error as done. So for GRACE_MS after a machine ended,
// Unregister by its name from its own supervisor (same PID and start time as at registration, same UID) gets an
// empty reply, once; anyone else still gets NoSuchMachine, and nothing is registered again by this.

import { closeLeader, pinLeader } from './leader.js';
import type { Machine, SupervisorInfo } from './machine.js';

/** How long after its end a machine's supervisor may still unregister it. */
export const GRACE_MS = 30_000;
/** At most this many are kept; the oldest go first (a burst of ending machines cannot grow memory). */
const CAPACITY = 1024;

interface Ended {
  supervisor: SupervisorInfo;
  registeredBy: number;
  until: number;
}

export class EndedMachines {
  readonly #ended = new Map<string, Ended>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Remembers a machine that just ended on its own; one without a known supervisor is not remembered. */
  remember(m: Machine): void {
    if (!m.supervisor) return;
    this.#ended.delete(m.name);
    this.#ended.set(m.name, { supervisor: m.supervisor, registeredBy: m.registeredBy, until: this.now() + GRACE_MS });
    while (this.#ended.size > CAPACITY) this.#ended.delete(this.#ended.keys().next().value!);
  }

  /** A machine of this name registered again: its end no longer matters. */
  forget(name: string): void {
    this.#ended.delete(name);
  }

  /**
   * True (and forgotten) when `name` ended within the grace period and `caller` is the very process that
   * registered it: same PID, same start time (or pidfd inode), same UID.
   */
  claim(name: string, caller: { uid: number; pid?: number }): boolean {
    const e = this.#ended.get(name);
    if (!e) return false;
    if (e.until < this.now()) {
      this.#ended.delete(name);
      return false;
    }
    if (caller.pid === undefined || caller.pid !== e.supervisor.pid || caller.uid !== e.registeredBy) return false;
    const pinned = pinLeader(caller.pid, {
      ...(e.supervisor.pidfdId !== undefined ? { pidfdId: e.supervisor.pidfdId } : {}),
      ...(e.supervisor.starttime !== undefined ? { starttime: e.supervisor.starttime } : {}),
    });
    if (typeof pinned === 'number') return false;
    closeLeader(pinned);
    if (e.supervisor.pidfdId === undefined && e.supervisor.starttime === undefined) return false;
    this.#ended.delete(name);
    return true;
  }
}
