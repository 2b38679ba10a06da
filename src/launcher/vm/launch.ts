// Starting a VM, step by step: check what the options need against what the host has, take the run directory,
// collect the guest's SMBIOS strings (credentials, firmware command line, SSH key, notify and journal sockets),
// listen for the guest's readiness and for QMP, create the scope, start the helpers and then qemu in it,
// connect QMP, register, and hand back a RunningVm. Every step registers its undo on one Teardown, so a failure
// on the way undoes every step already taken; once running, the RunningVm runs the same teardown at the end.

import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { randomUUID } from 'node:crypto';
import { execa, type ResultPromise } from 'execa';
import { Teardown } from '../teardown.js';
import { resolveCredentials } from './credentials.js';
import { findFirmware, loadFirmwareDescriptor, type FirmwareDescriptor } from './firmware.js';
import { GuestNotifyListener } from './guest-notify.js';
import { forwardJournal, ScopeProcesses, startTpm, startVirtiofs, type BindTag } from './helpers.js';
import { findExecutable, qemuArch } from './host.js';
import type { VmOptions } from './options.js';
import { checkInputs, planHost, type HostPlan } from './plan.js';
import { QmpClient, withTimeout } from './qmp.js';
import {
  buildQemuArgv, cidFromName, directBootCmdline, NOTIFY_PORT_NAME, type DirectBoot, type FirmwareBoot, type QemuPlan, type VirtiofsShare,
} from './qemu.js';
import { claimRunDir, ephemeralSshKey, firmwareBoot, mergeInitrds } from './run-dir.js';
import { RunningVm, VmLaunchError, describeExit, type VmExit } from './running.js';
import { VmScope } from './scope.js';
import { berthSpawnMark, type LaunchRecord } from '../launch-record.js';
import { detectCgroupLayout, machineScopeDirs } from '../../domain/cgroup-paths.js';
import { credentialString, kernelCmdlineExtraStrings, writeSmbiosFiles } from './smbios.js';
import { registerMachine, type Registration } from '../registry-client.js';
import { serveVmInstance } from '../instance-vm.js';
import { machineSocketPath } from '../../domain/runtime-paths.js';

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

/** What the steps of one launch share. */
interface Launch {
  readonly o: VmOptions;
  readonly io: LaunchIo;
  readonly s: LaunchSettings;
  readonly env: NodeJS.ProcessEnv;
  readonly name: string;
  readonly host: HostPlan;
  readonly runDir: string;
  /** what this launcher made, noted before each part is made (launch-record.ts) */
  readonly record: LaunchRecord;
  readonly t: Teardown;
  /** SMBIOS type 11 strings for the guest, in the order qemu passes them */
  readonly smbios: string[];
}

/** Launches the VM and returns once qemu runs and QMP is connected (and the machine is registered, if asked). */
export async function launchVm(o: VmOptions, io: LaunchIo, s: LaunchSettings = {}): Promise<RunningVm> {
  const name = o.machine!;
  const env = s.env ?? process.env;
  const host = await checkHost(o, io, s);
  const fwDesc = o.linux ? undefined : o.firmware ? loadFirmwareDescriptor(o.firmware) : findFirmware(qemuArch(), o.secureBoot, undefined);
  const credentials = resolveCredentials(o.credentials, env);
  const uuid = o.uuid ?? randomUUID();
  const registrySocket = machineSocketPath(o.runtimeDir);

  const t = new Teardown();
  try {
    const { runDir, record } = await claimRunDir(o.runtimeDir, name, t, (m) => io.info(m));
    const l: Launch = { o, io, s, env, name, host, runDir, record, t, smbios: [...credentials.map(credentialString), ...o.smbios11] };
    const firmware = fwDesc ? prepareFirmware(l, fwDesc) : undefined;
    const vsockCid = host.vsock ? (o.vsockCid ?? cidFromName(name)) : undefined;
    const sshPrivateKeyPath = await passSshKey(l, vsockCid);
    const notify = await listenForReadiness(l, vsockCid);
    const { connection: qmpConnection } = await listenQmp(l);
    const scope = createScope(l);
    const procs = new ScopeProcesses(scope, t, io.qemuStderr, env);
    const { virtiofs, bindTags, tpmSocket } = await startHelpers(l, procs, vsockCid);
    const boot = o.linux ? directBoot(l, bindTags) : firmware!;
    const qemu = startQemu(l, procs, {
      name, uuid, boot, virtiofs, tpmSocket, vsockCid, notifySocket: notify.path, qmpSocket: join(runDir, 'qmp.sock'),
    });
    const qmp = await connectQmp(l, qmpConnection, qemu);
    let running: RunningVm | undefined;
    const controlAddress = await serveVmInstance({ qmp, kill: () => running?.kill() }, runDir, t, io.info);

    const registration: Registration = {
      name,
      id: uuid.replace(/-/g, ''),
      class: 'vm',
      service: s.service ?? 'berth-spawn',
      leader: qemu.pid,
      rootDirectory: o.directory ? resolvePath(o.directory) : undefined,
      vSockCid: vsockCid,
      sshAddress: vsockCid !== undefined && sshPrivateKeyPath ? `vsock/${vsockCid}` : undefined,
      sshPrivateKeyPath,
      controlAddress,
    };
    const vm = new RunningVm(name, uuid, runDir, qemu.process, qemu.pid, qmp, notify, scope, registration, qemu.exited, t, registrySocket);
    running = vm;
    await register(l, vm, registrySocket);
    return vm;
  } catch (e) {
    await t.run(true);
    throw e;
  }
}

