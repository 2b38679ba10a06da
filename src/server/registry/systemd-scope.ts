// Machine scopes on a host where systemd is PID 1: the cgroup tree is systemd's, so berthd asks PID 1 over
// the system bus (berth's own D-Bus module, one connection kept open) for a transient `machine-NAME.scope`
// in machine.slice holding the leader, waits for the job to finish as machined does, and stops or signals
// the unit through systemd (StopUnit, KillUnit) instead of walking its cgroup.

import fs from 'node:fs';
import { addMatch, connectBus, DBusError, variant, type Connection, type Message, type Variant } from '../../dbus/index.js';
import { machineScopeCgroup } from '../../domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../domain/unit-names.js';

/** Whether systemd runs as PID 1 here (then it, not berth, owns the cgroup tree). */
export function systemdIsPid1(): boolean {
  return fs.existsSync('/run/systemd/system');
}

const SYSTEMD = { destination: 'org.freedesktop.systemd1', path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager' };
const JOB_REMOVED = "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved',path='/org/freedesktop/systemd1'";
const JOB_TIMEOUT_MS = 30_000;

/** The properties machined gives a machine's scope: its slice, a description, delegation, the leader. */
export function transientScopeProperties(name: string, pid: number, cls: string): [string, Variant][] {
  return [
    ['Slice', variant('s', MACHINE_SLICE)],
    ['Description', variant('s', `${cls === 'vm' ? 'Virtual Machine' : 'Container'} ${name}`)],
    ['Delegate', variant('b', true)],
    ['CollectMode', variant('s', 'inactive-or-failed')],
    ['TasksMax', variant('t', 16384n)],
    ['PIDs', variant('au', [pid])],
  ];
}

/** systemd's error for a failed StartTransientUnit, as the errno machined would answer with. */
export function errnoOfSystemdError(e: unknown): number {
  const name = e instanceof DBusError ? e.type : '';
  if (name === 'org.freedesktop.systemd1.UnitExists') return 17; // EEXIST
  if (/UnixProcessIdUnknown|NoSuchProcess/.test(name) || (e instanceof DBusError && /No such process|ESRCH|has no PIDs/i.test(e.message))) return 3; // ESRCH
  if (name === 'org.freedesktop.DBus.Error.AccessDenied') return 1; // EPERM
  return 5; // EIO
}

export type ScopeResult = { unit: string; unitCgroup: string } | { errno: number; message: string };

/** PID 1's scopes for berthd's machines, over one system bus connection opened on first use. */
export class SystemdScopes {
  #conn: Promise<Connection> | undefined;
  /** jobs waited for, by object path */
  #waiting = new Map<string, (result: string) => void>();
  /** JobRemoved signals that came before the reply naming their job */
  #early = new Map<string, string>();

  constructor(private readonly address?: string) {}

  #bus(): Promise<Connection> {
    this.#conn ??= (async () => {
      // No descriptors go over this connection: it reads through the event loop (dbus/stream-transport.ts).
      const c = await connectBus({ ...(this.address ? { address: this.address } : {}), negotiateFds: false });
      c.on('signal', (m: Message) => this.#onSignal(m));
      c.on('close', () => {
        this.#conn = undefined;
        for (const done of this.#waiting.values()) done('disconnected');
        this.#waiting.clear();
      });
      await addMatch(c, JOB_REMOVED);
      return c;
    })().catch((e) => {
      this.#conn = undefined;
      throw e;
    });
    return this.#conn;
  }

  #onSignal(m: Message): void {
    if (m.member !== 'JobRemoved' || m.interface !== SYSTEMD.interface) return;
    const [, job, , result] = m.body as [number, string, string, string];
    const done = this.#waiting.get(job);
    if (done) {
      this.#waiting.delete(job);
      done(result);
    } else {
      this.#early.set(job, result);
      if (this.#early.size > 256) this.#early.delete(this.#early.keys().next().value!);
    }
  }

  /**
   * Ask PID 1 for machine-NAME.scope with `pid` in it and wait until its start job is done. `extra` are the
   * caller's own unit properties (CreateMachine's scope_properties), sent after berth's so that they win.
   */
  async start(name: string, pid: number, cls: string, extra: [string, Variant][] = []): Promise<ScopeResult> {
    const unit = machineScopeUnit(name);
    let job: string;
    let c: Connection;
    try {
      c = await this.#bus();
      const r = await c.call({ ...SYSTEMD, member: 'StartTransientUnit', signature: 'ssa(sv)a(sa(sv))', body: [unit, 'fail', [...transientScopeProperties(name, pid, cls), ...extra], []] });
      job = r.body[0] as string;
    } catch (e) {
      return { errno: errnoOfSystemdError(e), message: (e as Error).message };
    }
    const result = await this.#jobResult(job);
    if (result !== 'done') return { errno: 5, message: `the start job of ${unit} ended '${result}'` };
    return { unit, unitCgroup: machineScopeCgroup(name) };
  }

  #jobResult(job: string): Promise<string> {
    const early = this.#early.get(job);
    if (early !== undefined) {
      this.#early.delete(job);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(job);
        resolve('timeout');
      }, JOB_TIMEOUT_MS);
      this.#waiting.set(job, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  /** Stop the unit (every process in it), as machined terminates a machine; rejects when systemd refuses. */
  async stop(unit: string): Promise<void> {
    const c = await this.#bus();
    await c.call({ ...SYSTEMD, member: 'StopUnit', signature: 'ss', body: [unit, 'fail'] });
  }

  /** Stop the unit and wait for its stop job to end; resolves with the job's result ('done', ...). */
  async stopAndWait(unit: string): Promise<string> {
    const c = await this.#bus();
    const r = await c.call({ ...SYSTEMD, member: 'StopUnit', signature: 'ss', body: [unit, 'fail'] });
    return this.#jobResult(r.body[0] as string);
  }

  /** Signal the unit's processes through systemd ('all' or 'main'), as machined kills a machine. */
  async kill(unit: string, whom: 'all' | 'main', signal: number): Promise<void> {
    const c = await this.#bus();
    await c.call({ ...SYSTEMD, member: 'KillUnit', signature: 'ssi', body: [unit, whom, signal] });
  }

  close(): void {
    void this.#conn?.then((c) => c.close(), () => undefined);
    this.#conn = undefined;
  }
}
