// The filter fields of io.systemd.UserDatabase (systemd 258+): matching rules, lookups narrowed by them, filtered enumerations and their limit.
import { describe, expect, it } from 'vitest';
import { UserDb, parseIdMap, type UserDbResult } from '../../../src/server/userdb/index.js';
import { ENUMERATION_LIMIT, editDistance, fuzzyMatch, parseUuid, type RecordFilter } from '../../../src/server/userdb/filters.js';
import { userdbApi } from '../../../src/server/userdb-api.js';
import { Replies } from '../../../src/varlink/call.js';
import { VarlinkError } from '../../../src/varlink/errors.js';

const S = 'io.systemd.Machine';
const WEB = 0x70000000;
const DB_BASE = 0x70010000;
const SMALL = 0x70020000;

function fixture(): UserDb {
  const db = new UserDb({ service: S });
  const add = (name: string, map: string, cls = 'container') =>
    db.setMachine({ name, class: cls, uidMap: parseIdMap(map), gidMap: parseIdMap(map), registeredBy: 0 });
  add('web1', `0 ${WEB} 65536`);
  add('db', `0 ${DB_BASE} 65536`);
  add('small', `0 ${SMALL} 10`);
  add('vmweb', `0 ${0x70030000} 65536`, 'vm');
  add('a.b', `0 ${0x70040000} 65536`);
  return db;
}

function hits(db: UserDb, f: UserDbResult<unknown>, kind: 'user' | 'group' = 'user'): string[] {
  expect(f).toHaveProperty('enumerate');
  const filter = (f as { enumerate: RecordFilter }).enumerate;
  const out: string[] = [];
  for (const h of kind === 'user' ? db.enumerateUsers(filter) : db.enumerateGroups(filter)) if (h) out.push(h.name);
  return out;
}

