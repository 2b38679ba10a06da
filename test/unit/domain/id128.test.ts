import { describe, expect, it } from 'vitest';
import { formatUuid, newUuid, parseId128, parseMachineUuid, UuidError } from '../../../src/domain/id128.js';

describe('128-bit ids', () => {
  it('reads both spellings, in any case', () => {
    expect(parseId128('0123456789ABCDEF0123456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
    expect(parseId128('01234567-89AB-cdef-0123-456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
  });
  it('returns "" for the null id and undefined for what is no id', () => {
    expect(parseId128('00000000-0000-0000-0000-000000000000')).toBe('');
    for (const bad of ['', 'xyz', '0123456789abcdef0123456789abcde', '0123-456789abcdef0123456789abcdef', 42, null]) {
      expect(parseId128(bad)).toBeUndefined();
    }
  });
  it('gives machine UUIDs dashed, refusing the null one', () => {
    expect(parseMachineUuid('0F4E9C2A3B1D4E5F8A6B7C8D9E0F1A2B')).toBe('0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b');
    expect(() => parseMachineUuid('0'.repeat(32))).toThrow(/null UUID/);
    expect(() => parseMachineUuid('nope')).toThrow(UuidError);
    expect(formatUuid('0F4E9C2A3B1D4E5F8A6B7C8D9E0F1A2B')).toBe('0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b');
  });
  it('makes fresh version 4 UUIDs', () => {
    const u = newUuid();
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseMachineUuid(u)).toBe(u);
  });
});
