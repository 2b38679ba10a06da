// The VM's run directory, RUNTIME/berth/vm/NAME, and what the launch puts there before qemu starts: the
// directory itself (which doubles as the "already running" lock, with the launcher's pid and launch record), the firmware's
// NVRAM copy, the ephemeral SSH key, and the merged initrd.

import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { berthRuntimeDir } from '../../domain/runtime-paths.js';
import type { Teardown } from '../teardown.js';
import { LaunchRecord } from '../launch-record.js';
import { clearLeftovers } from '../leftovers.js';
import type { FirmwareDescriptor } from './firmware.js';
import type { FirmwareBoot } from './qemu.js';
import { VmLaunchError } from './running.js';

/**
 * Takes the run directory of machine `name` (what an ended launcher of it left is removed first, one line each on
 * `log`), writes our pid and launch record into it, and returns both; the teardown removes it. Refuses while
 * another launcher runs or starts the machine.
 */
export async function claimRunDir(runtimeDir: string, name: string, t: Teardown, log: (line: string) => void): Promise<{ runDir: string; record: LaunchRecord }> {
  const runDir = join(berthRuntimeDir(runtimeDir, 'vm'), name);
  await clearLeftovers(runtimeDir, name, 'vm', log, (m) => new VmLaunchError(m));
  mkdirSync(berthRuntimeDir(runtimeDir, 'vm'), { recursive: true, mode: 0o755 });
  try {
    mkdirSync(runDir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new VmLaunchError(`machine ${name} is being started by another launcher`);
    throw e;
  }
  t.add('remove the run directory', () => rmSync(runDir, { recursive: true, force: true }));
  writeFileSync(join(runDir, 'pid'), String(process.pid));
  return { runDir, record: LaunchRecord.create(runDir, name, 'vm') };
}

/** The firmware boot of a descriptor, with a private copy of its NVRAM template (the guest writes its variables there). */
export function firmwareBoot(desc: FirmwareDescriptor, runDir: string): FirmwareBoot {
  let varsPath: string | undefined;
  if (desc.nvramTemplate) {
    varsPath = join(runDir, 'efi-vars.fd');
    copyFileSync(desc.nvramTemplate.filename, varsPath);
  }
  return {
    kind: 'firmware',
    codePath: desc.executable.filename,
    codeFormat: desc.executable.format,
    varsPath,
    varsFormat: desc.nvramTemplate?.format,
    secureBoot: desc.features.includes('secure-boot'),
    requiresSmm: desc.features.includes('requires-smm'),
  };
}

/** Creates a key pair for this run only; returns the private key's path and the public key's line. */
export async function ephemeralSshKey(sshKeygen: string, runDir: string, name: string, type: string): Promise<{ privateKeyPath: string; publicKey: string }> {
  const privateKeyPath = join(runDir, `${name}-${type}`);
  await execa(sshKeygen, ['-q', '-t', type, '-N', '', '-C', `berth-vm-${name}`, '-f', privateKeyPath], { stdin: 'ignore' });
  return { privateKeyPath, publicKey: readFileSync(`${privateKeyPath}.pub`, 'utf8').trim() };
}

/** Concatenates initrds, each padded to 4 bytes, as the kernel accepts several cpio archives back to back. */
export function mergeInitrds(paths: readonly string[], out: string): void {
  writeFileSync(out, '', { mode: 0o600 });
  for (const p of paths) {
    const d = readFileSync(p);
    appendFileSync(out, d);
    const pad = (4 - (d.length % 4)) % 4;
    if (pad) appendFileSync(out, Buffer.alloc(pad));
  }
}
