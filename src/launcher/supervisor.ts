/**
 * One Supervisor per machine: it owns the machine's processes and resources and walks the state machine
 *   allocating → starting → running (READY=1) → stopping → exited
 * A clean stop sends SIGRTMIN+3 to PID 1 and waits; after the timeout every process of the scope is
 * killed. Exit codes follow nspawn: poweroff/halt 0, reboot 133, otherwise PID 1's exit status (1 when
 * it died of a signal).
 */
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { Teardown } from './teardown.js';
import { launchContainer, type Launched, type Log } from './container/launch.js';
import type { ContainerOptions } from './container/options.js';
import type { NotifyMessage } from './notify.js';
import { registerMachine, unregisterMachine } from './registry-client.js';
import { machineSocketPath } from '../domain/runtime-paths.js';
import type { Scope } from './cgroup.js';
import { serveContainerInstance } from './instance-container.js';

export type MachineState = 'allocating' | 'starting' | 'running' | 'stopping' | 'exited';

export const EXIT_REBOOT = 133;

export interface ExitInfo {
  /** What the launcher exits with. */
  code: number;
  reason: 'poweroff' | 'reboot' | 'exit' | 'signal' | 'killed';
  pid1Status?: number;
  pid1Signal?: string;
}

/** Map how PID 1 ended (as its unshare parent reports it) to nspawn's exit code. */
export function exitInfoFrom(exitCode: number | undefined, signal: string | undefined, killedByUs: boolean): ExitInfo {
  if (killedByUs) return { code: 1, reason: 'killed', pid1Status: exitCode, pid1Signal: signal };
  if (signal === 'SIGINT') return { code: 0, reason: 'poweroff', pid1Signal: signal };
  if (signal === 'SIGHUP') return { code: EXIT_REBOOT, reason: 'reboot', pid1Signal: signal };
  if (signal) return { code: 1, reason: 'signal', pid1Signal: signal };
  return { code: exitCode ?? 1, reason: 'exit', pid1Status: exitCode };
}

/**
 * Whether a notification speaks for the container. nspawn accepts only PID 1; berth also accepts any
 * process of the container (its UIDs are the container's leased range, which no host user has), because
 * simple payloads send READY=1 from a helper child (e.g. the busybox test tree's sd-notify). Without a
 * user namespace only PID 1 is trusted, since the container's UIDs are the host's.
 */
export function fromContainer(m: NotifyMessage, l: Pick<Launched, 'leader' | 'lease'>): boolean {
  if (m.pid === l.leader) return true;
  if (!l.lease || m.pid === 0) return false;
  return m.uid >= l.lease.base && m.uid < l.lease.base + l.lease.range;
}

export interface SupervisorOptions {
  log?: Log;
  /** How long start() waits for READY=1 (when notifyReady) before giving up. */
  readyTimeoutMs?: number;
  /** How long PowerOff of a payload that is not an init waits before killing (as berth-spawn's clean stop). */
  stopTimeoutMs?: number;
}

export declare interface Supervisor {
  on(event: 'state', l: (s: MachineState) => void): this;
  on(event: 'notify', l: (m: NotifyMessage) => void): this;
}

export class Supervisor extends EventEmitter {
  state: MachineState = 'allocating';
  leader = 0;
  uidBase?: number;
  readonly timings: { spawnMs?: number; readyMs?: number; stopMs?: number } = {};
  registered = false;
  private launched?: Launched;
  private readonly teardown = new Teardown();
  private exitInfo?: Promise<ExitInfo>;
  private killedByUs = false;
  private readonly t0 = performance.now();
  private readonly log: Log;
  private stateFile?: string;
  private readonly stopTimeoutMs: number;
  /** The socket of its io.systemd.MachineInstance service (instance-server.ts), registered as controlAddress. */
  controlAddress?: string;
  /** How the machine ended, known before its teardown runs. */
  exit?: ExitInfo;

  private constructor(readonly options: ContainerOptions, o: SupervisorOptions) {
    super();
    this.log = o.log ?? (() => {});
    this.stopTimeoutMs = o.stopTimeoutMs ?? 10_000;
  }

  get name(): string { return this.options.name; }
  get scopePaths(): string[] { return this.launched?.scope.paths ?? []; }
  get runDir(): string | undefined { return this.launched?.runDir; }
  get scope(): Scope | undefined { return this.launched?.scope; }

  private setState(s: MachineState): void {
    this.state = s;
    this.emit('state', s);
    if (this.stateFile && s !== 'exited') this.writeStateFile();
  }

  /** Start the container; resolves once it is running, rejects (having cleaned up everything) if it cannot. */
  static async start(options: ContainerOptions, o: SupervisorOptions = {}): Promise<Supervisor> {
    const sup = new Supervisor(options, o);
    try {
      await sup.run(o.readyTimeoutMs ?? 0);
    } catch (e) {
      await sup.teardown.run(true);
      sup.state = 'exited';
      const extra = sup.teardown.errors.length ? ` (cleanup: ${sup.teardown.errors.join('; ')})` : '';
      if (extra && e instanceof Error) e.message += extra;
      throw e;
    }
    return sup;
  }

