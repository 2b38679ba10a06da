/**
 * What a berth-spawn that ended without its teardown (kill -9, a crash) left of a machine, found and removed:
 * the veth link and scope it marked, mounts below its run directories, the run directories (containers'
 * RUNTIME/berth/machines/NAME, VMs' RUNTIME/berth/vm/NAME), its name lock, tree locks and UID leases whose
 * locks nobody holds, and berthd's launch record of a supervisor that ended. Used by the next start of the same
 * machine and by `berthctl cleanup`. A machine whose berth-spawn still runs is never touched; neither is a
 * scope or link without berth-spawn's mark for this runtime directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { cgroupTreePids, detectCgroupLayout, type CgroupHierarchy } from '../domain/cgroup-paths.js';
import { scopeMaker } from '../domain/scope-mark.js';
import { berthRuntimeDir } from '../domain/runtime-paths.js';
import { isValidMachineName } from '../domain/machine-name.js';
import { processExists, readStartTime } from '../domain/process.js';
import { killCgroupTree, removeCgroupTree, Scope } from './cgroup.js';
import { hostIfName, removeVeth } from './network.js';
import { berthSpawnMark, launcherAlive, readLaunchRecord, vethAlias, type LaunchRecordData } from './launch-record.js';
import { linkAlias, linksWithAliasPrefix, lockHeld, markedScopeMachines, mountsBelow } from './host-traces.js';
import { waitFor } from './teardown.js';

export type LeftoverKind = 'veth' | 'scope' | 'mount' | 'run directory' | 'name lock' | 'tree lock' | 'uid lease' | 'launch record';

export interface Leftover { kind: LeftoverKind; path: string }

export interface MachineLeftovers {
  machine: string;
  /** the berth-spawn (or supervisor) that made them, as far as its record tells */
  launcherPid?: number;
  /** set when the machine is not left over: why it is left alone */
  running?: string;
  /** processes still in its marked scope although its berth-spawn ended */
  orphans: number;
  items: Leftover[];
}

export interface SurveyOptions {
  /** the start of this machine asks: it already holds the name lock (containers), and berthd's record names it */
  starting?: 'container' | 'vm';
  hierarchies?: readonly CgroupHierarchy[];
}

const VM_CLAIM_GRACE_MS = 30_000;

interface Paths { containerDir: string; nameLock: string; vmDir: string; launched: string }

function pathsOf(runtimeDir: string, name: string): Paths {
  const machines = berthRuntimeDir(runtimeDir, 'machines');
  return {
    containerDir: path.join(machines, name),
    nameLock: path.join(machines, `${name}.lock`),
    vmDir: path.join(berthRuntimeDir(runtimeDir, 'vm'), name),
    launched: path.join(berthRuntimeDir(runtimeDir, 'launched'), `${name}.json`),
  };
}

function readJson(file: string): { pid?: unknown; starttime?: unknown } | undefined {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown; starttime?: unknown }; } catch { return undefined; }
}

/** Why the machine counts as running (its berth-spawn lives), or undefined when nothing of it runs a launcher. */
function whoRuns(p: Paths, records: LaunchRecordData[], o: SurveyOptions, locks: string): string | undefined {
  for (const r of records) if (launcherAlive(r)) return `its berth-spawn (pid ${r.pid}) is running`;
  if (o.starting !== 'container' && lockHeld(p.nameLock, locks)) return 'its name lock is held by a running berth-spawn';
  if (fs.existsSync(p.vmDir) && !readLaunchRecord(p.vmDir)) {
    // A run directory from before launch records: only its pid; a pid that exists may be the launcher's.
    let pid = 0;
    try { pid = Number(fs.readFileSync(path.join(p.vmDir, 'pid'), 'utf8')) || 0; } catch { /* not written yet */ }
    if (pid > 0 && processExists(pid)) return `its VM launcher may be running (pid ${pid})`;
    if (!pid && Date.now() - fs.statSync(p.vmDir).mtimeMs < VM_CLAIM_GRACE_MS) return 'its VM run directory is being claimed';
  }
  if (!o.starting) {
    const rec = readJson(p.launched);
    if (rec && typeof rec.pid === 'number' && readStartTime(rec.pid) === rec.starttime) return `its supervisor (pid ${rec.pid}) is running`;
  }
  return undefined;
}

