import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scope, scopeUnitName, unitEscape } from '../../../src/launcher/vm/scope.js';

describe('scope', () => {
  it('escapes machine names as systemd unit names do', () => {
    expect(scopeUnitName('vm1')).toBe('machine-vm1.scope');
    expect(scopeUnitName('my-vm')).toBe('machine-my\\x2dvm.scope');
    expect(unitEscape('.a.b')).toBe('\\x2ea.b');
  });

  it('without a cgroup hierarchy the command runs unwrapped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-scope-'));
    try {
      const s = Scope.create('x', [dir]);
      expect(s.dirs).toEqual([]);
      expect(s.wrap(['qemu', '-m', '1G'])).toEqual(['qemu', '-m', '1G']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
