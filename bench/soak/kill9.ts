/**
 * Scenario 2, kill9: 1,000 concurrent io.systemd.Machine.Register calls, each with its own live
 * leader and allocateUnit, while berthd (a child of berth-activate) is SIGKILLed at random points
 * and started again by socket activation. A call that fails with a disconnect is retried on a new
 * connection; MachineExists on a retry means the first attempt landed (acknowledged-present).
 * Afterwards berthd is killed once more, so the final List comes from a restore of the state
 * directory: every acknowledged machine must be there, with its own leader, and none twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  ACTIVATE,
  cannotRunBerthd,
  cgroupsUsable,
  connect,
  exited,
  isRoot,
  leftoverScopes,
  LeaderPool,
  listAll,
  machineSocket,
  removeScopes,
  rmrf,
  tempRuntime,
  waitFor,
  errorName,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import { VarlinkClient } from '../../src/varlink/client.js';

export interface Kill9Options extends ScenarioOptions {
  /** Register calls (default 1,000; short 300). */
  calls?: number;
  seed?: number;
}

/** berth-activate with its berthd; tells the current berthd pid from the activator's stderr. */
class Activated {
  berthdPid?: number;
  starts = 0;
  private waiters: (() => void)[] = [];
  private log = '';
  private constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stderr!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /started berthd \(pid (\d+)\)/.exec(line);
        if (m) {
          this.berthdPid = Number(m[1]);
          this.starts++;
          for (const w of this.waiters.splice(0)) w();
        } else if (/berthd exited/.test(line)) {
          this.berthdPid = undefined;
        } else if (line.startsWith('{')) {
          if (/"level":(50|60)/.test(line)) this.log += line.slice(0, 600) + '\n';
        }
      }
    });
  }
  static start(runtime: string): Activated {
    const child = spawn(process.execPath, [ACTIVATE, '--runtime-dir', runtime, '--idle-exit', '60', '--', '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new Activated(child);
  }
  errors(): string {
    return this.log;
  }
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await exited(this.child, 15_000).catch(() => {
      this.child.kill('SIGKILL');
    });
  }
}

