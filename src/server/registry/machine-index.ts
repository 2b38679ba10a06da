// The registry's three indexes of registered machines: by name, by leader PID and by unit. An entry is
// in all of them or in none; removal only drops an index slot that still points at the same entry, so a
// newer machine that took over a PID or unit is never unindexed by its predecessor.

import type { Machine } from './machine.js';
import type { Leader } from './leader.js';

/** A registered machine with what the registry holds for it. */
export interface Entry {
  machine: Machine;
  leader: Leader;
  /** Pending SIGKILL after Terminate's grace period. */
  stopTimer?: NodeJS.Timeout;
  /** systemd took a StopUnit for the machine's unit (Terminate): the leader's exit needs no second one. */
  unitStopping?: boolean;
}

export class MachineIndex {
  #byName = new Map<string, Entry>();
  #byLeader = new Map<number, Entry>();
  #byUnit = new Map<string, Entry>();

  get size(): number {
    return this.#byName.size;
  }

  /** Entries in registration order. */
  values(): IterableIterator<Entry> {
    return this.#byName.values();
  }

  byName(name: string): Entry | undefined {
    return this.#byName.get(name);
  }

  byLeader(pid: number): Entry | undefined {
    return this.#byLeader.get(pid);
  }

  byUnit(unit: string): Entry | undefined {
    return this.#byUnit.get(unit);
  }

  hasName(name: string): boolean {
    return this.#byName.has(name);
  }

  hasLeader(pid: number): boolean {
    return this.#byLeader.has(pid);
  }

  hasUnit(unit: string): boolean {
    return this.#byUnit.has(unit);
  }

  /** Is this entry still the one registered under its name? */
  isCurrent(e: Entry): boolean {
    return this.#byName.get(e.machine.name) === e;
  }

  insert(e: Entry): void {
    this.#byName.set(e.machine.name, e);
    this.#byLeader.set(e.leader.pid, e);
    if (e.machine.unit) this.#byUnit.set(e.machine.unit, e);
  }

  remove(e: Entry): void {
    if (this.#byName.get(e.machine.name) === e) this.#byName.delete(e.machine.name);
    if (this.#byLeader.get(e.leader.pid) === e) this.#byLeader.delete(e.leader.pid);
    if (e.machine.unit && this.#byUnit.get(e.machine.unit) === e) this.#byUnit.delete(e.machine.unit);
  }

  clear(): void {
    this.#byName.clear();
    this.#byLeader.clear();
    this.#byUnit.clear();
  }
}
