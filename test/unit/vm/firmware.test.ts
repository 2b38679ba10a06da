import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFirmware, listFirmwareFiles, parseFirmwareDescriptor } from '../../../src/launcher/vm/firmware.js';

function descriptor(code: string, features: string[], vars = true): string {
  return JSON.stringify({
    description: `firmware ${code}`,
    'interface-types': ['uefi'],
    mapping: { device: 'flash', executable: { filename: `/fw/${code}.fd`, format: 'raw' }, ...(vars ? { 'nvram-template': { filename: `/fw/${code}_VARS.fd`, format: 'raw' } } : {}) },
    targets: [{ architecture: 'x86_64', machines: ['pc-q35-*'] }],
    features,
    tags: [],
  });
}

describe('firmware descriptors', () => {
  it('merges directories by file name (more specific wins), sorts, and selects by Secure Boot', () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-fw-'));
    try {
      const user = join(root, 'user');
      const sys = join(root, 'sys');
      mkdirSync(user);
      mkdirSync(sys);
      writeFileSync(join(sys, '50-secure.json'), descriptor('SB', ['secure-boot', 'requires-smm']));
      writeFileSync(join(sys, '40-enrolled.json'), descriptor('ENR', ['secure-boot', 'enrolled-keys']));
      writeFileSync(join(sys, '60-plain.json'), descriptor('PLAIN', []));
      writeFileSync(join(user, '60-plain.json'), descriptor('MINE', []));
      writeFileSync(join(sys, '70-broken.json'), '{');
      expect(listFirmwareFiles([user, sys])).toEqual([join(sys, '40-enrolled.json'), join(sys, '50-secure.json'), join(user, '60-plain.json'), join(sys, '70-broken.json')]);
      expect(findFirmware('x86_64', 'auto', [user, sys]).executable.filename).toBe('/fw/SB.fd');
      expect(findFirmware('x86_64', 'no', [user, sys]).executable.filename).toBe('/fw/MINE.fd');
      expect(findFirmware('x86_64', 'yes', [user, sys]).nvramTemplate).toEqual({ filename: '/fw/SB_VARS.fd', format: 'raw' });
      expect(() => findFirmware('aarch64', 'auto', [user, sys])).toThrow(/no UEFI firmware for aarch64 found.*install ovmf/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('rejects files that are not descriptors', () => {
    expect(() => parseFirmwareDescriptor('/x.json', '{"description":"x"}')).toThrow(/not a firmware descriptor/);
    expect(() => parseFirmwareDescriptor('/x.json', 'nope')).toThrow(/not JSON/);
  });
});
