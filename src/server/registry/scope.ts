// Control groups without systemd: which unit a process sits in, creating `machine.slice/machine-NAME.scope`
// for machines registered with allocateUnit, listing and signalling the processes of a unit, and removing a
// scope berth created once it is empty.
//
// Which hierarchy tells the unit: the cgroup2 one whenever it is mounted (pure v2 at /sys/fs/cgroup, or the
// "hybrid" layout with v2 at /sys/fs/cgroup/unified), otherwise the v1 `name=systemd` hierarchy. That is what
// systemd 257's machined and libsystemd's sd_pid_get_machine_name() use: on a hybrid host a process whose unit
// only shows in the v1 hierarchy is not found by either.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { uidMaySignal } from '../../domain/process.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;

export type CgroupMode = 'unified' | 'hybrid' | 'legacy' | 'none';

export interface CgroupLayout {
  mode: CgroupMode;
  /** The hierarchy whose paths name units (v2 when mounted, else v1 name=systemd). */
  primary?: { root: string; version: 1 | 2 };
  /** Every hierarchy in which berth mirrors a machine scope. */
  hierarchies: { root: string; version: 1 | 2 }[];
}

function fsType(p: string): number | undefined {
  try {
    return Number(fs.statfsSync(p).type);
  } catch {
    return undefined;
  }
}

/** Find the cgroup hierarchies under `base` (default /sys/fs/cgroup). */
export function detectCgroupLayout(base = '/sys/fs/cgroup'): CgroupLayout {
  if (fsType(base) === CGROUP2_SUPER_MAGIC) {
    const h = { root: base, version: 2 as const };
    return { mode: 'unified', primary: h, hierarchies: [h] };
  }
  const hierarchies: CgroupLayout['hierarchies'] = [];
  const unified = path.join(base, 'unified');
  const systemd = path.join(base, 'systemd');
  const hasV2 = fsType(unified) === CGROUP2_SUPER_MAGIC;
  const hasV1 = fsType(systemd) === CGROUP_SUPER_MAGIC;
  if (hasV2) hierarchies.push({ root: unified, version: 2 });
  if (hasV1) hierarchies.push({ root: systemd, version: 1 });
  if (hierarchies.length === 0) return { mode: 'none', hierarchies };
  return { mode: hasV2 ? 'hybrid' : 'legacy', primary: hierarchies[0], hierarchies };
}

/** The paths of a process in the v2 hierarchy (`0::` line) and in v1 `name=systemd`. */
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

