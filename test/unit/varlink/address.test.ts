import { describe, expect, it } from 'vitest';
import { AddressError, formatAddress, parseAddress } from '../../../src/varlink/address.js';

describe('parseAddress', () => {
  it.each([
    ['unix:/run/systemd/machine/io.systemd.Machine', { kind: 'unix', path: '/run/systemd/machine/io.systemd.Machine' }],
    ['unix:/run/x;mode=0666', { kind: 'unix', path: '/run/x' }],
    ['unix:@io.example.abstract', { kind: 'abstract', name: 'io.example.abstract' }],
    ['unix:@name;param=1', { kind: 'abstract', name: 'name' }],
    ['/run/foo.sock', { kind: 'unix', path: '/run/foo.sock' }],
    ['./foo.sock', { kind: 'unix', path: './foo.sock' }],
    ['../foo.sock', { kind: 'unix', path: '../foo.sock' }],
    ['exec:/usr/lib/berth/berthd', { kind: 'exec', command: '/usr/lib/berth/berthd', args: [] }],
  ])('%s', (text, expected) => {
    expect(parseAddress(text)).toEqual(expected);
  });

  it.each([
    ['unix:', 'path must be absolute'],
    ['unix:relative/path', 'path must be absolute'],
    ['unix:@', 'empty abstract name'],
    ['exec:', 'no program'],
    ['tcp:127.0.0.1:1234', "unsupported scheme 'tcp'"],
    ['ssh-unix:host:/path', "unsupported scheme 'ssh-unix'"],
    ['foo.sock', 'expected unix:PATH'],
    ['', 'expected unix:PATH'],
  ])('refuses %j (%s)', (text, reason) => {
    let err: unknown;
    try {
      parseAddress(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AddressError);
    expect((err as Error).message).toContain(reason);
    expect((err as Error).message).toContain(`'${text}'`);
  });

  it('formats what it parses back to the canonical form', () => {
    for (const t of ['unix:/run/x', 'unix:@abc', 'exec:/bin/true']) expect(formatAddress(parseAddress(t))).toBe(t);
    expect(formatAddress(parseAddress('/run/x'))).toBe('unix:/run/x');
  });
});
