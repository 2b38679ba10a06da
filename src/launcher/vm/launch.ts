// Starting a VM: check what the options need against what the host has, prepare the run directory (SMBIOS
// files, sockets, initrd), start helpers and qemu inside the machine's scope, connect QMP, register, and hand
// back a RunningVm. Any failure on the way undoes every step already taken.

import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { randomUUID } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { findFirmware, loadFirmwareDescriptor } from './firmware.js';
import { findExecutable, findJournalRemote, findQemu, findVirtiofsd, hasDisplay, HostLacksError, qemuArch, vsockAvailable } from './host.js';
import { probeKvm } from './kvm-probe.js';
import { NotifyReceiver } from './notify.js';
import { resolveCredentials, VmUsageError, type VmOptions } from './options.js';
import { QmpClient, withTimeout } from './qmp.js';
import {
  buildQemuArgv, cidFromName, directBootCmdline, NOTIFY_PORT_NAME, type DirectBoot, type FirmwareBoot, type QemuPlan, type VirtiofsShare,
} from './qemu.js';
import { machineSocketPath, registerMachine, unregisterMachine, type Registration } from '../registry-client.js';
import { VmScope } from './scope.js';
import { credentialString, kernelCmdlineExtraStrings, writeSmbiosFiles } from './smbios.js';

export interface LaunchIo {
  /** informational messages (suppressed by -q) */
  info(msg: string): void;
  /** guest console output in read-only mode */
  console(chunk: Buffer): void;
  /** qemu's own diagnostics */
  qemuStderr(chunk: Buffer): void;
}

export interface LaunchSettings {
  /** deadline for the KVM test boot */
  kvmProbeDeadlineMs?: number;
  /** how long qemu may take to connect its QMP socket */
  qmpConnectTimeoutMs?: number;
  /** service name in the registration */
  service?: string;
  env?: NodeJS.ProcessEnv;
}

export interface VmExit {
  exitCode?: number;
  signal?: string;
  /** EXIT_STATUS= the guest sent, if any */
  guestExitStatus?: number;
  stoppedBy?: 'powerdown' | 'quit' | 'kill';
}

export class VmLaunchError extends Error {
  override name = 'VmLaunchError';
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

type Undo = () => void | Promise<void>;

export class RunningVm {
  readonly startedAt = performance.now();
  readyAt?: number;
  private stopping?: Promise<VmExit>;
  private stoppedBy?: VmExit['stoppedBy'];
  private registered = false;

  constructor(
    readonly name: string,
    readonly uuid: string,
    readonly runDir: string,
    readonly process: ResultPromise,
    readonly pid: number,
    readonly qmp: QmpClient,
    readonly notify: NotifyReceiver,
    readonly scope: VmScope,
    readonly registration: Registration,
    readonly exited: Promise<VmExit>,
    private readonly undo: Undo[],
    private readonly registrySocket: string,
  ) {}

  get isRegistered(): boolean {
    return this.registered;
  }

  /** @internal */
  markRegistered(): void {
    this.registered = true;
  }

  /** Resolves when the guest reports READY=1; rejects if qemu exits first. */
  async waitReady(timeoutMs?: number): Promise<number> {
    const exitFirst = this.exited.then((e) => {
      throw new VmLaunchError(`qemu exited before the guest reported ready (${describeExit(e)})`);
    });
    const ready = this.notify.waitReady().then(() => {
      this.readyAt ??= performance.now();
      return this.readyAt - this.startedAt;
    });
    const p = Promise.race([ready, exitFirst]);
    return timeoutMs === undefined ? p : withTimeout(p, timeoutMs, `guest readiness`);
  }

