/**
 * io.systemd.Machine bound to the registry. This file only translates: parameters into the shared machine
 * operations (machine-operations.ts, which apply the policy), their results into replies, and their
 * failures into Varlink errors.
 * Behaviour follows systemd-machined 257 (see src/server/registry/ and test/unit/registry/ for the
 * observations it is based on).
 */
import type { Call, Handlers } from '../varlink/call.js';
import { Replies } from '../varlink/call.js';
import { ExpectedMoreError, InvalidParameterError, PermissionDeniedError, SystemError, VarlinkError } from '../varlink/errors.js';
import {
  GroupInHostRange,
  MachineExists,
  NoPrivateNetworking,
  NoSuchGroup,
  NoSuchMachine,
  NoSuchUser,
  NotAvailable,
  NotSupported,
  NoUIDShift,
  UserInHostRange,
  type AcquireMetadata,
  type IoSystemdMachineMethods,
  type ListResult,
} from '../generated/io.systemd.Machine.js';
import type { BerthContext } from './context.js';
import type { Machine, Result } from './registry/machine.js';
import { isAbsolutePath, isNormalizedPath, isValidPath } from './registry/field-rules.js';
import { parseKillWhom, validateKill, validateLookup, validateRegistration } from './machine-params.js';
import { liveProcessProbe, type CallerContext } from './registry/registry.js';
import { callerContext, MachineOperations, type OperationError, type OpResult } from './machine-operations.js';
import { bootId } from '../domain/process.js';
import { machineAddresses, machineOsRelease, machineUidShift } from './registry/metadata.js';
import { isValidUid, isValidUserGroupNameRelaxed } from './userdb/names.js';

const machineErrors: Record<string, new () => VarlinkError> = {
  'io.systemd.Machine.MachineExists': MachineExists,
  'io.systemd.Machine.NoSuchUser': NoSuchUser,
  'io.systemd.Machine.NoSuchGroup': NoSuchGroup,
  'io.systemd.Machine.UserInHostRange': UserInHostRange,
  'io.systemd.Machine.GroupInHostRange': GroupInHostRange,
  'io.systemd.Machine.NoSuchMachine': NoSuchMachine,
  'io.systemd.Machine.NotSupported': NotSupported,
  'io.systemd.Machine.NotAvailable': NotAvailable,
  'io.systemd.Machine.NoPrivateNetworking': NoPrivateNetworking,
  'io.systemd.Machine.NoUIDShift': NoUIDShift,
};

/** The Varlink error for a registry or operation failure. */
export function toVarlinkError(e: OperationError): VarlinkError {
  if ('error' in e) {
    const Cls = machineErrors[e.error];
    return Cls ? new Cls() : new VarlinkError(e.error);
  }
  if ('invalidParameter' in e) return new InvalidParameterError(e.invalidParameter);
  if ('errno' in e) return new SystemError(e.errno);
  return new PermissionDeniedError();
}

function unwrap<T>(r: OpResult<T>): T {
  if (!r.ok) throw toVarlinkError(r.error);
  return r.value;
}

export function caller(call: Call): CallerContext {
  // An unknown peer (uid -1) is treated as unprivileged.
  return callerContext(call.peer);
}

/** A List entry, keys in machined's order; empty fields left out. */
export function listEntry(m: Machine): ListResult {
  const out: ListResult = { name: m.name, ...(m.id ? { id: m.id } : {}), class: m.class };
  if (m.service) out.service = m.service;
  if (m.rootDirectory) out.rootDirectory = m.rootDirectory;
  if (m.unit) out.unit = m.unit;
  if (m.subgroup) out.subgroup = m.subgroup;
  out.leader = processId(m.leader);
  if (m.supervisor) out.supervisor = processId(m.supervisor);
  out.timestamp = { realtime: m.timestamp.realtime, monotonic: m.timestamp.monotonic };
  if (m.vSockCid !== undefined) out.vSockCid = m.vSockCid;
  if (m.sshAddress) out.sshAddress = m.sshAddress;
  if (m.sshPrivateKeyPath) out.sshPrivateKeyPath = m.sshPrivateKeyPath;
  if (m.controlAddress) out.controlAddress = m.controlAddress;
  return out;
}

