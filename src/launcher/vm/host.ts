// What this host offers a VM: the qemu binary, vhost-vsock, and the helpers some options need (swtpm,
// virtiofsd, ssh-keygen, systemd-journal-remote). Every lookup reports what is missing in words a user can act on.

import { accessSync, closeSync, constants, openSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export class HostLacksError extends Error {
  override name = 'HostLacksError';
}

/** First executable called `name` in $PATH, then in `extraDirs`. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function qemuArch(nodeArch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
  const a = map[nodeArch];
  if (!a) throw new HostLacksError(`VMs are not supported on ${nodeArch} hosts`);
  return a;
}

export function findQemu(env: NodeJS.ProcessEnv = process.env): string {
  const arch = qemuArch();
  if (arch !== 'x86_64') throw new HostLacksError(`VMs are only supported on x86_64 hosts so far (this is ${arch})`);
  const p = findExecutable(`qemu-system-${arch}`, env) ?? findExecutable('qemu-kvm', env, ['/usr/libexec']);
  if (!p) throw new HostLacksError(`qemu not found: no qemu-system-${arch} in PATH (install qemu-system-x86)`);
  return p;
}

/** vhost-vsock usable: the device opens (it may exist without a driver behind it: ENODEV). */
export function vsockAvailable(device = '/dev/vhost-vsock'): { ok: boolean; detail: string } {
  try {
    closeSync(openSync(device, 'r+'));
    return { ok: true, detail: `${device} opens` };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, detail: code === 'ENOENT' ? `${device} does not exist (no vhost_vsock module)` : `${device}: ${code}` };
  }
}

export function findVirtiofsd(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findExecutable('virtiofsd', env, ['/usr/libexec', '/usr/lib', '/usr/lib/qemu']);
}

export function findJournalRemote(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findExecutable('systemd-journal-remote', env, ['/usr/lib/systemd', '/lib/systemd']);
}

export function hasDisplay(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}
