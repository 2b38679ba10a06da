/**
 * The D-Bus wire format: known byte vectors worked out from the specification, round trips of
 * every type, and rejection of malformed data with DBusProtocolError.
 */
import { describe, expect, it } from 'vitest';
import { marshal } from '../../../src/dbus/marshal.js';
import { unmarshal } from '../../../src/dbus/unmarshal.js';
import { Variant } from '../../../src/dbus/variant.js';
import { DBusProtocolError } from '../../../src/dbus/errors.js';

const hex = (b: Buffer) => b.toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

describe('marshal: known vectors', () => {
  it.each<[string, unknown[], string]>([
    ['y', [0x2a], '2a'],
    ['b', [true], '01000000'],
    ['n', [-2], 'feff'],
    ['q', [0x1234], '3412'],
    ['i', [-1], 'ffffffff'],
    ['u', [0x01020304], '04030201'],
    ['x', [-2n], 'feffffffffffffff'],
    ['t', [0x0102030405060708n], '0807060504030201'],
    ['d', [1.5], '000000000000f83f'],
    ['s', ['foo'], '03000000666f6f00'],
    ['o', ['/a'], '020000002f6100'],
    ['g', ['a{sv}'], '05617b73767d00'],
    ['yu', [1, 2], '01000000 02000000'],
    ['yx', [1, 1n], '01000000 00000000 0100000000000000'],
    // An empty array of 8-aligned elements still pads to the element boundary.
    ['ax', [[]], '00000000 00000000'],
    ['ax', [[1n]], '08000000 00000000 0100000000000000'],
    ['ay', [Buffer.from([1, 2, 3])], '03000000 010203'],
    ['v', [new Variant('u', 7)], '01750000 07000000'],
    ['(yy)', [[1, 2]], '0102'],
    ['y(y)', [1, [2]], '01000000 00000000 02'],
    ['a{yy}', [new Map([[1, 2]])], '02000000 00000000 0102'],
    ['as', [['a', 'bc']], '0f000000 01000000 6100 0000 02000000 626300'],
  ])('%s #%#', (sig, values, expected) => {
    const { data } = marshal(sig, values);
    expect(hex(data)).toBe(expected.replace(/\s+/g, ''));
    expect(unmarshal(sig, data)).toEqual(values.map((v) => (Array.isArray(v) && sig === 'ay' ? Buffer.from(v as number[]) : v)));
  });
});

describe('round trips', () => {
  it('nested containers and variants', () => {
    const props = new Map<string, Variant>([
      ['Name', new Variant('s', 'box')],
      ['Id', new Variant('ay', Buffer.alloc(16, 7))],
      ['Timestamp', new Variant('t', 123456789n)],
      ['Nested', new Variant('a(sv)', [['k', new Variant('b', false)]])],
    ]);
    const values = [props, [[1, 'x'], [2, 'y']], -5n, 2.25];
    const { data } = marshal('a{sv}a(us)xd', values);
    expect(unmarshal('a{sv}a(us)xd', data)).toEqual(values);
  });

  it('a plain object marshals as a string-keyed dict', () => {
    const { data } = marshal('a{ss}', [{ a: '1', b: '2' }]);
    expect(unmarshal('a{ss}', data)).toEqual([new Map([['a', '1'], ['b', '2']])]);
  });

  it('h values become indexes into the descriptor list, and back', () => {
    const { data, fds } = marshal('hhh', [10, 11, 10]);
    expect(fds).toEqual([10, 11]);
    expect(hex(data)).toBe('000000000100000000000000');
    expect(unmarshal('hhh', data, [40, 41])).toEqual([40, 41, 40]);
    expect(() => unmarshal('h', bytes('02000000'), [40])).toThrow(DBusProtocolError);
  });

  it('big-endian bodies', () => {
    expect(unmarshal('uns', bytes('01020304 fffe 0000 00000002 686900'), null, false)).toEqual([0x01020304, -2, 'hi']);
  });
});

describe('marshal rejects values that do not fit', () => {
  it.each<[string, unknown]>([
    ['y', 256],
    ['y', -1],
    ['b', 1],
    ['n', 40000],
    ['u', -1],
    ['u', 1.5],
    ['i', 2 ** 31],
    ['t', -1n],
    ['x', 1n << 63n],
    ['s', 'a\0b'],
    ['s', '\ud800'],
    ['o', 'not/a/path'],
    ['o', '/trailing/'],
    ['g', 'a{vs}'],
    ['v', 'plain'],
    ['(ss)', ['one']],
    ['as', 'x'],
  ])('%s #%#', (sig, v) => {
    expect(() => marshal(sig, [v])).toThrow(DBusProtocolError);
  });
});

describe('unmarshal rejects malformed data', () => {
  it.each<[string, string]>([
    ['b', '02000000'],
    ['s', '03000000666f6f'], // no terminator
    ['s', '03000000666f6f01'], // wrong terminator
    ['s', '03000000660066 00'], // interior NUL
    ['s', '02000000c328 00'], // invalid UTF-8
    ['o', '02000000612f 00'],
    ['g', '02617d00'],
    ['v', '02757500 07000000'], // variant signature of two types
    ['u', '0102'],
    ['ay', 'ffffffff'], // longer than the data
    ['ay', '01000004 00'], // over 64 MiB
    ['au', '05000000 01000000 02'], // elements overrun the length
    ['yu', '01ff0000 02000000'], // non-zero padding
    ['u', '01000000 02000000'], // bytes left over
  ])('%s %s', (sig, h) => {
    expect(() => unmarshal(sig, bytes(h))).toThrow(DBusProtocolError);
  });

  it('variants nested beyond 64 levels', () => {
    let v: unknown = 1;
    for (let i = 0; i < 70; i++) v = new Variant(i === 0 ? 'y' : 'v', v);
    expect(() => marshal('v', [v])).toThrow(DBusProtocolError);
    // Build the bytes by hand: 70 × "01 76 00" then a byte.
    const data = Buffer.concat([Buffer.from('017600'.repeat(69), 'hex'), Buffer.from('017900', 'hex'), Buffer.from([1])]);
    expect(() => unmarshal('v', data)).toThrow(DBusProtocolError);
  });
});
