// The Registry: every registered machine, indexed by name, leader PID and unit; kept in step with the state
// directory; machines disappear when their leader exits. Knows nothing of Varlink: operations return
// `Result`s whose errors the API layer maps onto wire errors.
//
// All mutating operations are synchronous (the file system work is on /proc, /sys/fs/cgroup and /run, all
// memory-backed), so concurrent calls cannot interleave between "is the name free" and "take the name". The
// one wait, for systemd to make a scope (register, systemd-registration.ts), holds the name until the
// machine is in.

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
import { closeLeader, identityOf, leaderAlive, pidfdIdOf, pinLeader } from './leader.js';
import { LeaderWatcher } from './leader-watcher.js';
import { detectCgroupLayout, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { DEFAULT_RUNTIME_DIR, machineStateDir } from '../../domain/runtime-paths.js';
import { berthdScopeMaker, removeScope } from './scope.js';
import { ScopeReaper } from './scope-reaper.js';
import { subgroupOf, unitOfPid } from './pid-cgroup.js';
import { supervisorOf } from './supervisor.js';
import { AfterAnswer } from './after-answer.js';
import { StateStore } from './state.js';
import { restoreFromState } from './restore.js';
import { hostMachine } from './host.js';
import { MachineIndex, type Entry } from './machine-index.js';
import { placeMachine, type Placement } from './placement.js';
import { SystemdScopes, systemdIsPid1 } from './systemd-scope.js';
import { SystemdRegistration } from './systemd-registration.js';
import { killMachine, terminateMachine } from './machine-control.js';
import { findMarkedScopes, LeftoverScopes } from './leftover-scopes.js';
import { EndedMachines } from './ended-machines.js';
import type { CallerContext, RegistryEvent, RegistryEventType, RegistryLogger, RegistryOptions } from './registry-types.js';

export type { CallerContext, RegistryEvent, RegistryEventType, RegistryLogger, RegistryOptions } from './registry-types.js';

const silentLogger: RegistryLogger = { info() {}, warn() {}, error() {}, debug() {} };

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
  /** the path through systemd where it is PID 1 (scopes, StopUnit, KillUnit) */
  #systemd: SystemdRegistration | undefined;
  /** Leader watching, pidfd release and unit links, done once the caller is answered (after-answer.ts). */
  #after = new AfterAnswer((err) => this.#log.warn({ err: (err as Error).message }, 'finishing a registry change failed'));

  constructor(opts: RegistryOptions = {}) {
    super();
    this.store = new StateStore(opts.stateDir ?? machineStateDir(opts.runtimeDir ?? DEFAULT_RUNTIME_DIR));
    this.store.ensureDir();
    this.cgroups = opts.cgroups ?? detectCgroupLayout();
    this.#log = opts.logger ?? silentLogger;
    this.#host = opts.host ?? true;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 90_000;
    const scopes = opts.systemdScopes === null ? undefined : (opts.systemdScopes ?? (systemdIsPid1() ? new SystemdScopes() : undefined));
    if (scopes) {
      this.#systemd = new SystemdRegistration(scopes, {
        index: this.#index,
        log: this.#log,
        registerSpec: (spec, caller, preset) => this.registerSpec(spec, caller, preset),
      });
    }
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
    this.#after.settle();
    const leaderRef = spec.leader ?? (caller.pid !== undefined ? { pid: caller.pid } : undefined);
    if (!leaderRef) return fail({ errno: Errno.ESRCH });
    const pinned = pinLeader(leaderRef.pid, leaderRef.pidfdId !== undefined ? { pidfdId: leaderRef.pidfdId } : undefined);
    if (typeof pinned === 'number') return fail(spec.leader ? { invalidParameter: 'leader' } : { errno: -pinned });
    const release = <T>(r: Result<T>): Result<T> => {
      closeLeader(pinned);
      return r;
    };
    if (caller.uid !== 0 && processUid(pinned.pid) !== caller.uid) return release(fail({ permissionDenied: true }));
    if (this.#index.hasName(spec.name) || (!preset && !!this.#systemd?.holds(spec.name))) return release(fail({ error: 'io.systemd.Machine.MachineExists' }));

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

    // placeMachine read the leader's cgroup already; a scope systemd made is asked about here.
    const subgroup = preset ? subgroupOf(pinned.pid, unitCgroup, this.cgroups) : placed.value.subgroup;
    const machine: Machine = {
      name: spec.name,
      ...(spec.id ? { id: spec.id } : {}),
      ...(spec.service !== undefined ? { service: spec.service } : {}),
      class: spec.class,
      leader: identityOf(pinned),
      ...(spec.rootDirectory !== undefined ? { rootDirectory: spec.rootDirectory } : {}),
      ifIndices: spec.ifIndices ?? [],
      ...(spec.vSockCid !== undefined ? { vSockCid: spec.vSockCid } : {}),
      ...(spec.sshAddress !== undefined ? { sshAddress: spec.sshAddress } : {}),
      ...(spec.sshPrivateKeyPath !== undefined ? { sshPrivateKeyPath: spec.sshPrivateKeyPath } : {}),
      ...(spec.controlAddress !== undefined ? { controlAddress: spec.controlAddress } : {}),
      ...supervisorOf(caller),
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
    } catch (e) {
      this.store.remove(machine.name, unit);
      if (ownsScope) removeScope(this.cgroups, unitCgroup);
      this.#log.error({ machine: machine.name, err: (e as Error).message }, 'cannot write machine state');
      return release(fail({ errno: (e as NodeJS.ErrnoException).errno ? -(e as NodeJS.ErrnoException).errno! : Errno.EIO }));
    }
    this.#insert(entry);
    this.#after.defer(() => this.store.linkUnit(unit, machine.name));
    this.#log.info({ machine: machine.name, leader: machine.leader.pid, unit, uid: caller.uid }, 'machine registered');
    this.#emit('added', machine, 'registered');
    return ok(machine);
  }

  /**
   * Register as machined does: where systemd is PID 1 and a unit is to be allocated, systemd makes the
   * scope (the name is held meanwhile, and a leader that died before it exists gets ESRCH and no unit);
   * otherwise registerSpec at once.
   */
  register(spec: RegistrationSpec, caller: CallerContext): Result<Machine> | Promise<Result<Machine>> {
    if (!this.#systemd || !spec.allocateUnit || this.#closed) return this.registerSpec(spec, caller);
    return this.#systemd.register(spec, caller);
  }

  /**
   * Register, replacing an existing machine of the same name only if its leader is dead; through systemd as
   * register() is. `replaced` says whether an entry was replaced; a live entry still gives MachineExists.
   */
  async registerOrReplaceIfDead(spec: RegistrationSpec, caller: CallerContext): Promise<Result<{ machine: Machine; replaced: boolean }>> {
    const existing = this.#index.byName(spec.name);
    let replaced = false;
    if (existing) {
      if (leaderAlive(existing.leader)) return fail({ error: 'io.systemd.Machine.MachineExists' });
      const bySystemd = this.#bySystemd(existing, undefined) && !this.#closed;
      this.#finalize(existing, 'replaced');
      replaced = true;
      if (bySystemd) await this.#systemd!.stopReplaced(existing.machine);
    }
    const r = await this.register(spec, caller);
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
      this.#emit('changed', e.machine, 'terminating');
      this.#systemd!.terminate(e, () => {
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
      this.#log.debug({ machine: name, unit: e.machine.unit }, 'terminating machine');
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
      this.#systemd!.kill(e, signal, () => void killMachine(e, whom, signal, this.cgroups));
      return ok(undefined);
    }
    return killMachine(e, whom, signal, this.cgroups, asUid);
  }

  /** A unit systemd made for a machine is stopped and signalled through systemd (for root callers). */
  #bySystemd(e: Entry, asUid: number | undefined): boolean {
    return !!this.#systemd?.handles(e, asUid);
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

  /**
   * Removals of scopes berth made that are still under way, finished or given up after `withinMs`
   * (for berthd's stop, after close()).
   */
  finishScopeRemovals(withinMs: number): Promise<void> {
    return this.#reaper.finish(withinMs);
  }

  /** Stop watching leaders; state files stay so a later start can restore. */
  close(): void {
    if (this.#closed) return;
    this.#after.settle();
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
    this.#after.defer(() => {
      if (this.#index.isCurrent(e)) this.#watcher.watch(e.machine.name, e.leader);
    });
  }

  #onLeaderExit(name: string): void {
    this.#after.settle();
    if (this.#leftovers.leaderExited(name)) return;
    const e = this.#index.byName(name);
    if (!e) return;
    this.#log.info({ machine: name, leader: e.leader.pid }, 'leader exited; machine removed');
    this.#finalize(e, 'leader-exited');
  }

  #finalize(e: Entry, reason: string): void {
    this.#after.settle();
    const m = e.machine;
    if (!this.#index.isCurrent(e)) return;
    this.#index.remove(e);
    if (e.stopTimer) clearTimeout(e.stopTimer);
    this.store.forgetFile(m.name);
    // Unregister kills nothing, so the scope berth made still holds the machine: keep watching
    // its leader and remove the scope when it has ended (systemd would collect the empty scope).
    const keepScope = m.ownsScope && !!m.unitCgroup && reason === 'unregistered' && !this.#closed && leaderAlive(e.leader);
    const finish = () => {
      this.#watcher.unwatch(m.name);
      if (m.unit) this.store.unlinkUnit(m.unit);
      if (keepScope) this.#leftovers.track(m.name, e.leader, m.unitCgroup!);
      else {
        closeLeader(e.leader);
        if (m.ownsScope && m.unitCgroup) this.#removeOwnedScope(m, reason);
      }
    };
    // Closing down, nothing is left for later.
    if (this.#closed) finish();
    else this.#after.defer(finish);
    if (reason === 'leader-exited') this.#ended.remember(m);
    if (reason === 'leader-exited' && m.allocateUnit && this.#bySystemd(e, undefined) && !this.#closed && !e.unitStopping) this.#systemd!.leaderExited(m);
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
