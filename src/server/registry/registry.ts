// The Registry: every registered machine, indexed by name, leader PID and unit; kept in step with the state
// directory; machines disappear when their leader exits. Knows nothing of Varlink: operations return
// `Result`s whose errors the API layer maps onto wire errors.
//
// All mutating operations are synchronous (the file system work is on /proc, /sys/fs/cgroup and /run, all
// memory-backed), so concurrent calls cannot interleave between "is the name free" and "take the name".

import { EventEmitter } from 'node:events';
import {
  Errno,
  fail,
  now,
  ok,
  validateRegistration,
  type KillWhom,
  type LookupSpec,
  type Machine,
  type ProcessProbe,
  type RegistrationSpec,
  type Result,
} from './machine.js';
import {
  bootId,
  closeLeader,
  leaderAlive,
  LeaderWatcher,
  pidfdIdOf,
  pinLeader,
  processExists,
  processUid,
  uidMaySignal,
  signalLeader,
  type Leader,
} from './leaders.js';
import { detectCgroupLayout, machineScopeCgroup, type CgroupLayout } from '../../domain/cgroup-paths.js';
import { isValidMachineName } from '../../domain/machine-name.js';
import { DEFAULT_RUNTIME_DIR, machineStateDir } from '../../domain/runtime-paths.js';
import { machineScopeUnit } from '../../domain/unit-names.js';
import { createScope, killScope, removeScope } from './scope.js';
import { ScopeReaper } from './scope-reaper.js';
import { createScopeWithSystemd, systemdIsPid1 } from './systemd-scope.js';
import { unitOfPid } from './pid-cgroup.js';
import { StateStore } from './state.js';
import { reviveSavedMachine } from './restore.js';
import { hostMachine } from './host.js';

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

interface Entry {
  machine: Machine;
  leader: Leader;
  stopTimer?: NodeJS.Timeout;
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
  #byName = new Map<string, Entry>();
  #byLeader = new Map<number, Entry>();
  #byUnit = new Map<string, Entry>();
  #watcher = new LeaderWatcher();
  /** Scopes berth created for machines that were unregistered while their leader still ran. */
  #orphanScopes = new Map<string, { leader: Leader; unitCgroup: string }>();
  #seq = 0;
  #host: boolean;
  #hostMachine?: Machine;
  #stopTimeoutMs: number;
  #closed = false;
  #reaper: ScopeReaper;

  constructor(opts: RegistryOptions = {}) {
    super();
    this.store = new StateStore(opts.stateDir ?? machineStateDir(opts.runtimeDir ?? DEFAULT_RUNTIME_DIR));
    this.store.ensureDir();
    this.cgroups = opts.cgroups ?? detectCgroupLayout();
    this.#log = opts.logger ?? silentLogger;
    this.#host = opts.host ?? true;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 90_000;
    this.#reaper = new ScopeReaper(this.cgroups);
    this.#watcher.on('exit', (name) => this.#onLeaderExit(name));
  }

  /** The sequence number of the last event (0 before any). */
  get seq(): number {
    return this.#seq;
  }

  /** Number of registered machines (`.host` not counted). */
  get size(): number {
    return this.#byName.size;
  }