/** Lock files in a directory that nobody holds and whose content names `name` (as the tree locks and leases do). */
function freeLocksNaming(dir: string, owned: (text: string) => boolean, locks: string): string[] {
  let files: string[];
  try { files = fs.readdirSync(dir); } catch { return []; }
  const out: string[] = [];
  for (const f of files) {
    const p = path.join(dir, f);
    let text: string;
    try { text = fs.readFileSync(p, 'utf8'); } catch { continue; }
    if (owned(text) && !lockHeld(p, locks)) out.push(p);
  }
  return out;
}

/** Everything one machine left, or why it is left alone. Reads only. */
export function surveyMachine(runtimeDir: string, name: string, o: SurveyOptions = {}): MachineLeftovers {
  const p = pathsOf(runtimeDir, name);
  const records = [readLaunchRecord(p.containerDir), readLaunchRecord(p.vmDir)].filter((r): r is LaunchRecordData => !!r);
  const out: MachineLeftovers = { machine: name, launcherPid: records[0]?.pid, orphans: 0, items: [] };
  const locks = fs.readFileSync('/proc/locks', 'latin1');
  const running = whoRuns(p, records, o, locks);
  if (running) return { ...out, running };

  const mark = berthSpawnMark(runtimeDir);
  const veths = new Set([hostIfName(name).name, ...records.flatMap((r) => (r.veth ? [r.veth] : []))]);
  for (const v of veths) if (linkAlias(v) === vethAlias(runtimeDir, name)) out.items.push({ kind: 'veth', path: v });

  const scope = Scope.locate(name, o.hierarchies ?? detectCgroupLayout().hierarchies);
  for (const d of scope.paths.filter((x) => fs.existsSync(x) && scopeMaker(x) === mark)) {
    out.orphans = Math.max(out.orphans, cgroupTreePids(d).length);
    out.items.push({ kind: 'scope', path: d });
  }

  for (const dir of [p.containerDir, p.vmDir]) {
    if (!fs.existsSync(dir)) continue;
    for (const m of mountsBelow(dir)) out.items.push({ kind: 'mount', path: m });
    out.items.push({ kind: 'run directory', path: dir });
  }
  if (o.starting !== 'container' && fs.existsSync(p.nameLock)) out.items.push({ kind: 'name lock', path: p.nameLock });
  for (const f of freeLocksNaming(berthRuntimeDir(runtimeDir, 'tree-locks'), (t) => t.trim() === name, locks)) out.items.push({ kind: 'tree lock', path: f });
  for (const f of freeLocksNaming(berthRuntimeDir(runtimeDir, 'uid-leases'), (t) => t.trim().split(/\s+/)[2] === name, locks)) out.items.push({ kind: 'uid lease', path: f });
  if (!o.starting && fs.existsSync(p.launched)) out.items.push({ kind: 'launch record', path: p.launched });
  return out;
}

/** Names of every machine that has something under RUNTIME/berth, or a scope or link marked for it. */
export function machinesWithTraces(runtimeDir: string, hierarchies: readonly CgroupHierarchy[] = detectCgroupLayout().hierarchies): string[] {
  const names = new Set<string>();
  const list = (d: string): string[] => { try { return fs.readdirSync(d); } catch { return []; } };
  const contents = (d: string, pick: (t: string) => string | undefined): void => {
    for (const f of list(d)) {
      try { const n = pick(fs.readFileSync(path.join(d, f), 'utf8').trim()); if (n) names.add(n); } catch { /* gone */ }
    }
  };
  const machines = berthRuntimeDir(runtimeDir, 'machines');
  for (const f of list(machines)) {
    if (f.endsWith('.lock')) names.add(f.slice(0, -'.lock'.length));
    else if (fs.statSync(path.join(machines, f), { throwIfNoEntry: false })?.isDirectory()) names.add(f);
  }
  for (const f of list(berthRuntimeDir(runtimeDir, 'vm'))) names.add(f);
  for (const f of list(berthRuntimeDir(runtimeDir, 'launched'))) if (f.endsWith('.json') && !f.startsWith('.')) names.add(f.slice(0, -'.json'.length));
  contents(berthRuntimeDir(runtimeDir, 'tree-locks'), (t) => t);
  contents(berthRuntimeDir(runtimeDir, 'uid-leases'), (t) => t.split(/\s+/)[2]);
  for (const n of markedScopeMachines(hierarchies, berthSpawnMark(runtimeDir))) names.add(n);
  for (const l of linksWithAliasPrefix(`${berthSpawnMark(runtimeDir)} `)) names.add(l.rest);
  return [...names].filter(isValidMachineName).sort();
}