/** Deterministic pseudo-random numbers (mulberry32), so a run can be repeated with --seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RETRYABLE = /Disconnected|ECONNREFUSED|ECONNRESET|EAGAIN|EPIPE|ENOENT|TimedOut|Deadline|timed out/;

export async function runKill9(opts: Kill9Options): Promise<ScenarioResult> {
  const name = 'kill9';
  const why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (allocateUnit creates cgroup scopes)');
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const n = opts.calls ?? (opts.short ? 300 : 1000);
  const seed = opts.seed ?? Date.now() % 1_000_000;
  const random = rng(seed);
  const prefix = `sk9p${process.pid}`;
  const runtime = tempRuntime('kill9');
  const socket = machineSocket(runtime);
  const failures: string[] = [];
  const notes: string[] = [];
  const act = Activated.start(runtime);
  let leaders: LeaderPool | undefined;
  try {
    await waitFor(async () => {
      try {
        const c = await connect(socket, 2000);
        await c.callRaw('org.varlink.service.GetInfo', {}, { timeout: 5000 });
        c.close();
        return true;
      } catch {
        return false;
      }
    }, 'berth-activate to start berthd', 20_000);
    leaders = await LeaderPool.spawn(n);
    opts.log(`kill9: ${n} leaders, seed ${seed}`);

    let acknowledged = 0;
    // Killer: SIGKILL the current berthd after a random delay, while calls are in flight.
    let calling = true;
    let kills = 0;
    // Each berthd instance lives until a random number of further Register calls were answered
    // (or a random time passed), so every instance does some work and is killed in the middle of more.
    const killer = (async () => {
      while (calling) {
        const pid = await waitFor(() => (calling ? act.berthdPid : -1), 'berthd to be started', 30_000).catch(() => undefined);
        if (!calling || pid === undefined || pid === -1) break;
        const goal = acknowledged + 1 + Math.floor(random() * Math.max(4, n / 15));
        const until = Date.now() + 300 + random() * 1500;
        await waitFor(() => !calling || acknowledged >= goal || Date.now() > until, 'progress', 10_000).catch(() => undefined);
        if (!calling) break;
        try {
          process.kill(pid, 'SIGKILL');
          kills++;
        } catch {
          /* already gone */
        }
      }
    })();

    let presentOnRetry = 0;
    let retries = 0;
    const refused: string[] = [];
    const eexist: string[] = [];
    const acked = new Map<string, number>();
    const names = leaders.pids.map((_, i) => `${prefix}n${i}`);
    await Promise.all(
      leaders.pids.map(async (pid, i) => {
        const machine = names[i]!;
        let attempt = 0;
        for (;;) {
          attempt++;
          let c: VarlinkClient | undefined;
          try {
            c = await connect(socket, 5000);
            await c.callRaw('io.systemd.Machine.Register', { name: machine, class: 'container', leader: pid, allocateUnit: true }, { timeout: 20_000 });
            acknowledged++;
            acked.set(machine, pid);
            return;
          } catch (e) {
            const err = errorName(e);
            const msg = `${err} ${(e as Error).message ?? ''}`;
            if (attempt > 1 && err === 'io.systemd.Machine.MachineExists') {
              acknowledged++;
              presentOnRetry++;
              acked.set(machine, pid);
              return;
            }
            if (attempt > 1 && /"errno":17|errno 17/.test(msg + JSON.stringify((e as { parameters?: unknown }).parameters ?? {}))) {
              eexist.push(`${machine} (leader ${pid})`);
              return;
            }
            if (RETRYABLE.test(msg) && attempt < 2000) {
              retries++;
              // Reconnect backoff of a client, not a wait for a condition: 5–50 ms.
              await new Promise((r) => setTimeout(r, 5 + random() * 45));
              continue;
            }
            refused.push(`${machine}: ${msg} (attempt ${attempt})`);
            return;
          } finally {
            c?.close();
          }
        }
      }),
    );
    calling = false;
    await killer;
    // One more kill, so the final answer comes from a restore of the state directory.
    const last = act.berthdPid;
    if (last !== undefined) {
      process.kill(last, 'SIGKILL');
      kills++;
      await waitFor(() => act.berthdPid !== last || undefined, 'berthd to go', 10_000).catch(() => undefined);
    }
    const c = await waitFor(async () => {
      try {
        const cl = await connect(socket, 5000);
        await cl.callRaw('org.varlink.service.GetInfo', {}, { timeout: 10_000 });
        return cl;
      } catch {
        return undefined;
      }
    }, 'berthd to come back', 30_000);
    const list = await listAll(c, 60_000);
    c.close();
    const seen = new Map<string, number>();
    const leaderOf = new Map<string, number>();
    for (const m of list) {
      const nm = m.name as string;
      seen.set(nm, (seen.get(nm) ?? 0) + 1);
      leaderOf.set(nm, (m.leader as { pid: number } | undefined)?.pid ?? -1);
    }
    const dup = [...seen].filter(([, k]) => k > 1).map(([nm]) => nm);
    const lost = [...acked.keys()].filter((nm) => !seen.has(nm));
    const wrongLeader = [...acked].filter(([nm, pid]) => seen.has(nm) && leaderOf.get(nm) !== pid).map(([nm]) => nm);
    const present = [...acked.keys()].filter((nm) => seen.has(nm)).length;
    const unacknowledgedPresent = list.filter((m) => (m.name as string).startsWith(prefix) && !acked.has(m.name as string)).length;
    if (lost.length) failures.push(`${lost.length} acknowledged machines missing after restore: ${lost.slice(0, 10).join(', ')}`);
    if (dup.length) failures.push(`machines listed twice: ${dup.slice(0, 10).join(', ')}`);
    if (wrongLeader.length) failures.push(`machines restored with another leader: ${wrongLeader.slice(0, 10).join(', ')}`);
    if (refused.length) {
      failures.push(`${refused.length} Register calls failed with a non-retryable error`);
      notes.push(...refused.slice(0, 5));
    }
    if (eexist.length) {
      failures.push(`${eexist.length} retried Register calls failed with EEXIST: the interrupted first attempt left the leader in machine-NAME.scope without registering it`);
      notes.push(`EEXIST on retry: ${eexist.slice(0, 5).join(', ')}`);
    }
    if (kills < 2) failures.push(`berthd was killed only ${kills} time(s): the run did not exercise restarts`);
    if (act.errors()) notes.push(`berthd error logs: ${act.errors().slice(0, 2000)}`);

    // Cleanup: leaders die, berthd drops their machines; then the scopes must be gone.
    await leaders.kill();
    leaders = undefined;
    const drained = await waitFor(async () => {
      try {
        const cl = await connect(socket, 5000);
        const l = await listAll(cl, 30_000);
        cl.close();
        return l.filter((m) => (m.name as string).startsWith(prefix)).length === 0;
      } catch {
        return false;
      }
    }, 'machines of dead leaders to disappear', 30_000).catch(() => false);
    if (!drained) failures.push('machines whose leaders were killed were still listed after 30 s');
    // Scopes of registrations never acknowledged (berthd killed between making the scope and saving the
    // machine) carry berthd's mark; the berthd now running removes them once empty.
    await waitFor(() => leftoverScopes(prefix).length === 0, 'berthd to remove the scopes of dead leaders', 15_000).catch(() => undefined);
    const scopesLeft = leftoverScopes(prefix).length;
    if (scopesLeft) failures.push(`${scopesLeft} scopes left after their leaders died: ${leftoverScopes(prefix).slice(0, 5).join(', ')}`);
    return {
      name,
      figures: {
        calls: n,
        acknowledged,
        'acked-on-retry': presentOnRetry,
        present,
        lost: lost.length,
        duplicates: dup.length,
        'wrong-leader': wrongLeader.length,
        'unacked-present': unacknowledgedPresent,
        kills,
        starts: act.starts,
        retries,
        'retry-eexist': eexist.length,
        'scopes-left-by-berthd': scopesLeft,
        seed,
      },
      failures,
      notes,
    };
  } finally {
    await leaders?.kill();
    await act.stop();
    removeScopes(prefix);
    rmrf(runtime);
  }
}
