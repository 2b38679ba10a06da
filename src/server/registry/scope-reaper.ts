// Removing the scope cgroups of machines that are gone, in the background: empty ones at once, and with
// `kill`, what still runs in them is killed and removal retried.

import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import { killScope, removeScope } from './scope.js';

interface ReapJob {
  unitCgroup: string;
  kill: boolean;
  /** Kill only what this uid could signal itself (a machine registered by that non-root user). */
  asUid?: number;
  tries: number;
}

/**
 * Removes scope cgroups of machines that are gone, off the caller's path and in batches of at most 20 ms,
 * so that many machines ending at once do not hold up the event loop. An empty scope is removed at once;
 * with `kill`, what still runs in it gets SIGKILL and removal is retried (every 20 ms, up to 1 s).
 */
export class ScopeReaper {
  #queue: ReapJob[] = [];
  #timer?: NodeJS.Timeout;

  constructor(readonly layout: CgroupLayout) {}

  add(unitCgroup: string, kill: boolean, asUid?: number): void {
    this.#queue.push({ unitCgroup, kill, tries: 0, ...(asUid !== undefined ? { asUid } : {}) });
    this.#schedule(0);
  }

  /**
   * Keep removing what is queued until nothing is, or `withinMs` has passed: berthd does this before it
   * exits, since its timers do not keep it running and a scope left for a later retry would stay empty.
   */
  async finish(withinMs: number): Promise<void> {
    const deadline = performance.now() + withinMs;
    while (this.#queue.length > 0 && performance.now() < deadline) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#run();
      if (this.#queue.length > 0) await new Promise((r) => setTimeout(r, 10));
    }
  }

  #schedule(delayMs: number): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => this.#run(), delayMs);
    this.#timer.unref();
  }

  #run(): void {
    this.#timer = undefined;
    const jobs = this.#queue;
    this.#queue = [];
    const until = performance.now() + 20;
    const retry: ReapJob[] = [];
    let i = 0;
    for (; i < jobs.length && performance.now() < until; i++) {
      const job = jobs[i]!;
      if (removeScope(this.layout, job.unitCgroup)) continue;
      if (!job.kill) {
        // Not killing: give the scope's last processes a moment to end after the leader.
        if (++job.tries < 25) retry.push(job);
        continue;
      }
      killScope(this.layout, job.unitCgroup, 'SIGKILL', job.asUid);
      if (++job.tries < 50) retry.push(job);
    }
    this.#queue.push(...jobs.slice(i), ...retry);
    if (i < jobs.length) this.#schedule(0);
    else if (this.#queue.length > 0) this.#schedule(20);
  }
}
