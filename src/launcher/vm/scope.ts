// The VM's cgroup: the launcher's shared machine scope (machine.slice/machine-NAME.scope in every hierarchy
// that tracks processes, see ../cgroup.ts), entered by qemu and its helpers through a shell shim before they
// exec, so a registry given allocateUnit=false finds a unit for the leader, and nothing they leave behind
// escapes the final kill.

import { Scope } from '../cgroup.js';
import { detectCgroupLayout, type CgroupHierarchy } from '../../domain/cgroup-paths.js';

export class VmScope {
  private constructor(private readonly scope: Scope | undefined) {}

  /** Creates the scope; without any cgroup hierarchy (unprivileged, exotic hosts) the VM runs unscoped. */
  /** `mark`: berth-spawn's mark for the scope directories (launch-record.ts), so a leftover is known to be berth's. */
  static create(machine: string, hierarchies: readonly CgroupHierarchy[] = detectCgroupLayout().hierarchies, mark?: string): VmScope {
    if (hierarchies.length === 0) return new VmScope(undefined);
    const s = Scope.locate(machine, hierarchies);
    // an empty scope left by a launcher that was killed outright is stale: take it over
    if (s.exists() && s.pids().length === 0) s.remove();
    s.create(mark);
    return new VmScope(s);
  }

  /** cgroup directories, one per hierarchy (empty when unscoped). */
  get dirs(): string[] {
    return this.scope?.paths ?? [];
  }

  /** argv that moves the process into the scope, then execs the command (no window outside it). */
  wrap(argv: readonly string[]): string[] {
    if (!this.scope) return [...argv];
    const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
    return ['/bin/sh', '-c', script, 'berth-vm-scope', ...this.scope.paths.map((d) => `${d}/cgroup.procs`), '--', ...argv];
  }

  pids(): number[] {
    return this.scope?.pids() ?? [];
  }

  /** Kills whatever is left, waits (bounded) until the scope is empty, then removes it. */
  async destroy(deadlineMs = 3000): Promise<void> {
    const s = this.scope;
    if (!s) return;
    const end = Date.now() + deadlineMs;
    while (s.pids().length > 0 && Date.now() < end) {
      s.killAll();
      await new Promise((r) => setTimeout(r, 20));
    }
    s.remove();
  }
}
