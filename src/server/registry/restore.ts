// Deciding, for one saved state file, whether its machine is still there: the leader must still run and
// be the very process that was registered (same pidfd inode number when the file records one; otherwise
// started no later than the machine was registered), so a recycled PID can never bring a machine back.

import { now, type Machine } from './machine.js';
import { closeLeader, leaderAlive, pinLeader, processExists, type Leader } from './leaders.js';
import { machineScopeCgroup, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { machineScopeUnit } from '../../domain/unit-names.js';
import { unitOfPid } from './pid-cgroup.js';
import { systemdIsPid1 } from './systemd-scope.js';
import { parseStateFile } from './state.js';

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
  // A scope of the shape berth allocates, outside systemd's tree: berth removes it when the machine goes.
  const ownsScope = unit === machineScopeUnit(rec.name) && unitCgroup === machineScopeCgroup(rec.name) && !systemdIsPid1();
  const machine: Machine = {
    name: rec.name,
    ...(rec.id ? { id: rec.id } : {}),
    ...(rec.service !== undefined ? { service: rec.service } : {}),
    class: rec.class === 'vm' ? 'vm' : 'container',
    leader: { pid: pinned.pid, starttime: pinned.starttime, ...(pinned.pidfdId !== undefined ? { pidfdId: pinned.pidfdId } : {}) },
    ...(rec.rootDirectory !== undefined ? { rootDirectory: rec.rootDirectory } : {}),
    ifIndices: rec.ifIndices ?? [],
    ...(rec.vSockCid !== undefined ? { vSockCid: rec.vSockCid } : {}),
    ...(rec.sshAddress !== undefined ? { sshAddress: rec.sshAddress } : {}),
    ...(rec.sshPrivateKeyPath !== undefined ? { sshPrivateKeyPath: rec.sshPrivateKeyPath } : {}),
    ...(unit ? { unit } : {}),
    ...(unitCgroup ? { unitCgroup } : {}),
    ownsScope,
    timestamp: { realtime: rec.realtime ?? now().realtime, monotonic: rec.monotonic ?? 0 },
    registeredBy: rec.uid ?? 0,
    allocateUnit: ownsScope,
  };
  return { keep: true, machine, leader: pinned, warnings };
}