  /**
   * Clean stop: ACPI power button over QMP, wait for the guest to power off, then QMP quit, then SIGKILL.
   * Idempotent; resolves once qemu is gone and everything is cleaned up.
   */
  stop(powerdownTimeoutMs = 10_000, quitTimeoutMs = 3000): Promise<VmExit> {
    this.stopping ??= (async () => {
      if (!(await this.settled(0))) {
        this.stoppedBy = 'powerdown';
        await this.qmp.execute('system_powerdown').catch(() => {});
        if (!(await this.settled(powerdownTimeoutMs))) {
          this.stoppedBy = 'quit';
          await this.qmp.execute('quit').catch(() => {});
          if (!(await this.settled(quitTimeoutMs))) {
            this.stoppedBy = 'kill';
            this.kill();
          }
        }
      }
      return this.finish();
    })();
    return this.stopping;
  }

  /** SIGKILL qemu and everything in the scope. */
  kill(): void {
    this.stoppedBy ??= 'kill';
    for (const p of [this.pid, ...this.scope.pids()]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  /** Waits for qemu to exit on its own, then cleans up. */
  async wait(): Promise<VmExit> {
    await this.exited;
    return this.stop();
  }

  /** true once qemu has exited, false if it still runs after `ms` */
  private async settled(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    try {
      return await Promise.race([this.exited.then(() => true as const), t]);
    } finally {
      clearTimeout(timer);
    }
  }

  private finishing?: Promise<VmExit>;
  private finish(): Promise<VmExit> {
    this.finishing ??= (async () => {
      const e = await this.exited;
      if (this.registered) {
        await unregisterMachine(this.registrySocket, this.name).catch(() => {});
        this.registered = false;
      }
      await runUndo(this.undo);
      return { ...e, guestExitStatus: this.notify.state.exitStatus, stoppedBy: this.stoppedBy };
    })();
    return this.finishing;
  }
}

export function describeExit(e: VmExit): string {
  return e.signal ? `killed by ${e.signal}` : `exit status ${e.exitCode}`;
}

async function runUndo(undo: Undo[]): Promise<void> {
  while (undo.length) {
    const f = undo.pop()!;
    try {
      await f();
    } catch {
      // best effort: the remaining steps still run
    }
  }
}

/** Resolves the host side of every option, failing with what the host lacks. No side effects but the KVM probe cache. */
export async function planHost(o: VmOptions, s: LaunchSettings = {}): Promise<HostPlan> {
  const env = s.env ?? process.env;
  const qemu = findQemu(env);

  let accel: 'kvm' | 'tcg' = 'tcg';
  let accelDetail = 'KVM not requested (--kvm=no)';
  if (o.kvm !== 'no') {
    const r = await probeKvm(qemu, join(o.runtimeDir, 'berth/vm/kvm-probe.json'), s.kvmProbeDeadlineMs ?? 3000);
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listenUnix(path: string): Promise<Server> {
  rmSync(path, { force: true });
  const s = createServer();
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(path, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function firstConnection(s: Server): Promise<Socket> {
  return new Promise((resolve) => s.once('connection', resolve));
}

/** Launches the VM and returns once qemu runs and QMP is connected (and the machine is registered, if asked). */
export async function launchVm(o: VmOptions, io: LaunchIo, s: LaunchSettings = {}): Promise<RunningVm> {
  const name = o.machine!;
  const env = s.env ?? process.env;
  checkInputs(o);
  const host = await planHost(o, s);
  if (o.kvm !== 'no') io.info(host.accelDetail);
  for (const n of host.notes) io.info(n);

  let firmware: FirmwareBoot | undefined;
  const arch = qemuArch();
  const fwDesc = o.linux ? undefined : o.firmware ? loadFirmwareDescriptor(o.firmware) : findFirmware(arch, o.secureBoot, undefined);
  const credentials = resolveCredentials(o.credentials, env);
  const uuid = o.uuid ?? randomUUID();
  const registrySocket = machineSocketPath(o.runtimeDir);

  // run directory: doubles as the "already running" lock
  const runDir = join(o.runtimeDir, 'berth/vm', name);
  const pidFile = join(runDir, 'pid');
  if (existsSync(runDir)) {
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, 'utf8'));
    } catch {
      // no pid file
    }
    if (pid > 0 && pidAlive(pid)) throw new VmLaunchError(`machine ${name} is already running (launcher pid ${pid})`);
    rmSync(runDir, { recursive: true, force: true });
  }
  mkdirSync(join(o.runtimeDir, 'berth/vm'), { recursive: true, mode: 0o755 });
  try {
    mkdirSync(runDir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new VmLaunchError(`machine ${name} is being started by another launcher`);
    throw e;
  }
  const undo: Undo[] = [() => rmSync(runDir, { recursive: true, force: true })];
  writeFileSync(pidFile, String(process.pid));

  try {
    // SMBIOS type 11 strings
    const strings: string[] = [];
    for (const c of credentials) strings.push(credentialString({ id: c.id, value: c.value }));
    strings.push(...o.smbios11);

    if (fwDesc) {
      let varsPath: string | undefined;
      if (fwDesc.nvramTemplate) {
        varsPath = join(runDir, 'efi-vars.fd');
        copyFileSync(fwDesc.nvramTemplate.filename, varsPath);
      }
      firmware = {
        kind: 'firmware',
        codePath: fwDesc.executable.filename,
        codeFormat: fwDesc.executable.format,
        varsPath,
        varsFormat: fwDesc.nvramTemplate?.format,
        secureBoot: fwDesc.features.includes('secure-boot'),
        requiresSmm: fwDesc.features.includes('requires-smm'),
      };
      strings.push(...kernelCmdlineExtraStrings(o.kernelCmdline.join(' ')));
    }

    const vsockCid = host.vsock ? (o.vsockCid ?? cidFromName(name)) : undefined;
    let sshPrivateKeyPath: string | undefined;
    if (vsockCid !== undefined && host.sshKeygen) {
      sshPrivateKeyPath = join(runDir, `${name}-${o.sshKeyType}`);
      await execa(host.sshKeygen, ['-q', '-t', o.sshKeyType, '-N', '', '-C', `berth-vm-${name}`, '-f', sshPrivateKeyPath], { stdin: 'ignore' });
      const pub = readFileSync(`${sshPrivateKeyPath}.pub`, 'utf8').trim();
      strings.push(credentialString({ id: 'ssh.ephemeral-authorized_keys-all', value: Buffer.from(pub + '\n') }));
    }

    // readiness: virtio-serial always; over vsock too where it exists (socat as the AF_VSOCK listener)
    const notify = new NotifyReceiver(join(runDir, 'notify.sock'));
    await notify.listen();
    undo.push(() => notify.close());
    if (vsockCid !== undefined && o.notifyReady) {
      const socat = findExecutable('socat', env);
      if (socat) {
        const port = 0x10000 + (vsockCid % 0xefff);
        const l = execa(socat, ['-u', `VSOCK-LISTEN:${port},fork,reuseaddr`, 'STDOUT'], { reject: false, stdin: 'ignore', buffer: false });
        l.stdout?.on('data', (d: Buffer) => notify.feed(d.toString('utf8')));
        undo.push(() => void l.kill('SIGKILL'));
        strings.push(credentialString({ id: 'vmm.notify_socket', value: Buffer.from(`vsock-stream:2:${port}`) }));
      }
    }

    const qmpServer = await listenUnix(join(runDir, 'qmp.sock'));
    undo.push(() => void qmpServer.close());
    const qmpConn = firstConnection(qmpServer);

    // scope: qemu and its helpers all live in it
    let scope: VmScope;
    try {
      scope = VmScope.create(name);
    } catch (e) {
      throw new VmLaunchError(`cannot create the scope of machine ${name}: ${(e as Error).message}`);
    }
    undo.push(() => scope.destroy());

    // qemu and helpers die with the launcher even when it is killed outright (PR_SET_PDEATHSIG via setpriv)
    const setpriv = findExecutable('setpriv', env);
    const dieWithUs = (argv: string[]): string[] => (setpriv ? [setpriv, '--pdeathsig', 'SIGTERM', '--', ...argv] : argv);

    const helpers: ResultPromise[] = [];
    const spawnHelper = (argv: string[]): ResultPromise => {
      const w = scope.wrap(dieWithUs(argv));
      const p = execa(w[0]!, w.slice(1), { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: false });
      p.stderr?.on('data', (d: Buffer) => io.qemuStderr(d));
      helpers.push(p);
      undo.push(() => void p.kill('SIGKILL'));
      return p;
    };

    // virtiofs shares
    const virtiofs: VirtiofsShare[] = [];
    const bindTags: { tag: string; target: string; readOnly: boolean }[] = [];
    const shares: { source: string; tag: string; readOnly: boolean }[] = [];
    if (o.directory) shares.push({ source: resolvePath(o.directory), tag: 'root', readOnly: false });
    o.binds.forEach((b, i) => {
      shares.push({ source: b.source, tag: `mnt${i}`, readOnly: b.readOnly });
      bindTags.push({ tag: `mnt${i}`, target: b.target, readOnly: b.readOnly });
    });
    for (const sh of shares) {
      const sock = join(runDir, `fs-${sh.tag}.sock`);
      const args = [`--socket-path=${sock}`, '-o', `source=${sh.source}`, '-o', 'cache=auto'];
      if (o.privateUsers) {
        const { shift, range } = o.privateUsers;
        args.push(`--translate-uid=map:0:${shift}:${range}`, `--translate-gid=map:0:${shift}:${range}`);
      }
      spawnHelper([host.virtiofsd!, ...args]);
      virtiofs.push({ tag: sh.tag, socket: sock });
    }

    // software TPM
    let tpmSocket: string | undefined;
    if (host.swtpm) {
      const state = join(runDir, 'tpm');
      mkdirSync(state, { mode: 0o700 });
      if (host.swtpm.setup) await execa(host.swtpm.setup, ['--tpm-state', state, '--tpm2', '--pcr-banks', 'sha256', '--not-overwrite'], { stdin: 'ignore' });
      tpmSocket = join(runDir, 'tpm.sock');
      spawnHelper([host.swtpm.swtpm, 'socket', '--tpm2', '--tpmstate', `dir=${state}`, '--ctrl', `type=unixio,path=${tpmSocket}`]);
    }

    // journal forwarding over vsock
    if (host.journalRemote && vsockCid !== undefined) {
      const port = 0x20000 + (vsockCid % 0xefff);
      spawnHelper([host.journalRemote, `--output=${resolvePath(o.forwardJournal!)}`, `--listen-raw=vsock:2:${port}`]);
      strings.push(credentialString({ id: 'journal.forward_to_socket', value: Buffer.from(`vsock-stream:2:${port}`) }));
    }

    // helpers create their sockets asynchronously; qemu must find them
    await Promise.all(
      [...virtiofs.map((v) => v.socket), ...(tpmSocket ? [tpmSocket] : [])].map((p) => waitForPath(p, helpers, 5000)),
    );

    let boot: DirectBoot | FirmwareBoot;
    if (o.linux) {
      let initrd: string | undefined;
      if (o.initrds.length === 1) initrd = resolvePath(o.initrds[0]!);
      else if (o.initrds.length > 1) {
        initrd = join(runDir, 'initrd');
        mergeInitrds(o.initrds, initrd);
      }
      boot = {
        kind: 'direct',
        kernel: resolvePath(o.linux),
        initrd,
        cmdline: directBootCmdline({ console: o.console, rootVirtiofs: Boolean(o.directory), binds: bindTags, extra: o.kernelCmdline }),
      };
    } else boot = firmware!;

    const smbiosFiles = writeSmbiosFiles(join(runDir, 'smbios'), strings);
    const plan: QemuPlan = {
      name,
      uuid,
      accel: host.accel,
      cpus: o.cpus,
      ramBytes: o.ramBytes,
      boot,
      image: o.image ? { path: resolvePath(o.image), format: /\.qcow2$/i.test(o.image) ? 'qcow2' : 'raw' } : undefined,
      extraDrives: o.extraDrives.map((d) => ({ ...d, path: resolvePath(d.path) })),
      smbiosFiles,
      qmpSocket: join(runDir, 'qmp.sock'),
      notifySocket: notify.path,
      console: o.console,
      network: o.networkTap ? 'tap' : o.networkUserMode ? 'user' : 'none',
      virtiofs,
      tpmSocket,
      vsockCid,
    };
    const argv = scope.wrap(dieWithUs([host.qemu, ...buildQemuArgv(plan)]));
    writeFileSync(join(runDir, 'qemu.argv'), JSON.stringify(argv));

    const interactive = o.console === 'interactive' || o.console === 'native';
    const qemuProc = execa(argv[0]!, argv.slice(1), {
      reject: false,
      buffer: false,
      stdin: interactive ? 'inherit' : 'ignore',
      stdout: interactive ? 'inherit' : 'pipe',
      stderr: 'pipe',
      env: { ...env, LANG: 'C.UTF-8' },
      cleanup: true,
    });
    const pid = qemuProc.pid;
    if (!pid) throw new VmLaunchError(`cannot start ${host.qemu}`);
    undo.push(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    });
    let stderrTail = '';
    qemuProc.stderr?.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString('utf8')).slice(-2000);
      io.qemuStderr(d);
    });
    qemuProc.stdout?.on('data', (d: Buffer) => io.console(d));
    const exited: Promise<VmExit> = qemuProc.then((r) => ({ exitCode: r.exitCode, signal: r.signal ?? undefined }));

    // QMP: qemu connects while it starts; a qemu that refuses its arguments exits instead
    const early = exited.then((e) => {
      const why = stderrTail.trim().split('\n').filter(Boolean).pop();
      throw new VmLaunchError(`qemu exited during startup (${describeExit(e)})${why ? `: ${why}` : ''}`);
    });
    early.catch(() => {});
    let qmp: QmpClient;
    try {
      const qmpSock = await Promise.race([withTimeout(qmpConn, s.qmpConnectTimeoutMs ?? 10_000, 'qemu QMP connection'), early]);
      qmp = await Promise.race([QmpClient.connect(qmpSock), early]);
    } catch (e) {
      if (e instanceof VmLaunchError) throw e;
      // QMP went away: usually qemu exiting on bad arguments; report its reason if it exits soon
      await withTimeout(early, 2000, 'qemu exit').catch((x: Error) => {
        throw x instanceof VmLaunchError ? x : new VmLaunchError(`qemu did not complete the QMP handshake: ${(e as Error).message}`);
      });
      throw e;
    }
    undo.push(() => qmp.close());

    const registration: Registration = {
      name,
      id: uuid.replace(/-/g, ''),
      class: 'vm',
      service: s.service ?? 'berth-spawn',
      leader: pid,
      rootDirectory: o.directory ? resolvePath(o.directory) : undefined,
      vSockCid: vsockCid,
      sshAddress: vsockCid !== undefined && sshPrivateKeyPath ? `vsock/${vsockCid}` : undefined,
      sshPrivateKeyPath,
    };
    const vm = new RunningVm(name, uuid, runDir, qemuProc, pid, qmp, notify, scope, registration, exited, undo, registrySocket);

    if (o.register !== 'no') {
      try {
        if (await registerMachine(registrySocket, registration, o.register)) vm.markRegistered();
        else io.info(`no machine registry at ${registrySocket}, not registering`);
      } catch (e) {
        vm.kill();
        await vm.stop(0, 0);
        throw new VmLaunchError(`cannot register machine ${name} at ${registrySocket}: ${(e as Error).message}`);
      }
    }
    return vm;
  } catch (e) {
    await runUndo(undo);
    throw e;
  }
}

/** Waits for a helper's socket to appear; fails early if a helper exits. */
async function waitForPath(path: string, helpers: ResultPromise[], timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let dead = false;
  for (const h of helpers) void h.then(() => (dead = true));
  while (!existsSync(path)) {
    if (dead) throw new VmLaunchError(`a helper exited before creating ${path}`);
    if (Date.now() > end) throw new VmLaunchError(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export { NOTIFY_PORT_NAME };
