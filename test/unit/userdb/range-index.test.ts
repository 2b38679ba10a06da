import { describe, expect, it } from 'vitest';
import { RangeIndex } from '../../../src/server/userdb/index.js';

const e = (start: number, end: number, order: number, value: string) => ({ start, end, order, value });
const values = (idx: RangeIndex<string>, id: number) => idx.lookup(id).map((x) => x.value);

describe('RangeIndex', () => {
  it('finds the range covering an ID, with half-open ends', () => {
    const idx = new RangeIndex<string>();
    idx.set('a', [e(100, 200, 0, 'a')]);
    idx.set('b', [e(300, 400, 1, 'b1'), e(500, 501, 1, 'b2')]);
    expect(values(idx, 99)).toEqual([]);
    expect(values(idx, 100)).toEqual(['a']);
    expect(values(idx, 199)).toEqual(['a']);
    expect(values(idx, 200)).toEqual([]);
    expect(values(idx, 350)).toEqual(['b1']);
    expect(values(idx, 500)).toEqual(['b2']);
    expect(values(idx, 501)).toEqual([]);
    expect(values(idx, 2 ** 32)).toEqual([]);
  });

  it('lists every entry covering an overlapped ID, lowest order first', () => {
    const idx = new RangeIndex<string>();
    idx.set('late', [e(150, 250, 5, 'late')]);
    idx.set('early', [e(100, 200, 1, 'early')]);
    expect(values(idx, 120)).toEqual(['early']);
    expect(values(idx, 160)).toEqual(['early', 'late']);
    expect(values(idx, 220)).toEqual(['late']);
    expect(idx.intersecting(190, 300).map((x) => x.value)).toEqual(['early', 'late']);
    expect(idx.intersecting(190, 300, 'early').map((x) => x.value)).toEqual(['late']);
    expect(idx.intersecting(250, 300)).toEqual([]);
  });

  it('reflects replacement and deletion', () => {
    const idx = new RangeIndex<string>();
    idx.set('a', [e(100, 200, 0, 'a')]);
    expect(values(idx, 150)).toEqual(['a']);
    idx.set('a', [e(1000, 2000, 0, 'a2')]);
    expect(values(idx, 150)).toEqual([]);
    expect(values(idx, 1500)).toEqual(['a2']);
    idx.delete('a');
    expect(values(idx, 1500)).toEqual([]);
    expect(idx.size).toBe(0);
  });

  it('agrees with a linear scan on random ranges', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const idx = new RangeIndex<string>();
    const all: ReturnType<typeof e>[] = [];
    for (let i = 0; i < 300; i++) {
      const start = rnd(100000);
      const r = e(start, start + 1 + rnd(2000), i, `m${i}`);
      all.push(r);
      idx.set(`m${i}`, [r]);
    }
    for (let k = 0; k < 2000; k++) {
      const id = rnd(103000);
      const expected = all.filter((r) => r.start <= id && id < r.end).map((r) => r.value);
      expect(values(idx, id)).toEqual(expected);
    }
  });
});
