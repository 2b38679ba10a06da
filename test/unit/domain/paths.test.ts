import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cgroupTreePids, detectCgroupLayout, machineScopeCgroup, machineScopeDirs, unitFromCgroupPath } from '../../../src/domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit, unitNameEscape } from '../../../src/domain/unit-names.js';
import {
  berthRuntimeDir, machineImageSocketPath, machineSocketPath, machineSocketPaths, machineStateDir, userdbSocketPath,
} from '../../../src/domain/runtime-paths.js';

describe('unit names and scope paths', () => {
  it('escapes the name into the scope unit, and places it in machine.slice', () => {
    expect(unitNameEscape('a/b-c')).toBe('a-b\\x2dc');
    expect(machineScopeUnit('.x')).toBe('machine-\\x2ex.scope');
    expect(machineScopeCgroup('rg-q2')).toBe(`/${MACHINE_SLICE}/machine-rg\\x2dq2.scope`);
    expect(unitFromCgroupPath(machineScopeCgroup('rg-q2'))).toEqual({ unit: 'machine-rg\\x2dq2.scope', unitCgroup: '/machine.slice/machine-rg\\x2dq2.scope' });
    expect(machineScopeDirs('w', [{ root: '/cg/u', version: 2 }, { root: '/cg/s', version: 1 }])).toEqual([
      '/cg/u/machine.slice/machine-w.scope', '/cg/s/machine.slice/machine-w.scope',
    ]);
  });
});

describe('cgroup layout', () => {
  it('finds nothing under a directory that is no cgroup mount', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cg-'));
    fs.mkdirSync(path.join(d, 'unified'));
    expect(detectCgroupLayout(d)).toEqual({ mode: 'none', hierarchies: [] });
    fs.rmSync(d, { recursive: true });
  });
  it('describes this host: v2 as primary whenever it is mounted', () => {
    const l = detectCgroupLayout();
    if (l.mode === 'unified') expect(l.hierarchies).toEqual([{ root: '/sys/fs/cgroup', version: 2 }]);
    if (l.mode === 'hybrid') {
      expect(l.primary).toEqual({ root: '/sys/fs/cgroup/unified', version: 2 });
      expect(l.hierarchies).toContainEqual({ root: '/sys/fs/cgroup/systemd', version: 1 });
    }
    if (l.mode !== 'none') expect(cgroupTreePids(l.primary!.root)).toContain(process.pid);
  });
  it('reads no processes from a missing cgroup', () => {
    expect(cgroupTreePids('/nonexistent/cgroup')).toEqual([]);
  });
});

describe('runtime paths', () => {
  it('puts every socket and directory below the prefix', () => {
    expect(machineSocketPath('/r')).toBe('/r/systemd/machine/io.systemd.Machine');
    expect(machineImageSocketPath('/r')).toBe('/r/systemd/machine/io.systemd.MachineImage');
    expect(machineSocketPaths('/r')).toEqual([machineSocketPath('/r'), machineImageSocketPath('/r')]);
    expect(userdbSocketPath('/r')).toBe('/r/systemd/userdb/io.systemd.Machine');
    expect(userdbSocketPath('/r/', 'x')).toBe('/r/systemd/userdb/x');
    expect(machineStateDir('/run')).toBe('/run/systemd/machines');
    expect(berthRuntimeDir('/r', 'launched')).toBe('/r/berth/launched');
  });
});
