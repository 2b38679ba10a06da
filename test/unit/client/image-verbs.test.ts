// berthctl's image verbs: sizes read and printed as machinectl does, and image names judged as berthd judges them.
import { describe, expect, it } from 'vitest';
import { formatBytes, parseSize } from '../../../src/client/image-verbs.js';
import { isValidImageName } from '../../../src/server/images.js';

describe('image sizes', () => {
  it('prints bytes with a 1024-based unit, one decimal when not exact', () => {
    expect(formatBytes(0)).toBe('0B');
    expect(formatBytes(1023)).toBe('1023B');
    expect(formatBytes(1024 * 1024)).toBe('1M');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5G');
  });

  it('reads sizes with units, and no limit', () => {
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize('infinity')).toBe('18446744073709551615');
    expect(() => parseSize('ten')).toThrow(/Failed to parse size/);
  });
});

describe('image names', () => {
  it('takes file names, hidden ones included, and refuses the rest', () => {
    for (const ok of ['alpha', '.hid', '.host', 'foo.raw', '-x', 'a b', 'a..b']) expect(isValidImageName(ok), ok).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', 'a\nb', 'x'.repeat(256)]) expect(isValidImageName(bad), JSON.stringify(bad)).toBe(false);
  });
});