/** Every path the options name exists, and the host has what they need; says what `auto` chose. */
async function checkHost(o: VmOptions, io: LaunchIo, s: LaunchSettings): Promise<HostPlan> {
  checkInputs(o);
  const host = await planHost(o, s);
  if (o.kvm !== 'no') io.info(host.accelDetail);
  for (const n of host.notes) io.info(n);
  return host;
}

/** UEFI boot: the firmware with its own NVRAM copy; the extra kernel command line goes to the guest over SMBIOS. */
function prepareFirmware(l: Launch, desc: FirmwareDescriptor): FirmwareBoot {
  const boot = firmwareBoot(desc, l.runDir);
  l.smbios.push(...kernelCmdlineExtraStrings(l.o.kernelCmdline.join(' ')));
  return boot;
}

/** With vsock and ssh-keygen: a key for this run, its public half authorized in the guest. */
async function passSshKey(l: Launch, vsockCid: number | undefined): Promise<string | undefined> {
  if (vsockCid === undefined || !l.host.sshKeygen) return undefined;
  const key = await ephemeralSshKey(l.host.sshKeygen, l.runDir, l.name, l.o.sshKeyType);
  l.smbios.push(credentialString({ id: 'ssh.ephemeral-authorized_keys-all', value: Buffer.from(key.publicKey + '\n') }));
  return key.privateKeyPath;
}

/** Readiness: virtio-serial always; over vsock too where it exists (socat as the AF_VSOCK listener). */
async function listenForReadiness(l: Launch, vsockCid: number | undefined): Promise<GuestNotifyListener> {
  const notify = new GuestNotifyListener(join(l.runDir, 'notify.sock'));
  await notify.listen();
  l.t.add('close the notify socket', () => notify.close());
  if (vsockCid !== undefined && l.o.notifyReady) {
    const socat = findExecutable('socat', l.env);
    if (socat) {
      const port = 0x10000 + (vsockCid % 0xefff);
      const listener = execa(socat, ['-u', `VSOCK-LISTEN:${port},fork,reuseaddr`, 'STDOUT'], { reject: false, stdin: 'ignore', buffer: false });
      listener.stdout?.on('data', (d: Buffer) => notify.feed(d.toString('utf8')));
      l.t.add('stop the vsock notify listener', () => void listener.kill('SIGKILL'));
      l.smbios.push(credentialString({ id: 'vmm.notify_socket', value: Buffer.from(`vsock-stream:2:${port}`) }));
    }
  }
  return notify;
}

/** The QMP socket qemu connects to as it starts; `connection` is that first connection. */
async function listenQmp(l: Launch): Promise<{ connection: Promise<Socket> }> {
  const server = await listenUnix(join(l.runDir, 'qmp.sock'));
  l.t.add('close the QMP socket', () => void server.close());
  return { connection: new Promise((resolve) => server.once('connection', resolve)) };
}

/** The scope qemu and its helpers all live in. */
function createScope(l: Launch): VmScope {
  let scope: VmScope;
  try {
    const hierarchies = detectCgroupLayout().hierarchies;
    l.record.note({ scope: machineScopeDirs(l.name, hierarchies) });
    scope = VmScope.create(l.name, hierarchies, berthSpawnMark(l.o.runtimeDir));
  } catch (e) {
    throw new VmLaunchError(`cannot create the scope of machine ${l.name}: ${(e as Error).message}`);
  }
  l.t.add('remove the scope', () => scope.destroy());
  return scope;
}

/** virtiofsd, swtpm and journal forwarding, in that order; resolves once qemu can find their sockets. */
async function startHelpers(l: Launch, procs: ScopeProcesses, vsockCid: number | undefined): Promise<{ virtiofs: VirtiofsShare[]; bindTags: BindTag[]; tpmSocket?: string }> {
  const { virtiofs, bindTags } = startVirtiofs(l.o, l.host, l.runDir, procs);
  const tpmSocket = await startTpm(l.host, l.runDir, procs);
  forwardJournal(l.o, l.host, vsockCid, procs, l.smbios);
  await procs.waitForSockets([...virtiofs.map((v) => v.socket), ...(tpmSocket ? [tpmSocket] : [])], 5000);
  return { virtiofs, bindTags, tpmSocket };
}

/** --linux: the kernel, one initrd (several are merged into the run directory), and the command line berth builds. */
function directBoot(l: Launch, bindTags: BindTag[]): DirectBoot {
  const o = l.o;
  let initrd: string | undefined;
  if (o.initrds.length === 1) initrd = resolvePath(o.initrds[0]!);
  else if (o.initrds.length > 1) {
    initrd = join(l.runDir, 'initrd');
    mergeInitrds(o.initrds, initrd);
  }
  return {
    kind: 'direct',
    kernel: resolvePath(o.linux!),
    initrd,
    cmdline: directBootCmdline({ console: o.console, rootVirtiofs: Boolean(o.directory), binds: bindTags, extra: o.kernelCmdline }),
  };
}