describe('fuzzy name matching', () => {
  it('finds a needle anywhere in a name, ignoring ASCII case', () => {
    expect(fuzzyMatch(['vu-web1-0'], ['web'])).toBe(true);
    expect(fuzzyMatch(['uid 0 of container web1'], ['container web'])).toBe(true);
    expect(fuzzyMatch(['vu-db-0'], ['web'])).toBe(false);
  });
  it('lets needles of five characters or more differ by up to two edits from a whole name', () => {
    expect(fuzzyMatch(['vu-web1-0'], ['vu-wbe1-0'])).toBe(true); // two substitutions
    expect(fuzzyMatch(['vu-web1-0'], ['vu-web1-012'])).toBe(true); // two insertions
    expect(fuzzyMatch(['vu-web1-0'], ['vu-web1-0123'])).toBe(false); // three
    expect(fuzzyMatch(['root'], ['rot'])).toBe(false); // too short for edits, and not a substring
    expect(fuzzyMatch(['abcd'], ['abxd'])).toBe(false);
  });
  it('computes edit distances, stopping at the limit', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
    expect(editDistance('aaaaaaaa', 'b', 3)).toBe(3);
  });
  it('reads UUIDs in both spellings', () => {
    expect(parseUuid('0123456789ABCDEF0123456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
    expect(parseUuid('01234567-89ab-cdef-0123-456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
    expect(parseUuid('0123456789abcdef')).toBeUndefined();
    expect(parseUuid('01234567-89ab-cdef-0123-456789abcdeg')).toBeUndefined();
  });
});

describe('lookups with filters', () => {
  const db = fixture();
  const u = (p: object) => db.getUserRecord({ ...p, service: S });
  const g = (p: object) => db.getGroupRecord({ ...p, service: S });
  const name = (r: UserDbResult<{ userName?: string; groupName?: string }>) =>
    'records' in r ? (r.records[0]!.userName ?? r.records[0]!.groupName) : r;

  it('answer the record when it passes, NonMatchingRecordFound when it does not', () => {
    expect(name(u({ uid: WEB + 5, fuzzyNames: ['web'] }))).toBe('vu-web1-5');
    expect(name(u({ uid: WEB + 5, fuzzyNames: ['nothing'] }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    expect(name(u({ userName: 'vu-web1-5', uidMin: WEB, uidMax: WEB + 5 }))).toBe('vu-web1-5');
    expect(name(u({ userName: 'vu-web1-5', uidMin: WEB + 6 }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    expect(name(u({ uid: WEB, dispositionMask: ['container', 'regular'] }))).toBe('vu-web1-0');
    expect(name(u({ uid: WEB, dispositionMask: ['regular'] }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    expect(name(u({ uid: WEB, dispositionMask: [] }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    expect(name(u({ uid: WEB, uuid: '0123456789abcdef0123456789abcdef' }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    // The all-zero UUID restricts nothing.
    expect(name(u({ uid: WEB, uuid: '00000000-0000-0000-0000-000000000000' }))).toBe('vu-web1-0');
    // Real names count: "GID 3 of Container db".
    expect(name(g({ groupName: 'vg-db-3', fuzzyNames: ['CONTAINER DB'] }))).toBe('vg-db-3');
    expect(name(g({ gid: DB_BASE + 3, gidMax: DB_BASE + 2 }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
  });
  it('leave misses and conflicts as they were (a miss stays NoRecordFound; the filter is checked first)', () => {
    expect(u({ userName: 'vu-nope-1', fuzzyNames: ['x'] })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(u({ uid: WEB + 1, userName: 'vu-web1-2', fuzzyNames: ['web'] })).toEqual({ error: 'io.systemd.UserDatabase.ConflictingRecordFound' });
    expect(u({ uid: WEB + 1, userName: 'vu-web1-2', fuzzyNames: ['zzz'] })).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
  });
  it('what 257 refused in its IDL validator is answered now', () => {
    expect(name(u({ uid: WEB, fuzzyNames: ['x'] }))).toEqual({ error: 'io.systemd.UserDatabase.NonMatchingRecordFound' });
    expect(name(u({ uid: WEB, uidMin: 1 }))).toBe('vu-web1-0');
    expect(name(g({ gid: WEB, gidMin: 1 }))).toBe('vg-web1-0');
  });
  it('refuse bad filter values with InvalidParameter naming the field', () => {
    expect(u({ dispositionMask: ['bogus'] })).toEqual({ invalidParameter: 'dispositionMask' });
    expect(u({ dispositionMask: 'container' })).toEqual({ invalidParameter: 'dispositionMask' });
    expect(u({ fuzzyNames: ['a', 5] })).toEqual({ invalidParameter: 'fuzzyNames' });
    expect(u({ uidMax: 65535 })).toEqual({ invalidParameter: 'uidMax' });
    expect(u({ uidMax: 4294967295 })).toEqual({ invalidParameter: 'uidMax' });
    expect(u({ uidMin: -1 })).toEqual({ invalidParameter: 'uidMin' });
    expect(u({ uuid: 'bogus' })).toEqual({ invalidParameter: 'uuid' });
    expect(g({ uidMin: 1 })).toEqual({ invalidParameter: 'uidMin' });
    expect(u({ gidMin: 1 })).toEqual({ invalidParameter: 'gidMin' });
  });
  it('refuse reversed bounds, naming the bound the call lists first', () => {
    expect(u({ uidMin: 10, uidMax: 5 })).toEqual({ invalidParameter: 'uidMin' });
    expect(u({ uidMax: 5, uidMin: 10 })).toEqual({ invalidParameter: 'uidMax' });
    expect(g({ groupName: 'vg-db-0', gidMin: 10, gidMax: 5 })).toEqual({ invalidParameter: 'gidMin' });
    // Equal bounds are one ID.
    expect(name(u({ uid: WEB + 7, uidMin: WEB + 7, uidMax: WEB + 7 }))).toBe('vu-web1-7');
  });
  it('treat null filter fields as absent (no enumeration from nulls alone)', () => {
    expect(u({ fuzzyNames: null, uidMin: null })).toEqual({ error: 'io.systemd.UserDatabase.EnumerationNotSupported' });
    expect(name(u({ uid: WEB, fuzzyNames: null }))).toBe('vu-web1-0');
  });
  it('still check the service', () => {
    expect(db.getUserRecord({ fuzzyNames: ['web'], service: 'other' })).toEqual({ error: 'io.systemd.UserDatabase.BadService' });
  });
});

describe('filtered enumerations', () => {
  const db = fixture();
  const u = (p: object) => db.getUserRecord({ ...p, service: S });
  const g = (p: object) => db.getGroupRecord({ ...p, service: S });

  it('list the IDs of a window, containers only, in order', () => {
    expect(hits(db, u({ dispositionMask: ['container'], uidMin: WEB + 65533, uidMax: DB_BASE + 1 }))).toEqual([
      'vu-web1-65533',
      'vu-web1-65534', // 65535 inside is never a record
      'vu-db-0',
      'vu-db-1',
    ]);
    expect(hits(db, g({ gidMin: SMALL + 8, gidMax: SMALL + 100 }), 'group')).toEqual(['vg-small-8', 'vg-small-9']);
  });
  it('match names and real names fuzzily', () => {
    expect(hits(db, u({ fuzzyNames: ['small'] }))).toHaveLength(10);
    expect(hits(db, u({ fuzzyNames: ['SMALL-1'] }))).toEqual(['vu-small-1']);
    // "UID 7 of Container small"
    expect(hits(db, u({ fuzzyNames: ['uid 7 of'] })).filter((n) => n.includes('small'))).toEqual(['vu-small-7']);
    // Within two edits of a whole name: "vu-smal-3" is one edit from vu-small-3 and two from vu-small-0..9.
    expect(hits(db, u({ fuzzyNames: ['vu-smal-3'], uidMin: SMALL }))).toEqual(Array.from({ length: 10 }, (_, i) => `vu-small-${i}`));
    // "vu-smal-35": two edits from vu-small-3 (insert l, drop 5) and vu-small-5 (two substitutions); three from the rest.
    expect(hits(db, u({ fuzzyNames: ['vu-smal-35'], uidMin: SMALL }))).toEqual(['vu-small-3', 'vu-small-5']);
    // A VM's IDs and names that cannot be user names (a dot) are never listed.
    expect(hits(db, u({ fuzzyNames: ['vmweb'] }))).toEqual([]);
    expect(hits(db, u({ fuzzyNames: ['a.b'] }))).toEqual([]);
  });
  it('list nothing when disposition or UUID exclude every synthesized record', () => {
    expect(hits(db, u({ dispositionMask: ['regular', 'system'] }))).toEqual([]);
    expect(hits(db, u({ uuid: '0123456789abcdef0123456789abcdef' }))).toEqual([]);
  });
});

describe('userdbApi: filtered enumeration over Varlink', () => {
  const db = fixture();
  const ctx = { userdb: db, registry: { get: () => undefined } } as never;
  const api = userdbApi(ctx) as unknown as Record<string, (p: object, call: object) => unknown>;
  const call = { signal: new AbortController().signal, log: { info: () => undefined } };
  const records = async (p: object, method = 'GetUserRecord') => {
    const r = await api[method]!({ ...p, service: S }, call);
    expect(r).toBeInstanceOf(Replies);
    const out: string[] = [];
    for (const x of (r as Replies<{ record: { userName?: string; groupName?: string } }>).source as Iterable<{ record: { userName?: string; groupName?: string } }>)
      out.push(x.record.userName ?? x.record.groupName!);
    return { out, empty: (r as Replies<unknown>).empty?.() };
  };
  const error = async (p: object, method = 'GetUserRecord') => {
    try {
      await api[method]!({ ...p, service: S }, call);
    } catch (e) {
      expect(e).toBeInstanceOf(VarlinkError);
      return [(e as VarlinkError).error, (e as VarlinkError).parameters];
    }
    throw new Error('expected an error');
  };

  it('streams the matching records, NoRecordFound when there are none', async () => {
    const a = await records({ fuzzyNames: ['small'] });
    expect(a.out).toEqual(Array.from({ length: 10 }, (_, i) => `vu-small-${i}`));
    expect((await records({ fuzzyNames: ['small'] }, 'GetGroupRecord')).out[0]).toBe('vg-small-0');
    const none = await records({ fuzzyNames: ['nothing-here'] });
    expect(none.out).toEqual([]);
    expect((none.empty as VarlinkError).error).toBe('io.systemd.UserDatabase.NoRecordFound');
  });
  it('lists one full container range, and refuses a filter matching more than the limit', async () => {
    // web1 alone: 65535 records (inside 65535 is none), within the limit.
    expect((await records({ fuzzyNames: ['web1'] })).out).toHaveLength(65535);
    expect(ENUMERATION_LIMIT).toBe(65536);
    // web1 and db: over it.
    expect(await error({ dispositionMask: ['container'] })).toEqual(['io.systemd.UserDatabase.EnumerationNotSupported', {}]);
  });
  it('answers bad filters and unfiltered enumerations as before', async () => {
    expect(await error({ uidMin: 10, uidMax: 5 })).toEqual(['org.varlink.service.InvalidParameter', { parameter: 'uidMin' }]);
    expect(await error({ dispositionMask: ['nope'] }, 'GetGroupRecord')).toEqual(['org.varlink.service.InvalidParameter', { parameter: 'dispositionMask' }]);
    expect(await error({})).toEqual(['io.systemd.UserDatabase.EnumerationNotSupported', {}]);
  });
  it('answers a filtered single lookup with one record or NonMatchingRecordFound', async () => {
    const r = api.GetUserRecord!({ uid: SMALL + 2, fuzzyNames: ['small'], service: S }, call) as { json: string };
    expect(JSON.parse(r.json).record.userName).toBe('vu-small-2');
    expect(await error({ uid: SMALL + 2, fuzzyNames: ['web'] })).toEqual(['io.systemd.UserDatabase.NonMatchingRecordFound', {}]);
  });
});
