/** Signature parsing and the name rules: what the specification allows and what it does not. */
import { describe, expect, it } from 'vitest';
import { isValidSignature, parseSignature, formatType } from '../../../src/dbus/signature.js';
import { isBusName, isErrorName, isInterfaceName, isMemberName, isObjectPath } from '../../../src/dbus/names.js';
import { escapeLabel, labelFromPath, pathForLabel, unescapeLabel } from '../../../src/dbus/label.js';

describe('signatures', () => {
  it.each(['', 'y', 'a{sv}', 'a(sv)', '(ii)(ss)', 'aaai', 'a{ya{s(vv)}}', 'h', 'v', 'sa{sv}as',
    'a'.repeat(32) + 'y', '('.repeat(32) + 'y' + ')'.repeat(32)])('valid %s', (s) => {
    expect(isValidSignature(s)).toBe(true);
    expect(parseSignature(s).map(formatType).join('')).toBe(s);
  });

  it.each(['a', '(', ')', '()', '(i', 'i)', '{sv}', 'a{s}', 'a{sss}', 'a{vs}', 'a{(i)s}', 'z', 'a{s', '((i)',
    'a'.repeat(33) + 'y', '('.repeat(33) + 'y' + ')'.repeat(33), 'a{' .repeat(1) + 's' + 'a'.repeat(32) + 'y}',
    'y'.repeat(256)])('invalid %s', (s) => {
    expect(isValidSignature(s)).toBe(false);
  });
});

describe('names', () => {
  it('object paths', () => {
    for (const p of ['/', '/a', '/org/freedesktop/machine1', '/a_b/C9']) expect(isObjectPath(p)).toBe(true);
    for (const p of ['', 'a', '//', '/a/', '/a//b', '/a-b', '/a.b']) expect(isObjectPath(p)).toBe(false);
  });
  it('interfaces, members, errors', () => {
    expect(isInterfaceName('org.freedesktop.machine1.Manager')).toBe(true);
    for (const n of ['org', 'org.', '.org', 'org.1a', 'org.a-b', 'a'.repeat(128) + '.' + 'b'.repeat(128)]) expect(isInterfaceName(n)).toBe(false);
    expect(isErrorName('org.freedesktop.machine1.NoSuchMachine')).toBe(true);
    expect(isMemberName('GetMachine')).toBe(true);
    for (const n of ['', '1a', 'a.b', 'a-b']) expect(isMemberName(n)).toBe(false);
  });
  it('bus names', () => {
    for (const n of [':1.42', ':a-b.c', 'org.freedesktop.machine1', 'a-b.c_d']) expect(isBusName(n)).toBe(true);
    for (const n of ['', ':1', 'org', 'org.1a', ':', 'a..b']) expect(isBusName(n)).toBe(false);
  });
});

describe('object path labels', () => {
  it.each([
    ['foo123bar', 'foo123bar'],
    ['foo.bar', 'foo_2ebar'],
    ['foo_2ebar', 'foo_5f2ebar'],
    ['', '_'],
    ['_', '_5f'],
    ['1', '_31'],
    [':1', '_3a1'],
    ['my-box', 'my_2dbox'],
    ['ü', '_c3_bc'],
  ])('%j ↔ %j', (raw, escaped) => {
    expect(escapeLabel(raw)).toBe(escaped);
    expect(unescapeLabel(escaped)).toBe(raw);
    expect(isObjectPath('/x/' + escaped)).toBe(true);
  });
  it('invalid escapes are kept as they are', () => {
    expect(unescapeLabel('a_zz')).toBe('a_zz');
    expect(unescapeLabel('a_2')).toBe('a_2');
  });
  it('paths', () => {
    expect(pathForLabel('/org/freedesktop/machine1/machine', 'a-1')).toBe('/org/freedesktop/machine1/machine/a_2d1');
    expect(labelFromPath('/org/freedesktop/machine1/machine', '/org/freedesktop/machine1/machine/a_2d1')).toBe('a-1');
    expect(labelFromPath('/org/freedesktop/machine1/machine', '/org/freedesktop/machine1/machine/a/b')).toBeUndefined();
    expect(labelFromPath('/org/freedesktop/machine1/machine', '/org/freedesktop/machine1/machinex')).toBeUndefined();
  });
});