  /** Registered machines (without `.host`), in registration order. */
  *machines(): IterableIterator<Machine> {
    for (const e of this.#byName.values()) yield e.machine;
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
    return this.#byName.get(name)?.machine;
  }

  /**
   * The machine a process belongs to: the one it leads, else the one owning the unit it sits in (like
   * machined's lookup by PID). PID 1 and host processes map to nothing.
   */
  findByPid(pid: number): Machine | undefined {
    const byLeader = this.#byLeader.get(pid);
    if (byLeader && leaderAlive(byLeader.leader)) return byLeader.machine;
    const u = unitOfPid(pid, this.cgroups);
    return u ? this.#byUnit.get(u.unit)?.machine : undefined;
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

  /** Validate and register (the Register method). */
  register(input: Record<string, unknown>, caller: CallerContext): Result<Machine> {
    const v = validateRegistration(input, liveProcessProbe);
    if (!v.ok) return v;
    return this.registerSpec(v.value, caller);
  }

  /** Register an already validated spec. Checks, in machined's order: leader, owner, name, unit, leader reuse. */
  registerSpec(spec: RegistrationSpec, caller: CallerContext): Result<Machine> {
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
    if (this.#byName.has(spec.name)) return release(fail({ error: 'io.systemd.Machine.MachineExists' }));

    let unit: string;
    let unitCgroup: string;
    let ownsScope = false;
    if (spec.allocateUnit) {
      if (this.#byLeader.has(pinned.pid)) return release(fail({ errno: Errno.EEXIST }));
      // With systemd as PID 1, systemd makes the scope (and owns it), as for machined.
      const bySystemd = systemdIsPid1() ? createScopeWithSystemd(this.cgroups, spec.name, pinned.pid, spec.class) : undefined;
      if (bySystemd) {
        ({ unit, unitCgroup } = bySystemd);
      } else {
        if (systemdIsPid1()) this.#log.warn({ machine: spec.name }, 'systemd did not create the scope; creating the cgroup directly');
        const s = createScope(this.cgroups, spec.name, pinned.pid);
        if (typeof s === 'number') return release(fail({ errno: -s }));
        ({ unit, unitCgroup } = s);
        ownsScope = true;
      }
    } else {
      const u = unitOfPid(pinned.pid, this.cgroups);
      if (!u) return release(fail({ errno: Errno.ENXIO }));
      ({ unit, unitCgroup } = u);
      if (this.#byLeader.has(pinned.pid)) return release(fail({ errno: Errno.EEXIST }));
    }
    if (this.#byUnit.has(unit)) {
      if (ownsScope) removeScope(this.cgroups, unitCgroup);
      return release(fail({ errno: Errno.EEXIST }));
    }

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
      unit,
      unitCgroup,
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
   * Register, replacing an existing machine of the same name only if its leader is dead.
   * `replaced` says whether an entry was replaced; a live entry still gives MachineExists.
   */
  registerOrReplaceIfDead(input: Record<string, unknown>, caller: CallerContext): Result<{ machine: Machine; replaced: boolean }> {
    const v = validateRegistration(input, liveProcessProbe);
    if (!v.ok) return v;
    const existing = this.#byName.get(v.value.name);
    let replaced = false;
    if (existing) {
      if (leaderAlive(existing.leader)) return fail({ error: 'io.systemd.Machine.MachineExists' });
      this.#finalize(existing, 'replaced');
      replaced = true;
    }
    const r = this.registerSpec(v.value, caller);
    return r.ok ? ok({ machine: r.value, replaced }) : r;
  }

  /** Drop a machine's record; no process is signalled. `.host` stays. */
  unregister(name: string): Result<void> {
    if (name === '.host' && this.#host) return ok(undefined);
    const e = this.#byName.get(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    this.#finalize(e, 'unregistered');
    return ok(undefined);
  }

  /**
   * Stop a machine: SIGTERM (then SIGCONT) to every process of its unit, SIGKILL to what is left after the stop
   * timeout. The record goes when the leader exits.
   */
  terminate(name: string, asUid?: number): Result<void> {
    if (name === '.host') return fail({ errno: Errno.EOPNOTSUPP });
    const e = this.#byName.get(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    const unitCgroup = e.machine.unitCgroup;
    if (!unitCgroup) return fail({ errno: Errno.EOPNOTSUPP });
    killScope(this.cgroups, unitCgroup, 'SIGTERM', asUid);
    killScope(this.cgroups, unitCgroup, 'SIGCONT', asUid);
    if (!e.stopTimer) {
      e.stopTimer = setTimeout(() => {
        if (this.#byName.get(name) === e) killScope(this.cgroups, unitCgroup, 'SIGKILL', asUid);
      }, this.#stopTimeoutMs);
      e.stopTimer.unref();
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
    const e = this.#byName.get(name);
    if (!e) return fail({ error: 'io.systemd.Machine.NoSuchMachine' });
    if (whom === 'leader') {
      if (asUid !== undefined && !uidMaySignal(asUid, e.leader.pid)) return fail({ errno: Errno.EPERM });
      const r = signalLeader(e.leader, signal);
      return r < 0 ? fail({ errno: -r }) : ok(undefined);
    }
    if (!e.machine.unitCgroup) return fail({ errno: Errno.ESRCH });
    killScope(this.cgroups, e.machine.unitCgroup, signal, asUid);
    return ok(undefined);
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
    const kept: string[] = [];
    const dropped: string[] = [];
    this.store.removeTemp();
    const drop = (name: string, unit: string | undefined, why: string, extra: object = {}) => {
      this.store.remove(name, unit);
      // A scope berth allocated for it goes too, if nothing runs in it any more.
      if (unit === machineScopeUnit(name)) removeScope(this.cgroups, machineScopeCgroup(name));
      dropped.push(name);
      this.#log.info({ machine: name, ...extra, reason: why }, 'dropped machine from saved state');
    };
    for (const f of this.store.scan()) {
      if (!isValidMachineName(f.name)) {
        this.#log.warn({ file: f.name }, 'ignoring state file whose name is not a machine name');
        continue;
      }
      if (this.#byName.has(f.name)) continue;
      if ('error' in f) {
        this.#log.warn({ machine: f.name, err: f.error }, 'cannot read state file; skipped');
        continue;
      }
      const d = reviveSavedMachine(f.name, f.text, this.cgroups);
      for (const w of d.warnings) this.#log.warn({ machine: f.name }, `state file: ${w}`);
      if (!d.keep) {
        drop(f.name, d.unit, d.reason, d.leader !== undefined ? { leader: d.leader } : {});
        continue;
      }
      const { machine, leader: pinned } = d;
      const unit = machine.unit;
      if (this.#byLeader.has(pinned.pid) || (unit && this.#byUnit.has(unit))) {
        closeLeader(pinned);
        drop(f.name, undefined, 'leader or unit already used by another restored machine');
        continue;
      }
      try {
        this.store.write(machine);
        if (unit) this.store.linkUnit(unit, machine.name);
      } catch (e) {
        this.#log.warn({ machine: machine.name, err: (e as Error).message }, 'cannot rewrite state file');
      }
      this.#insert({ machine, leader: pinned });
      kept.push(machine.name);
      this.#log.info({ machine: machine.name, leader: pinned.pid, unit }, 'restored machine from saved state');
    }
    // Links pointing at machines we do not have are stale.
    for (const [unit, name] of this.store.links()) {
      const e = this.#byName.get(name);
      if (!e || e.machine.unit !== unit) {
        this.store.unlinkUnit(unit);
        this.#log.info({ unit, machine: name }, 'removed stale unit link');
      }
    }
    return { kept, dropped };
  }

  /** Stop watching leaders; state files stay so a later start can restore. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
    for (const e of this.#byName.values()) {
      if (e.stopTimer) clearTimeout(e.stopTimer);
      closeLeader(e.leader);
    }
    for (const o of this.#orphanScopes.values()) closeLeader(o.leader);
    this.#orphanScopes.clear();
    this.#byName.clear();
    this.#byLeader.clear();
    this.#byUnit.clear();
  }

  #insert(e: Entry): void {
    this.#byName.set(e.machine.name, e);
    this.#byLeader.set(e.leader.pid, e);
    if (e.machine.unit) this.#byUnit.set(e.machine.unit, e);
    this.#watcher.watch(e.machine.name, e.leader);
  }

  #onLeaderExit(name: string): void {
    const orphan = this.#orphanScopes.get(name);
    if (orphan) {
      // The leader of an unregistered machine ended: its scope goes once it is empty.
      this.#orphanScopes.delete(name);
      closeLeader(orphan.leader);
      this.#reaper.add(orphan.unitCgroup, false);
      return;
    }
    const e = this.#byName.get(name);
    if (!e) return;
    this.#log.info({ machine: name, leader: e.leader.pid }, 'leader exited; machine removed');
    this.#finalize(e, 'leader-exited');
  }

  #finalize(e: Entry, reason: string): void {
    const m = e.machine;
    if (this.#byName.get(m.name) !== e) return;
    this.#watcher.unwatch(m.name);
    this.#byName.delete(m.name);
    if (this.#byLeader.get(e.leader.pid) === e) this.#byLeader.delete(e.leader.pid);
    if (m.unit && this.#byUnit.get(m.unit) === e) this.#byUnit.delete(m.unit);
    if (e.stopTimer) clearTimeout(e.stopTimer);
    this.store.remove(m.name, m.unit);
    if (m.ownsScope && m.unitCgroup && reason === 'unregistered' && !this.#closed && leaderAlive(e.leader)) {
      // Unregister kills nothing, so the scope berth made still holds the machine: keep watching
      // its leader and remove the scope when it has ended (systemd would collect the empty scope).
      const key = `\0scope:${m.name}:${e.leader.pid}`;
      this.#orphanScopes.set(key, { leader: e.leader, unitCgroup: m.unitCgroup });
      this.#watcher.watch(key, e.leader);
    } else {
      closeLeader(e.leader);
      if (m.ownsScope && m.unitCgroup) this.#removeOwnedScope(m, reason);
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
