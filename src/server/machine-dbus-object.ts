/**
 * org.freedesktop.machine1.Machine: the properties of one machine object (the set of machined 262) and the
 * per-machine methods. Each method is written once, as a function of the machine it acts on; the Manager
 * serves the same functions under its own names with the machine's name as first argument
 * (TerminateMachine, OpenMachinePTY, …), as machined redirects them.
 */
import type { CallContext, InterfaceSpec, MethodSpec, PropertySpec } from '../dbus/index.js';
import type { Machine } from './registry/machine.js';
import type { MachineOperations } from './machine-operations.js';
import { machineAddresses, machineOsRelease, machineUidShift } from './registry/metadata.js';
import { isAbsolutePath, isNormalizedPath, isValidPath } from './registry/field-rules.js';
import { hasFiles } from './machine-fs.js';
import { DBusError, errnoError } from '../dbus/index.js';

/** The C library's words for an errno, as sd-bus puts them after a message's colon. */
const strerror = (errno: number): string => errnoError(errno).message;
import { SIGNAL_MAX } from '../domain/signals.js';
import { callerOf, invalidArgs, notSupported, unwrap } from './machine-dbus-errors.js';

const UINT32_MAX = 0xffffffff;

/** One per-machine method: its signatures and what it does to a machine. */
export interface MachineMethod {
  in: string;
  out: string;
  inNames: string[];
  outNames: string[];
  /** The Manager's name for it. */
  managerName: string;
  run(m: Machine, args: any[], ctx: CallContext): unknown[] | Promise<unknown[]>;
}

/** `KEY=VALUE` strings as a{ss}. */
function pairs(list: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq > 0) out.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return out;
}

/** The replace bit of CopyToWithFlags/CopyFromWithFlags, the only public one. */
const COPY_REPLACE = 1n;

/** Source and destination of a copy or mount: absolute and normalized; an empty destination is the source. */
function checkPaths(source: string, destination: string): string {
  const good = (p: string) => isAbsolutePath(p) && isNormalizedPath(p);
  if (!good(source)) throw invalidArgs('Source path must be absolute and normalized.');
  if (destination === '') return source;
  if (!good(destination)) throw invalidArgs('Destination path must be absolute and normalized.');
  return destination;
}

const validEnv = (e: string) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(e);

