/** D-Bus addresses: parsing, the system bus default, and the sockaddr_un each becomes. */
import { describe, expect, it } from 'vitest';
import { parseBusAddress, socketAddress, systemBusAddress } from '../../../src/dbus/address.js';
import { DBusError } from '../../../src/dbus/errors.js';
import { errnoError } from '../../../src/dbus/errno.js';

describe('bus addresses', () => {
  it('parses unix path and abstract addresses, percent-decoded, in order', () => {
    expect(parseBusAddress('unix:path=/run/dbus/system_bus_socket')).toEqual([{ kind: 'path', path: '/run/dbus/system_bus_socket' }]);
    expect(parseBusAddress('tcp:host=x,port=1;unix:abstract=a%20b,guid=0123;unix:path=/tmp/x%3bz')).toEqual([
      { kind: 'abstract', name: 'a b' },
      { kind: 'path', path: '/tmp/x;z' },
    ]);
  });
  it('rejects what it cannot use', () => {
    for (const a of ['', 'tcp:host=x', 'nonsense', 'unix:path=%zz']) expect(() => parseBusAddress(a)).toThrow(DBusError);
  });
  it('the system bus address comes from the environment or the default', () => {
    expect(systemBusAddress({})).toBe('unix:path=/run/dbus/system_bus_socket');
    expect(systemBusAddress({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:abstract=x' })).toBe('unix:abstract=x');
  });
  it('sockaddr_un: a path ends in NUL, an abstract name starts with one', () => {
    expect(socketAddress({ kind: 'path', path: '/a' }).toString('hex')).toBe('01002f6100');
    expect(socketAddress({ kind: 'abstract', name: 'a' }).toString('hex')).toBe('01000061');
  });
});

describe('errno errors', () => {
  it.each<[number | string, string, string]>([
    ['EINVAL', 'org.freedesktop.DBus.Error.InvalidArgs', 'Invalid argument'],
    [13, 'org.freedesktop.DBus.Error.AccessDenied', 'Permission denied'],
    ['EHOSTUNREACH', 'System.Error.EHOSTUNREACH', 'No route to host'],
    [95, 'org.freedesktop.DBus.Error.NotSupported', 'Operation not supported'],
    ['EBUSY', 'System.Error.EBUSY', 'Device or resource busy'],
  ])('%s', (errno, type, message) => {
    expect(errnoError(errno)).toMatchObject({ type, message });
  });
});
