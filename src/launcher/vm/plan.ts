// What a launch needs from the host, checked before anything is created: every option either resolves to a
// tool or device that works here, or fails with what the host lacks.

import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { execa } from 'execa';
import { findExecutable, findJournalRemote, findQemu, findVirtiofsd, hasDisplay, HostLacksError, vsockAvailable } from './host.js';
import { probeKvm } from './kvm-probe.js';
import { berthRuntimeDir } from '../../domain/runtime-paths.js';
import { VmUsageError, type VmOptions } from './options.js';

export interface PlanSettings {
  /** deadline for the KVM test boot */
  kvmProbeDeadlineMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Host facts a launch depends on (resolved once per launch; exposed for messages and tests). */
export interface HostPlan {
  qemu: string;
  accel: 'kvm' | 'tcg';
  accelDetail: string;
  vsock: boolean;
  swtpm?: { swtpm: string; setup?: string };
  virtiofsd?: string;
  sshKeygen?: string;
  journalRemote?: string;
  /** choices `auto` made that a user may want to know about */
  notes: string[];
}

/** Resolves the host side of every option, failing with what the host lacks. No side effects but the KVM probe cache. */
export async function planHost(o: VmOptions, s: PlanSettings = {}): Promise<HostPlan> {
  const env = s.env ?? process.env;
  const qemu = findQemu(env);

  let accel: 'kvm' | 'tcg' = 'tcg';
  let accelDetail = 'KVM not requested (--kvm=no)';
  if (o.kvm !== 'no') {
    const r = await probeKvm(qemu, join(berthRuntimeDir(o.runtimeDir, 'vm'), 'kvm-probe.json'), s.kvmProbeDeadlineMs ?? 3000);
    if (r.works) {
      accel = 'kvm';
      accelDetail = `KVM works here (${r.detail}${r.cached ? ', cached' : ''})`;
    } else if (o.kvm === 'yes') {
      throw new HostLacksError(`--kvm=yes: KVM does not work on this host: ${r.detail}${r.cached ? ' (cached result)' : ''}`);
    } else {
      accelDetail = `KVM unusable, using TCG: ${r.detail}${r.cached ? ' (cached)' : ''}`;
    }
  }

  let vsock = false;
  if (o.vsock !== 'no') {
    const v = vsockAvailable();
    if (!v.ok && (o.vsock === 'yes' || o.vsockCid !== undefined)) throw new HostLacksError(`--vsock: vhost-vsock is not usable here: ${v.detail}`);
    vsock = v.ok;
  }

  const notes: string[] = [];
  let swtpm: HostPlan['swtpm'];
  if (o.tpm !== 'no' && o.linux && o.initrds.length > 0 && isElfKernel(o.linux)) {
    // qemu (7.2 at least) places the initrd of a PVH (ELF) direct boot over the top of guest RAM where the
    // firmware also puts the ACPI tables; with a TPM those tables grow into it and the guest boots without ACPI
    // (no power button, so no clean powerdown). bzImage boots place the initrd correctly.
    if (o.tpm === 'yes')
      throw new HostLacksError(`--tpm=yes: a TPM breaks ACPI when qemu boots an ELF kernel (${o.linux}) with an initrd; boot a bzImage (vmlinuz) instead, or use --tpm=no`);
    notes.push('no TPM: qemu would corrupt the ACPI tables of an ELF kernel boot with an initrd (boot a bzImage to get one)');
  } else if (o.tpm !== 'no') {
    const sw = findExecutable('swtpm', env);
    // swtpm_setup (swtpm-tools) manufactures the TPM (EK, certificates); without it swtpm starts a blank one
    if (sw) swtpm = { swtpm: sw, setup: findExecutable('swtpm_setup', env) };
    else if (o.tpm === 'yes') throw new HostLacksError('--tpm=yes: swtpm not found (install swtpm)');
  }

  let virtiofsd: string | undefined;
  if (o.directory || o.binds.length > 0) {
    virtiofsd = findVirtiofsd(env);
    const what = o.directory ? '--directory' : '--bind';
    if (!virtiofsd) throw new HostLacksError(`${what}: virtiofsd not found (install virtiofsd, or qemu-system-common on Debian 12)`);
    if (o.privateUsers) {
      const help = await execa(virtiofsd, ['--help'], { reject: false, all: true });
      if (!String(help.all ?? '').includes('translate-uid'))
        throw new HostLacksError(`--private-users: ${virtiofsd} cannot translate UIDs (needs the Rust virtiofsd with --translate-uid)`);
    }
  }

  let sshKeygen: string | undefined;
  if (o.passSshKey !== false) {
    sshKeygen = findExecutable('ssh-keygen', env);
    if (o.passSshKey === true) {
      if (!vsock) throw new HostLacksError('--pass-ssh-key=yes: SSH to the guest goes over vsock, and vhost-vsock is not usable here');
      if (!sshKeygen) throw new HostLacksError('--pass-ssh-key=yes: ssh-keygen not found (install openssh-client)');
    }
    if (!vsock) sshKeygen = undefined;
  }

  let journalRemote: string | undefined;
  if (o.forwardJournal) {
    if (!vsock) throw new HostLacksError('--forward-journal: the journal is forwarded over vsock, and vhost-vsock is not usable here');
    journalRemote = findJournalRemote(env);
    if (!journalRemote) throw new HostLacksError('--forward-journal: systemd-journal-remote not found (install systemd-journal-remote)');
  }

  if (o.console === 'gui' && !hasDisplay(env)) throw new HostLacksError('--console=gui: no graphical display ($DISPLAY and $WAYLAND_DISPLAY are unset)');
  if (o.networkTap) {
    if (!existsSync('/dev/net/tun')) throw new HostLacksError('--network-tap: /dev/net/tun does not exist');
    if (process.getuid?.() !== 0) throw new HostLacksError('--network-tap: creating a tap interface needs root');
  }
  return { qemu, accel, accelDetail, vsock, swtpm, virtiofsd, sshKeygen, journalRemote, notes };
}

/** An uncompressed ELF kernel (qemu boots it through the PVH entry point) rather than a bzImage. */
export function isElfKernel(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(4);
      readSync(fd, b, 0, 4, 0);
      return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function mustExist(path: string, what: string, kind: 'file' | 'dir'): string {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new VmUsageError(`${what}: no such ${kind === 'dir' ? 'directory' : 'file'}: ${path}`);
  }
  if (kind === 'dir' ? !st.isDirectory() : st.isDirectory()) throw new VmUsageError(`${what}: not a ${kind === 'dir' ? 'directory' : 'file'}: ${path}`);
  return resolvePath(path);
}

/** Checks every path the options name before anything is created. */
export function checkInputs(o: VmOptions): void {
  if (o.linux) mustExist(o.linux, '--linux', 'file');
  for (const i of o.initrds) mustExist(i, '--initrd', 'file');
  if (o.image) mustExist(o.image, '--image', 'file');
  if (o.directory) mustExist(o.directory, '--directory', 'dir');
  for (const d of o.extraDrives) mustExist(d.path, '--extra-drive', 'file');
  for (const b of o.binds) mustExist(b.source, b.readOnly ? '--bind-ro' : '--bind', 'dir');
  if (o.firmware) mustExist(o.firmware, '--firmware', 'file');
}