/** A leader or supervisor as a ProcessId: the boot ID only goes with a pidfd inode number, as in 262. */
const processId = (p: { pid: number; pidfdId?: number }) => ({ pid: p.pid, ...(p.pidfdId !== undefined ? { pidfdId: p.pidfdId, bootId: bootId() } : {}) });

/** 262 ends every entry, metadata included, with the registering UID. */
const withUid = (out: ListResult, m: Machine): ListResult => ({ ...out, UID: m.registeredBy });

/** Add addresses, OSRelease and UIDShift; with `yes` the first failure is thrown, with `graceful` skipped. */
async function withMetadata(m: Machine, mode: AcquireMetadata): Promise<ListResult> {
  const out = listEntry(m);
  if (mode === 'no') return withUid(out, m);
  const take = <T>(r: Result<T>, set: (v: T) => void) => {
    if (r.ok) set(r.value);
    else if (mode === 'yes') throw toVarlinkError(r.error);
  };
  take(await machineAddresses(m), (v) => (out.addresses = v));
  take(machineOsRelease(m), (v) => (out.OSRelease = v));
  take(machineUidShift(m), (v) => (out.UIDShift = v));
  return withUid(out, m);
}


const OPEN_FIELDS = ['mode', 'user', 'path', 'args', 'environment'] as const;

/**
 * Open's own fields, checked in key order before the machine is looked up, whatever the mode (257 checks
 * `user`, `path` and `environment` even for `tty`): `user` a user name by the relaxed rule, `path` an
 * absolute valid path, `environment` NAME=VALUE entries with a shell-style NAME; none of them, nor `args`,
 * may be null.
 */
function checkOpenField(key: string, v: unknown): boolean {
  switch (key) {
    case 'user':
      return typeof v === 'string' && isValidUserGroupNameRelaxed(v);
    case 'path':
      return typeof v === 'string' && isAbsolutePath(v) && isValidPath(v);
    case 'args':
      return Array.isArray(v) && v.every((a) => typeof a === 'string');
    case 'environment':
      return Array.isArray(v) && v.every((e) => typeof e === 'string' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(e));
    default:
      return true;
  }
}

const COPY_FIELDS = ['source', 'destination', 'replace'] as const;
const BIND_FIELDS = ['source', 'destination', 'readOnly', 'mkdir'] as const;

/**
 * The path and flag fields of CopyTo, CopyFrom and BindMount, in key order: paths absolute and normalized
 * (no `.`, `..` or `//`), flags booleans; 262 takes a null `destination` as invalid rather than absent.
 */
function checkFsField(key: string, v: unknown): boolean {
  if (key === 'source' || key === 'destination') return typeof v === 'string' && isAbsolutePath(v) && isNormalizedPath(v);
  return typeof v === 'boolean';
}

