import { describe, expect, it } from 'vitest';
import { hexKey, siphash24 } from '../../../src/launcher/siphash.js';

describe('siphash24', () => {
  it('matches the reference vector of the SipHash paper (key 00..0f, message 00..0e)', () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    const msg = Uint8Array.from({ length: 15 }, (_, i) => i);
    expect(siphash24(msg, key)).toBe(0xa129ca6149be45e5n);
  });
  it('hashes the empty message (reference vector 0)', () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    expect(siphash24(new Uint8Array(0), key)).toBe(0x726fdb47dd0e0e31n);
  });
  it('rejects keys of the wrong size', () => {
    expect(() => siphash24(new Uint8Array(1), new Uint8Array(8))).toThrow(/16-byte/);
    expect(() => hexKey('abcd')).toThrow(/16 bytes/);
  });
});
