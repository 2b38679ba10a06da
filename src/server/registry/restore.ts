// Restoring the registry from the state directory after a restart. For each saved state file, whether
// its machine is still there: the leader must still run and be the very process that was registered (same
// pidfd inode number when the file records one; otherwise started no later than the machine was
// registered), so a recycled PID can never bring a machine back. What is not restored goes, with its
// files, links and (when empty) the scope berth made for it.

import { isValidMachineName } from '../../domain/machine-name.js';
import { now, type Machine } from './machine.js';
import { processExists } from '../../domain/process.js';
import { closeLeader, identityOf, leaderAlive, pinLeader, type Leader } from './leader.js';
import { machineScopeCgroup, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { machineScopeUnit } from '../../domain/unit-names.js';
import { removeScope } from './scope.js';
import { subgroupOf, unitOfPid } from './pid-cgroup.js';
import { systemdIsPid1 } from './systemd-scope.js';
import { parseStateFile, type StateStore } from './state.js';
import type { Entry, MachineIndex } from './machine-index.js';

export type SavedMachineDecision =
  | { keep: true; machine: Machine; leader: Leader; warnings: string[] }
  | { keep: false; reason: string; unit?: string; leader?: number; warnings: string[] };

/** Parse a state file and check its leader; on `keep` the leader is pinned and the caller owns its pidfd. */
export function reviveSavedMachine(fileName: string, text: string, cgroups: CgroupLayout): SavedMachineDecision {
  const p = parseStateFile(text);
  if (!p.ok) return { keep: false, reason: `damaged state file: ${p.reason}`, warnings: [] };
  const { record: rec, warnings } = p;
  const drop = (reason: string, extra: { unit?: string; leader?: number } = {}): SavedMachineDecision => ({
    keep: false,
    reason,
    ...extra,
    warnings,
  });
  if (rec.name !== fileName) return drop(`state file names another machine (${rec.name})`);
  if (rec.leader === undefined || rec.leader < 2) return drop('no leader recorded', { unit: rec.unit });
  if (rec.leaderPidfdId === undefined && rec.realtime === undefined) {
    return drop('cannot prove the leader is the same process (no LEADER_PIDFDID, no REALTIME)', { unit: rec.unit });
  }
  const pinned = pinLeader(rec.leader, {
    ...(rec.leaderPidfdId !== undefined ? { pidfdId: rec.leaderPidfdId } : {}),
    ...(rec.realtime !== undefined ? { aliveAtRealtime: rec.realtime } : {}),
  });
  if (typeof pinned === 'number' || !leaderAlive(pinned)) {
    if (typeof pinned !== 'number') closeLeader(pinned);
    const reused = typeof pinned === 'number' && processExists(rec.leader);
    return drop(reused ? 'leader PID now belongs to another process' : 'leader is gone', { unit: rec.unit, leader: rec.leader });
  }
  const current = unitOfPid(pinned.pid, cgroups);
  // Without a pidfd inode, identity rests on the start time, which an older unrelated process also
  // passes: then the process must also still sit in the machine's recorded unit.
  if (rec.leaderPidfdId === undefined && rec.unit !== undefined && current?.unit !== rec.unit) {
    closeLeader(pinned);
    return drop('leader PID belongs to a process outside the machine\'s unit', { unit: rec.unit, leader: rec.leader });
  }
  const unit = rec.unit ?? current?.unit;
  const unitCgroup = current && current.unit === unit ? current.unitCgroup : undefined;
  const subgroup = unitCgroup !== undefined ? subgroupOf(pinned.pid, unitCgroup, cgroups) : undefined;
  // A scope of the shape berth allocates, outside systemd's tree: berth removes it when the machine goes.
  const ownsScope = unit === machineScopeUnit(rec.name) && unitCgroup === machineScopeCgroup(rec.name) && !systemdIsPid1();
  const machine: Machine = {
    name: rec.name,
    ...(rec.id ? { id: rec.id } : {}),
    ...(rec.service !== undefined ? { service: rec.service } : {}),
    class: rec.class === 'vm' ? 'vm' : 'container',
    leader: identityOf(pinned),
    ...(rec.rootDirectory !== undefined ? { rootDirectory: rec.rootDirectory } : {}),
    ifIndices: rec.ifIndices ?? [],
    ...(rec.vSockCid !== undefined ? { vSockCid: rec.vSockCid } : {}),
    ...(rec.sshAddress !== undefined ? { sshAddress: rec.sshAddress } : {}),
    ...(rec.sshPrivateKeyPath !== undefined ? { sshPrivateKeyPath: rec.sshPrivateKeyPath } : {}),
    ...(rec.controlAddress !== undefined ? { controlAddress: rec.controlAddress } : {}),
    // The supervisor's identity is checked when it is signalled (supervisor.ts), not here.
    ...(rec.supervisor && rec.supervisor.pid > 0 ? { supervisor: rec.supervisor } : {}),
    ...(unit ? { unit } : {}),
    ...(unitCgroup ? { unitCgroup } : {}),
    ...(subgroup !== undefined ? { subgroup } : {}),
    ownsScope,
    timestamp: { realtime: rec.realtime ?? now().realtime, monotonic: rec.monotonic ?? 0 },
    registeredBy: rec.uid ?? 0,
    allocateUnit: ownsScope,
  };
  return { keep: true, machine, leader: pinned, warnings };
}

export interface RestoreContext {
  store: StateStore;
  cgroups: CgroupLayout;
  index: MachineIndex;
  /** Index and watch a restored machine. */
  insert(e: Entry): void;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/**
 * Re-read the state directory: keep machines whose leader still runs and is the same process, drop the
 * rest with their files and links, remove stale unit links. Every decision is logged. Also accepts files
 * written by systemd-machined.
 */
export function restoreFromState(ctx: RestoreContext): { kept: string[]; dropped: string[] } {
  const { store, cgroups, index, log } = ctx;
  const kept: string[] = [];
  const dropped: string[] = [];
  store.removeTemp();
  const drop = (name: string, unit: string | undefined, why: string, extra: object = {}) => {
    store.remove(name, unit);
    // A scope berth allocated for it goes too, if nothing runs in it any more.
    if (unit === machineScopeUnit(name)) removeScope(cgroups, machineScopeCgroup(name));
    dropped.push(name);
    log.info({ machine: name, ...extra, reason: why }, 'dropped machine from saved state');
  };
  for (const f of store.scan()) {
    if (!isValidMachineName(f.name)) {
      log.warn({ file: f.name }, 'ignoring state file whose name is not a machine name');
      continue;
    }
    if (index.hasName(f.name)) continue;
    if ('error' in f) {
      log.warn({ machine: f.name, err: f.error }, 'cannot read state file; skipped');
      continue;
    }
    const d = reviveSavedMachine(f.name, f.text, cgroups);
    for (const w of d.warnings) log.warn({ machine: f.name }, `state file: ${w}`);
    if (!d.keep) {
      drop(f.name, d.unit, d.reason, d.leader !== undefined ? { leader: d.leader } : {});
      continue;
    }
    const { machine, leader: pinned } = d;
    const unit = machine.unit;
    if (index.hasLeader(pinned.pid) || (unit && index.hasUnit(unit))) {
      closeLeader(pinned);
      drop(f.name, undefined, 'leader or unit already used by another restored machine');
      continue;
    }
    try {
      store.write(machine);
      if (unit) store.linkUnit(unit, machine.name);
    } catch (e) {
      log.warn({ machine: machine.name, err: (e as Error).message }, 'cannot rewrite state file');
    }
    ctx.insert({ machine, leader: pinned });
    kept.push(machine.name);
    log.info({ machine: machine.name, leader: pinned.pid, unit }, 'restored machine from saved state');
  }
  // Links pointing at machines we do not have are stale.
  for (const [unit, name] of store.links()) {
    const e = index.byName(name);
    if (!e || e.machine.unit !== unit) {
      store.unlinkUnit(unit);
      log.info({ unit, machine: name }, 'removed stale unit link');
    }
  }
  return { kept, dropped };
}
