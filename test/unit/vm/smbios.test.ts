import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentialString, isTextValue, kernelCmdlineExtraStrings, writeSmbiosFiles } from '../../../src/launcher/vm/smbios.js';

describe('SMBIOS type 11 strings', () => {
  it('text credentials travel as io.systemd.credential:ID=VALUE, commas and newlines as they are', () => {
    expect(credentialString({ id: 'greeting', value: Buffer.from('hello, world') })).toBe('io.systemd.credential:greeting=hello, world');
    expect(credentialString({ id: 'multi', value: Buffer.from('a\nb') })).toBe('io.systemd.credential:multi=a\nb');
  });
  it('binary credentials travel as io.systemd.credential.binary:ID=BASE64', () => {
    expect(credentialString({ id: 'blob', value: Buffer.from([0xff, 0x00, 0x01]) })).toBe('io.systemd.credential.binary:blob=/wAB');
    expect(credentialString({ id: 'latin1', value: Buffer.from([0x68, 0xe9]) })).toBe('io.systemd.credential.binary:latin1=aOk=');
  });
  it('text means valid UTF-8 without NUL', () => {
    expect(isTextValue(Buffer.from('grüße'))).toBe(true);
    expect(isTextValue(Buffer.from([0x61, 0]))).toBe(false);
    expect(isTextValue(Buffer.from([0xc3]))).toBe(false);
  });
  it('kernel command line extras for firmware boots go to both systemd-stub and systemd-boot', () => {
    expect(kernelCmdlineExtraStrings('quiet x=1')).toEqual(['io.systemd.stub.kernel-cmdline-extra=quiet x=1', 'io.systemd.boot.kernel-cmdline-extra=quiet x=1']);
    expect(kernelCmdlineExtraStrings('')).toEqual([]);
  });
  it('files hold the strings verbatim, private to the owner', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-smbios-'));
    try {
      const paths = writeSmbiosFiles(join(dir, 's'), ['io.systemd.credential:a=1,2', 'x']);
      expect(paths).toEqual([join(dir, 's/smbios11-00'), join(dir, 's/smbios11-01')]);
      expect(readFileSync(paths[0]!, 'utf8')).toBe('io.systemd.credential:a=1,2');
      expect(statSync(paths[0]!).mode & 0o777).toBe(0o600);
      expect(() => writeSmbiosFiles(join(dir, 't'), ['a\0b'])).toThrow(/NUL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
