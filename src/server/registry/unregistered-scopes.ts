// Scopes berth made for machines that were unregistered while their leader still ran. Unregister kills
// nothing, so such a scope still holds the machine's processes; berth keeps watching the leader (on the
// registry's own watcher, under a key no machine name can have) and hands the scope to the reaper once
// the leader has ended, as systemd collects an empty scope.

import { closeLeader, type Leader } from './leader.js';
import type { LeaderWatcher } from './leader-watcher.js';
import type { ScopeReaper } from './scope-reaper.js';

export class UnregisteredScopes {
  #byKey = new Map<string, { leader: Leader; unitCgroup: string }>();

  constructor(
    private readonly watcher: LeaderWatcher,
    private readonly reaper: ScopeReaper,
  ) {}

  /** Take over the leader's pidfd; the scope goes once that leader has exited and the scope is empty. */
  track(name: string, leader: Leader, unitCgroup: string): void {
    const key = `\0scope:${name}:${leader.pid}`;
    this.#byKey.set(key, { leader, unitCgroup });
    this.watcher.watch(key, leader);
  }

  /** A watched leader exited: true when it was one of ours (then its scope is being removed). */
  leaderExited(key: string): boolean {
    const s = this.#byKey.get(key);
    if (!s) return false;
    this.#byKey.delete(key);
    closeLeader(s.leader);
    this.reaper.add(s.unitCgroup, false);
    return true;
  }

  close(): void {
    for (const s of this.#byKey.values()) closeLeader(s.leader);
    this.#byKey.clear();
  }
}
