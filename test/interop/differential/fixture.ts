/**
 * The differential fixture: the real systemd-machined 257 (reused when it already runs, started and
 * stopped by us otherwise) next to a berthd on a temporary runtime directory serving the same socket
 * names (`--userdb-service io.systemd.Machine`, so user records carry the same `service`). The same
 * calls, as raw NUL-framed JSON text, go to both; replies are compared after normalizing what must differ
 * between two daemons (timestamps, pidfd IDs, boot IDs, pty numbers).
 *
 * Every machine is registered in both daemons under the same name with the same leader: machined 257
 * wants the leader in a unit-shaped cgroup, so each leader is first moved into
 * machine.slice/machine-NAME.scope (what `scripts/reference-tools.sh scope` does) and registered with
 * `allocateUnit` absent or false, and berth derives the unit from that cgroup the same way. Names carry a
 * per-run prefix so that entries other tests left in the shared machined are never touched.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../helpers/generated.js';
import { RawConnection, type Reply } from '../../helpers/raw.js';
import { ensureReferenceMachined, type ReferenceSuite } from '../../helpers/reference.js';
import { tempDir } from '../../helpers/tmp.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { afterAll, beforeAll, type TestContext } from 'vitest';

export const REAL = {
  machine: '/run/systemd/machine/io.systemd.Machine',
  image: '/run/systemd/machine/io.systemd.MachineImage',
  userdb: '/run/systemd/userdb/io.systemd.Machine',
  state: '/run/systemd/machines',
};
// BERTH_DIFFERENTIAL_BERTHD points at another build's main.js (to compare an older or patched berth).
const MAIN_JS = process.env.BERTH_DIFFERENTIAL_BERTHD ?? join(REPO, 'dist/src/server/main.js');
const CGROUP_HIERARCHIES = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'];

/** The reasons that need no process to find out; undefined when the suite can try to run. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (runs systemd-machined 257, writes cgroups and uid_map)';
  if (!existsSync(MAIN_JS)) return `${MAIN_JS} is missing: run 'npm run build' first`;
  if (!CGROUP_HIERARCHIES.some((h) => existsSync(join(h, 'cgroup.procs')))) return 'no writable cgroup hierarchy under /sys/fs/cgroup';
  const probe = spawnSync('unshare', ['--user', 'true']);
  if (probe.status !== 0) return `user namespaces are not available: ${probe.stderr?.toString().trim() ?? 'unshare missing'}`;
  return undefined;
}

/** The cgroup hierarchies of this host (cgroup v2 at the top, or the v2 and name=systemd ones). */
function hierarchies(): string[] {
  return CGROUP_HIERARCHIES.filter((h) => existsSync(join(h, 'cgroup.procs')));
}

/**
 * Moves a process into the cgroup `path` (relative, e.g. machine.slice/machine-NAME.scope) in every
 * hierarchy; returns the directories to remove afterwards, deepest first: `path` itself (named after this
 * run) and whichever of its parents this call created.
 */
export function placeInCgroup(path: string, pid: number): string[] {
  const created: string[] = [];
  for (const h of hierarchies()) {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const dir = join(h, ...parts.slice(0, i));
      if (!existsSync(dir)) {
        mkdirSync(dir);
        created.unshift(dir);
      } else if (i === parts.length) created.unshift(dir);
    }
    writeFileSync(join(h, path, 'cgroup.procs'), String(pid));
  }
  return created;
}

/** Moves a process into machine.slice/machine-NAME.scope in every hierarchy; returns the directories. */
export function placeInScope(name: string, pid: number): string[] {
  return placeInCgroup(`machine.slice/machine-${name}.scope`, pid);
}

export interface Daemon {
  /** The real machined's version, or berth. */
  label: '257' | '262' | 'berth';
  machineSocket: string;
  imageSocket: string;
  userdbSocket: string;
  /** State directory (RUNTIME/systemd/machines). */
  stateDir: string;
}

