/**
 * Scenario 7, long-run: mixed Register / lookup / Unregister / Terminate traffic for 30 minutes
 * (60 s with --short), with berthd's RSS and open file descriptors sampled at the start, the
 * middle and the end. Goal: no growth. Leaders come from a pool; a Terminate kills one, and a new
 * one takes its place, so the leader-exit path runs too.
 */
import type { ChildProcess } from 'node:child_process';
import {
  call,
  cannotRunBerthd,
  cgroupsUsable,
  connect,
  fdCount,
  isRoot,
  leftoverScopes,
  waitFor,
  listAll,
  machineSocket,
  mib,
  removeScopes,
  rmrf,
  rssKiB,
  sleeper,
  startBerthd,
  tempRuntime,
  userdbSocket,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import { rng } from './kill9.js';

export interface LongRunOptions extends ScenarioOptions {
  durationMs?: number;
  seed?: number;
}

export async function runLongRun(opts: LongRunOptions): Promise<ScenarioResult> {
  const name = 'long-run';
  const why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (berthd creates cgroup scopes)');
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const duration = opts.durationMs ?? (opts.short ? 45_000 : 30 * 60_000);
  const seed = opts.seed ?? Date.now() % 1_000_000;
  const random = rng(seed);
  const prefix = `slr${process.pid}`;
  const runtime = tempRuntime('long');
  const failures: string[] = [];
  const notes: string[] = [];
  const slots = 64;
  const leaders: (ChildProcess & { pid: number })[] = Array.from({ length: slots }, () => sleeper());
  const registered: (string | undefined)[] = new Array(slots).fill(undefined);
  const b = await startBerthd(runtime, { logLevel: 'warn' });
  const counts: Record<string, number> = {};
  const unexpected: string[] = [];
  try {
    const workers = 4;
    const clients = await Promise.all(Array.from({ length: workers }, () => connect(machineSocket(runtime))));
    const udb = await connect(userdbSocket(runtime));
    const samples: { t: string; rss: number; fds: number }[] = [];
    let gen = 0;
    const step = async (w: number) => {
      const c = clients[w]!;
      const slot = w + workers * Math.floor(random() * (slots / workers));
      const m = registered[slot];
      const r = random();
      let op: string;
      let out;
      if (!m) {
        op = 'register';
        const nm = `${prefix}g${gen++}`;
        out = await call(c, 'io.systemd.Machine.Register', { name: nm, class: 'container', leader: leaders[slot]!.pid, allocateUnit: true });
        if ('ok' in out) registered[slot] = nm;
      } else if (r < 0.5) {
        op = 'lookup';
        out = await call(c, 'io.systemd.Machine.List', random() < 0.5 ? { name: m } : { pid: { pid: leaders[slot]!.pid } });
      } else if (r < 0.6) {
        op = 'userdb';
        out = await call(udb, 'io.systemd.UserDatabase.GetUserRecord', { uid: 1000 + Math.floor(random() * 100), service: 'io.systemd.Machine' });
        if ('error' in out && out.error === 'io.systemd.UserDatabase.NoRecordFound') out = { ok: {} };
      } else if (r < 0.65) {
        op = 'list-all';
        await listAll(c);
        out = { ok: {} };
      } else if (r < 0.95) {
        op = 'unregister';
        out = await call(c, 'io.systemd.Machine.Unregister', { name: m });
        registered[slot] = undefined;
      } else {
        op = 'terminate';
        const old = leaders[slot]!;
        out = await call(c, 'io.systemd.Machine.Terminate', { name: m });
        registered[slot] = undefined;
        if ('ok' in out) {
          await new Promise((res) => (old.exitCode !== null || old.signalCode !== null ? res(undefined) : old.once('exit', res)));
          leaders[slot] = sleeper();
        }
      }
      counts[op] = (counts[op] ?? 0) + 1;
      if ('error' in out && unexpected.length < 10) unexpected.push(`${op} ${m ?? ''}: ${out.error} ${JSON.stringify(out.parameters)}`);
      if ('error' in out) counts.errors = (counts.errors ?? 0) + 1;
    };
    // Traffic runs in segments; between them every worker stops, every machine is unregistered and
    // berthd is sampled at rest, so open fds compare like with like (a registered machine holds a
    // pidfd, a connection a socket). Samples: after warm-up, at the middle, at the end.
    const segment = async (ms: number) => {
      const until = Date.now() + ms;
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        while (Date.now() < until) await step(w);
      }));
    };
    const quiesce = async (t: string) => {
      for (let i = 0; i < slots; i++) {
        const m = registered[i];
        if (!m) continue;
        const r = await call(clients[0]!, 'io.systemd.Machine.Unregister', { name: m });
        if ('error' in r && unexpected.length < 10) unexpected.push(`unregister ${m} at rest: ${r.error}`);
        registered[i] = undefined;
      }
      const c = await connect(machineSocket(runtime));
      const left = (await listAll(c)).length - 1;
      c.close();
      if (left !== 0) failures.push(`${left} machines still listed at rest (${t})`);
      samples.push({ t, rss: rssKiB(b.pid), fds: fdCount(b.pid) });
    };
    const start = Date.now();
    const warmMs = Math.min(5000, duration / 10);
    await segment(warmMs);
    await quiesce('start');
    await segment((duration - warmMs) / 2);
    await quiesce('middle');
    opts.log(`long-run: middle, ${JSON.stringify(counts)}`);
    await segment((duration - warmMs) / 2);
    await quiesce('end');
    const [s0, s1, s2] = samples as [typeof samples[0], typeof samples[0], typeof samples[0]];
    if (s2.fds > s0.fds + 2) failures.push(`open fds at rest grew from ${s0.fds} to ${s2.fds}`);
    // RSS: the first half includes V8 warming up (JIT code, heap sizing); a leak shows as growth
    // from the middle to the end. Beyond 10% and 8 MiB counts.
    if (s2.rss > s1.rss * 1.1 && s2.rss - s1.rss > 8 * 1024) failures.push(`RSS grew from ${mib(s1.rss)} MiB at the middle to ${mib(s2.rss)} MiB at the end`);
    if (unexpected.length) notes.push(...unexpected.map((u) => `unexpected error: ${u}`));
    if ((counts.errors ?? 0) > 0) failures.push(`${counts.errors} calls failed unexpectedly`);
    for (const c of clients) c.close();
    udb.close();
    // Every leader gone, no machine registered: no scope of this run should be left in machine.slice.
    for (const l of leaders) l.kill('SIGKILL');
    await Promise.all(leaders.map((l) => (l.exitCode !== null || l.signalCode !== null ? undefined : new Promise((r) => l.once('exit', r)))));
    await waitFor(() => leftoverScopes(prefix).length === 0, 'empty scopes to go', 5000).catch(() => undefined);
    const scopesLeft = leftoverScopes(prefix).length;
    if (scopesLeft > 0) {
      failures.push(`${scopesLeft} empty scope directories of this run were left in machine.slice (all machines unregistered, all leaders dead)`);
      notes.push(
        'empty scopes: Register with allocateUnit creates machine-NAME.scope; after Unregister berthd forgets it, so when the leader ' +
          'later exits (or moves to another machine\'s scope) nothing removes the directory. Reproduce: Register {name: a, leader: L, ' +
          'allocateUnit: true}; Unregister {name: a}; kill L → machine.slice/machine-a.scope stays, empty, in every hierarchy.',
      );
    }
    const total = Object.entries(counts).filter(([k]) => k !== 'errors').reduce((a, [, n]) => a + n, 0);
    return {
      name,
      figures: {
        seconds_run: Math.round((Date.now() - start) / 1000),
        calls: total,
        'rss-MiB': `${mib(s0.rss)}/${mib(s1.rss)}/${mib(s2.rss)}`,
        fds: `${s0.fds}/${s1.fds}/${s2.fds}`,
        'empty-scopes-left': scopesLeft,
        ops: Object.entries(counts)
          .map(([k, n]) => `${k}:${n}`)
          .join(','),
      },
      failures,
      notes,
    };
  } finally {
    for (const l of leaders) l.kill('SIGKILL');
    await Promise.all(leaders.map((l) => (l.exitCode !== null || l.signalCode !== null ? undefined : new Promise((r) => l.once('exit', r)))));
    await b.stop();
    removeScopes(prefix);
    rmrf(runtime);
  }
}
