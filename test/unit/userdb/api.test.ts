import { describe, expect, it } from 'vitest';
import { toReply } from '../../../src/server/userdb-api.js';
import { VarlinkError } from '../../../src/varlink/errors.js';

function thrown(f: () => unknown): VarlinkError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VarlinkError);
    return e as VarlinkError;
  }
  throw new Error('expected a VarlinkError');
}

describe('toReply (UserDb result → reply or Varlink error)', () => {
  it('returns the single record', () => {
    expect(toReply({ records: [{ userName: 'vu-x-0' }] })).toEqual({ userName: 'vu-x-0' });
  });
  it.each([
    'io.systemd.UserDatabase.NoRecordFound',
    'io.systemd.UserDatabase.BadService',
    'io.systemd.UserDatabase.ConflictingRecordFound',
    'io.systemd.UserDatabase.EnumerationNotSupported',
  ] as const)('throws %s with empty parameters', (error) => {
    const e = thrown(() => toReply({ error }));
    expect(e.error).toBe(error);
    expect(e.parameters).toEqual({});
  });
  it('throws InvalidParameter naming the key', () => {
    const e = thrown(() => toReply({ invalidParameter: 'uid' }));
    expect([e.error, e.parameters]).toEqual(['org.varlink.service.InvalidParameter', { parameter: 'uid' }]);
  });
  it('throws io.systemd.System with the errno', () => {
    const e = thrown(() => toReply({ error: 'io.systemd.System', errno: 22 }));
    expect([e.error, e.parameters]).toEqual(['io.systemd.System', { errno: 22 }]);
  });
});

describe('userdbApi keeps found records only while the user database is unchanged', () => {
  it('answers from the kept text, and anew once a machine is set or removed', async () => {
    const { userdbApi } = await import('../../../src/server/userdb-api.js');
    const { UserDb } = await import('../../../src/server/userdb/userdb.js');
    const { parseIdMap } = await import('../../../src/server/userdb/idmap.js');
    const { EncodedParameters } = await import('../../../src/varlink/wire.js');
    const db = new UserDb({ service: 'io.systemd.Machine' });
    const ctx = { userdb: db, registry: { get: () => undefined } } as never;
    const api = userdbApi(ctx) as unknown as Record<string, (p: object, call: object) => unknown>;
    const call = {};
    const params = { uid: 1879048192 + 5, service: 'io.systemd.Machine' };
    const text = (r: unknown) => {
      expect(r).toBeInstanceOf(EncodedParameters);
      return JSON.parse((r as InstanceType<typeof EncodedParameters>).json) as { record: { userName: string } };
    };
    const set = (name: string) =>
      db.setMachine({ name, class: 'container', uidMap: parseIdMap('0 1879048192 65536'), gidMap: parseIdMap('0 1879048192 65536'), registeredBy: 0 });
    set('one');
    const first = api.GetUserRecord!(params, call);
    expect(text(first).record.userName).toBe('vu-one-5');
    // Asked again: the same kept text.
    expect(api.GetUserRecord!({ ...params }, call)).toBe(first);
    // The machine goes: a miss, not the kept record.
    db.removeMachine('one');
    expect(thrown(() => api.GetUserRecord!(params, call)).error).toBe('io.systemd.UserDatabase.NoRecordFound');
    // Another machine takes the range: its name, not the old one's.
    set('two');
    expect(text(api.GetUserRecord!(params, call)).record.userName).toBe('vu-two-5');
    expect(text(api.GetGroupRecord!({ gid: 1879048192 + 5, service: 'io.systemd.Machine' }, call)).record).toMatchObject({ groupName: 'vg-two-5' });
  });
});
