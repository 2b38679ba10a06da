// Where machines live in the cgroup tree: which hierarchies this host mounts (cgroup2, the v1 `name=systemd`
// one, or both), the cgroup path of a machine's scope, and reading the unit back out of a cgroup path.
//
// Which hierarchy tells the unit: the cgroup2 one whenever it is mounted (pure v2 at /sys/fs/cgroup, or the
// "hybrid" layout with v2 at /sys/fs/cgroup/unified), otherwise the v1 `name=systemd` hierarchy. That is what
// systemd 257's machined and libsystemd's sd_pid_get_machine_name() use: on a hybrid host a process whose unit
// only shows in the v1 hierarchy is not found by either.

import fs from 'node:fs';
import path from 'node:path';
import { MACHINE_SLICE, isProcessUnitName, isSliceName, machineScopeUnit } from './unit-names.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;

export type CgroupMode = 'unified' | 'hybrid' | 'legacy' | 'none';

export interface CgroupHierarchy {
  /** Mount point, e.g. /sys/fs/cgroup/unified. */
  root: string;
  version: 1 | 2;
}

export interface CgroupLayout {
  mode: CgroupMode;
  /** The hierarchy whose paths name units (v2 when mounted, else v1 name=systemd). */
  primary?: CgroupHierarchy;
  /** Every hierarchy in which berth mirrors a machine scope. */
  hierarchies: CgroupHierarchy[];
}

function fsType(p: string): number | undefined {
  try {
    return Number(fs.statfsSync(p).type);
  } catch {
    return undefined;
  }
}

/** Find the cgroup hierarchies under `base` (default /sys/fs/cgroup) by the file system type of each mount. */
export function detectCgroupLayout(base = '/sys/fs/cgroup'): CgroupLayout {
  if (fsType(base) === CGROUP2_SUPER_MAGIC) {
    const h = { root: base, version: 2 as const };
    return { mode: 'unified', primary: h, hierarchies: [h] };
  }
  const hierarchies: CgroupHierarchy[] = [];
  const unified = path.join(base, 'unified');
  const systemd = path.join(base, 'systemd');
  const hasV2 = fsType(unified) === CGROUP2_SUPER_MAGIC;
  const hasV1 = fsType(systemd) === CGROUP_SUPER_MAGIC;
  if (hasV2) hierarchies.push({ root: unified, version: 2 });
  if (hasV1) hierarchies.push({ root: systemd, version: 1 });
  if (hierarchies.length === 0) return { mode: 'none', hierarchies };
  return { mode: hasV2 ? 'hybrid' : 'legacy', primary: hierarchies[0], hierarchies };
}

/** The cgroup path of a machine's scope, relative to a hierarchy's root: `/machine.slice/machine-NAME.scope`. */
export function machineScopeCgroup(name: string): string {
  return `/${MACHINE_SLICE}/${machineScopeUnit(name)}`;
}

/** The directories of a machine's scope, one in each of `hierarchies` (say, a layout's). */
export function machineScopeDirs(name: string, hierarchies: readonly CgroupHierarchy[]): string[] {
  return hierarchies.map((h) => path.join(h.root, machineScopeCgroup(name)));
}

/** The paths of a process in the v2 hierarchy (`0::` line) and in v1 `name=systemd`, from /proc/PID/cgroup. */
export function parseProcCgroup(text: string): { v2?: string; systemd?: string } {
  const out: { v2?: string; systemd?: string } = {};
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const p = line.slice(second + 1);
    if (id === '0' && controllers === '') out.v2 = p;
    else if (controllers.split(',').includes('name=systemd')) out.systemd = p;
  }
  return out;
}

/** systemd prefixes cgroup names that could clash with kernel files with `_`; undo that. */
function cgroupUnescape(s: string): string {
  return s.startsWith('_') ? s.slice(1) : s;
}

/**
 * The unit a cgroup path belongs to: leading `*.slice` components are skipped and the next component must be
 * a scope or service unit name. Returns the unit and the cgroup path of the unit itself.
 */
export function unitFromCgroupPath(cgroupPath: string): { unit: string; unitCgroup: string } | undefined {
  const parts = cgroupPath.split('/').filter((p) => p.length > 0);
  let i = 0;
  while (i < parts.length && isSliceName(cgroupUnescape(parts[i]!))) i++;
  if (i >= parts.length) return undefined;
  const unit = cgroupUnescape(parts[i]!);
  if (!isProcessUnitName(unit)) return undefined;
  return { unit, unitCgroup: '/' + parts.slice(0, i + 1).join('/') };
}

/** The processes in a cgroup directory and every cgroup below it. */
export function cgroupTreePids(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'latin1').split('\n')) if (l) out.push(Number(l));
    } catch {
      /* gone meanwhile */
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(dir);
  return out;
}
