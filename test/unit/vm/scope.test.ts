import { describe, expect, it } from 'vitest';
import { VmScope } from '../../../src/launcher/vm/scope.js';
import { machineScopeUnit as scopeName } from '../../../src/domain/unit-names.js';

describe('VM scope', () => {
  it('is named like a systemd machine scope', () => {
    expect(scopeName('vm1')).toBe('machine-vm1.scope');
    expect(scopeName('my-vm')).toBe('machine-my\\x2dvm.scope');
  });

  it('without a cgroup hierarchy the command runs unwrapped', async () => {
    const s = VmScope.create('x', []);
    expect(s.dirs).toEqual([]);
    expect(s.wrap(['qemu', '-m', '1G'])).toEqual(['qemu', '-m', '1G']);
    expect(s.pids()).toEqual([]);
    await s.destroy();
  });

  it('with hierarchies, the shim writes its own pid into each cgroup.procs before exec', () => {
    const s = VmScope.create('vmx', []);
    expect(s.wrap(['a'])).toEqual(['a']);
    // shape of the wrapper, checked without touching /sys/fs/cgroup
    const w = (VmScope.prototype.wrap as (this: unknown, argv: string[]) => string[]).call({ scope: { paths: ['/cg/u/machine.slice/machine-vmx.scope', '/cg/s/machine.slice/machine-vmx.scope'] } }, ['qemu', '-x']);
    expect(w.slice(3)).toEqual(['berth-vm-scope', '/cg/u/machine.slice/machine-vmx.scope/cgroup.procs', '/cg/s/machine.slice/machine-vmx.scope/cgroup.procs', '--', 'qemu', '-x']);
    expect(w[0]).toBe('/bin/sh');
  });
});
