// The resolve hook's DNS helpers: which names are valid, their parents, and the wire form of an address record.
import { describe, expect, it } from 'vitest';
import { addressRecordWire, dnsLabels, parentDomains } from '../../../src/server/resolve-hook-dns.js';

describe('dnsLabels', () => {
  it('splits valid names, with or without the trailing dot', () => {
    expect(dnsLabels('a.b.c')).toEqual(['a', 'b', 'c']);
    expect(dnsLabels('a.b.')).toEqual(['a', 'b']);
    expect(dnsLabels('.')).toEqual([]);
    expect(dnsLabels('a\\.b.c')).toEqual(['a\\.b', 'c']);
  });
  it('refuses empty labels, long labels, long names and broken escapes', () => {
    for (const bad of ['.a', 'a..b', 'a.b..', 'a'.repeat(64), Array(51).fill('abcd').join('.'), 'a\\', 'a\\300']) expect(dnsLabels(bad), bad).toBeUndefined();
    expect(dnsLabels('a'.repeat(63))).toEqual(['a'.repeat(63)]);
    expect(dnsLabels(Array(50).fill('abcd').join('.') + '.abc')).toHaveLength(51);
  });
});

describe('parentDomains', () => {
  it('lists proper parents, nearest first', () => {
    expect(parentDomains(['www', 'box', 'lan'])).toEqual(['box.lan', 'lan']);
    expect(parentDomains(['box'])).toEqual([]);
  });
});

describe('addressRecordWire', () => {
  it('encodes an A record with TTL 0 as machined does', () => {
    // machined 262's `raw` for probe3 A 10.99.0.2 (measured).
    expect(addressRecordWire('probe3', 1, [10, 99, 0, 2]).toString('base64')).toBe('BnByb2JlMwAAAQABAAAAAAAECmMAAg==');
  });
  it('encodes multi-label names label by label', () => {
    const b = addressRecordWire('a.bc', 28, Array(16).fill(0));
    expect([...b.subarray(0, 6)]).toEqual([1, 97, 2, 98, 99, 0]);
    expect(b.readUInt16BE(6)).toBe(28);
    expect(b.readUInt16BE(14)).toBe(16);
    expect(b.length).toBe(16 + 16);
  });
});
