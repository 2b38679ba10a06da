import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  defaultMachineName, hostnameCleanup, isValidHostname, isValidLookupName, isValidMachineName, machineNameRefusal,
} from '../../../src/domain/machine-name.js';

describe('machine names: host name syntax', () => {
  it.each(['web', 'a.b', 'x-1', 'a--b', '0', 'A.B.C', 'x'.repeat(64)])('accepts %j', (n) => {
    expect(isValidMachineName(n)).toBe(true);
    expect(isValidLookupName(n)).toBe(true);
  });
  it.each(['', 'my_vm', '-a', 'a-', 'a..b', '.a', 'a.', 'a.-b', 'a-.b', 'x'.repeat(65), 'ü', 'a b', 'a/b', '.host'])('refuses %j', (n) => {
    expect(isValidMachineName(n)).toBe(false);
  });
  it('takes .host only for lookups', () => {
    expect(isValidLookupName('.host')).toBe(true);
    expect(isValidHostname('.host')).toBe(false);
    expect(isValidLookupName('.hostx')).toBe(false);
  });
  it('says what a name must look like, and names the name', () => {
    expect(machineNameRefusal('my_vm')).toMatch(/^invalid machine name "my_vm": .*host name of 1 to 64/);
  });
});

describe('default names, as nspawn derives them', () => {
  it('tidies a path component into a host name', () => {
    expect(hostnameCleanup('my_box')).toBe('mybox');
    expect(hostnameCleanup('-.a..b-')).toBe('a.b');
    expect(hostnameCleanup('a-.b')).toBe('a-b');
    expect(hostnameCleanup('x'.repeat(70))).toHaveLength(64);
    expect(hostnameCleanup('___')).toBe('');
  });
  it('only ever produces names the rule accepts', () => {
    for (const dir of ['/var/lib/machines/my_box', '/srv/deb 12/', '/m/-x-', '/m/a..b', '/m/Ünïcode', '/m/' + 'y'.repeat(80)]) {
      const n = defaultMachineName(dir);
      expect(n === undefined || isValidMachineName(n), `${dir} → ${n}`).toBe(true);
    }
    expect(defaultMachineName('/var/lib/machines/my_box')).toBe('mybox');
  });
  it('gives undefined when nothing is left, and the host name for /', () => {
    expect(defaultMachineName('/m/___')).toBeUndefined();
    expect(defaultMachineName('/m/...')).toBeUndefined();
    expect(defaultMachineName('/')).toBe(hostnameCleanup(hostname()) || undefined);
  });
  it('strips an image suffix before tidying', () => {
    expect(defaultMachineName('/x/fedora.raw', /\.raw$/)).toBe('fedora');
    expect(defaultMachineName('/x/fedora.raw')).toBe('fedora.raw');
  });
});
