// Which cgroup, and so which unit, a process is in: /proc/PID/cgroup read against the host's cgroup layout.

import path from 'node:path';
import { readProcText } from '../../domain/proc-read.js';
import { parseProcCgroup, unitFromCgroupPath, type CgroupLayout } from '../../domain/cgroup-paths.js';

/** A process's cgroup paths as /proc/PID/cgroup gives them, or undefined if it is gone. */
function procCgroup(pid: number): { v2?: string; systemd?: string } | undefined {
  const text = readProcText(`/proc/${pid}/cgroup`);
  return text === undefined ? undefined : parseProcCgroup(text);
}

/** The cgroup path (relative to the primary hierarchy) of a process, or undefined if it is gone. */
export function pidCgroupPath(pid: number, layout: CgroupLayout): string | undefined {
  if (!layout.primary) return undefined;
  const parsed = procCgroup(pid);
  return layout.primary.version === 2 ? parsed?.v2 : parsed?.systemd;
}

/** The directories of a process's cgroups, one in each hierarchy it shows up in. */
export function pidCgroupDirs(pid: number, layout: CgroupLayout): string[] {
  const parsed = procCgroup(pid);
  if (!parsed) return [];
  const out: string[] = [];
  for (const h of layout.hierarchies) {
    const rel = h.version === 2 ? parsed.v2 : parsed.systemd;
    if (rel !== undefined) out.push(path.join(h.root, rel));
  }
  return out;
}

/** The unit of a process, or undefined when it is gone or not in a unit-shaped cgroup. */
export function unitOfPid(pid: number, layout: CgroupLayout): { unit: string; unitCgroup: string } | undefined {
  const p = pidCgroupPath(pid, layout);
  return p === undefined ? undefined : unitFromCgroupPath(p);
}

/**
 * The unit of a process and where it sits below that unit's cgroup (see subgroupOf), from one read of
 * /proc/PID/cgroup; undefined when it is gone or not in a unit-shaped cgroup.
 */
export function unitPlaceOfPid(pid: number, layout: CgroupLayout): { unit: string; unitCgroup: string; subgroup?: string } | undefined {
  const p = pidCgroupPath(pid, layout);
  const u = p === undefined ? undefined : unitFromCgroupPath(p);
  if (!u) return undefined;
  const sub = subgroupIn(p!, u.unitCgroup);
  return sub === undefined ? u : { ...u, subgroup: sub };
}

function subgroupIn(cgroupPath: string, unitCgroup: string): string | undefined {
  return cgroupPath.startsWith(`${unitCgroup}/`) ? cgroupPath.slice(unitCgroup.length + 1) : undefined;
}

/**
 * Where a process sits below its unit's cgroup: `a/b` for /system.slice/x.service/a/b when the unit's
 * cgroup is /system.slice/x.service; undefined when it sits in the unit's cgroup itself (or elsewhere).
 */
export function subgroupOf(pid: number, unitCgroup: string, layout: CgroupLayout): string | undefined {
  const p = pidCgroupPath(pid, layout);
  return p === undefined ? undefined : subgroupIn(p, unitCgroup);
}
