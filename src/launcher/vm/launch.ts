// Starting a VM: check what the options need against what the host has, prepare the run directory (SMBIOS
// files, sockets, initrd), start helpers and qemu inside the machine's scope, connect QMP, register, and hand
// back a RunningVm. Any failure on the way undoes every step already taken.

import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { randomUUID } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { processExists } from '../../domain/process.js';
import { findFirmware, loadFirmwareDescriptor } from './firmware.js';
import { findExecutable, qemuArch } from './host.js';
import { checkInputs, planHost } from './plan.js';
import { RunningVm, runUndo, VmLaunchError, describeExit, type Undo, type VmExit } from './running.js';
import { GuestNotifyListener } from './guest-notify.js';
import { resolveCredentials } from './credentials.js';
import type { VmOptions } from './options.js';
import { QmpClient, withTimeout } from './qmp.js';
import {
  buildQemuArgv, cidFromName, directBootCmdline, NOTIFY_PORT_NAME, type DirectBoot, type FirmwareBoot, type QemuPlan, type VirtiofsShare,
} from './qemu.js';
import { registerMachine, type Registration } from '../registry-client.js';
import { berthRuntimeDir, machineSocketPath } from '../../domain/runtime-paths.js';
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
  const runDir = join(berthRuntimeDir(o.runtimeDir, 'vm'), name);
  const pidFile = join(runDir, 'pid');
  if (existsSync(runDir)) {
    let pid = 0;
    try {
      pid = Number(readFileSync(pidFile, 'utf8'));
    } catch {
      // no pid file
    }
    if (pid > 0 && processExists(pid)) throw new VmLaunchError(`machine ${name} is already running (launcher pid ${pid})`);
    rmSync(runDir, { recursive: true, force: true });
  }
  mkdirSync(berthRuntimeDir(o.runtimeDir, 'vm'), { recursive: true, mode: 0o755 });
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
    const notify = new GuestNotifyListener(join(runDir, 'notify.sock'));
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

export { NOTIFY_PORT_NAME, RunningVm, VmLaunchError, describeExit, type VmExit };
export type { HostPlan } from './plan.js';
