/**
 * Shared parts of the soak scenarios: temp runtime dirs, berthd and berth-activate as child
 * processes, sacrificial leader processes, raw Varlink calls with deadlines, /proc figures, and
 * cleanup of the cgroup scopes a scenario left behind.
 *
 * Nothing here sleeps to wait: every wait is on an event or a condition with a deadline.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { VarlinkClient } from '../../src/varlink/client.js';
import { detectCgroupLayout } from '../../src/domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../src/domain/unit-names.js';
import { BERTHD_NODE_OPTIONS } from '../../src/server/node-options.js';
import { findMarkedScopes } from '../../src/server/registry/leftover-scopes.js';
import { berthdScopeMaker } from '../../src/server/registry/scope.js';
import { running } from '../lib/util.js';

/** The repository root: the first directory above this file holding package.json. */
export const REPO = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root');
    dir = up;
  }
  return dir;
})();

/** berthd as it ships: the bundle when built, else tsc's output; run with the Node options it is meant for. */
export const BERTHD = fs.existsSync(path.join(REPO, 'dist/bin/berthd.cjs'))
  ? path.join(REPO, 'dist/bin/berthd.cjs')
  : path.join(REPO, 'dist/src/server/main.js');
export const BERTHD_NODE_ARGS: string[] = [...BERTHD_NODE_OPTIONS];
export const ACTIVATE = path.join(REPO, 'dist/src/server/berth-activate.js');

/** What every scenario returns: figures for the one-line summary, and what went wrong. */
export interface ScenarioResult {
  name: string;
  figures: Record<string, string | number>;
  failures: string[];
  /** Set when the scenario could not run here; says why. */
  skipped?: string;
  /** Longer findings (reproductions) printed after the summary line. */
  notes?: string[];
}

export interface ScenarioOptions {
  short: boolean;
  /** Progress lines go here (stderr by default). */
  log: (line: string) => void;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Why berthd cannot be run here, or undefined. */
export function cannotRunBerthd(): string | undefined {
  if (!fs.existsSync(BERTHD)) return `berthd is not built (${BERTHD} missing; run npm run build)`;
  return undefined;
}

export function tempRuntime(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `berth-soak-${tag}-`));
  // Unprivileged clients must reach the sockets below it.
  fs.chmodSync(dir, 0o755);
  return dir;
}

export function machineSocket(runtime: string): string {
  return path.join(runtime, 'systemd/machine/io.systemd.Machine');
}

export function userdbSocket(runtime: string, service = 'io.systemd.Machine'): string {
  return path.join(runtime, 'systemd/userdb', service);
}

// ---------------------------------------------------------------------------------------------
// deadlines

export class Deadline extends Error {}

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Deadline(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Polls a condition (each turn bounded by intervalMs) until it holds or the deadline passes. */
export async function waitFor<T>(cond: () => T | Promise<T>, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Deadline(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function exited(child: ChildProcess, timeoutMs = 10_000): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return within(new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? -1))), timeoutMs, `pid ${child.pid} to exit`);
}

// ---------------------------------------------------------------------------------------------
// calls

export type Outcome = { ok: Record<string, unknown> } | { error: string; parameters: Record<string, unknown> };

export function errorName(e: unknown): string {
  const err = e as { error?: string; code?: string; name?: string; message?: string };
  return err.error ?? err.code ?? err.name ?? String(e);
}

/** A call whose failure is returned, not thrown. */
export async function call(c: VarlinkClient, method: string, params: object = {}, timeout = 5000): Promise<Outcome> {
  try {
    return { ok: await c.callRaw(method, params, { timeout }) };
  } catch (e) {
    const err = e as { error?: string; parameters?: Record<string, unknown> };
    return { error: errorName(e), parameters: err.parameters ?? {} };
  }
}

export async function listAll(c: VarlinkClient, timeout = 30_000): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const m of c.moreRaw('io.systemd.Machine.List', {}, { timeout })) out.push(m);
  return out;
}

export async function connect(socket: string, timeout = 5000): Promise<VarlinkClient> {
  return VarlinkClient.connect(`unix:${socket}`, { timeout });
}

// ---------------------------------------------------------------------------------------------
// berthd