export interface Leader {
  pid: number;
  /** For user-namespaced leaders: the first host UID/GID of the map. */
  base?: number;
}

export interface Fixture {
  /** Per-run prefix of every machine name. */
  prefix: string;
  real: Daemon;
  berth: Daemon;
  /** True when this fixture started machined (and so stops it). */
  startedMachined: boolean;
  /** A `sleep infinity` in machine.slice/machine-NAME.scope. */
  plainLeader(name: string): Promise<Leader>;
  /** A `sleep infinity` in the cgroup `path` (relative to each hierarchy's root), or where we are when absent. */
  processIn(path?: string): Promise<Leader>;
  /** Removes machine.slice/UNIT at the end (for scopes berth creates itself). */
  forgetScopeLater(unit: string): void;
  /** PID 1 of `unshare --user --fork`, its maps written from here to `base`, in machine-NAME.scope. */
  usernsLeader(name: string, base: number): Promise<Leader>;
  /** SIGKILL a leader and wait until it is gone. */
  killLeader(l: Leader): Promise<void>;
  /** Names with our prefix that the daemon lists (streamed List). */
  ourMachines(d: Daemon): Promise<string[]>;
  /** Our prefix's entries in a daemon's state directory. */
  ourStateFiles(d: Daemon): string[];
  stop(): Promise<void>;
}

/**
 * Brings up both daemons. Returns a string when it cannot (reference tools not installable, something
 * else serving machined's socket): the tests print it and skip.
 */
