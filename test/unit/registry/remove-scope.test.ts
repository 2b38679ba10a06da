// removeScope takes a scope's cgroup away with the empty sub-cgroups a payload made inside it (nspawn's
// payload/), and leaves a scope that still holds something. Plain directories stand in for cgroups: rmdir
// fails on both when something is inside.
import { mkdirSync, mkdtempSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeScope } from '../../../src/server/registry/scope.js';
import type { CgroupLayout } from '../../../src/domain/cgroup-paths.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function layout(): CgroupLayout {
  const a = mkdtempSync(join(tmpdir(), 'berth-rs-'));
  const b = mkdtempSync(join(tmpdir(), 'berth-rs-'));
  dirs.push(a, b);
  return { mode: 'hybrid', primary: { root: a, version: 2 }, hierarchies: [{ root: a, version: 2 }, { root: b, version: 1 }] };
}

describe('removeScope', () => {
  it('removes the scope with its empty sub-cgroups in every hierarchy', () => {
    const l = layout();
    for (const h of l.hierarchies) mkdirSync(join(h.root, 'machine.slice/machine-x.scope/payload/deeper'), { recursive: true });
    expect(removeScope(l, 'machine.slice/machine-x.scope')).toBe(true);
    for (const h of l.hierarchies) {
      expect(existsSync(join(h.root, 'machine.slice/machine-x.scope'))).toBe(false);
      expect(existsSync(join(h.root, 'machine.slice'))).toBe(true);
    }
  });

  it('keeps a scope that is not empty and says so', () => {
    const l = layout();
    const h = l.hierarchies[0]!;
    mkdirSync(join(h.root, 'machine.slice/machine-y.scope/payload'), { recursive: true });
    writeFileSync(join(h.root, 'machine.slice/machine-y.scope/payload/busy'), '');
    expect(removeScope(l, 'machine.slice/machine-y.scope')).toBe(false);
    expect(existsSync(join(h.root, 'machine.slice/machine-y.scope/payload/busy'))).toBe(true);
  });

  it('counts a scope that is already gone as removed', () => {
    expect(removeScope(layout(), 'machine.slice/machine-z.scope')).toBe(true);
  });
});
