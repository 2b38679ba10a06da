// A restart keeps what machined 262 added to a machine: the state file's CONTROL_ADDRESS, SUPERVISOR and
// SUPERVISOR_PIDFDID come back into the restored machine, and its subgroup is read again from where the
// leader sits (262 writes no SUBGROUP line). Real processes, no daemon: reviveSavedMachine on a file
// written by formatStateFile.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { closeLeader, pidfdIdOf } from '../../../src/server/registry/leader.js';
import { now, type Machine } from '../../../src/server/registry/machine.js';
import { reviveSavedMachine } from '../../../src/server/registry/restore.js';
import { formatStateFile } from '../../../src/server/registry/state.js';
import { signalSupervisor } from '../../../src/server/registry/supervisor.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

function sleeper(): ChildProcess {
  const c = spawn('sleep', ['infinity'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

describe('restoring a machine registered the 262 way', () => {
  it('keeps controlAddress and the supervisor, which Kill can still reach', async () => {
    const leader = sleeper();
    const supervisor = sleeper();
    const machine: Machine = {
      name: 'rs262',
      class: 'vm',
      leader: { pid: leader.pid!, ...(pidfdIdOf(leader.pid!) !== undefined ? { pidfdId: pidfdIdOf(leader.pid!)! } : {}) },
      supervisor: { pid: supervisor.pid!, ...(pidfdIdOf(supervisor.pid!) !== undefined ? { pidfdId: pidfdIdOf(supervisor.pid!)! } : {}) },
      controlAddress: '/run/berth/rs262 "ctl".sock',
      ifIndices: [],
      ownsScope: false,
      timestamp: now(),
      registeredBy: 0,
      allocateUnit: false,
    };
    const d = reviveSavedMachine('rs262', formatStateFile(machine), detectCgroupLayout());
    expect(d.keep, JSON.stringify(d)).toBe(true);
    if (!d.keep) return;
    closeLeader(d.leader);
    expect(d.warnings).toEqual([]);
    expect(d.machine.controlAddress).toBe(machine.controlAddress);
    expect(d.machine.supervisor).toEqual(machine.supervisor);
    // Signal 0: the restored record still names that very process.
    expect(signalSupervisor(d.machine.supervisor, 0, d.machine.timestamp.realtime)).toEqual({ ok: true, value: undefined });
    supervisor.kill('SIGKILL');
    await new Promise((r) => supervisor.once('exit', r));
    expect(signalSupervisor(d.machine.supervisor, 0, d.machine.timestamp.realtime)).toEqual({ ok: false, error: { errno: 3 } });
  });
});
