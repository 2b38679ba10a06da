/**
 * The machine operations both API bindings (Varlink machine-api.ts, D-Bus machine-dbus.ts) share: the
 * policy checks, the registry calls, Open's terminal, shell and login, the root directory, and the user
 * and group mapping, the copies and bind mounts (machine-fs.ts). Each takes typed arguments and the caller's identity as its transport vouches for it
 * (SO_PEERCRED for Varlink, the broker's credentials for D-Bus) and answers a Result whose error each
 * binding turns into its own wire error. Nothing here knows a wire.
 */
import fs from 'node:fs';
import type { BerthContext } from './context.js';
import type { PeerCredentials } from '../varlink/peer.js';
import { SystemError, VarlinkError } from '../varlink/errors.js';
import { Errno, machineRoot, ok, type KillWhom, type LookupSpec, type Machine, type RegistrationSpec, type RegistryError } from './registry/machine.js';
import type { CallerContext } from './registry/registry.js';
import { mapIdToHost } from './userdb/idmap.js';
import { openMachinePty, type MachinePty } from './pty.js';
import { startOnTerminal, type ShellRequest } from './machine-shell.js';
import { O_CLOEXEC } from '../domain/libc.js';
import { bindMount, copyFiles, hasFiles, type BindRequest, type CopyRequest, type FsResult } from './machine-fs.js';

/** Failures beyond the registry's own: the user and group mapping's. */
export type MappingErrorName =
  | 'io.systemd.Machine.NoSuchUser'
  | 'io.systemd.Machine.NoSuchGroup'
  | 'io.systemd.Machine.UserInHostRange'
  | 'io.systemd.Machine.GroupInHostRange'
  | 'io.systemd.Machine.TooManyOperations';

/** `setup`: a copy or mount that failed before its work began (D-Bus words those differently). */
export type OperationError = RegistryError | { error: MappingErrorName } | { errno: number; setup: boolean };
export type OpResult<T> = { ok: true; value: T } | { ok: false; error: OperationError };

/** Who calls, as the transport says: a uid (-1 when unknown, treated as unprivileged) and a pid when known. */
export interface Caller {
  uid: number;
  pid?: number;
}

export interface OpenRequest {
  mode: 'tty' | 'shell' | 'login';
  user?: string | null;
  path?: string | null;
  args?: string[] | null;
  environment?: string[] | null;
}

export interface MapToAnswer {
  machineName: string;
  uid?: number;
  gid?: number;
}

const denied = { permissionDenied: true } as const;
const no = <T = never>(error: OperationError): OpResult<T> => ({ ok: false, error });
const O_DIRECTORY = 0o200000;

const contexts = new WeakMap<Caller, CallerContext>();

/**
 * The registry's view of a caller, one object per caller object: a Varlink connection passes the same
 * peer credentials with every call, so what the registry learns about that peer once (supervisor.ts) holds
 * for the connection.
 */
export function callerContext(c: Caller): CallerContext {
  let ctx = contexts.get(c);
  if (!ctx) contexts.set(c, (ctx = { uid: c.uid, ...(c.pid !== undefined && c.pid > 0 ? { pid: c.pid } : {}) }));
  return ctx;
}

/** The policy's view of a caller (it decides by uid only). */
function peer(c: Caller): PeerCredentials {
  return { uid: c.uid, gid: -1, pid: c.pid ?? 0 };
}

/** The uid berthd signals on behalf of: none for root, else the caller's own (see Registry.kill). */
const signalAs = (c: Caller): number | undefined => (c.uid === 0 ? undefined : c.uid);

/** A thrown io.systemd.System (as pty.ts and machine-shell.ts throw) as an errno failure; anything else rethrown. */
function errnoOf(e: unknown): OperationError {
  if (e instanceof SystemError) return { errno: (e.parameters as { errno: number }).errno };
  throw e;
}

