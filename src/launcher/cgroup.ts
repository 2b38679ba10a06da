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

  /** Create the slice and the scope; delegate the scope to the container's root (owner uid/gid). */
  create(owner?: { uid: number; gid: number }): void {
    if (this.paths.length === 0) throw new Error('no cgroup hierarchy mounted (need cgroup2 or name=systemd)');
    for (const p of this.paths) {
      if (fs.existsSync(p)) throw new Error(`cgroup ${p} already exists: a machine of that name is running or was not cleaned up`);
    }
    for (const p of this.paths) {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.mkdirSync(p);
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
    for (const p of this.paths) {
      try { fs.writeFileSync(path.join(p, 'cgroup.kill'), '1'); } catch { /* v1 or old kernel */ }
    }
    for (const pid of this.pids()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }

  /** Remove the scope depth-first (a payload systemd creates its own sub-cgroups). Returns false if busy. */
  remove(): boolean {
    let ok = true;
    const rm = (dir: string): void => {
      let entries: fs.Dirent[];
      try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
      for (const e of entries) if (e.isDirectory()) rm(path.join(dir, e.name));
      try { fs.rmdirSync(dir); } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') ok = false;
      }
    };
    for (const p of this.paths) rm(p);
    return ok;
  }
}