export interface Berthd {
  child: ChildProcess;
  pid: number;
  runtime: string;
  /** The last ~256 KiB of stderr (pino JSON lines). */
  stderr(): string;
  stop(): Promise<void>;
}

export interface BerthdOptions {
  args?: string[];
  logLevel?: string;
  /** Keep this much of stderr (default 256 KiB). */
  keepBytes?: number;
  /** Extra environment (say, DBUS_SYSTEM_BUS_ADDRESS for the D-Bus scenarios). */
  env?: NodeJS.ProcessEnv;
}

/** Starts berthd on a runtime dir and waits until GetInfo answers. */
export async function startBerthd(runtime: string, options: BerthdOptions = {}): Promise<Berthd> {
  const keep = options.keepBytes ?? 256 * 1024;
  const child = spawn(
    process.execPath,
    [...BERTHD_NODE_ARGS, BERTHD, '--runtime-dir', runtime, '--log-level', options.logLevel ?? 'warn', ...(options.args ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...options.env } },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.length > keep * 2) err = err.slice(-keep);
  });
  const socket = machineSocket(runtime);
  const ready = waitFor(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`berthd exited at start: ${err.slice(-2000)}`);
      if (!fs.existsSync(socket)) return false;
      try {
        const c = await connect(socket, 2000);
        const r = await call(c, 'org.varlink.service.GetInfo', {}, 2000);
        c.close();
        return 'ok' in r;
      } catch {
        return false;
      }
    },
    'berthd to answer GetInfo',
    20_000,
  );
  await ready;
  return {
    child,
    pid: child.pid!,
    runtime,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      try {
        await exited(child, 10_000);
      } catch {
        child.kill('SIGKILL');
        await exited(child, 5000).catch(() => undefined);
      }
    },
  };
}

/** Parsed pino lines of a berthd's stderr. */
export function logLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* partial line */
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// /proc figures

export function rssKiB(pid: number): number {
  return statusField(pid, 'VmRSS');
}

export function peakRssKiB(pid: number): number {
  return statusField(pid, 'VmHWM');
}

function statusField(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** True while the process exists and is not a zombie (the bench's own check). */
export { running as alive } from '../lib/util.js';

export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// users

export interface User {
  name: string;
  uid: number;
  gid: number;
}

export function lookupUser(name: string): User | undefined {
  const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (u.status !== 0 || g.status !== 0) return undefined;
  return { name, uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** argv prefix that runs a command as `user` (setpriv). */
export function asUser(user: User): string[] {
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'];
}

// ---------------------------------------------------------------------------------------------
// leaders

/**
 * A batch of sacrificial leader processes (`sleep`), forked by one shell so that thousands start
 * quickly. Each pid is a direct child of the shell, which reaps them.
 */
export class LeaderPool {
  readonly pids: number[] = [];
  private constructor(readonly shell: ChildProcess) {}

  static async spawn(n: number, user?: User, timeoutMs = 60_000): Promise<LeaderPool> {
    const script = 'i=0; while [ $i -lt "$1" ]; do sleep 100000 & echo $!; i=$((i+1)); done; echo done; wait';
    const argv = [...(user ? asUser(user) : []), '/bin/sh', '-c', script, 'leaders', String(n)];
    const shell = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    const pool = new LeaderPool(shell);
    let buf = '';
    await within(
      new Promise<void>((resolve, reject) => {
        shell.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) !== -1) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line === 'done') return resolve();
            pool.pids.push(Number(line));
          }
        });
        shell.once('exit', () => reject(new Error('leader shell exited early')));
      }),
      timeoutMs,
      `${n} leader processes`,
    );
    return pool;
  }

  /** SIGKILLs every leader and the shell. */
  async kill(): Promise<void> {
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // The shell's `wait` reaps them and then it exits by itself; killing it first would leave
    // zombies to whatever reaps orphans here (and a zombie keeps its cgroup busy).
    await exited(this.shell, 15_000).catch(() => {
      this.shell.kill('SIGKILL');
    });
    await waitFor(() => this.pids.every((p) => !running(p)), 'leaders to die', 10_000).catch(() => undefined);
  }
}

