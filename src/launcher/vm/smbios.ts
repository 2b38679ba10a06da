// SMBIOS type 11 (OEM strings) as VM_INTERFACE and smbios-type-11(7) describe them: credentials and kernel
// command line extras. Each string goes into its own file passed as `-smbios type=11,path=FILE`, so values
// never pass through qemu's option parser (which would need commas doubled).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Credential } from './options.js';

const TEXT_PREFIX = 'io.systemd.credential:';
const BINARY_PREFIX = 'io.systemd.credential.binary:';

/** A value travels as text when it is valid UTF-8 without NUL bytes (SMBIOS strings end at NUL); otherwise as base64. */
export function isTextValue(value: Buffer): boolean {
  if (value.includes(0)) return false;
  return Buffer.from(value.toString('utf8'), 'utf8').equals(value);
}

export function credentialString(c: Credential): string {
  return isTextValue(c.value) ? `${TEXT_PREFIX}${c.id}=${c.value.toString('utf8')}` : `${BINARY_PREFIX}${c.id}=${c.value.toString('base64')}`;
}

/** For firmware (UEFI) boots: one string for systemd-stub (UKIs) and one for systemd-boot (Type #1 entries). */
export function kernelCmdlineExtraStrings(cmdline: string): string[] {
  if (!cmdline) return [];
  return [`io.systemd.stub.kernel-cmdline-extra=${cmdline}`, `io.systemd.boot.kernel-cmdline-extra=${cmdline}`];
}

/** Writes each string into DIR/NN (mode 0600) and returns the paths, in order. */
export function writeSmbiosFiles(dir: string, strings: readonly string[]): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return strings.map((s, i) => {
    if (s.includes('\0')) throw new Error(`SMBIOS string ${i} contains a NUL byte`);
    const p = join(dir, `smbios11-${String(i).padStart(2, '0')}`);
    writeFileSync(p, s, { mode: 0o600 });
    return p;
  });
}
