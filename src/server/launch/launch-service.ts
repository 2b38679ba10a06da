/**
 * berthd's launch service: starts the machines configured in NAME.berth files under their own supervisor
 * process (berth-spawn, detached into its own session), and stops, powers off or reboots them.
 *
 * A supervisor is independent of berthd: it keeps its machine running when berthd exits when
 * idle or restarts, and registers the machine with berthd itself. berthd remembers each
 * supervisor in RUNTIME/berth/launched/NAME.json (pid and start time, so a reused pid is never
 * mistaken for it) and its output in RUNTIME/berth/launched/NAME.log.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry, RegistryEvent } from '../registry/registry.js';
import { readStartTime } from '../../domain/process.js';
import { ConfigError, loadConfig, type MachineConfig } from './config.js';
import { isValidMachineName, machineNameRefusal } from '../../domain/machine-name.js';
import { berthRuntimeDir } from '../../domain/runtime-paths.js';

export type LaunchState = 'starting' | 'running' | 'stopping' | 'stopped';

export interface SupervisorRecord {
  name: string;
  pid: number;
  starttime: number;
  class: 'container' | 'vm';
  config: string;
}

export class LaunchError extends Error {
  constructor(
    readonly kind: 'NoSuchConfiguration' | 'AlreadyRunning' | 'NotLaunched' | 'StartFailed' | 'Timeout',
    message: string,
    readonly details: { status?: number | null; log?: string[] } = {},
  ) {
    super(message);
  }
}

export interface LaunchServiceOptions {
  runtimeDir: string;
  configDirectories: string[];
  /** Program and leading arguments that run berth-spawn. */
  spawnCommand?: string[];
}

/** berth-spawn: the bundle next to berthd's bundle, or the compiled module (tests run those). */
const BERTH_SPAWN = [
  new URL('./berth-spawn.mjs', import.meta.url),
  new URL('../../../bin/berth-spawn.mjs', import.meta.url),
  new URL('../../client/berth-spawn.js', import.meta.url),
]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p))!;

function alive(rec: SupervisorRecord): boolean {
  return readStartTime(rec.pid) === rec.starttime;
}

function waitUntil(test: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const tick = () => {
      if (test()) return resolve(true);
      if (Date.now() >= end) return resolve(false);
      setTimeout(tick, 25);
    };
    tick();
  });
}

export class LaunchService {
  private readonly dir: string;
  private readonly command: string[];

  constructor(
    private readonly registry: Registry,
    private readonly options: LaunchServiceOptions,
  ) {
    this.dir = berthRuntimeDir(options.runtimeDir, 'launched');
    this.command = options.spawnCommand ?? [process.execPath, BERTH_SPAWN];
  }

  /** The configuration file of a machine: the first NAME.berth found in the configuration directories. */
  config(name: string): MachineConfig {
    if (!isValidMachineName(name)) throw new LaunchError('NoSuchConfiguration', machineNameRefusal(name));
    for (const d of this.options.configDirectories) {
      const path = join(d, `${name}.berth`);
      if (existsSync(path)) return loadConfig(name, path);
    }
    throw new LaunchError('NoSuchConfiguration', `no ${name}.berth in ${this.options.configDirectories.join(', ')}`);
  }

  /** Every configuration, with what berth knows about its machine. */
  list(): { config?: MachineConfig; name: string; path: string; error?: ConfigError; state?: LaunchState; supervisor?: number }[] {
    const seen = new Set<string>();
    const out: ReturnType<LaunchService['list']> = [];
    for (const d of this.options.configDirectories) {
      let files: string[] = [];
      try {
        files = readdirSync(d).filter((f) => f.endsWith('.berth')).sort();
      } catch {
        continue;
      }
      for (const f of files) {
        const name = f.slice(0, -'.berth'.length);
        if (seen.has(name)) continue;
        seen.add(name);
        const path = join(d, f);
        const rec = this.record(name);
        const state = this.registry.get(name) ? 'running' : rec ? 'starting' : undefined;
        try {
          out.push({ name, path, config: loadConfig(name, path), ...(state ? { state } : {}), ...(rec ? { supervisor: rec.pid } : {}) });
        } catch (err) {
          out.push({ name, path, error: err as ConfigError });
        }
      }
    }
    return out;
  }

