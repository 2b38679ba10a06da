// Scopes berthd made whose machine it no longer holds, removed once nothing runs in them:
//   - a machine unregistered while its leader still ran (Unregister kills nothing): the scope goes when
//     that leader has ended, as systemd collects an empty scope;
//   - scopes found at start that carry berthd's mark (domain/scope-mark.ts) but belong to no restored
//     machine: left by a berthd killed between making a scope and acknowledging the registration, or
//     whose state directory was lost. Empty ones go at once; for the others every process in them is
//     watched (pidfds on the registry's own watcher, under keys no machine name can have) and the scope
//     goes when the last has ended.
// A scope without berthd's mark is never touched.

import fs from 'node:fs';
import path from 'node:path';
import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import { MACHINE_SLICE } from '../../domain/unit-names.js';
import { scopeMaker } from '../../domain/scope-mark.js';
import { closeLeader, pinLeader, type Leader } from './leader.js';
import type { LeaderWatcher } from './leader-watcher.js';
import type { ScopeReaper } from './scope-reaper.js';
import { scopePids } from './scope.js';

const SCOPE_DIR = /^machine-.+\.scope$/;

/**
 * The cgroup paths (`/machine.slice/machine-X.scope`) of scopes marked as made by `maker`, in any
 * hierarchy, whose unit `inUse` does not claim.
 */
export function findMarkedScopes(layout: CgroupLayout, maker: string, inUse: (unit: string) => boolean): string[] {
  const found = new Set<string>();
  for (const h of layout.hierarchies) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(h.root, MACHINE_SLICE));
    } catch {
      continue;
    }
    for (const unit of names) {
      if (!SCOPE_DIR.test(unit) || inUse(unit)) continue;
      if (scopeMaker(path.join(h.root, MACHINE_SLICE, unit)) === maker) found.add(`/${MACHINE_SLICE}/${unit}`);
    }
  }
  return [...found];
}

export interface LeftoverLog {
  info(obj: object, msg: string): void;
}

export class LeftoverScopes {
  /** Watched processes: key → the scope they keep alive. */
  #byKey = new Map<string, { leader: Leader; unitCgroup: string }>();
  /** Scope → how many of its processes are still watched. */
  #waiting = new Map<string, number>();

  constructor(
    private readonly watcher: LeaderWatcher,
    private readonly reaper: ScopeReaper,
    private readonly layout: CgroupLayout,
    private readonly log: LeftoverLog,
  ) {}

  /** A machine was unregistered while its leader ran: the scope goes once that leader has exited. */
  track(name: string, leader: Leader, unitCgroup: string): void {
    this.#watch(`\0scope:${name}:${leader.pid}`, leader, unitCgroup);
  }

  /** Remove a scope of nobody's machine once it is empty (at once when it already is). */
  adopt(unitCgroup: string): void {
    if (this.#waiting.has(unitCgroup)) return;
    const pids = scopePids(this.layout, unitCgroup);
    let watched = 0;
    for (const pid of pids) {
      const leader = pinLeader(pid);
      if (typeof leader === 'number') continue; // exited meanwhile
      this.#watch(`\0leftover:${unitCgroup}:${pid}`, leader, unitCgroup);
      watched++;
    }
    if (watched === 0) {
      this.log.info({ unitCgroup }, 'removing a leftover scope berthd made for a machine it does not hold');
      this.reaper.add(unitCgroup, false);
    } else {
      this.log.info({ unitCgroup, processes: watched }, 'leftover scope berthd made: removing it once its processes have ended');
    }
  }

  /** A watched process exited: true when it was one of ours. */
  leaderExited(key: string): boolean {
    const s = this.#byKey.get(key);
    if (!s) return false;
    this.#byKey.delete(key);
    closeLeader(s.leader);
    const left = (this.#waiting.get(s.unitCgroup) ?? 1) - 1;
    if (left > 0) {
      this.#waiting.set(s.unitCgroup, left);
      return true;
    }
    this.#waiting.delete(s.unitCgroup);
    // Processes the watched ones started meanwhile keep the scope; look again.
    if (key.startsWith('\0leftover:') && scopePids(this.layout, s.unitCgroup).length > 0) this.adopt(s.unitCgroup);
    else this.reaper.add(s.unitCgroup, false);
    return true;
  }

  /** Stop watching; a watched scope already empty (its exit not yet seen) goes to the reaper now. */
  close(): void {
    for (const unitCgroup of this.#waiting.keys()) if (scopePids(this.layout, unitCgroup).length === 0) this.reaper.add(unitCgroup, false);
    for (const s of this.#byKey.values()) closeLeader(s.leader);
    this.#byKey.clear();
    this.#waiting.clear();
  }

  #watch(key: string, leader: Leader, unitCgroup: string): void {
    this.#byKey.set(key, { leader, unitCgroup });
    this.#waiting.set(unitCgroup, (this.#waiting.get(unitCgroup) ?? 0) + 1);
    this.watcher.watch(key, leader);
  }
}
