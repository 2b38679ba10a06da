/**
 * The machine's cgroup scope, `machine.slice/machine-NAME.scope`, made by the launcher itself in every
 * mounted hierarchy that tracks processes (cgroup2 and the named `systemd` v1 hierarchy on hybrid hosts).
 * PID 1 enters it through a tiny shim before it execs anything, so nothing of the container ever runs
 * outside. The registry then finds the unit from the leader's cgroup (Register with allocateUnit:false).
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Hierarchy { kind: 'unified' | 'systemd'; mountPoint: string }

/** Unit-name escaping as systemd does it: keep [A-Za-z0-9:_.], '/' → '-', others as \xNN, no leading '.'. */
export function escapeUnitName(s: string): string {
  let out = '';
  const bytes = Buffer.from(s, 'utf8');
  bytes.forEach((b, i) => {
    const ch = String.fromCharCode(b);
    if (ch === '/') out += '-';
    else if ((/[A-Za-z0-9:_.]/.test(ch) && !(i === 0 && ch === '.'))) out += ch;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  });
  return out;
}

export function scopeName(machineName: string): string {
  return `machine-${escapeUnitName(machineName)}.scope`;
}

/** Hierarchies from mountinfo: cgroup2 anywhere, and the v1 hierarchy named `systemd`. */
export function findHierarchies(mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): Hierarchy[] {
  const out: Hierarchy[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const [fstype, , superOpts] = post.split(' ');
    const mp = (f[4] ?? '').replace(/\\040/g, ' ');
    if (f[3] !== '/') continue; // a bind of a sub-tree is not the hierarchy's root
    if (fstype === 'cgroup2') out.push({ kind: 'unified', mountPoint: mp });
    else if (fstype === 'cgroup' && (superOpts ?? '').split(',').includes('name=systemd')) out.push({ kind: 'systemd', mountPoint: mp });
  }
  // One mount per kind (the first); bind mounts of the same hierarchy elsewhere add nothing.
  return out.filter((h, i) => out.findIndex((o) => o.kind === h.kind) === i);
}

export class Scope {
  readonly paths: string[];
  private constructor(readonly name: string, readonly hierarchies: Hierarchy[]) {
    this.paths = hierarchies.map((h) => path.join(h.mountPoint, 'machine.slice', name));
  }

  /** Paths a scope for this machine would have; used to check for leftovers without creating anything. */
  static locate(machineName: string, hierarchies = findHierarchies()): Scope {
    return new Scope(scopeName(machineName), hierarchies);
  }

  exists(): boolean {
    return this.paths.some((p) => fs.existsSync(p));
  }

  /** Processes still inside the scope (any hierarchy, any depth). */
  pids(): number[] {
    const out = new Set<number>();
    const walk = (dir: string): void => {
      let entries: fs.Dirent[];
      try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
      try {
        for (const l of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.add(Number(l));
      } catch { /* gone */ }
      for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
    };
    for (const p of this.paths) walk(p);
    return [...out];
  }

  /** Create the slice and the scope; delegate the scope to the container's root (owner uid/gid). */
  create(owner?: { uid: number; gid: number }): void {
    if (this.hierarchies.length === 0) throw new Error('no cgroup hierarchy mounted (need cgroup2 or name=systemd)');
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