  /** The live supervisor of a machine berth started, if any (stale records are removed). */
  record(name: string): SupervisorRecord | undefined {
    const path = join(this.dir, `${name}.json`);
    let rec: SupervisorRecord;
    try {
      rec = JSON.parse(readFileSync(path, 'utf8')) as SupervisorRecord;
    } catch {
      return undefined;
    }
    if (alive(rec)) return rec;
    rmSync(path, { force: true });
    return undefined;
  }

  private logTail(name: string, lines = 20): string[] {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8').trimEnd().split('\n').slice(-lines);
    } catch {
      return [];
    }
  }

  /**
   * Starts a machine and resolves once it is registered. `progress` hears every state reached.
   */
  async start(name: string, timeoutMs: number, progress: (state: LaunchState, supervisor?: number, leader?: number) => void): Promise<{ supervisor: number; leader: number }> {
    const cfg = this.config(name);
    if (this.registry.get(name) || this.record(name)) throw new LaunchError('AlreadyRunning', `${name} is already running`);
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const log = openSync(join(this.dir, `${name}.log`), 'w');
    const [cmd, ...lead] = this.command;
    const child = spawn(cmd!, [...lead, '-M', name, `--runtime-dir=${this.options.runtimeDir}`, '--register=yes', ...cfg.argv], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const pid = child.pid;
    if (pid === undefined) throw new LaunchError('StartFailed', 'cannot run berth-spawn', { log: [] });
    const rec: SupervisorRecord = { name, pid, starttime: readStartTime(pid) ?? 0, class: cfg.class, config: cfg.path };
    const tmp = join(this.dir, `.${name}.json`);
    writeFileSync(tmp, JSON.stringify(rec));
    renameSync(tmp, join(this.dir, `${name}.json`));
    child.unref();
    progress('starting', pid);

    return new Promise((resolve, reject) => {
      const finish = (err?: LaunchError, leader?: number) => {
        clearTimeout(timer);
        this.registry.off('event', onEvent);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve({ supervisor: pid, leader: leader! });
      };
      const onEvent = (e: RegistryEvent) => {
        if (e.type === 'added' && e.machine.name === name) {
          progress('running', pid, e.machine.leader.pid);
          finish(undefined, e.machine.leader.pid);
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        rmSync(join(this.dir, `${name}.json`), { force: true });
        const status = code ?? (signal ? 128 : null);
        finish(new LaunchError('StartFailed', `berth-spawn exited (${signal ?? code}) before ${name} registered`, { status, log: this.logTail(name) }));
      };
      const timer = setTimeout(() => {
        process.kill(pid, 'SIGTERM');
        finish(new LaunchError('Timeout', `${name} did not register within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.registry.on('event', onEvent);
      child.on('exit', onExit);
      const already = this.registry.get(name);
      if (already) onEvent({ seq: 0, type: 'added', machine: already, reason: 'registered' });
    });
  }

  /**
   * Asks the supervisor to stop its machine cleanly (it forwards the request to the machine:
   * SIGRTMIN+3 to a container's PID 1, an ACPI power-down to a VM) and waits up to `graceMs`;
   * then kills the supervisor and every process of the machine.
   */
  async stop(name: string, graceMs: number): Promise<void> {
    const rec = this.record(name);
    if (!rec) {
      if (this.registry.get(name)) throw new LaunchError('NotLaunched', `${name} was not started by berth`);
      throw new LaunchError('NotLaunched', `${name} is not running`);
    }
    process.kill(rec.pid, 'SIGTERM');
    const done = () => !alive(rec) && !this.registry.get(name);
    if (!(await waitUntil(done, graceMs))) {
      if (alive(rec)) process.kill(rec.pid, 'SIGKILL');
      if (this.registry.get(name)) this.registry.kill(name, 'all', 9);
      await waitUntil(done, 5000);
    }
    rmSync(join(this.dir, `${name}.json`), { force: true });
  }
}
