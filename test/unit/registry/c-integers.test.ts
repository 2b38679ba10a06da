// Integers as machined 257 reads them from JSON strings, and the order in which it reports a bad lookup
// name. Every vector was answered by the real systemd-machined 257 (Kill's signal, Register's vSockCid,
// List's pid); test/interop/differential/ repeats them against a running 257.
import { describe, expect, it } from 'vitest';
import { jsonInteger } from '../../../src/server/c-integers.js';
import { validateKill, validateLookup } from '../../../src/server/machine-params.js';

describe('jsonInteger', () => {
  it('reads signed integers in C notation, as Kill.signal', () => {
    const accepted: [unknown, number][] = [
      [9, 9], ['9', 9], [' 9', 9], ['\t9', 9], ['\n9', 9], ['\v9', 9], ['\f9', 9], ['\r9', 9], ['+9', 9], [' +9', 9],
      ['0x9', 9], ['0X9', 9], ['+0x9', 9], ['0x1c', 28], ['034', 28], ['0100', 64], ['011', 9], ['0b1001', 9],
      [' 0b1001', 9], ['+0b1001', 9], ['0B11100', 28], ['0o11', 9], ['0O34', 28], ['0', 0], ['-0', 0], ['-1', -1], ['-0x1', -1],
    ];
    for (const [v, n] of accepted) expect({ v, n: jsonInteger(v) }).toEqual({ v, n });
    for (const v of ['9 ', '9\n', '09', '00009', '9.0', '', ' ', 'abc', '1e1', '1_0', '0x', '0b', '0o', '- 9', '99999999999999999999', 9.5, null, true, [9]]) {
      expect({ v, n: jsonInteger(v) }).toEqual({ v, n: undefined });
    }
  });

  it('refuses negative values where unsigned, as vSockCid and ProcessId.pid', () => {
    for (const [v, n] of [['7', 7], [' 7', 7], ['+7', 7], ['0x7', 7], ['07', 7], ['0b111', 7], ['4294967295', 4294967295], ['-0', 0]] as const) {
      expect(jsonInteger(v, { unsigned: true })).toBe(n);
    }
    for (const v of ['-7', '-4294967289', -1, '18446744073709551616']) expect(jsonInteger(v, { unsigned: true })).toBeUndefined();
  });
});

describe('lookups', () => {
  it('take pid, pidfdId as strings and refuse null or malformed identity fields', () => {
    expect(validateLookup({ pid: { pid: '123' } })).toEqual({ ok: true, value: { pid: { pid: 123 } } });
    expect(validateLookup({ pid: { pid: ' 0x10', pidfdId: '0x10' } })).toEqual({ ok: true, value: { pid: { pid: 16, pidfdId: 16 } } });
    expect(validateLookup({ pid: { pid: 5, pidfdId: 0 } })).toEqual({ ok: true, value: { pid: { pid: 5 } } });
    for (const pid of [
      { pid: 5, pidfdId: null }, { pid: 5, bootId: null }, { pid: 5, bootId: '' }, { pid: 5, bootId: 'zz' }, { pid: 5, pidfdId: 'x' },
      { pid: 5, pidfdId: -5 }, { pid: 5, foo: 1 }, { pid: -1 }, { pid: 2147483648 }, { pid: '' }, { pid: true }, { pid: null }, {},
    ]) {
      expect({ pid, r: validateLookup({ pid }) }).toEqual({ pid, r: { ok: false, error: { invalidParameter: 'pid' } } });
    }
  });

  it('report a bad name after every other bad parameter', () => {
    expect(validateLookup({ name: 'a b', pid: { pid: -1 } })).toEqual({ ok: false, error: { invalidParameter: 'pid' } });
    expect(validateKill({ name: 'a b', signal: 0 })).toEqual({ ok: false, error: { invalidParameter: 'signal' } });
    expect(validateKill({ name: 'a b' })).toEqual({ ok: false, error: { invalidParameter: 'signal' } });
    // 262 refuses a bad whom before everything else (257 looked at it only after the lookup).
    expect(validateKill({ name: 'a b', signal: 10, whom: 'bogus' })).toEqual({ ok: false, error: { invalidParameter: 'whom' } });
    expect(validateKill({ name: 'x', signal: '0x1c' })).toEqual({ ok: true, value: { name: 'x', signal: 28 } });
    const open = validateLookup({ name: 'a b', path: 'rel' }, ['path'], (_k, v) => typeof v === 'string' && v.startsWith('/'));
    expect(open).toEqual({ ok: false, error: { invalidParameter: 'path' } });
  });
});
