import { describe, expect, it } from 'vitest';
import { deriveMac, hostIfName } from '../../../src/launcher/network.js';

// Vectors checked against systemd-nspawn 257 (--network-veth) on a host whose /etc/machine-id is this one.
const MACHINE_ID = Buffer.from('3d1219c7c4c5404aaa1f6d2a48adfda4', 'hex');

describe('veth MAC addresses', () => {
  it('matches nspawn for the container side (host0)', () => {
    expect(deriveMac('vethtest1', 'container', MACHINE_ID)).toBe('6e:4b:de:84:46:56');
    expect(deriveMac('averylongmachinename', 'container', MACHINE_ID)).toBe('22:aa:31:8b:0b:bc');
  });
  it('matches nspawn for the host side (ve-NAME)', () => {
    expect(deriveMac('vethtest1', 'host', MACHINE_ID)).toBe('96:c6:e9:12:52:2a');
  });
  it('is unicast and locally administered, and depends on the host', () => {
    const mac = deriveMac('x', 'host', MACHINE_ID);
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
    expect(deriveMac('x', 'host', Buffer.alloc(16))).not.toBe(mac);
  });
});

describe('host interface name', () => {
  it('is ve-NAME when it fits', () => {
    expect(hostIfName('vethtest1')).toEqual({ name: 've-vethtest1' });
    expect(hostIfName('abcdefghijkl')).toEqual({ name: 've-abcdefghijkl' }); // 15 bytes
  });
  it('is shortened with nspawn\'s hash suffix when it does not', () => {
    expect(hostIfName('averylongmachinename')).toEqual({ name: 've-averylonl0F_', altName: 've-averylongmachinename' });
  });
});
