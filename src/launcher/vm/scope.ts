// The VM's own cgroup, shaped like a systemd scope unit (machine.slice/machine-NAME.scope), so that a registry
// given allocateUnit=false finds a unit for the leader, and so that everything qemu and its helpers leave
// behind can be found and killed. Created in each cgroup hierarchy that has a cgroup.procs at the top:
// the unified one and the named "systemd" one on hybrid hosts, /sys/fs/cgroup on pure cgroup2 hosts.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CGROUP_ROOTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'];

/** systemd's unit name escaping for one component: keep [A-Za-z0-9:_.], a leading "." and anything else become \xNN. */
export function unitEscape(s: string): string {
  let out = '';
  for (const [i, ch] of [...s].entries()) {
    if (/[A-Za-z0-9:_]/.test(ch) || (ch === '.' && i > 0)) out += ch;
    else if (ch === '/') out += '-';
    else for (const b of Buffer.from(ch, 'utf8')) out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function scopeUnitName(machine: string): string {
  return `machine-${unitEscape(machine)}.scope`;
}

export class Scope {
  private constructor(
    readonly unit: string,
    /** absolute cgroup directories, one per hierarchy */
    readonly dirs: string[],
  ) {}

  /** Creates the scope's cgroup in every usable hierarchy; an empty scope (no writable cgroupfs) is allowed. */
  static create(machine: string, roots: readonly string[] = CGROUP_ROOTS): Scope {
    const unit = scopeUnitName(machine);
    const dirs: string[] = [];
    for (const root of roots) {
      if (!existsSync(join(root, 'cgroup.procs'))) continue;
      const dir = join(root, 'machine.slice', unit);
      try {
        mkdirSync(dir, { recursive: true });
        dirs.push(dir);
      } catch {
        // read-only or foreign cgroupfs: carry on without this hierarchy
      }
    }
    return new Scope(unit, dirs);
  }

  /** argv prefix that moves the process into the scope before it execs the command (race-free). */
  wrap(argv: readonly string[]): string[] {
    if (this.dirs.length === 0) return [...argv];
    const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
    return ['/bin/sh', '-c', script, 'berth-vm-scope', ...this.dirs.map((d) => join(d, 'cgroup.procs')), '--', ...argv];
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs) {
      for (const p of readProcs(d)) all.add(p);
    }
    return [...all];
  }

  /** SIGKILLs whatever is left in the scope, waits (bounded) for it to be gone, then removes the cgroups. */
  async destroy(deadlineMs = 3000): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const pids = this.pids();
      if (pids.length === 0) break;
      for (const d of this.dirs) {
        try {
          if (existsSync(join(d, 'cgroup.kill'))) writeFileSync(join(d, 'cgroup.kill'), '1');
        } catch {
          // fall back to signalling each process
        }
      }
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const d of this.dirs) removeTree(d);
  }
}

function readProcs(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // gone meanwhile
    }
  };
  walk(dir);
  return out;
}

function removeTree(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    // already gone, or still busy: nothing more to do here
  }
}
