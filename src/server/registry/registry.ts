// The Registry: every registered machine, indexed by name, leader PID and unit; kept in step with the state
// directory; machines disappear when their leader exits. Knows nothing of Varlink: operations return
// `Result`s whose errors the API layer maps onto wire errors.
//
// All mutating operations are synchronous (the file system work is on /proc, /sys/fs/cgroup and /run, all
// memory-backed), so concurrent calls cannot interleave between "is the name free" and "take the name". The
// one wait, for systemd to make a scope (register), holds the name in #pending until the machine is in.

import { EventEmitter } from 'node:events';
import {
  Errno,
  fail,
  now,
  ok,
  type KillWhom,
  type LookupSpec,
  type Machine,
  type ProcessProbe,
  type RegistrationSpec,
  type Result,
} from './machine.js';
import { bootId, processExists, processUid } from '../../domain/process.js';
import { closeLeader, leaderAlive, pidfdIdOf, pinLeader } from './leader.js';
import { LeaderWatcher } from './leader-watcher.js';
import { detectCgroupLayout, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { DEFAULT_RUNTIME_DIR, machineStateDir } from '../../domain/runtime-paths.js';
import { berthdScopeMaker, removeScope } from './scope.js';
import { ScopeReaper } from './scope-reaper.js';
import { subgroupOf, unitOfPid } from './pid-cgroup.js';
import { supervisorOf } from './supervisor.js';
import { StateStore } from './state.js';
import { restoreFromState } from './restore.js';
import { hostMachine } from './host.js';
import { MachineIndex, type Entry } from './machine-index.js';
import { placeMachine, type Placement } from './placement.js';
import { SystemdScopes, systemdIsPid1 } from './systemd-scope.js';
import { machineScopeUnit } from '../../domain/unit-names.js';
import { killMachine, terminateMachine } from './machine-control.js';
import { findMarkedScopes, LeftoverScopes } from './leftover-scopes.js';
import { EndedMachines } from './ended-machines.js';

/** The subset of a pino logger the registry uses. */
export interface RegistryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

const silentLogger: RegistryLogger = { info() {}, warn() {}, error() {}, debug() {} };

export interface RegistryOptions {
  /** Runtime prefix (default `/run`); state goes to RUNTIME/systemd/machines. */
  runtimeDir?: string;
  /** Overrides the state directory itself. */
  stateDir?: string;
  logger?: RegistryLogger;
  /** Cgroup hierarchies (default: detected under /sys/fs/cgroup). */
  cgroups?: CgroupLayout;
  /** Serve the synthetic `.host` machine (default true; false for a per-user instance). */
  host?: boolean;
  /** After SIGTERM from Terminate, SIGKILL what is left of the unit after this long (default 90 s). */
  stopTimeoutMs?: number;
  /** PID 1's scopes (default: over the system bus when systemd is PID 1; `null`: never ask systemd). */
  systemdScopes?: SystemdScopes | null;
}

/** Who is asking: the peer's credentials. */
export interface CallerContext {
  uid: number;
  /** The peer's PID: the default leader for Register and the meaning of `{pid: 0}` in lookups. */
  pid?: number;
}

export type RegistryEventType = 'added' | 'removed' | 'changed';

export interface RegistryEvent {
  /** Increases by one with every event; a watcher that sees a gap missed something. */
  seq: number;
  type: RegistryEventType;
  machine: Machine;
  /** Why (for `removed`: `unregistered`, `leader-exited`, `replaced`, ...). */
  reason: string;
}

/** Probe for validateRegistration backed by the real process table. */
export const liveProcessProbe: ProcessProbe = {
  exists: processExists,
  pidfdId: pidfdIdOf,
  bootId,
};

export class Registry extends EventEmitter<{ event: [RegistryEvent] }> {
  readonly store: StateStore;
  readonly cgroups: CgroupLayout;
  #log: RegistryLogger;
  #index = new MachineIndex();
  #watcher = new LeaderWatcher();
  /** Machines that ended on their own a moment ago, for their supervisor's late Unregister (ended-machines.ts). */
  #ended = new EndedMachines();
  #leftovers: LeftoverScopes;
  #seq = 0;
  #host: boolean;
  #hostMachine?: Machine;
  #stopTimeoutMs: number;
  #closed = false;
  #reaper: ScopeReaper;
  #systemd: SystemdScopes | undefined;
  /** names whose scope systemd is making (register), taken for every other registration meanwhile */
  #pending = new Set<string>();

  constructor(opts: RegistryOptions = {}) {
    super();
    this.store = new StateStore(opts.stateDir ?? machineStateDir(opts.runtimeDir ?? DEFAULT_RUNTIME_DIR));
    this.store.ensureDir();
    this.cgroups = opts.cgroups ?? detectCgroupLayout();
    this.#log = opts.logger ?? silentLogger;
    this.#host = opts.host ?? true;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 90_000;
    this.#systemd = opts.systemdScopes === null ? undefined : (opts.systemdScopes ?? (systemdIsPid1() ? new SystemdScopes() : undefined));
    this.#reaper = new ScopeReaper(this.cgroups);
    this.#leftovers = new LeftoverScopes(this.#watcher, this.#reaper, this.cgroups, this.#log);
    this.#watcher.on('exit', (name) => this.#onLeaderExit(name));
  }

  /** The sequence number of the last event (0 before any). */
  get seq(): number {
    return this.#seq;
  }

  /** Number of registered machines (`.host` not counted). */
  get size(): number {
    return this.#index.size;
  }

  /** Registered machines (without `.host`), in registration order. */
  *machines(): IterableIterator<Machine> {
    for (const e of this.#index.values()) yield e.machine;
  }

  /** What List streams: `.host` (when served) and then every registered machine. */
  *list(): IterableIterator<Machine> {
    const h = this.hostMachine();
    if (h) yield h;
    yield* this.machines();
  }

  /** By name; `.host` included when served. */
  get(name: string): Machine | undefined {
    if (name === '.host') return this.hostMachine();
    return this.#index.byName(name)?.machine;
  }

  /**
   * The machine a process belongs to: the one it leads, else the one owning the unit it sits in (like
   * machined's lookup by PID). PID 1 and host processes map to nothing.
   */
  findByPid(pid: number): Machine | undefined {
    const byLeader = this.#index.byLeader(pid);
    if (byLeader && leaderAlive(byLeader.leader)) return byLeader.machine;
    const u = unitOfPid(pid, this.cgroups);
    return u ? this.#index.byUnit(u.unit)?.machine : undefined;
  }

  /** Resolve a validated lookup: name and/or pid (`{pid:0}` = the caller); both must agree. */
  lookup(spec: LookupSpec, caller?: CallerContext): Result<Machine> {
    const none = fail<Machine>({ error: 'io.systemd.Machine.NoSuchMachine' });
    let byName: Machine | undefined;
    let byPid: Machine | undefined;
    if (spec.name !== undefined) {
      byName = this.get(spec.name);
      if (!byName) return none;
    }
    if (spec.pid !== undefined) {
      const pid = spec.pid.pid === 0 ? caller?.pid : spec.pid.pid;
      if (pid === undefined) return none;
      byPid = this.findByPid(pid);
      if (!byPid) return none;
    }
    const m = byName ?? byPid;
    if (!m || (byName && byPid && byName !== byPid)) return none;
    return ok(m);
  }

  /** Register an already validated spec. Checks, in machined's order: leader, owner, name, unit, leader reuse. */
  registerSpec(spec: RegistrationSpec, caller: CallerContext, preset?: Placement): Result<Machine> {
    if (this.#closed) return fail({ errno: Errno.EBADF });
    const leaderRef = spec.leader ?? (caller.pid !== undefined ? { pid: caller.pid } : undefined);
    if (!leaderRef) return fail({ errno: Errno.ESRCH });
    const pinned = pinLeader(leaderRef.pid, leaderRef.pidfdId !== undefined ? { pidfdId: leaderRef.pidfdId } : undefined);
    if (typeof pinned === 'number') return fail(spec.leader ? { invalidParameter: 'leader' } : { errno: -pinned });
    const release = <T>(r: Result<T>): Result<T> => {
      closeLeader(pinned);
      return r;
    };
    if (caller.uid !== 0 && processUid(pinned.pid) !== caller.uid) return release(fail({ permissionDenied: true }));
    if (this.#index.hasName(spec.name) || (!preset && this.#pending.has(spec.name))) return release(fail({ error: 'io.systemd.Machine.MachineExists' }));

    const placed = preset ? ok(preset) : placeMachine(spec, pinned.pid, {
      cgroups: this.cgroups,
      scopeMaker: berthdScopeMaker(this.store.dir),
      leaderTaken: (pid) => this.#index.hasLeader(pid),
      warn: (obj, msg) => this.#log.warn(obj, msg),
    });
    if (!placed.ok) return release(placed);
    const { unit, unitCgroup, ownsScope } = placed.value;
    if (this.#index.hasUnit(unit)) {
      if (ownsScope) removeScope(this.cgroups, unitCgroup);
      return release(fail({ errno: Errno.EEXIST }));
    }

    const subgroup = subgroupOf(pinned.pid, unitCgroup, this.cgroups);
    const machine: Machine = {
      name: spec.name,
      ...(spec.id ? { id: spec.id } : {}),
      ...(spec.service !== undefined ? { service: spec.service } : {}),
      class: spec.class,
      leader: { pid: pinned.pid, starttime: pinned.starttime, ...(pinned.pidfdId !== undefined ? { pidfdId: pinned.pidfdId } : {}) },
      ...(spec.rootDirectory !== undefined ? { rootDirectory: spec.rootDirectory } : {}),
      ifIndices: spec.ifIndices ?? [],
      ...(spec.vSockCid !== undefined ? { vSockCid: spec.vSockCid } : {}),
      ...(spec.sshAddress !== undefined ? { sshAddress: spec.sshAddress } : {}),
      ...(spec.sshPrivateKeyPath !== undefined ? { sshPrivateKeyPath: spec.sshPrivateKeyPath } : {}),
      ...(spec.controlAddress !== undefined ? { controlAddress: spec.controlAddress } : {}),
      ...supervisorOf(caller.pid),
      unit,
      unitCgroup,
      ...(subgroup !== undefined ? { subgroup } : {}),
      ownsScope,
      timestamp: now(),
      registeredBy: caller.uid,
      allocateUnit: spec.allocateUnit,
    };
    const entry: Entry = { machine, leader: pinned };
    try {
      this.store.write(machine);
      this.store.linkUnit(unit, machine.name);
    } catch (e) {
      this.store.remove(machine.name, unit);
      if (ownsScope) removeScope(this.cgroups, unitCgroup);
      this.#log.error({ machine: machine.name, err: (e as Error).message }, 'cannot write machine state');
      return release(fail({ errno: (e as NodeJS.ErrnoException).errno ? -(e as NodeJS.ErrnoException).errno! : Errno.EIO }));
    }
    this.#insert(entry);
    this.#log.info({ machine: machine.name, leader: machine.leader.pid, unit, uid: caller.uid }, 'machine registered');
    this.#emit('added', machine, 'registered');
    return ok(machine);
  }

  /**
   * Register as machined does: where systemd is PID 1 and a unit is to be allocated, systemd makes the
   * scope (the name is held meanwhile, and a leader that died before it exists gets ESRCH and no unit);
   * otherwise registerSpec at once.
   */
  async register(spec: RegistrationSpec, caller: CallerContext): Promise<Result<Machine>> {
    const sd = this.#systemd;
    if (!sd || !spec.allocateUnit || this.#closed) return this.registerSpec(spec, caller);
    // The checks that need no unit first, so that a refused call never makes one; the leader is pinned
    // (pidfd, and the pidfd id the caller named) so that systemd is only ever handed the process meant.
    const ref = spec.leader ?? (caller.pid !== undefined ? { pid: caller.pid } : undefined);
    const pinned = ref ? pinLeader(ref.pid, ref.pidfdId !== undefined ? { pidfdId: ref.pidfdId } : undefined) : -3;
    if (typeof pinned === 'number') return this.registerSpec(spec, caller); // answers with the leader's error
    let made;
    try {
      if (caller.uid !== 0 && processUid(pinned.pid) !== caller.uid) return fail({ permissionDenied: true });
      if (this.#index.hasName(spec.name) || this.#pending.has(spec.name)) return fail({ error: 'io.systemd.Machine.MachineExists' });
      if (this.#index.hasLeader(pinned.pid)) return fail({ errno: Errno.EEXIST });
      this.#pending.add(spec.name);
      try {
        made = await sd.start(spec.name, pinned.pid, spec.class, spec.scopeProperties);
      } finally {
        this.#pending.delete(spec.name);
      }
      if ('errno' in made) {
        this.#log.warn({ machine: spec.name, err: made.message }, 'systemd did not create the scope');
        return fail({ errno: made.errno });
      }
      const r = this.registerSpec(spec, caller, { ...made, ownsScope: false });
      // A leader gone meanwhile leaves no unit behind (one still running keeps it, as under machined).
      if (!r.ok && !leaderAlive(pinned)) void sd.stop(made.unit).catch(() => undefined);
      return r;
    } finally {
      closeLeader(pinned);
    }
  }

  /**
   * Register, replacing an existing machine of the same name only if its leader is dead.
   * `replaced` says whether an entry was replaced; a live entry still gives MachineExists.
   */
  registerOrReplaceIfDead(spec: RegistrationSpec, caller: CallerContext): Result<{ machine: Machine; replaced: boolean }> {
    const existing = this.#index.byName(spec.name);
    let replaced = false;
    if (existing) {
      if (leaderAlive(existing.leader)) return fail({ error: 'io.systemd.Machine.MachineExists' });
      this.#finalize(existing, 'replaced');
      replaced = true;
    }
    const r = this.registerSpec(spec, caller);
    return r.ok ? ok({ machine: r.value, replaced }) : r;
  }

  /** Drop a machine's record; no process is signalled. `.host` stays. */
  unregister(name: string): Result<void> {
    if (name === '.host' && this.#host) return ok(undefined);
    const e = this.#index.byName(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    this.#finalize(e, 'unregistered');
    return ok(undefined);
  }

  /** Unregister of a machine that ended on its own a moment ago, by the process that registered it: true once. */
  claimEnded(name: string, caller: CallerContext): boolean {
    return !this.#index.byName(name) && this.#ended.claim(name, caller);
  }

  /**
   * Stop a machine: SIGTERM (then SIGCONT) to every process of its unit, SIGKILL to what is left after the stop
   * timeout. The record goes when the leader exits.
   */
  terminate(name: string, asUid?: number): Result<void> {
    if (name === '.host') return fail({ errno: Errno.EOPNOTSUPP });
    const e = this.#index.byName(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    if (this.#bySystemd(e, asUid)) {
      // As machined: systemd stops the unit (SIGTERM, then SIGKILL after its own timeout).
      const unit = e.machine.unit!;
      this.#log.info({ machine: name, unit }, 'terminating machine (StopUnit)');
      this.#emit('changed', e.machine, 'terminating');
      void this.#systemd!.stop(unit).catch((err: Error) => {
        this.#log.warn({ machine: name, unit, err: err.message }, 'systemd did not stop the unit; signalling it directly');
        terminateMachine(e, { cgroups: this.cgroups, stopTimeoutMs: this.#stopTimeoutMs, isCurrent: (x) => this.#index.isCurrent(x) });
      });
      return ok(undefined);
    }
    const r = terminateMachine(e, {
      cgroups: this.cgroups,
      ...(asUid !== undefined ? { asUid } : {}),
      stopTimeoutMs: this.#stopTimeoutMs,
      isCurrent: (x) => this.#index.isCurrent(x),
    });
    if (!r.ok) return r;
    if (r.value) {
      this.#log.info({ machine: name, unit: e.machine.unit }, 'terminating machine');
      this.#emit('changed', e.machine, 'terminating');
    }
    return ok(undefined);
  }

  /**
   * Send a signal to the leader, or to every process of the machine's unit. With `asUid` (a non-root
   * caller), only processes that uid could signal itself are signalled (see killScope).
   */
  kill(name: string, whom: KillWhom, signal: number, asUid?: number): Result<void> {
    if (name === '.host') return fail({ errno: Errno.EOPNOTSUPP });
    const e = this.#index.byName(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    if (whom === 'all' && this.#bySystemd(e, asUid)) {
      void this.#systemd!.kill(e.machine.unit!, 'all', signal).catch(() => killMachine(e, whom, signal, this.cgroups));
      return ok(undefined);
    }
    return killMachine(e, whom, signal, this.cgroups, asUid);
  }

  /** A unit systemd made for a machine is stopped and signalled through systemd (for root callers). */
  #bySystemd(e: Entry, asUid: number | undefined): boolean {
    return !!this.#systemd && asUid === undefined && !e.machine.ownsScope && e.machine.unit === machineScopeUnit(e.machine.name);
  }

  /** The synthetic `.host` machine, or undefined when not served. */
  hostMachine(): Machine | undefined {
    if (!this.#host) return undefined;
    this.#hostMachine ??= hostMachine();
    return this.#hostMachine;
  }

  /**
   * Re-read the state directory after a restart: keep machines whose leader still runs and is the same
   * process (pidfd inode, or started no later than the machine was registered); drop the rest with their
   * files and links. Every decision is logged. Also accepts files written by systemd-machined.
   */
  restore(): { kept: string[]; dropped: string[] } {
    return restoreFromState({
      store: this.store,
      cgroups: this.cgroups,
      index: this.#index,
      insert: (e) => this.#insert(e),
      log: this.#log,
    });
  }

  /**
   * Remove the scopes berthd made (they carry its mark) that no registered machine uses: empty ones at
   * once, the others once their processes have ended. Returns their cgroup paths. Run after restore().
   */
  sweepLeftoverScopes(): string[] {
    if (this.#closed) return [];
    const found = findMarkedScopes(this.cgroups, berthdScopeMaker(this.store.dir), (unit) => this.#index.hasUnit(unit));
    for (const unitCgroup of found) this.#leftovers.adopt(unitCgroup);
    return found;
  }

  /** Stop watching leaders; state files stay so a later start can restore. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
    for (const e of this.#index.values()) {
      if (e.stopTimer) clearTimeout(e.stopTimer);
      closeLeader(e.leader);
    }
    this.#leftovers.close();
    this.#systemd?.close();
    this.#index.clear();
  }

  #insert(e: Entry): void {
    this.#ended.forget(e.machine.name);
    this.#index.insert(e);
    this.#watcher.watch(e.machine.name, e.leader);
  }

  #onLeaderExit(name: string): void {
    if (this.#leftovers.leaderExited(name)) return;
    const e = this.#index.byName(name);
    if (!e) return;
    this.#log.info({ machine: name, leader: e.leader.pid }, 'leader exited; machine removed');
    this.#finalize(e, 'leader-exited');
  }

  #finalize(e: Entry, reason: string): void {
    const m = e.machine;
    if (!this.#index.isCurrent(e)) return;
    this.#watcher.unwatch(m.name);
    this.#index.remove(e);
    if (e.stopTimer) clearTimeout(e.stopTimer);
    this.store.remove(m.name, m.unit);
    if (m.ownsScope && m.unitCgroup && reason === 'unregistered' && !this.#closed && leaderAlive(e.leader)) {
      // Unregister kills nothing, so the scope berth made still holds the machine: keep watching
      // its leader and remove the scope when it has ended (systemd would collect the empty scope).
      this.#leftovers.track(m.name, e.leader, m.unitCgroup);
    } else {
      closeLeader(e.leader);
      if (m.ownsScope && m.unitCgroup) this.#removeOwnedScope(m, reason);
    }
    if (reason === 'leader-exited') this.#ended.remember(m);
    // As machined: a scope systemd made for the machine is stopped once its leader is gone.
    if (reason === 'leader-exited' && m.allocateUnit && this.#bySystemd(e, undefined) && !this.#closed) {
      void this.#systemd!.stop(m.unit!).catch(() => undefined);
    }
    if (reason !== 'unregistered') this.#log.debug({ machine: m.name, reason }, 'machine finalized');
    else this.#log.info({ machine: m.name }, 'machine unregistered');
    this.#emit('removed', m, reason);
  }

  /** Once the leader is gone, the rest of a scope berth created goes too (as when systemd stops the scope). */
  #removeOwnedScope(m: Machine, reason: string): void {
    // Unregister kills nothing: the directory only goes if it is already empty.
    // What a non-root user registered is cleaned up with that user's reach only.
    this.#reaper.add(m.unitCgroup!, reason !== 'unregistered', m.registeredBy !== 0 ? m.registeredBy : undefined);
  }

  #emit(type: RegistryEventType, machine: Machine, reason: string): void {
    this.emit('event', { seq: ++this.#seq, type, machine, reason });
  }
}