export function machineApi(ctx: BerthContext): Handlers<IoSystemdMachineMethods> {
  const { registry } = ctx;
  const ops = new MachineOperations(ctx);

  /** Resolve the lookup fields of a call; NoSuchMachine before any permission check, as machined. */
  const lookup = (
    params: Record<string, unknown>,
    call: Call,
    extra: readonly string[] = [],
    checkExtra?: (key: string, v: unknown) => boolean,
  ): Machine => unwrap(ops.lookup(unwrap(validateLookup(params, extra, checkExtra)), call.peer));

  /** CopyTo and CopyFrom: fields checked, `source` required, `destination` defaulting to it. */
  const copy = async (direction: 'to' | 'from', params: Record<string, unknown>, call: Call) => {
    const spec = unwrap(validateLookup(params, COPY_FIELDS, checkFsField));
    if (typeof params.source !== 'string') throw new InvalidParameterError('source');
    const m = unwrap(ops.lookup(spec, call.peer));
    const destination = typeof params.destination === 'string' ? params.destination : params.source;
    unwrap(await ops.copy(m, { direction, source: params.source, destination, replace: params.replace === true }, call.peer));
    return {};
  };

  return {
    Register(params, call) {
      const spec = unwrap(validateRegistration(params, liveProcessProbe));
      // The registry logs the registration. The reply goes out in this turn unless systemd makes the scope.
      const r = ops.register(spec, call.peer);
      if (r instanceof Promise) return r.then((done) => (unwrap(done), {}));
      unwrap(r);
      return {};
    },

    Unregister(params, call) {
      unwrap(ops.unregisterBy(unwrap(validateLookup(params)), call.peer));
      return {};
    },

    Terminate(params, call) {
      unwrap(ops.terminate(lookup(params, call), call.peer));
      return {};
    },

    Kill(params, call) {
      const spec = unwrap(validateKill(params));
      const m = unwrap(ops.lookup(spec, call.peer));
      const whom = unwrap(parseKillWhom(spec.whom));
      unwrap(ops.kill(m, whom, spec.signal, call.peer));
      return {};
    },

    List(params, call) {
      const spec = unwrap(validateLookup(params, ['acquireMetadata']));
      const mode = params.acquireMetadata ?? 'no';
      if (spec.name !== undefined || spec.pid !== undefined) {
        const m = unwrap(ops.lookup(spec, call.peer));
        return withMetadata(m, mode);
      }
      if (!call.more) throw new ExpectedMoreError();
      const machines = [...registry.list()];
      if (mode === 'no') return new Replies(machines.map((m) => withUid(listEntry(m), m)), () => new NoSuchMachine());
      return new Replies(
        (async function* () {
          for (const m of machines) yield await withMetadata(m, mode);
        })(),
        () => new NoSuchMachine(),
      );
    },

    Open(params, call) {
      const m = lookup(params, call, OPEN_FIELDS, checkOpenField);
      const pty = unwrap(ops.open(m, params, call.peer));
      return { ptyFileDescriptor: call.pushFd(pty.fd), ptyPath: pty.path };
    },

    MapFrom(p, call) {
      // machined's handler takes no allowInteractiveAuthentication although the IDL declares it.
      if (p.allowInteractiveAuthentication !== undefined) throw new InvalidParameterError('allowInteractiveAuthentication');
      for (const k of ['uid', 'gid'] as const) {
        const v = p[k];
        if (v !== undefined && v !== null && (typeof v !== 'number' || !isValidUid(v))) throw new InvalidParameterError(k);
      }
      const m = lookup(p, call, ['uid', 'gid']);
      return unwrap(ops.mapFrom(m, { ...(typeof p.uid === 'number' ? { uid: p.uid } : {}), ...(typeof p.gid === 'number' ? { gid: p.gid } : {}) }));
    },

    async CopyTo(params, call) {
      return copy('to', params, call);
    },

    async CopyFrom(params, call) {
      return copy('from', params, call);
    },

    async BindMount(params, call) {
      const spec = unwrap(validateLookup(params, BIND_FIELDS, checkFsField));
      if (typeof params.source !== 'string') throw new InvalidParameterError('source');
      const m = unwrap(ops.lookup(spec, call.peer));
      const req = { source: params.source, destination: params.destination ?? params.source, readOnly: params.readOnly === true, mkdir: params.mkdir === true };
      unwrap(await ops.bindMount(m, req, call.peer));
      return {};
    },

    OpenRootDirectory(params, call) {
      const m = lookup(params, call);
      return { fileDescriptor: call.pushFd(unwrap(ops.openRootDirectory(m, call.peer))) };
    },

    MapTo(params) {
      const uid = params.uid ?? undefined;
      const gid = params.gid ?? undefined;
      // A UID or GID sent as a string is invalid here (isValidUid takes numbers only).
      if (uid !== undefined && (typeof uid !== 'number' || !isValidUid(uid))) throw new InvalidParameterError('uid');
      if (gid !== undefined && (typeof gid !== 'number' || !isValidUid(gid))) throw new InvalidParameterError('gid');
      return unwrap(ops.mapTo({ ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}) }));
    },
  };
}
