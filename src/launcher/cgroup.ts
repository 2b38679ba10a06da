/**
 * The machine's cgroup scope, `machine.slice/machine-NAME.scope`, made by the launcher itself in every
 * mounted hierarchy that tracks processes (cgroup2 and the named `systemd` v1 hierarchy on hybrid hosts).
 * PID 1 enters it through a tiny shim before it execs anything, so nothing of the container ever runs
 * outside. The registry then finds the unit from the leader's cgroup (Register with allocateUnit:false).
 */
import fs from 'node:fs';
import path from 'node:path';
import { cgroupTreePids, detectCgroupLayout, machineScopeDirs, type CgroupHierarchy } from '../domain/cgroup-paths.js';
import { machineScopeUnit } from '../domain/unit-names.js';
import { markScope } from '../domain/scope-mark.js';

export class Scope {
  readonly paths: string[];
  private constructor(readonly name: string, machineName: string, readonly hierarchies: readonly CgroupHierarchy[]) {
    this.paths = machineScopeDirs(machineName, hierarchies);
  }

  /** Paths a scope for this machine would have; used to check for leftovers without creating anything. */
  static locate(machineName: string, hierarchies: readonly CgroupHierarchy[] = detectCgroupLayout().hierarchies): Scope {
    return new Scope(machineScopeUnit(machineName), machineName, hierarchies);
  }

  exists(): boolean {
    return this.paths.some((p) => fs.existsSync(p));
  }

  /** Processes still inside the scope (any hierarchy, any depth). */
  pids(): number[] {
    return [...new Set(this.paths.flatMap((p) => cgroupTreePids(p)))];
  }

  /**
   * Create the slice and the scope, marked as made by `mark` (launch-record.ts) so that leftovers are known to be
   * berth's; delegate the scope to the container's root (owner uid/gid).
   */
  create(mark?: string, owner?: { uid: number; gid: number }): void {
    if (this.paths.length === 0) throw new Error('no cgroup hierarchy mounted (need cgroup2 or name=systemd)');
    for (const p of this.paths) {
      if (fs.existsSync(p)) throw new Error(`cgroup ${p} already exists: a machine of that name is running or was not cleaned up`);
    }
    for (const p of this.paths) {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.mkdirSync(p);
      if (mark) markScope(p, mark);
      if (owner) {
        fs.chownSync(p, owner.uid, owner.gid);
        for (const f of ['cgroup.procs', 'cgroup.subtree_control', 'cgroup.threads', 'tasks']) {
          try { fs.chownSync(path.join(p, f), owner.uid, owner.gid); } catch { /* not in this hierarchy */ }
        }
      }
    }
  }

  /** SIGKILL everything inside (cgroup.kill where the kernel has it, else each PID). */
  killAll(): void {
    for (const p of this.paths) killCgroupTree(p);
  }

  /** The scope's cgroup v2 directory, which can be frozen (cgroup.freeze); undefined without one. */
  freezable(): string | undefined {
    return this.paths.find((p) => fs.existsSync(path.join(p, 'cgroup.freeze')));
  }

  /** Thaw a frozen scope (Pause of io.systemd.MachineInstance), so that its processes can act on a stop or die. */
  thaw(): void {
    const d = this.freezable();
    if (d) try { fs.writeFileSync(path.join(d, 'cgroup.freeze'), '0'); } catch { /* gone */ }
  }

  /** Remove the scope depth-first (a payload systemd creates its own sub-cgroups). Returns false if busy. */
  remove(): boolean {
    return this.paths.map(removeCgroupTree).every(Boolean);
  }
}

/** SIGKILL every process in a cgroup directory and below it. */
export function killCgroupTree(dir: string): void {
  try { fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1'); } catch { /* v1 or old kernel */ }
  for (const pid of cgroupTreePids(dir)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** Remove a cgroup directory and those below it, deepest first; false when one is busy (true when gone already). */
export function removeCgroupTree(dir: string): boolean {
  let ok = true;
  const rm = (d: string): void => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) if (e.isDirectory()) rm(path.join(d, e.name));
    try { fs.rmdirSync(d); } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') ok = false;
    }
  };
  rm(dir);
  return ok;
}

/** Whether the kernel reports a cgroup v2 directory frozen (every process of it stopped). */
export function isCgroupFrozen(dir: string): boolean {
  try {
    return /^frozen 1$/m.test(fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}
