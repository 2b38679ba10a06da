// Scopes berth makes itself when no systemd is PID 1: creating `machine.slice/machine-NAME.scope` in every
// hierarchy with the leader in it (allocateUnit), signalling every process of a unit, and removing a scope
// once it is empty. Where the scope lives and which hierarchies exist: ../../domain/cgroup-paths.ts.

import fs from 'node:fs';
import path from 'node:path';
import { cgroupTreePids, machineScopeCgroup, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../domain/unit-names.js';
import { uidMaySignal } from '../../domain/process.js';
import { markScope } from '../../domain/scope-mark.js';

/**
 * What berthd writes into the mark of the scopes it creates (domain/scope-mark.ts): itself and its state
 * directory, so that a berthd only ever sweeps the scopes of its own registry, not those of another
 * berthd with another runtime directory on the same host.
 */
export const berthdScopeMaker = (stateDir: string): string => `berthd ${path.resolve(stateDir)}`;

/**
 * Create `machine.slice/machine-NAME.scope` in every hierarchy, marked as made by `maker`, and move `pid`
 * into it. On failure, directories created here are removed again. Returns the unit and its cgroup path, or a negative errno.
 */
export function createScope(
  layout: CgroupLayout,
  name: string,
  pid: number,
  maker: string,
): { unit: string; unitCgroup: string } | number {
  if (!layout.primary) return -6; // ENXIO: no cgroup hierarchy to put it in
  const unit = machineScopeUnit(name);
  const unitCgroup = machineScopeCgroup(name);
  const created: string[] = [];
  try {
    for (const h of layout.hierarchies) {
      const slice = path.join(h.root, MACHINE_SLICE);
      const dir = path.join(slice, unit);
      if (!fs.existsSync(slice)) fs.mkdirSync(slice);
      try {
        fs.mkdirSync(dir);
        created.push(dir);
        // Marked before anything moves in, so a leftover of this attempt is recognisably berthd's.
        markScope(dir, maker);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // An existing scope with other processes belongs to someone else. One holding only this
        // leader is ours from an attempt cut short (berthd killed between creating it and saving
        // the machine): take it over, so a retried Register succeeds.
        if (cgroupProcs(dir).some((p) => p !== pid)) throw Object.assign(new Error('scope in use'), { errno: -17 });
      }
    }
    for (const h of layout.hierarchies) {
      fs.writeFileSync(path.join(h.root, unitCgroup, 'cgroup.procs'), `${pid}\n`);
    }
    return { unit, unitCgroup };
  } catch (e) {
    for (const dir of created.reverse()) {
      try {
        fs.rmdirSync(dir);
      } catch {
        /* not empty (the leader moved in): leave it */
      }
    }
    const err = e as NodeJS.ErrnoException & { errno?: number };
    return typeof err.errno === 'number' && err.errno < 0 ? err.errno : -5; // EIO
  }
}

export function cgroupProcs(dir: string): number[] {
  try {
    return fs
      .readFileSync(path.join(dir, 'cgroup.procs'), 'latin1')
      .split('\n')
      .filter((l) => l.length > 0)
      .map(Number);
  } catch {
    return [];
  }
}

/** Every process in a unit's cgroup and the cgroups below it (primary hierarchy). */
export function scopePids(layout: CgroupLayout, unitCgroup: string): number[] {
  return layout.primary ? cgroupTreePids(path.join(layout.primary.root, unitCgroup)) : [];
}

/**
 * Send a signal to every process of a unit; returns how many were signalled. With `asUid`, only to
 * the processes that uid could signal itself: berthd signals as root on behalf of a non-root caller,
 * and a unit of that caller may hold processes of others (a setuid program it ran, for one).
 */
export function killScope(layout: CgroupLayout, unitCgroup: string, signal: number | NodeJS.Signals, asUid?: number): number {
  let n = 0;
  for (const pid of scopePids(layout, unitCgroup)) {
    if (asUid !== undefined && !uidMaySignal(asUid, pid)) continue;
    try {
      process.kill(pid, signal);
      n++;
    } catch {
      /* exited meanwhile */
    }
  }
  return n;
}

/** Remove an empty cgroup and the empty cgroups below it, deepest first (throws what rmdir throws). */
function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    /* gone, or not readable: rmdir below says which */
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/**
 * Remove a scope's cgroup directories wherever they are empty, with the sub-cgroups a payload made in it
 * (systemd-nspawn puts its container in `payload/`); returns true if all are gone.
 */
export function removeScope(layout: CgroupLayout, unitCgroup: string): boolean {
  let all = true;
  for (const h of layout.hierarchies) {
    const dir = path.join(h.root, unitCgroup);
    try {
      removeCgroupTree(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') all = false;
    }
  }
  return all;
}