/** The per-machine methods, by their Machine-interface name. */
export function machineMethods(ops: MachineOperations): Record<string, MachineMethod> {
  /** CopyTo/CopyFrom (and their WithFlags forms, whose only flag is replace), worded as machined words them. */
  const copy = (direction: 'to' | 'from', withFlags: boolean): MachineMethod['run'] => async (m, [source, destination, flags]: any[], ctx) => {
    if (!hasFiles(m)) throw notSupported('Copying files is only supported on container machines.');
    if (withFlags && (BigInt(flags) & ~COPY_REPLACE) !== 0n) throw invalidArgs('Invalid argument');
    const dest = checkPaths(source, destination);
    const replace = withFlags && (BigInt(flags) & COPY_REPLACE) !== 0n;
    const r = await ops.copy(m, { direction, source, destination: dest, replace }, await callerOf(ctx));
    if (!r.ok && 'errno' in r.error) {
      const { errno } = r.error;
      // A failure before the copy began names the machine; one of the copy itself is the bare errno.
      throw errnoError(errno, 'setup' in r.error && r.error.setup ? `Failed to copy from/to machine '${m.name}': ${strerror(errno)}` : undefined);
    }
    if (!r.ok && 'error' in r.error && r.error.error === 'io.systemd.Machine.TooManyOperations') throw new DBusError('org.freedesktop.DBus.Error.LimitsExceeded', 'Too many ongoing copies.');
    unwrap(r, { name: m.name });
    return [];
  };
  const open = async (m: Machine, req: Parameters<MachineOperations['open']>[1], ctx: CallContext) => {
    const pty = unwrap(ops.open(m, req, await callerOf(ctx)), { name: m.name });
    // The connection closes the master once it is sent.
    return [pty.fd, pty.path];
  };
  const methods: Record<string, MachineMethod> = {
    Terminate: {
      in: '', out: '', inNames: [], outNames: [], managerName: 'TerminateMachine',
      async run(m, _a, ctx) {
        unwrap(ops.terminate(m, await callerOf(ctx)), { name: m.name });
        return [];
      },
    },
    Kill: {
      in: 'si', out: '', inNames: ['whom', 'signal'], outNames: [], managerName: 'KillMachine',
      async run(m, [whom, signal]: any[], ctx) {
        const w = whom === '' ? 'all' : whom;
        if (w !== 'all' && w !== 'leader') throw invalidArgs(`Invalid kill parameter '${whom}'`);
        if (!(signal >= 1 && signal <= SIGNAL_MAX)) throw invalidArgs(`Invalid signal ${signal}`);
        unwrap(ops.kill(m, w, signal, await callerOf(ctx)), { name: m.name });
        return [];
      },
    },
    GetAddresses: {
      in: '', out: 'a(iay)', inNames: [], outNames: ['addresses'], managerName: 'GetMachineAddresses',
      async run(m) {
        const list = unwrap(await machineAddresses(m), { name: m.name });
        return [list.map((a) => [a.family, Buffer.from(a.address)])];
      },
    },
    GetSSHInfo: {
      in: '', out: 'ss', inNames: [], outNames: ['ssh_address', 'ssh_private_key_path'], managerName: 'GetMachineSSHInfo',
      run(m) {
        if (!m.sshAddress || !m.sshPrivateKeyPath) unwrap({ ok: false, error: { errno: 2 } }, { name: m.name });
        return [m.sshAddress, m.sshPrivateKeyPath];
      },
    },
    GetOSRelease: {
      in: '', out: 'a{ss}', inNames: [], outNames: ['fields'], managerName: 'GetMachineOSRelease',
      run: (m) => [pairs(unwrap(machineOsRelease(m), { name: m.name }))],
    },
    GetUIDShift: {
      in: '', out: 'u', inNames: [], outNames: ['shift'], managerName: 'GetMachineUIDShift',
      run: (m) => [unwrap(machineUidShift(m), { name: m.name })],
    },
    OpenPTY: {
      in: '', out: 'hs', inNames: [], outNames: ['pty', 'pty_path'], managerName: 'OpenMachinePTY',
      run: (m, _a, ctx) => open(m, { mode: 'tty' }, ctx),
    },
    OpenLogin: {
      in: '', out: 'hs', inNames: [], outNames: ['pty', 'pty_path'], managerName: 'OpenMachineLogin',
      run: (m, _a, ctx) => open(m, { mode: 'login' }, ctx),
    },
    OpenShell: {
      in: 'ssasas', out: 'hs', inNames: ['user', 'path', 'args', 'environment'], outNames: ['pty', 'pty_path'], managerName: 'OpenMachineShell',
      run(m, [user, path, args, environment]: any[], ctx) {
        if (path !== '' && !(isAbsolutePath(path) && isValidPath(path))) throw invalidArgs(`Specified path '${path}' is not absolute`);
        if (!(environment as string[]).every(validEnv)) throw invalidArgs('Invalid environment assignments');
        return open(m, { mode: 'shell', user: user || null, path: path || null, args: args.length ? args : null, environment }, ctx);
      },
    },
    OpenRootDirectory: {
      in: '', out: 'h', inNames: [], outNames: ['fd'], managerName: 'OpenMachineRootDirectory',
      async run(m, _a, ctx) {
        const r = ops.openRootDirectory(m, await callerOf(ctx));
        if (!r.ok && 'error' in r.error && r.error.error === 'io.systemd.Machine.NotSupported') throw notSupported('Opening the root directory is only supported on container machines.');
        return [unwrap(r, { name: m.name })];
      },
    },
    BindMount: {
      in: 'ssbb', out: '', inNames: ['source', 'destination', 'read_only', 'mkdir'], outNames: [], managerName: 'BindMountMachine',
      async run(m, [source, destination, readOnly, mkdir]: any[], ctx) {
        if (!hasFiles(m)) throw notSupported('Bind mounting is only supported on container machines.');
        const dest = checkPaths(source, destination);
        const r = await ops.bindMount(m, { source, destination: dest, readOnly, mkdir }, await callerOf(ctx));
        if (!r.ok && 'errno' in r.error) throw errnoError(r.error.errno, `Failed to mount ${source} on ${dest} in machine's namespace: ${strerror(r.error.errno)}`);
        if (!r.ok && 'error' in r.error && r.error.error === 'io.systemd.Machine.NotSupported') throw notSupported("Can't bind mount on container with user namespacing applied.");
        unwrap(r, { name: m.name });
        return [];
      },
    },
    CopyFrom: { in: 'ss', out: '', inNames: ['source', 'destination'], outNames: [], managerName: 'CopyFromMachine', run: copy('from', false) },
    CopyTo: { in: 'ss', out: '', inNames: ['source', 'destination'], outNames: [], managerName: 'CopyToMachine', run: copy('to', false) },
    CopyFromWithFlags: { in: 'sst', out: '', inNames: ['source', 'destination', 'flags'], outNames: [], managerName: 'CopyFromMachineWithFlags', run: copy('from', true) },
    CopyToWithFlags: { in: 'sst', out: '', inNames: ['source', 'destination', 'flags'], outNames: [], managerName: 'CopyToMachineWithFlags', run: copy('to', true) },
  };
  return methods;
}