const fsResult = (r: FsResult): OpResult<void> => (r.ok ? ok(undefined) : no(r.failure));

export class MachineOperations {
  constructor(private readonly ctx: BerthContext) {}

  lookup(spec: LookupSpec, c: Caller): OpResult<Machine> {
    return this.ctx.registry.lookup(spec, callerContext(c));
  }

  /**
   * Register a validated spec: the policy's leader rule (not for `.host`), then the registry. Answered at
   * once unless systemd is asked for the scope.
   */
  register(spec: RegistrationSpec, c: Caller): OpResult<Machine> | Promise<OpResult<Machine>> {
    if (spec.class !== 'host' && !this.ctx.policy.mayRegisterLeader(peer(c), spec.leader?.pid ?? callerContext(c).pid)) return no(denied);
    return this.ctx.registry.register(spec, callerContext(c));
  }

  private mayManage(m: Machine, c: Caller): boolean {
    return this.ctx.policy.mayManage(peer(c), m.registeredBy);
  }

  unregister(m: Machine, c: Caller): OpResult<void> {
    if (!this.mayManage(m, c)) return no(denied);
    return this.ctx.registry.unregister(m.name);
  }

  /**
   * Unregister of a machine the lookup did not find: success when it ended on its own a moment ago and the
   * caller is the process that registered it (registry/ended-machines.ts says why), NoSuchMachine otherwise.
   */
  unregisterEnded(spec: LookupSpec, c: Caller): OpResult<void> {
    if (spec.name !== undefined && this.ctx.registry.claimEnded(spec.name, callerContext(c))) return ok(undefined);
    return no({ error: 'io.systemd.Machine.NoSuchMachine' });
  }

  /** Unregister by a lookup: the machine found, or a just-ended machine of the caller's (unregisterEnded). */
  unregisterBy(spec: LookupSpec, c: Caller): OpResult<void> {
    const m = this.lookup(spec, c);
    if (!m.ok) return 'error' in m.error && m.error.error === 'io.systemd.Machine.NoSuchMachine' ? this.unregisterEnded(spec, c) : m;
    return this.unregister(m.value, c);
  }

  terminate(m: Machine, c: Caller): OpResult<void> {
    if (!this.mayManage(m, c)) return no(denied);
    return this.ctx.registry.terminate(m.name, signalAs(c));
  }

  kill(m: Machine, whom: KillWhom, signal: number, c: Caller): OpResult<void> {
    if (!this.mayManage(m, c)) return no(denied);
    return this.ctx.registry.kill(m.name, whom, signal, signalAs(c));
  }

  /**
   * A new terminal of the machine, with a shell or login started on it for those modes. The caller owns
   * the returned master fd.
   */
  open(m: Machine, req: OpenRequest, c: Caller): OpResult<MachinePty> {
    if (!this.mayManage(m, c)) return no(denied);
    if (m.class === 'vm') return no({ error: 'io.systemd.Machine.NotSupported' });
    // A shell or login runs as any user of the machine, root included, in the leader's namespaces:
    // for a leader in the host's namespaces that is a root shell on the host. Only root may ask.
    if (req.mode !== 'tty' && c.uid !== 0) return no(denied);
    let pty: MachinePty;
    try {
      pty = openMachinePty(m);
    } catch (e) {
      return no(errnoOf(e));
    }
    if (req.mode === 'tty') return ok(pty);
    const noSuchUser = new VarlinkError('io.systemd.Machine.NoSuchUser');
    try {
      // machined has the machine's own service manager start these; berth starts them from the
      // host inside the machine's namespaces (machine-shell.ts).
      startOnTerminal(m, pty, { ...req, mode: req.mode } as ShellRequest, this.ctx.registry.cgroups, this.ctx.logger, () => noSuchUser);
      return ok(pty);
    } catch (e) {
      fs.closeSync(pty.fd);
      if (e === noSuchUser) return no({ error: 'io.systemd.Machine.NoSuchUser' });
      return no(errnoOf(e));
    }
  }

