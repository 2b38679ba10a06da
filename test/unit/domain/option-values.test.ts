import { describe, expect, it } from 'vitest';
import { OptionValueError, parseBind, parseBoolean, splitColons } from '../../../src/domain/option-values.js';

describe('option values', () => {
  it('reads booleans as systemd does', () => {
    for (const t of ['1', 'yes', 'Y', 'true', 't', 'ON']) expect(parseBoolean(t), t).toBe(true);
    for (const f of ['0', 'no', 'N', 'false', 'f', 'Off']) expect(parseBoolean(f), f).toBe(false);
    for (const x of ['', 'maybe', 'auto', '2', 'yess']) expect(parseBoolean(x), x).toBeUndefined();
  });
  it('splits on unescaped colons only', () => {
    expect(splitColons('/a\\:b:/c')).toEqual(['/a:b', '/c']);
    expect(splitColons('a\\\\:b')).toEqual(['a\\', 'b']);
    expect(splitColons('a\\')).toEqual(['a\\']);
  });
  it('parses SOURCE[:TARGET[:OPTIONS]] with absolute, normalised paths', () => {
    expect(parseBind('/src', true)).toEqual({ source: '/src', target: '/src', readOnly: true, options: '' });
    expect(parseBind('/a//b/../c:/d:norbind', false)).toEqual({ source: '/a/c', target: '/d', readOnly: false, options: 'norbind' });
    expect(parseBind('/with\\:colon:/t', false).source).toBe('/with:colon');
  });
  it.each([
    ['rel:/x', /--bind: source must be an absolute path/],
    ['/x:rel', /--bind: target must be an absolute path/],
    ['/x:', /target must be an absolute path/],
    ['', /expected SOURCE/],
    ['/a:/b:c:d', /expected SOURCE/],
  ])('refuses %j', (v, message) => {
    expect(() => parseBind(v, false)).toThrow(OptionValueError);
    expect(() => parseBind(v, false)).toThrow(message);
  });
});
