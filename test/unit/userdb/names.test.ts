import { describe, expect, it } from 'vitest';
import { isValidUid, isValidUserGroupNameRelaxed, isValidUserGroupNameStrict, parseUid } from '../../../src/server/userdb/index.js';

describe('isValidUid', () => {
  it.each([0, 1, 65534, 65536, 1879048192, 4294967294])('accepts %d', (n) => expect(isValidUid(n)).toBe(true));
  it.each([-1, 65535, 4294967295, 4294967296, 2 ** 53, 1.5, NaN, Infinity])('refuses %d', (n) => expect(isValidUid(n)).toBe(false));
});

describe('parseUid (the ID part of vu-MACHINE-ID)', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['65534', 65534],
    ['4294967294', 4294967294],
  ])('parses %s', (s, n) => expect(parseUid(s)).toBe(n));
  it.each(['', '00', '01', '+1', '-1', ' 1', '1 ', '0x1', '1e1', '1.0', '65535', '4294967295', '4294967296', '99999999999'])(
    'refuses %j',
    (s) => expect(parseUid(s)).toBeUndefined(),
  );
});

describe('isValidUserGroupNameStrict', () => {
  it.each(['vu-x-0', 'vu-ud-Up-0', '_a', 'a'.repeat(31), 'vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-9'])('accepts %j', (s) =>
    expect(isValidUserGroupNameStrict(s)).toBe(true),
  );
  it.each(['', 'a'.repeat(32), 'vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-10', 'vu-a.b-0', '0a', '-a', 'a b', 'vu-üd-0', 'a+1'])('refuses %j', (s) =>
    expect(isValidUserGroupNameStrict(s)).toBe(false),
  );
});

describe('isValidUserGroupNameRelaxed (what is InvalidParameter rather than a miss)', () => {
  it.each(['-vu', '--1', '-1a', '1a', '+1', '0x10', '1.5', 'a b', '.a', 'a.', '...', '~', 'a,b', 'a\\b', 'ü', '٣', 'a\u00a0', '\u00a0a', 'a\u0080b', 'a😀b', 'a'.repeat(5000)])(
    'accepts %j',
    (s) => expect(isValidUserGroupNameRelaxed(s)).toBe(true),
  );
  it.each(['', '-', '-0', '0', '00', '123', '0644', '65535', '-1', '-12345678901234567890', ' ', ' a', 'a ', 'a\t', '\na', '.', '..', 'a\u0001b', 'a\u007fb', 'a:b', 'a/b', 'a\ud800b'])(
    'refuses %j',
    (s) => expect(isValidUserGroupNameRelaxed(s)).toBe(false),
  );
});
