import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IdMapParseError, formatIdMap, parseIdMap, readIdMaps } from '../../../src/server/userdb/index.js';

describe('parseIdMap', () => {
  it('reads the kernel layout (right-aligned columns, one line per range)', () => {
    const text = '         0 1879310336       1000\n      1000          0          1\n4294967294 1879375872          1\n';
    expect(parseIdMap(text)).toEqual([
      { inside: 0, outside: 1879310336, count: 1000 },
      { inside: 1000, outside: 0, count: 1 },
      { inside: 4294967294, outside: 1879375872, count: 1 },
    ]);
  });
  it('reads the identity map of the host namespace', () => {
    expect(parseIdMap('         0          0 4294967295\n')).toEqual([{ inside: 0, outside: 0, count: 4294967295 }]);
  });
  it('reads an empty map (user namespace whose map is not written yet)', () => {
    expect(parseIdMap('')).toEqual([]);
  });
  it('round-trips through formatIdMap', () => {
    const m = parseIdMap('0 1879048192 65536\n70000 70000 10');
    expect(formatIdMap(m)).toBe('         0 1879048192      65536\n     70000      70000         10\n');
    expect(parseIdMap(formatIdMap(m))).toEqual(m);
  });
  it.each([
    ['two columns', '0 1'],
    ['four columns', '0 1 2 3'],
    ['a sign', '-1 0 1'],
    ['a word', 'a b c'],
    ['a count of zero', '0 100000 0'],
    ['a number past 32 bits', '4294967296 0 1'],
    ['a range past 2^32', '4294967295 100000 2'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseIdMap(text)).toThrow(IdMapParseError);
  });
});

describe('readIdMaps', () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-idmap-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads both maps of a process', async () => {
    mkdirSync(join(root, '42'));
    writeFileSync(join(root, '42', 'uid_map'), '         0 1879048192      65536\n');
    writeFileSync(join(root, '42', 'gid_map'), '         0 1879113728      65536\n');
    expect(await readIdMaps(42, root)).toEqual({
      uidMap: [{ inside: 0, outside: 1879048192, count: 65536 }],
      gidMap: [{ inside: 0, outside: 1879113728, count: 65536 }],
    });
  });
  it('reports a missing process as ENOENT instead of throwing', async () => {
    expect(await readIdMaps(43, root)).toEqual({ uidMap: { errno: 2 }, gidMap: { errno: 2 } });
  });
  it('reports a garbled map as EBADMSG', async () => {
    mkdirSync(join(root, '44'));
    writeFileSync(join(root, '44', 'uid_map'), 'garbage\n');
    writeFileSync(join(root, '44', 'gid_map'), '0 0 1\n');
    expect(await readIdMaps(44, root)).toEqual({ uidMap: { errno: 74 }, gidMap: [{ inside: 0, outside: 0, count: 1 }] });
  });
  it('reads this process from the real /proc', async () => {
    const { uidMap, gidMap } = await readIdMaps(process.pid);
    expect(Array.isArray(uidMap) && uidMap.length > 0).toBe(true);
    expect(Array.isArray(gidMap) && gidMap.length > 0).toBe(true);
  });
});
