// Machine scopes on a host where systemd is PID 1: the cgroup tree is systemd's, so berthd asks it for a
// transient `machine-NAME.scope` over the bus (through busctl), as machined does, instead of making one itself.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { CgroupLayout } from '../../domain/cgroup-paths.js';
import { machineScopeCgroup } from '../../domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../domain/unit-names.js';
import { unitOfPid } from './pid-cgroup.js';

/** Whether systemd runs as PID 1 here (then it, not berth, owns the cgroup tree). */
export function systemdIsPid1(): boolean {
  return fs.existsSync('/run/systemd/system');
}

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
 * Ask systemd for the scope and wait (briefly) until the leader is in it. Returns undefined when systemd
 * cannot be asked (no busctl, no bus) or did not move the leader, so the caller can fall back.
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
    if (unitOfPid(pid, layout)?.unit === unit) return { unit, unitCgroup: machineScopeCgroup(name) };
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  return undefined;
}