export async function startFixture(tag: string, { suite = 'trixie' }: { suite?: ReferenceSuite } = {}): Promise<Fixture | string> {
  const why = cannotRun();
  if (why) return why;
  const machined = await ensureReferenceMachined({ suite });
  if (typeof machined === 'string') return machined;
  const startedMachined = machined.started;

  const prefix = `df${tag}${process.pid % 100000}`;
  const runtime = tempDir('differential');
  const children: ChildProcess[] = [];
  /** Processes that are not our children (PID 1 of an unshare). */
  const strays: number[] = [];
  const scopes = new Set<string>();
  let daemon: ChildProcess | undefined;
  let log = '';

  const real: Daemon = {
    label: suite === 'sid' ? '262' : '257',
    machineSocket: REAL.machine,
    imageSocket: REAL.image,
    userdbSocket: REAL.userdb,
    stateDir: REAL.state,
  };
  const berth: Daemon = {
    label: 'berth',
    machineSocket: join(runtime.path, 'systemd/machine/io.systemd.Machine'),
    imageSocket: join(runtime.path, 'systemd/machine/io.systemd.MachineImage'),
    userdbSocket: join(runtime.path, 'systemd/userdb/io.systemd.Machine'),
    stateDir: join(runtime.path, 'systemd/machines'),
  };

  const ourMachines = async (d: Daemon): Promise<string[]> => {
    const c = await RawConnection.connect(d.machineSocket);
    try {
      c.call({ method: 'io.systemd.Machine.List', parameters: {}, more: true });
      const names: string[] = [];
      for (;;) {
        const r = await c.next();
        if (r.error) throw new Error(`${d.label} List: ${JSON.stringify(r)}`);
        const n = r.parameters?.name as string;
        if (n.startsWith(prefix)) names.push(n);
        if (!r.continues) break;
      }
      return names.sort();
    } finally {
      c.destroy();
    }
  };

  const ourStateFiles = (d: Daemon): string[] =>
    readdirSync(d.stateDir)
      .filter((f) => f.startsWith(prefix) || f.startsWith(`unit:machine-${prefix}`))
      .sort();

  const stop = async (): Promise<void> => {
    // Our machines go from machined explicitly: on a host without systemd as PID 1 it keeps a machine
    // whose leader died (its garbage collection waits for a unit stop that never comes).
    if (existsSync(REAL.machine)) {
      const names = await ourMachines(real).catch(() => [] as string[]);
      if (names.length) {
        const c = await RawConnection.connect(REAL.machine);
        for (const name of names) await c.roundTrip({ method: 'io.systemd.Machine.Unregister', parameters: { name } }).catch(() => undefined);
        c.destroy();
      }
    }
    await tearDown({ strays, children, daemon, cgroups: scopes });
    runtime.remove();
    await machined.release();
  };

  try {
    daemon = spawn(
      process.execPath,
      [MAIN_JS, '--runtime-dir', runtime.path, '--userdb-service', 'io.systemd.Machine', '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(
      () => {
        if (daemon!.exitCode !== null) throw new Error(`berthd exited (${daemon!.exitCode}): ${log}`);
        return existsSync(berth.machineSocket) && existsSync(berth.userdbSocket) && existsSync(berth.imageSocket);
      },
      'berthd to bind its sockets',
      { timeoutMs: 20_000 },
    );

    const processIn = async (path?: string): Promise<Leader> => {
      const c = spawn('sleep', ['infinity'], { stdio: 'ignore' });
      children.push(c);
      await waitFor(() => c.pid !== undefined && readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim() === 'sleep', 'sleep to start');
      if (path) for (const d of placeInCgroup(path, c.pid!)) scopes.add(d);
      return { pid: c.pid! };
    };
    const plainLeader = (name: string): Promise<Leader> => processIn(`machine.slice/machine-${name}.scope`);
    const forgetScopeLater = (unit: string): void => {
      for (const h of hierarchies()) scopes.add(join(h, 'machine.slice', unit));
    };

    const usernsLeader = async (name: string, base: number): Promise<Leader> => {
      const ns = spawn('unshare', ['--user', '--fork', 'sleep', 'infinity'], { stdio: 'ignore' });
      children.push(ns);
      const pid = await waitFor(() => {
        const kids = readFileSync(`/proc/${ns.pid}/task/${ns.pid}/children`, 'utf8').trim();
        return kids ? Number(kids.split(' ')[0]) : 0;
      }, 'unshare to fork the leader');
      strays.push(pid);
      if (readlinkSync(`/proc/${pid}/ns/user`) === readlinkSync('/proc/self/ns/user')) throw new Error('unshare made no user namespace');
      writeFileSync(`/proc/${pid}/setgroups`, 'deny');
      writeFileSync(`/proc/${pid}/uid_map`, `0 ${base} 65536\n`);
      writeFileSync(`/proc/${pid}/gid_map`, `0 ${base} 65536\n`);
      for (const d of placeInScope(name, pid)) scopes.add(d);
      return { pid, base };
    };

    const killLeader = async (l: Leader): Promise<void> => {
      try {
        process.kill(l.pid, 'SIGKILL');
      } catch {
        return;
      }
      const child = children.find((c) => c.pid === l.pid);
      if (child) await exited(child, 5000);
      else await waitFor(() => !existsSync(`/proc/${l.pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${l.pid}/status`, 'utf8')), `${l.pid} to die`);
    };

    return {
      prefix, real, berth, startedMachined, plainLeader, processIn, forgetScopeLater, usernsLeader, killLeader, ourMachines, ourStateFiles, stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One connection per daemon; `call` sends the same text to both and returns both replies. */
export class Pair {
  private constructor(
    readonly real: RawConnection,
    readonly berth: RawConnection,
  ) {}

  static async open(fx: Fixture, socket: 'machineSocket' | 'userdbSocket' | 'imageSocket'): Promise<Pair> {
    return new Pair(await RawConnection.connect(fx.real[socket]), await RawConnection.connect(fx.berth[socket]));
  }

  /** A pair on sockets the Daemon records do not name (the resolve hook's). */
  static async between(real: string, berth: string): Promise<Pair> {
    return new Pair(await RawConnection.connect(real), await RawConnection.connect(berth));
  }

  /** Sends `text` (one message, no NUL) and reads every reply up to the one without `continues`. */
  static async replies(c: RawConnection, text: string, timeoutMs = 10_000): Promise<Reply[]> {
    c.send(text + '\0');
    const out: Reply[] = [];
    for (;;) {
      const r = await c.next(timeoutMs);
      out.push(r);
      if (!r.continues) return out;
    }
  }

  async call(text: string): Promise<{ real: Reply[]; berth: Reply[] }> {
    const [real, berth] = await Promise.all([Pair.replies(this.real, text), Pair.replies(this.berth, text)]);
    return { real, berth };
  }

  close(): void {
    this.real.destroy();
    this.berth.destroy();
  }
}

/**
 * What legitimately differs between two daemons, replaced by placeholders: a ProcessId's `pidfdId` and
 * `bootId`, a machine's `timestamp` (the registrations happen microseconds apart), a pty's number. PIDs are named
 * through `pids` when given (the same leader is registered in both, so they are equal anyway).
 */
export function normalize(v: unknown, pids: Map<number, string> = new Map()): unknown {
  if (Array.isArray(v)) return v.map((x) => normalize(x, pids));
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'timestamp' && x && typeof x === 'object') {
      const t = x as Record<string, unknown>;
      out[k] = Object.fromEntries(Object.entries(t).map(([tk, tv]) => [tk, Number.isInteger(tv) && (tv as number) >= 0 ? '<µs>' : tv]));
    } else if ((k === 'leader' || k === 'supervisor') && x && typeof x === 'object') {
      const p = { ...(x as Record<string, unknown>) };
      if (typeof p.pid === 'number' && pids.has(p.pid)) p.pid = pids.get(p.pid);
      if (Number.isInteger(p.pidfdId)) p.pidfdId = '<pidfdId>';
      if (typeof p.bootId === 'string' && /^[0-9a-f]{32}$/.test(p.bootId)) p.bootId = '<bootId>';
      out[k] = p;
    } else if (k === 'ptyPath' && typeof x === 'string' && /^\/dev\/pts\/\d+$/.test(x)) {
      out[k] = '/dev/pts/<n>';
    } else {
      out[k] = normalize(x, pids);
    }
  }
  return out;
}

/**
 * The fixture of one test file: started before its tests (then `setup` runs with it) and stopped
 * after them (`teardown` first). `need(ctx)` hands it to a test, or skips the test with the reason
 * the fixture could not start, which is printed once for the file as well.
 */
export function useFixture(
  tag: string,
  label: string,
  hooks: { setup?: (fx: Fixture) => Promise<void>; teardown?: () => void } = {},
  { suite = 'trixie' }: { suite?: ReferenceSuite } = {},
): { staticSkip: string | undefined; need(ctx: TestContext): Fixture } {
  const staticSkip = cannotRun();
  if (staticSkip) console.warn(`differential ${label} tests skipped: ${staticSkip}`);
  let fx: Fixture | undefined;
  let skipWhy = staticSkip;
  beforeAll(async () => {
    if (skipWhy) return;
    const r = await startFixture(tag, { suite });
    if (typeof r === 'string') {
      skipWhy = r;
      console.warn(`differential ${label} tests skipped: ${r}`);
      return;
    }
    fx = r;
    await hooks.setup?.(r);
  }, 900_000);
  afterAll(async () => {
    hooks.teardown?.();
    await fx?.stop();
  }, 120_000);
  return {
    staticSkip,
    need(ctx: TestContext): Fixture {
      if (!fx) ctx.skip(skipWhy);
      return fx!;
    },
  };
}

/** A state file's lines (RUNTIME/systemd/machines/NAME) with the registration time zeroed. */
export function stateFile(dir: string, name: string): string[] {
  const p = join(dir, name);
  if (!existsSync(p)) return [`(no ${p})`];
  return readFileSync(p, 'utf8')
    .split('\n')
    .map((l) => l.replace(/^(REALTIME|MONOTONIC)=\d+$/, '$1=0'));
}