/** Where the machine is in its life, as machined names it. */
export type MachineState = 'opening' | 'running' | 'closing';

const idBytes = (id: string | undefined) => (id ? Buffer.from(id, 'hex') : Buffer.alloc(0));

/** The Machine interface served at every machine path; `machineAt` resolves the called path. */
export function machineInterface(
  methods: Record<string, MachineMethod>,
  machineAt: (ctx: CallContext) => Promise<Machine>,
  stateOf: (m: Machine) => MachineState,
): InterfaceSpec {
  const prop = (type: string, get: (m: Machine) => unknown, emitsChange: 'const' | 'false' = 'const'): PropertySpec => ({
    type,
    emitsChange,
    get: async (ctx) => get(await machineAt(ctx)),
  });
  const specs: Record<string, MethodSpec> = {};
  for (const [name, mm] of Object.entries(methods)) {
    specs[name] = { in: mm.in, out: mm.out, inNames: mm.inNames, outNames: mm.outNames, handler: async (args, ctx) => mm.run(await machineAt(ctx), args, ctx) };
  }
  return {
    name: 'org.freedesktop.machine1.Machine',
    methods: specs,
    properties: {
      Name: prop('s', (m) => m.name),
      Id: prop('ay', (m) => idBytes(m.id)),
      Timestamp: prop('t', (m) => BigInt(m.timestamp.realtime)),
      TimestampMonotonic: prop('t', (m) => BigInt(m.timestamp.monotonic)),
      Service: prop('s', (m) => m.service ?? ''),
      Unit: prop('s', (m) => m.unit ?? ''),
      Subgroup: prop('s', () => ''),
      Leader: prop('u', (m) => m.leader.pid),
      LeaderPIDFDId: prop('t', (m) => BigInt(m.leader.pidfdId ?? 0)),
      // The process that registered the machine, as machined 262 reports it (0 when unknown).
      Supervisor: prop('u', (m) => m.supervisor?.pid ?? 0),
      SupervisorPIDFDId: prop('t', (m) => BigInt(m.supervisor?.pidfdId ?? 0)),
      Class: prop('s', (m) => m.class),
      RootDirectory: prop('s', (m) => m.rootDirectory ?? ''),
      NetworkInterfaces: prop('ai', (m) => m.ifIndices),
      // machined reports 1 (VMADDR_CID_LOCAL) for the host and UINT32_MAX for a machine without one.
      VSockCID: prop('u', (m) => m.vSockCid ?? (m.class === 'host' ? 1 : UINT32_MAX)),
      SSHAddress: prop('s', (m) => m.sshAddress ?? ''),
      SSHPrivateKeyPath: prop('s', (m) => m.sshPrivateKeyPath ?? ''),
      State: prop('s', (m) => stateOf(m), 'false'),
      UID: prop('u', (m) => (m.registeredBy >= 0 ? m.registeredBy : 0)),
    },
  };
}