/** The line that reports one removal: about to be made, made, or (dry run) that would be made. */
export function describeRemoval(m: MachineLeftovers, item: Leftover, verb: 'removing' | 'removed' | 'would remove' = 'removing'): string {
  const by = m.launcherPid ? `a berth-spawn that ended (pid ${m.launcherPid})` : 'a berth-spawn that ended';
  return `${verb} leftover ${item.kind} ${item.path} of ${by}`;
}

async function removeItem(item: Leftover): Promise<void> {
  switch (item.kind) {
    case 'veth': return removeVeth(item.path);
    case 'scope': {
      killCgroupTree(item.path);
      await waitFor(() => cgroupTreePids(item.path).length === 0, 5000, `the scope ${item.path} to empty`, 10);
      if (!removeCgroupTree(item.path)) throw new Error(`cannot remove ${item.path}`);
      return;
    }
    case 'mount': {
      const { execa } = await import('execa');
      await execa('umount', ['--lazy', item.path]);
      return;
    }
    case 'run directory': {
      // Never delete through a mount point: a bind of the container's tree would go with it.
      const left = mountsBelow(item.path);
      if (left.length) throw new Error(`${left[0]} is still mounted`);
      fs.rmSync(item.path, { recursive: true, force: true });
      return;
    }
    default:
      fs.rmSync(item.path, { force: true });
  }
}

export interface RemoveOptions {
  dryRun?: boolean;
  /** kill processes still in a marked scope of a berth-spawn that ended (otherwise the machine is left alone) */
  kill?: boolean;
  log?: (line: string) => void;
}

/** Removes one machine's leftovers in a safe order (link and scope first, files last); returns what failed. */
export async function removeLeftovers(m: MachineLeftovers, o: RemoveOptions = {}): Promise<{ removed: Leftover[]; failed: { item: Leftover; error: string }[] }> {
  const removed: Leftover[] = [];
  const failed: { item: Leftover; error: string }[] = [];
  if (m.running || (m.orphans > 0 && !o.kill)) return { removed, failed };
  for (const item of m.items) {
    o.log?.(describeRemoval(m, item, o.dryRun ? 'would remove' : 'removing'));
    if (o.dryRun) { removed.push(item); continue; }
    try {
      await removeItem(item);
      removed.push(item);
    } catch (e) {
      failed.push({ item, error: (e as Error).message });
    }
  }
  return { removed, failed };
}

/**
 * At the start of machine `name`: removes what an ended berth-spawn of it left, one line each on `log`.
 * Refuses (with `refusal`'s error) while that machine still runs, with or without its berth-spawn.
 */
export async function clearLeftovers(runtimeDir: string, name: string, starting: 'container' | 'vm', log: (line: string) => void,
  refusal: (msg: string) => Error): Promise<void> {
  const m = surveyMachine(runtimeDir, name, { starting });
  const who = starting === 'vm' ? `machine ${name}` : `machine '${name}'`;
  if (m.running) throw refusal(`${who} is already running (${m.running})`);
  if (m.orphans) {
    throw refusal(`${who} is already running without its berth-spawn${m.launcherPid ? ` (pid ${m.launcherPid} ended)` : ''}: ${m.orphans} processes remain in its scope; stop them with 'berthctl terminate ${name}' or 'berthctl cleanup --kill ${name}'`);
  }
  const r = await removeLeftovers(m, { log });
  if (r.failed.length) {
    throw refusal(`cannot remove what an earlier run of ${who} left: ${r.failed.map((f) => `${f.item.kind} ${f.item.path}: ${f.error}`).join('; ')}`);
  }
}