/** A process's cgroup paths as /proc/PID/cgroup gives them, or undefined if it is gone. */
function procCgroup(pid: number): { v2?: string; systemd?: string } | undefined {
  try {
    return parseProcCgroup(fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
  } catch {
    return undefined;
  }
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

const UNIT_NAME_MAX = 255;
const UNIT_VALID_CHARS = /^[A-Za-z0-9:_.\\@-]+$/;

/** A unit name of a type that can hold processes: `prefix[@instance].scope|.service`. */
export function isProcessUnitName(s: string): boolean {
  if (s.length === 0 || s.length > UNIT_NAME_MAX || !UNIT_VALID_CHARS.test(s)) return false;
  const m = /^(.+)\.(scope|service)$/.exec(s);
  if (!m) return false;
  const stem = m[1]!;
  const at = stem.indexOf('@');
  if (at === 0) return false;
  if (at > 0 && stem.indexOf('@', at + 1) >= 0) return false;
  return true;
}

/** A slice name, `a.slice`, `a-b.slice`, `-.slice`. */
function isSliceName(s: string): boolean {
  return s.endsWith('.slice') && s.length > '.slice'.length && UNIT_VALID_CHARS.test(s);
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

/** The unit of a process, or undefined when it is gone or not in a unit-shaped cgroup. */
export function unitOfPid(pid: number, layout: CgroupLayout): { unit: string; unitCgroup: string } | undefined {
  const p = pidCgroupPath(pid, layout);
  return p === undefined ? undefined : unitFromCgroupPath(p);
}

/**
 * Escape a string for use in a unit name the way systemd does: `/` becomes `-`; letters, digits, `:`, `_`
 * and `.` stay, except a leading `.`; everything else (including `-` and `\`) becomes `\xNN` per byte.
 */
export function unitNameEscape(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (i === 0 && c === '.') out += '\\x2e';
    else if (/[A-Za-z0-9:_.]/.test(c)) out += c;
    else out += '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/** The scope unit berth (and machined) allocates for a machine: `machine-<escaped name>.scope`. */
export function machineScopeUnit(name: string): string {
  return `machine-${unitNameEscape(name)}.scope`;
}

/** The slice machine scopes go in. */
export const MACHINE_SLICE = 'machine.slice';

/**
 * Create `machine.slice/machine-NAME.scope` in every hierarchy and move `pid` into it. On failure, directories
 * created here are removed again. Returns the unit and its cgroup path, or a negative errno.
 */
export function createScope(
  layout: CgroupLayout,
  name: string,
  pid: number,
): { unit: string; unitCgroup: string } | number {
  if (!layout.primary) return -6; // ENXIO: no cgroup hierarchy to put it in
  const unit = machineScopeUnit(name);
  const unitCgroup = `/${MACHINE_SLICE}/${unit}`;
  const created: string[] = [];
  try {
    for (const h of layout.hierarchies) {
      const slice = path.join(h.root, MACHINE_SLICE);
      const dir = path.join(slice, unit);
      if (!fs.existsSync(slice)) fs.mkdirSync(slice);
      try {
        fs.mkdirSync(dir);
        created.push(dir);
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

function cgroupProcs(dir: string): number[] {
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
  if (!layout.primary) return [];
  const out: number[] = [];
  const walk = (dir: string) => {
    out.push(...cgroupProcs(dir));
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
  };
  walk(path.join(layout.primary.root, unitCgroup));
  return out;
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

/** Remove a scope's cgroup directories wherever they are empty; returns true if all are gone. */
export function removeScope(layout: CgroupLayout, unitCgroup: string): boolean {
  let all = true;
  for (const h of layout.hierarchies) {
    const dir = path.join(h.root, unitCgroup);
    try {
      fs.rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') all = false;
    }
  }
  return all;
}

/** Whether systemd runs as PID 1 here (then it, not berth, owns the cgroup tree). */
/**
 * The busctl call that asks systemd (when it is PID 1) for the machine's scope, as machined does
 * over D-Bus: a transient `machine-NAME.scope` in machine.slice holding the leader, delegated.
 */
export function transientScopeArgv(name: string, pid: number, cls: string): string[] {
  const unit = machineScopeUnit(name);
  const description = `${cls === 'vm' ? 'Virtual Machine' : 'Container'} ${name}`;
  return [
    'call', '--system', '--quiet', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
    'StartTransientUnit', 'ssa(sv)a(sa(sv))', unit, 'fail',
    '4', 'Slice', 's', MACHINE_SLICE, 'PIDs', 'au', '1', String(pid), 'Delegate', 'b', 'true', 'Description', 's', description,
    '0',
  ];
}

/**
 * On a host where systemd is PID 1 the cgroup tree is systemd's: ask it for the scope instead of
 * creating directories behind its back. Waits (briefly) until the leader is in the scope. Returns
 * undefined when systemd cannot be asked (no busctl, no bus), so the caller can fall back.
 */
export function createScopeWithSystemd(layout: CgroupLayout, name: string, pid: number, cls: string): { unit: string; unitCgroup: string } | undefined {
  try {
    execFileSync('busctl', transientScopeArgv(name, pid, cls), { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return undefined;
  }
  const unit = machineScopeUnit(name);
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    if (unitOfPid(pid, layout)?.unit === unit) return { unit, unitCgroup: `/${MACHINE_SLICE}/${unit}` };
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  return undefined;
}

export function systemdIsPid1(): boolean {
  return fs.existsSync('/run/systemd/system');
}

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
