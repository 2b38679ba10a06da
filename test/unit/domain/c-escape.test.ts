import { describe, expect, it } from 'vitest';
import { CEscapeError, cescape, cunescape, cunescapeBytes } from '../../../src/domain/c-escape.js';

describe('C escapes', () => {
  it('round-trips everything cescape writes', () => {
    for (const s of ['plain', 'a "q" \'s\' \\ b', 'tab\tnl\nbell\x07', 'é ü 😀', '\x01\x7f']) expect(cunescape(cescape(s))).toBe(s);
  });
  it('reads named, octal, hex, \\u, \\U and \\s escapes', () => {
    expect(cunescapeBytes('\\a\\b\\f\\n\\r\\t\\v\\\\\\"\\\'\\s')).toEqual(Buffer.from([7, 8, 12, 10, 13, 9, 11, 0x5c, 0x22, 0x27, 0x20]));
    expect(cunescapeBytes('\\101\\x42\\u00e9\\U0001F600')).toEqual(Buffer.from('ABé😀'));
    expect(cunescapeBytes('a\\0b')).toEqual(Buffer.from([0x61, 0, 0x62]));
  });
  describe('a trailing backslash (the corner the three old copies disagreed on)', () => {
    it('is an error when strict, as for --set-credential', () => {
      expect(() => cunescapeBytes('abc\\')).toThrow(CEscapeError);
      expect(() => cunescapeBytes('abc\\')).toThrow(/trailing backslash/);
      expect(() => cunescapeBytes('\\')).toThrow(/trailing backslash/);
    });
    it('stays as written when relaxed, as for state files', () => {
      expect(cunescape('abc\\', { relax: true })).toBe('abc\\');
      expect(cunescape('\\', { relax: true })).toBe('\\');
    });
    it('is not trailing when it is escaped itself', () => {
      expect(cunescape('abc\\\\')).toBe('abc\\');
    });
  });
  it('refuses unknown escapes when strict and keeps them whole when relaxed', () => {
    expect(() => cunescapeBytes('\\q')).toThrow(/unknown escape \\q/);
    expect(() => cunescapeBytes('\\xZZ')).toThrow(/unknown escape \\x/);
    expect(() => cunescapeBytes('\\uD800')).toThrow(CEscapeError);
    expect(cunescape('a\\qb', { relax: true })).toBe('a\\qb');
  });
});
