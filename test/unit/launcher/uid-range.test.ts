import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTAINER_UID_BASE_MAX, CONTAINER_UID_BASE_MIN, UidRangeError, allocateUidRange, candidates, hashedBase,
  leasedRanges, overlaps, parseIdMap, parsePrivateUsers, rangesInUse,
} from '../../../src/launcher/uid-range.js';

describe('hashedBase (nspawn --private-users=pick)', () => {
  it.each([
    ['nsp1', 0x1e350000],
    ['nsp2', 0x395d0000],
    ['ct1', 442564608],
    ['foo', 1614544896],
  ])('%s → %i', (name, base) => {
    expect(hashedBase(name)).toBe(base);
  });
  it('always lands 64K-aligned inside the window', () => {
    for (let i = 0; i < 500; i++) {
      const b = hashedBase(`m${i}`);
      expect(b % 0x10000).toBe(0);
      expect(b).toBeGreaterThanOrEqual(CONTAINER_UID_BASE_MIN);
      expect(b).toBeLessThanOrEqual(CONTAINER_UID_BASE_MAX);
    }
  });
});

describe('parsePrivateUsers', () => {
  it('accepts the nspawn forms', () => {
    expect(parsePrivateUsers('pick')).toEqual({ mode: 'pick' });
    expect(parsePrivateUsers('yes')).toEqual({ mode: 'yes' });
    expect(parsePrivateUsers('no')).toEqual({ mode: 'no' });
    expect(parsePrivateUsers('identity')).toEqual({ mode: 'identity' });
    expect(parsePrivateUsers('1000000')).toEqual({ mode: 'fixed', shift: 1000000, range: 65536 });
    expect(parsePrivateUsers('1000000:1000')).toEqual({ mode: 'fixed', shift: 1000000, range: 1000 });
  });
  it('rejects nonsense with a message naming the value', () => {
    expect(() => parsePrivateUsers('maybe')).toThrow(/maybe/);
    expect(() => parsePrivateUsers('10:0')).toThrow(UidRangeError);
    expect(() => parsePrivateUsers('-5')).toThrow(UidRangeError);
  });
});

describe('candidate order', () => {
  it('tries the tree base, then the hash, then random bases, 100 in all', () => {
    let r = 0;
    const list = [...candidates('nsp1', 0x7000000 & 0xffff0000, () => 0x100000 + (r++) * 0x10000)];
    expect(list[0]).toBe(0x7000000);
    expect(list[1]).toBe(0x1e350000);
    expect(list[2]).toBe(0x100000);
    expect(list).toHaveLength(100);
  });
  it('starts with the hash when the tree is not shifted', () => {
    expect([...candidates('nsp2', 0, () => 0)][0]).toBe(0x395d0000);
  });
});

describe('maps and overlaps', () => {
  it('parses uid_map and ignores the initial identity map', () => {
    expect(parseIdMap('         0          0 4294967295\n')).toEqual([]);
    expect(parseIdMap('         0  524288      65536\n')).toEqual([{ inside: 0, outside: 524288, count: 65536 }]);
  });
  it('detects overlap at the edges', () => {
    expect(overlaps({ start: 0, size: 10 }, { start: 9, size: 1 })).toBe(true);
    expect(overlaps({ start: 0, size: 10 }, { start: 10, size: 1 })).toBe(false);
  });
});

describe('allocateUidRange', () => {
  const dirs: string[] = [];
  const tmp = (): string => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-uid-')); dirs.push(d); return d; };
  afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

  function world(): { runtimeDir: string; root: string; procRoot: string; passwdFile: string; groupFile: string } {
    const d = tmp();
    const procRoot = path.join(d, 'proc');
    fs.mkdirSync(path.join(procRoot, 'self', 'ns'), { recursive: true });
    const root = path.join(d, 'tree');
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(d, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    fs.writeFileSync(path.join(d, 'group'), 'root:x:0:\n');
    return { runtimeDir: path.join(d, 'run'), root, procRoot, passwdFile: path.join(d, 'passwd'), groupFile: path.join(d, 'group') };
  }
  function fakeProcess(procRoot: string, pid: number, ns: string, map: string): void {
    fs.mkdirSync(path.join(procRoot, String(pid), 'ns'), { recursive: true });
    fs.symlinkSync(ns, path.join(procRoot, String(pid), 'ns', 'user'));
    fs.writeFileSync(path.join(procRoot, String(pid), 'uid_map'), map);
  }

  it('picks the hash of the name when it is free, and leases it', () => {
    const w = world();
    const lease = allocateUidRange({ machineName: 'nsp1', spec: { mode: 'pick' }, ...w });
    expect(lease?.base).toBe(0x1e350000);
    expect(leasedRanges(w.runtimeDir)).toEqual([{ start: 0x1e350000, size: 65536, owner: 'machine nsp1' }]);
    lease!.release();
    expect(leasedRanges(w.runtimeDir)).toEqual([]);
  });

  it('never picks a range a running user namespace maps', () => {
    const w = world();
    fakeProcess(w.procRoot, 42, 'user:[1]', `         0  ${0x1e350000}      65536\n`);
    expect(rangesInUse(w.procRoot)).toEqual([{ start: 0x1e350000, size: 65536, owner: 'process 42' }]);
    const lease = allocateUidRange({ machineName: 'nsp1', spec: { mode: 'pick' }, random: () => 0x20000000, ...w });
    expect(lease?.base).toBe(0x20000000);
    lease!.release();
  });

  it('never picks a range holding a host user or group', () => {
    const w = world();
    fs.appendFileSync(w.passwdFile, `odd:x:${0x1e350000 + 5}:100::/:/bin/false\n`);
    const lease = allocateUidRange({ machineName: 'nsp1', spec: { mode: 'pick' }, random: () => 0x30000000, ...w });
    expect(lease?.base).toBe(0x30000000);
    lease!.release();
  });

  it('never shares a leased range: a second machine with the same name gets another one', () => {
    const w = world();
    const a = allocateUidRange({ machineName: 'nsp2', spec: { mode: 'pick' }, ...w });
    const b = allocateUidRange({ machineName: 'nsp2', spec: { mode: 'pick' }, random: () => 0x40000000, ...w });
    expect(a?.base).toBe(0x395d0000);
    expect(b?.base).toBe(0x40000000);
    a!.release(); b!.release();
  });

  it('refuses an explicit range that overlaps another machine, naming both', () => {
    const w = world();
    const a = allocateUidRange({ machineName: 'one', spec: { mode: 'fixed', shift: 0x500000, range: 65536 }, ...w });
    expect(() => allocateUidRange({ machineName: 'two', spec: { mode: 'fixed', shift: 0x508000, range: 65536 }, ...w }))
      .toThrow(/overlaps 5242880…5308415 used by machine one/);
    a!.release();
  });

  it('takes the base from the tree owner with --private-users=yes', () => {
    const w = world();
    fs.chownSync(w.root, 0x600000 + 3, 0x600000 + 3);
    const lease = allocateUidRange({ machineName: 'y', spec: { mode: 'yes' }, ...w });
    expect(lease?.base).toBe(0x600000);
    lease!.release();
  });

  it('allocates nothing for --private-users=no', () => {
    expect(allocateUidRange({ machineName: 'n', spec: { mode: 'no' }, ...world() })).toBeUndefined();
  });
});