interface StartedQemu {
  process: ResultPromise;
  pid: number;
  exited: Promise<VmExit>;
  /** the last lines qemu wrote to stderr (its reason, when it refuses to start) */
  stderrTail(): string;
}

type QemuSockets = Pick<QemuPlan, 'name' | 'uuid' | 'boot' | 'virtiofs' | 'tpmSocket' | 'vsockCid' | 'notifySocket' | 'qmpSocket'>;

/** Writes the SMBIOS files, builds qemu's argv (kept in the run directory as qemu.argv) and starts qemu in the scope. */
function startQemu(l: Launch, procs: ScopeProcesses, parts: QemuSockets): StartedQemu {
  const o = l.o;
  const plan: QemuPlan = {
    ...parts,
    accel: l.host.accel,
    cpus: o.cpus,
    ramBytes: o.ramBytes,
    image: o.image ? { path: resolvePath(o.image), format: /\.qcow2$/i.test(o.image) ? 'qcow2' : 'raw', discard: o.discardDisk } : undefined,
    extraDrives: o.extraDrives.map((d) => ({ ...d, path: resolvePath(d.path) })),
    smbiosFiles: writeSmbiosFiles(join(l.runDir, 'smbios'), l.smbios),
    console: o.console,
    network: o.networkTap ? 'tap' : o.networkUserMode ? 'user' : 'none',
  };
  const argv = procs.wrap([l.host.qemu, ...buildQemuArgv(plan)]);
  writeFileSync(join(l.runDir, 'qemu.argv'), JSON.stringify(argv));

  const interactive = o.console === 'interactive' || o.console === 'native';
  const qemuProc = execa(argv[0]!, argv.slice(1), {
    reject: false,
    buffer: false,
    stdin: interactive ? 'inherit' : 'ignore',
    stdout: interactive ? 'inherit' : 'pipe',
    stderr: 'pipe',
    env: { ...l.env, LANG: 'C.UTF-8' },
    cleanup: true,
  });
  const pid = qemuProc.pid;
  if (!pid) throw new VmLaunchError(`cannot start ${l.host.qemu}`);
  l.t.add('kill qemu', () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  let stderrTail = '';
  qemuProc.stderr?.on('data', (d: Buffer) => {
    stderrTail = (stderrTail + d.toString('utf8')).slice(-2000);
    l.io.qemuStderr(d);
  });
  qemuProc.stdout?.on('data', (d: Buffer) => l.io.console(d));
  const exited: Promise<VmExit> = qemuProc.then((r) => ({ exitCode: r.exitCode, signal: r.signal ?? undefined }));
  return { process: qemuProc, pid, exited, stderrTail: () => stderrTail };
}

/** QMP: qemu connects while it starts; a qemu that refuses its arguments exits instead, and its reason is reported. */
async function connectQmp(l: Launch, connection: Promise<Socket>, qemu: StartedQemu): Promise<QmpClient> {
  const early = qemu.exited.then((e) => {
    const why = qemu.stderrTail().trim().split('\n').filter(Boolean).pop();
    throw new VmLaunchError(`qemu exited during startup (${describeExit(e)})${why ? `: ${why}` : ''}`);
  });
  early.catch(() => {});
  let qmp: QmpClient;
  try {
    const socket = await Promise.race([withTimeout(connection, l.s.qmpConnectTimeoutMs ?? 10_000, 'qemu QMP connection'), early]);
    qmp = await Promise.race([QmpClient.connect(socket), early]);
  } catch (e) {
    if (e instanceof VmLaunchError) throw e;
    // QMP went away: usually qemu exiting on bad arguments; report its reason if it exits soon
    await withTimeout(early, 2000, 'qemu exit').catch((x: Error) => {
      throw x instanceof VmLaunchError ? x : new VmLaunchError(`qemu did not complete the QMP handshake: ${(e as Error).message}`);
    });
    throw e;
  }
  l.t.add('close QMP', () => qmp.close());
  return qmp;
}

/** Registers the machine unless --register=no; a refusal stops the VM it would have named. */
async function register(l: Launch, vm: RunningVm, registrySocket: string): Promise<void> {
  if (l.o.register === 'no') return;
  try {
    if (await registerMachine(registrySocket, vm.registration, l.o.register)) vm.markRegistered();
    else l.io.info(`no machine registry at ${registrySocket}, not registering`);
  } catch (e) {
    vm.kill();
    await vm.stop(0, 0);
    throw new VmLaunchError(`cannot register machine ${l.name} at ${registrySocket}: ${(e as Error).message}`);
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

export { NOTIFY_PORT_NAME, RunningVm, VmLaunchError, describeExit, type VmExit };
export { mergeInitrds } from './run-dir.js';
export type { HostPlan } from './plan.js';
