import { describe, expect, it } from 'vitest';
import { isProcessUnitName, machineScopeUnit, unitNameEscape } from '../../../src/domain/unit-names.js';
import { parseProcCgroup, unitFromCgroupPath } from '../../../src/domain/cgroup-paths.js';

describe('unit name escaping', () => {
  it.each([
    ['foo', 'foo'],
    ['rg-a', 'rg\\x2da'],
    ['a.b', 'a.b'],
    ['.hidden', '\\x2ehidden'],
    ['a/b', 'a-b'],
    ['a b', 'a\\x20b'],
    ['a\\b', 'a\\x5cb'],
    ['a:b_c', 'a:b_c'],
    ['é', '\\xc3\\xa9'],
  ])('%j → %j', (input, out) => {
    expect(unitNameEscape(input)).toBe(out);
  });

  it('names machine scopes machine-<escaped>.scope', () => {
    expect(machineScopeUnit('rg-q2')).toBe('machine-rg\\x2dq2.scope');
    expect(machineScopeUnit('foo.bar')).toBe('machine-foo.bar.scope');
    expect(isProcessUnitName(machineScopeUnit('rg-q2'))).toBe(true);
  });
});

describe('unit of a cgroup path (as machined 257 decided on this host)', () => {
  it.each([
    ['/machine.slice/machine-rg-a.scope', 'machine-rg-a.scope', '/machine.slice/machine-rg-a.scope'],
    ['/rg-t1.scope', 'rg-t1.scope', '/rg-t1.scope'],
    ['/rg-t3.scope/sub', 'rg-t3.scope', '/rg-t3.scope'],
    ['/rg-a.slice/rg-a-b.slice/rg-t5.service', 'rg-t5.service', '/rg-a.slice/rg-a-b.slice/rg-t5.service'],
    ['/system.slice/systemd-nspawn@foo.service/payload', 'systemd-nspawn@foo.service', '/system.slice/systemd-nspawn@foo.service'],
    ['/machine.slice/machine-rg\\x2dq2.scope', 'machine-rg\\x2dq2.scope', '/machine.slice/machine-rg\\x2dq2.scope'],
  ])('%s → %s', (p, unit, unitCgroup) => {
    expect(unitFromCgroupPath(p)).toEqual({ unit, unitCgroup });
  });

  it.each(['/', '', '/rg-plain/rg-t4.scope', '/machine.slice', '/foo', '/user.slice/x.socket', '/a.slice/@x.service'])(
    'no unit in %j',
    (p) => {
      expect(unitFromCgroupPath(p)).toBeUndefined();
    },
  );

  it('reads the v2 and name=systemd lines of /proc/PID/cgroup', () => {
    const text = [
      '9:name=systemd:/machine.slice/machine-rg-a.scope',
      '8:pids:/',
      '4:memory:/process_api/359947a405b0452d60108420b96be400',
      '0::/machine.slice/machine-rg-a.scope',
      '',
    ].join('\n');
    expect(parseProcCgroup(text)).toEqual({ v2: '/machine.slice/machine-rg-a.scope', systemd: '/machine.slice/machine-rg-a.scope' });
    expect(parseProcCgroup('0::/a.scope\n')).toEqual({ v2: '/a.scope' });
    expect(parseProcCgroup('1:name=systemd:/x.scope\n')).toEqual({ systemd: '/x.scope' });
  });
});

import { DBusError, variant } from '../../../src/dbus/index.js';
import { errnoOfSystemdError, transientScopeProperties } from '../../../src/server/registry/systemd-scope.js';

describe('scope from systemd (when it is PID 1)', () => {
  it('asks for a delegated transient scope in machine.slice holding the leader, with machined\'s properties', () => {
    expect(transientScopeProperties('web-1', 4242, 'container')).toEqual([
      ['Slice', variant('s', 'machine.slice')],
      ['Description', variant('s', 'Container web-1')],
      ['Delegate', variant('b', true)],
      ['CollectMode', variant('s', 'inactive-or-failed')],
      ['TasksMax', variant('t', 16384n)],
      ['PIDs', variant('au', [4242])],
    ]);
    expect(transientScopeProperties('vm1', 7, 'vm')[1]![1].value).toBe('Virtual Machine vm1');
  });

  it('answers systemd\'s refusals with machined\'s errnos', () => {
    expect(errnoOfSystemdError(new DBusError('org.freedesktop.systemd1.UnitExists', 'Unit machine-a.scope already exists.'))).toBe(17);
    expect(errnoOfSystemdError(new DBusError('org.freedesktop.DBus.Error.UnixProcessIdUnknown', 'Failed to find PID 9'))).toBe(3);
    expect(errnoOfSystemdError(new DBusError('org.freedesktop.DBus.Error.Failed', 'whatever'))).toBe(5);
  });
});