/** One sleeper, as a child of this process. */
export function sleeper(user?: User): ChildProcess & { pid: number } {
  const argv = [...(user ? asUser(user) : []), 'sleep', '100000'];
  return spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' }) as ChildProcess & { pid: number };
}

// ---------------------------------------------------------------------------------------------
// cgroups

/**
 * Removes machine.slice/machine-NAME.scope dirs in every hierarchy: for machine names starting
 * with `prefix`, or with `exact` only the one machine's scope.
 */
export function removeScopes(prefix: string, exact = false): number {
  const layout = detectCgroupLayout();
  let unitPrefix: string;
  try {
    unitPrefix = exact ? machineScopeUnit(prefix) : machineScopeUnit(prefix).replace(/\.scope$/, '');
  } catch {
    return 0;
  }
  let removed = 0;
  for (const h of layout.hierarchies) {
    const slice = path.join(h.root, MACHINE_SLICE);
    let entries: string[] = [];
    if (exact) entries = fs.existsSync(path.join(slice, unitPrefix)) ? [unitPrefix] : [];
    else {
      try {
        entries = fs.readdirSync(slice);
      } catch {
        continue;
      }
    }
    for (const d of entries) {
      if (exact ? d !== unitPrefix : !d.startsWith(unitPrefix)) continue;
      if (removeScopeDir(path.join(slice, d))) removed++;
    }
  }
  return removed;
}

/** Kills what is still inside a scope directory (a leader that outlived its machine), then removes it. */
function removeScopeDir(dir: string): boolean {
  try {
    for (const pid of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no procs file */
  }
  try {
    fs.rmdirSync(dir);
    return true;
  } catch {
    return false; /* busy: a zombie not reaped yet */
  }
}

/**
 * Removes every scope the berthd of `runtime` made (its mark names that runtime's state directory),
 * whatever the machine was called: a fuzzer registers names no prefix covers. For after that berthd stopped,
 * since a berthd keeps its machines, and their scopes, across a stop.
 */
export function removeScopesMadeBy(runtime: string): number {
  const layout = detectCgroupLayout();
  let removed = 0;
  for (const unitCgroup of findMarkedScopes(layout, berthdScopeMaker(path.join(runtime, 'systemd/machines')), () => false)) {
    for (const h of layout.hierarchies) {
      const dir = path.join(h.root, unitCgroup);
      if (fs.existsSync(dir) && removeScopeDir(dir)) removed++;
    }
  }
  return removed;
}

/** Scope directories still present for names starting with `prefix`. */
export function leftoverScopes(prefix: string): string[] {
  const layout = detectCgroupLayout();
  const unitPrefix = machineScopeUnit(prefix).replace(/\.scope$/, '');
  const out: string[] = [];
  for (const h of layout.hierarchies) {
    const slice = path.join(h.root, MACHINE_SLICE);
    try {
      for (const d of fs.readdirSync(slice)) if (d.startsWith(unitPrefix)) out.push(path.join(slice, d));
    } catch {
      /* none */
    }
  }
  return out;
}

export function cgroupsUsable(): string | undefined {
  const layout = detectCgroupLayout();
  if (!layout.primary) return 'no cgroup hierarchy mounted';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// raw sockets

/** Connects a plain socket, resolving once connected. */
export function rawConnect(socketPath: string, timeoutMs = 5000): Promise<net.Socket> {
  return within(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
    timeoutMs,
    `connect to ${socketPath}`,
  );
}

export function rmrf(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

/** The lines a child writes to stdout, each handed out once, in order, as they arrive. */
export class ChildLines {
  private buf = '';
  private readonly lines: string[] = [];
  private wake?: () => void;

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.wake?.();
    });
    child.once('exit', () => this.wake?.());
  }

  /** The next line; fails when the child exits first (`exitMessage`) or `timeoutMs` passes (`what`). */
  next(timeoutMs: number, what: string, exitMessage: string): Promise<string> {
    return within(
      (async () => {
        while (this.lines.length === 0) {
          if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(exitMessage);
          await new Promise<void>((r) => (this.wake = r));
        }
        return this.lines.shift()!;
      })(),
      timeoutMs,
      what,
    );
  }
}