  private async run(readyTimeoutMs: number): Promise<void> {
    const o = this.options;
    const l = await launchContainer(o, this.teardown, this.log);
    this.launched = l;
    this.leader = l.leader;
    this.uidBase = l.lease?.base;
    this.timings.spawnMs = performance.now() - this.t0;
    this.setState('starting');

    const ignored: string[] = [];
    const ready = new Promise<void>((resolve) => {
      l.notify.on('message', (m) => {
        if (!fromContainer(m, l)) { ignored.push(`pid ${m.pid} uid ${m.uid}: ${m.raw.slice(0, 60)}`); return; }
        this.emit('notify', m);
        if (m.fields.get('READY') === '1') resolve();
      });
      if (!o.notifyReady) resolve();
    });
    const early = Promise.resolve(l.child);

    this.controlAddress = await serveContainerInstance(this, l.runDir, this.teardown, this.stopTimeoutMs, this.log);
    const socket = machineSocketPath(o.runtimeDir);
    this.registered = await registerMachine(socket, {
      name: o.name, id: o.uuid.replace(/-/g, ''), class: 'container', service: 'berth', leader: l.leader,
      rootDirectory: l.root, ifIndices: l.veth ? [l.veth.hostIndex] : undefined, controlAddress: this.controlAddress,
    }, o.register);
    if (this.registered) this.teardown.add('unregister', () => unregisterMachine(socket, o.name));

    let timer: NodeJS.Timeout | undefined;
    const timeout = readyTimeoutMs > 0
      ? new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), readyTimeoutMs); })
      : new Promise<never>(() => {});
    let first = await Promise.race([ready.then(() => 'ready' as const), early.then(() => 'exited' as const), timeout]);
    if (first === 'exited') {
      // A payload may send READY=1 and end at once: the datagram is queued but may not have been read yet.
      first = await Promise.race([ready.then(() => 'ready' as const), new Promise<'exited'>((r) => setTimeout(() => r('exited'), 100))]);
    }
    clearTimeout(timer);
    if (first === 'exited') {
      const r = await early;
      const why = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.exitCode}`;
      throw new Error(`the container's PID 1 ${why} before it was ready`);
    }
    if (first === 'timeout') {
      const why = ignored.length ? ` (ignored messages from outside the container: ${ignored.join('; ')})` : '';
      throw new Error(`the container did not send READY=1 within ${readyTimeoutMs} ms${why}`);
    }
    this.timings.readyMs = performance.now() - this.t0;
    if (process.env.BERTH_TRACE === '1') this.log(`+${this.timings.readyMs.toFixed(1)} ms READY=1 (spawned at ${this.timings.spawnMs!.toFixed(1)} ms)`);

    this.stateFile = path.join(l.runDir, 'state.json');
    this.setState('running');
    this.exitInfo = early.then(async (r) => {
      const info = exitInfoFrom(r.exitCode, r.signal, this.killedByUs);
      this.exit = info;
      await this.teardown.run(false);
      this.state = 'exited';
      this.emit('state', 'exited');
      return info;
    });
  }

  private writeStateFile(): void {
    const l = this.launched!;
    const s = {
      name: this.name, uuid: this.options.uuid, class: 'container', state: this.state, leader: this.leader,
      supervisor: process.pid, rootDirectory: l.root, scope: l.scope.name, cgroups: l.scope.paths,
      uidBase: this.uidBase, uidRange: l.lease?.range, registered: this.registered, veth: l.veth?.hostName,
    };
    fs.writeFileSync(`${this.stateFile}.tmp`, JSON.stringify(s, null, 2) + '\n');
    fs.renameSync(`${this.stateFile}.tmp`, this.stateFile!);
  }

  /** Resolves when the machine has exited and everything is cleaned up. */
  wait(): Promise<ExitInfo> {
    if (!this.exitInfo) throw new Error('machine is not running');
    return this.exitInfo;
  }

  /** Send a signal to PID 1. */
  signal(sig: number | NodeJS.Signals): void {
    if (this.state === 'exited') return;
    try { process.kill(this.leader, sig); } catch { /* already gone */ }
  }

  /** Clean stop: the kill signal (SIGRTMIN+3 by default) to PID 1, then SIGKILL for the whole scope. */
  async stop(timeoutMs = 10_000): Promise<ExitInfo> {
    const done = this.wait();
    if (this.state === 'running' || this.state === 'starting') {
      const t = performance.now();
      this.setState('stopping');
      this.launched?.scope.thaw(); // a paused container must run to act on the stop
      this.signal(this.options.killSignal);
      const timer = setTimeout(() => this.kill(), timeoutMs);
      const info = await done;
      clearTimeout(timer);
      this.timings.stopMs = performance.now() - t;
      return info;
    }
    return done;
  }

  /** Immediate end: SIGKILL to PID 1 (its PID namespace dies with it), then to whatever else is in the scope. */
  kill(): void {
    if (this.state === 'exited' || !this.launched) return;
    this.killedByUs = true;
    const l = this.launched;
    try { process.kill(l.leader, 'SIGKILL'); } catch { /* gone */ }
    l.scope.thaw(); // unshare, frozen with a paused container, must run to reap PID 1
    // Anything outside the PID namespace but inside the scope (only unshare, normally) once PID 1 is reaped.
    void l.child.then(() => l.scope.killAll());
  }
}