  /**
   * A directory fd of the machine's root as the machine sees it (its mount namespace's root, through
   * /proc/LEADER/root), for the owner or root. The caller owns the fd.
   */
  openRootDirectory(m: Machine, c: Caller): OpResult<number> {
    if (!this.mayManage(m, c)) return no(denied);
    if (m.class === 'vm') return no({ error: 'io.systemd.Machine.NotSupported' });
    try {
      return ok(fs.openSync(machineRoot(m), fs.constants.O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    } catch (e) {
      return no({ errno: Math.abs((e as NodeJS.ErrnoException).errno ?? Errno.EIO) });
    }
  }

  /**
   * Copy files between the host and a container. Only root may ask: the copy acts as root on both sides,
   * which for a machine in the host's namespaces is the host itself.
   */
  async copy(m: Machine, req: CopyRequest, c: Caller): Promise<OpResult<void>> {
    if (!hasFiles(m)) return no({ error: 'io.systemd.Machine.NotSupported' });
    if (c.uid !== 0) return no(denied);
    return fsResult(await copyFiles(m, req));
  }

  /** Bind mount a host path into a container; root only, like copy. */
  async bindMount(m: Machine, req: BindRequest, c: Caller): Promise<OpResult<void>> {
    if (!hasFiles(m)) return no({ error: 'io.systemd.Machine.NotSupported' });
    if (c.uid !== 0) return no(denied);
    return fsResult(await bindMount(m, req));
  }

  /** Host ids for ids inside a container (undefined keys left out). */
  mapFrom(m: Machine, ids: { uid?: number; gid?: number }): OpResult<{ uid?: number; gid?: number }> {
    if (m.class !== 'container') return no({ error: 'io.systemd.Machine.NotSupported' });
    const out: { uid?: number; gid?: number } = {};
    if (ids.uid !== undefined) {
      const h = mapIdToHost(m.leader.pid, 'uid_map', ids.uid);
      if (h === undefined) return no({ error: 'io.systemd.Machine.NoSuchUser' });
      out.uid = h;
    }
    if (ids.gid !== undefined) {
      const h = mapIdToHost(m.leader.pid, 'gid_map', ids.gid);
      if (h === undefined) return no({ error: 'io.systemd.Machine.NoSuchGroup' });
      out.gid = h;
    }
    return ok(out);
  }

  /** The container owning host ids, and the ids inside it; both ids must belong to the same one. */
  mapTo(ids: { uid?: number; gid?: number }): OpResult<MapToAnswer> {
    const { uid, gid } = ids;
    if (uid !== undefined && uid < 0x10000) return no({ error: 'io.systemd.Machine.UserInHostRange' });
    if (gid !== undefined && gid < 0x10000) return no({ error: 'io.systemd.Machine.GroupInHostRange' });
    const owner = (list: { machine: string; class: string; inside: number }[]) =>
      list.find((o) => o.class === 'container' && this.ctx.registry.get(o.machine));
    let machineName: string | undefined;
    const out: { uid?: number; gid?: number } = {};
    if (uid !== undefined) {
      const o = owner(this.ctx.userdb.uidOwner(uid));
      if (!o) return no({ error: 'io.systemd.Machine.NoSuchUser' });
      out.uid = o.inside;
      machineName = o.machine;
    }
    if (gid !== undefined) {
      const o = owner(this.ctx.userdb.gidOwner(gid));
      if (!o) return no({ error: 'io.systemd.Machine.NoSuchGroup' });
      if (machineName !== undefined && machineName !== o.machine) return no({ error: 'io.systemd.Machine.NoSuchMachine' });
      out.gid = o.inside;
      machineName = o.machine;
    }
    if (machineName === undefined) return no({ error: 'io.systemd.Machine.NoSuchMachine' });
    return ok({ machineName, ...out });
  }
}

