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
