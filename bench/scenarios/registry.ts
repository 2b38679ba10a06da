/**
 * The machine registry: List of one machine by name (berth vs machined), berthd with 10,000 machines
 * (RSS, lookups by name and pid against 10 machines, the full List stream, how fast dead leaders are
 * dropped), and Register+Unregister cycles (one caller and 16 at once). Leaders are forked by dist/bench/leaders and put into scopes
 * made here, so both servers see a unit-shaped cgroup and are asked with allocateUnit unset.
 */
import { performance } from 'node:perf_hooks';
import { VarlinkClient } from '../../src/varlink/client.js';
import type { BenchContext } from '../lib/context.js';
import { LeaderSet, Scopes } from '../lib/leaders.js';
import { byPeer, cpuMicros, interleaved, latencies, type LoadResult } from '../lib/loadgen.js';
import { listStream, registerAll, registerCycles, unregisterAll, type MachineSpec } from '../lib/machines.js';
import { megabytes, micros, millis, rate } from '../lib/report.js';
import { Berthd, type Peer } from '../lib/servers.js';
import { errorText, median, pidHeadroom, rssBytes, sleep } from '../lib/util.js';

export const REGISTRY_SCENARIOS = [
  'registry.list-name',
  'registry.register-cycle',
  'registry.register-cycle.16',
  'registry.scale.rss',
  'registry.scale.list-name',
  'registry.scale.list-pid',
  'registry.scale.list-more',
  'registry.scale.leader-exit',
];

const LIST = 'io.systemd.Machine.List';

export async function registryScenarios(ctx: BenchContext): Promise<void> {
  const r = ctx.report;
  const guarded = async (names: string[], body: () => Promise<void>) => {
    if (!ctx.anySelected(names)) return;
    try {
      await body();
    } catch (e) {
      for (const n of names) if (ctx.selected(n) && !r.rows.some((row) => row.scenario === n)) r.fail(n, errorText(e));
    }
  };

  await guarded(['registry.list-name'], () => listOne(ctx));
  for (const mode of CYCLE_MODES) await guarded([`registry.${mode.id}`], () => cycles(ctx, mode));
  await guarded(REGISTRY_SCENARIOS.filter((n) => n.startsWith('registry.scale.')), () => scale(ctx));
}

/**
 * `n` leaders for berth and for each peer, each in its own scope; registered when `register`; `body` runs
 * while they exist.
 */
async function withMachines(
  ctx: BenchContext,
  tag: string,
  n: number,
  register: boolean,
  body: (b: { berthd: Berthd; berth: MachineSpec[]; peers: Peer[]; peerMachines: MachineSpec[][] }) => Promise<void>,
): Promise<void> {
  const berthd = await ctx.berthd();
  const peers = await ctx.peers();
  const leaders = await LeaderSet.spawn((1 + peers.length) * n);
  const scopes = new Scopes();
  const names = (who: string, k: number) => leaders.pids.slice(k * n, (k + 1) * n).map((leader, i) => ({ name: `bn-${ctx.run}-${who}${tag}${i}`, leader }));
  const berth = names('b', 0);
  const peerMachines = peers.map((p, k) => names(`m${p.label}`, k + 1));
  try {
    for (const m of [...berth, ...peerMachines.flat()]) scopes.add(m.name, m.leader);
    if (register) {
      await registerAll(berthd.socket, berth);
      for (const [k, p] of peers.entries()) await registerAll(p.socket, peerMachines[k]!);
    }
    await body({ berthd, berth, peers, peerMachines });
  } finally {
    await unregisterAll(berthd.socket, berth.map((m) => m.name));
    for (const [k, p] of peers.entries()) await unregisterAll(p.socket, peerMachines[k]!.map((m) => m.name));
    await leaders.close();
    await scopes.close();
  }
}

async function listOne(ctx: BenchContext): Promise<void> {
  await withMachines(ctx, 'l', 1, true, async ({ berthd, berth, peers, peerMachines }) => {
    const o = { method: LIST, duration: ctx.duration, warmup: ctx.warmup, scratch: ctx.scratch };
    const [rb, ...rp] = await interleaved(ctx.rounds, [
      { ...o, socket: berthd.socket, pid: berthd.pid, params: { name: berth[0]!.name } },
      ...peers.map((p, k) => ({ ...o, socket: p.socket, pid: p.pid(), params: { name: peerMachines[k]![0]!.name } })),
    ]);
    ctx.report.versus('registry.list-name', rb!.rate, byPeer(peers, rp, (x) => x.rate), 1.2, latencies(rb!, peers, rp, micros));
  });
}

const CYCLE_MODES = [
  { id: 'register-cycle', callers: 1, perCaller: 4, what: 'one connection, one call at a time, 4 machines in turn' },
  { id: 'register-cycle.16', callers: 16, perCaller: 2, what: '16 connections at once, each one call at a time over 2 machines of its own' },
] as const;

async function cycles(ctx: BenchContext, mode: (typeof CYCLE_MODES)[number]): Promise<void> {
  const tag = mode.callers > 1 ? 'C' : 'c';
  await withMachines(ctx, tag, mode.callers * mode.perCaller, false, async ({ berthd, berth, peers, peerMachines }) => {
    const sockets = [berthd.socket, ...peers.map((p) => p.socket)];
    const machines = [berth, ...peerMachines];
    const pids = [berthd.pid, ...peers.map((p) => p.pid())];
    const runs: { rate: number; retries: number }[][] = sockets.map(() => []);
    /** Server CPU time and cycles over all rounds, for CPU µs per cycle. */
    const cpu = sockets.map(() => ({ us: 0, cycles: 0, known: true }));
    // Alternating rounds, as interleaved() does for the load generator.
    for (let round = 0; round < ctx.rounds; round++) {
      for (const [k, socket] of sockets.entries()) {
        const pid = pids[k];
        const c0 = pid === undefined ? undefined : cpuMicros(pid);
        const run = await registerCyclesConcurrent(socket, machines[k]!, mode.callers, ctx.duration, ctx.warmup);
        const c1 = pid === undefined ? undefined : cpuMicros(pid);
        runs[k]!.push(run);
        if (c0 === undefined || c1 === undefined) cpu[k]!.known = false;
        else {
          cpu[k]!.us += c1 - c0;
          cpu[k]!.cycles += run.rate * ctx.duration;
        }
      }
    }
    const cpuText = (k: number) => (cpu[k]!.known && cpu[k]!.cycles > 0 ? (cpu[k]!.us / cpu[k]!.cycles).toFixed(0) : '?');
    const cpuNote = `; server CPU µs/cycle ${cpuText(0)}${peers.map((p, i) => ` vs ${p.label} ${cpuText(i + 1)}`).join('')}`;
    const med = runs.map((rs) => ({ rate: median(rs.map((r) => r.rate)), retries: rs.reduce((a, r) => a + r.retries, 0) }));
    const retried = med.some((m) => m.retries) ? `; Register retried on MachineExists: ${med.map((m) => m.retries).join('/')}` : '';
    ctx.report.versus(
      `registry.${mode.id}`,
      med[0]!.rate,
      byPeer(peers, med.slice(1), (x) => x.rate),
      1.0,
      `${mode.what}${retried}${cpuNote}`,
      (v) => rate(v, 'cycles/s'),
    );
  });
}

/** `callers` connections cycling Register+Unregister at once, each over its own share of `machines`. */
async function registerCyclesConcurrent(
  socket: string,
  machines: MachineSpec[],
  callers: number,
  seconds: number,
  warmup: number,
): Promise<{ rate: number; retries: number }> {
  const per = Math.floor(machines.length / callers);
  const results = await Promise.all(
    Array.from({ length: callers }, (_, i) => registerCycles(socket, machines.slice(i * per, (i + 1) * per), seconds, warmup)),
  );
  return { rate: results.reduce((a, r) => a + r.rate, 0), retries: results.reduce((a, r) => a + r.retries, 0) };
}

/** Evenly spread sample of at most `n` entries. */
function spread<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]!);
}

async function scale(ctx: BenchContext): Promise<void> {
  const r = ctx.report;
  const wanted = ctx.quick ? 2_000 : 10_000;
  const headroom = pidHeadroom() - 2_000;
  const total = Math.min(wanted, headroom);
  if (total < 100) throw new Error(`only ${headroom + 2000} free PIDs (kernel.pid_max); cannot fork ${wanted} leaders`);
  const label = total >= 1000 ? `${total / 1000}k` : String(total);
  const shortfall = total < wanted ? `; only ${total} of ${wanted} leaders: kernel.pid_max leaves too few free PIDs` : '';

  // Two berthds side by side, one with 10 machines and one with all of them, measured alternately so that
  // the host's other load weighs on both alike.
  const small = await Berthd.start();
  let berthd: Berthd | undefined;
  let leaders: LeaderSet | undefined;
  const scopes = new Scopes();
  try {
    berthd = await Berthd.start();
    const t0 = performance.now();
    leaders = await LeaderSet.spawn(total);
    const machines = leaders.pids.map((leader, i) => ({ name: `bn-${ctx.run}-s${i}`, leader }));
    for (const m of machines) scopes.add(m.name, m.leader);
    const setupSeconds = (performance.now() - t0) / 1000;

    const ten = machines.slice(0, 10);
    await registerAll(small.socket, ten);
    const regSeconds = await registerAll(berthd.socket, machines);
    const count = (await listStream(berthd.socket)).entries - 1;
    if (count !== total) throw new Error(`berthd lists ${count} machines after registering ${total}`);
    await sleep(500);
    const rss10 = rssBytes(small.pid);
    const rssLarge = rssBytes(berthd.pid);

    const o = { method: LIST, duration: ctx.duration, warmup: ctx.warmup, scratch: ctx.scratch };
    const sample = spread(machines, 1000);
    const [name10, nameLarge] = await interleaved(ctx.rounds, [
      { ...o, socket: small.socket, params: ten.map((m) => ({ name: m.name })) },
      { ...o, socket: berthd.socket, params: sample.map((m) => ({ name: m.name })) },
    ]);
    const [pid10, pidLarge] = await interleaved(ctx.rounds, [
      { ...o, socket: small.socket, params: ten.map((m) => ({ pid: { pid: m.leader } })) },
      { ...o, socket: berthd.socket, params: sample.map((m) => ({ pid: { pid: m.leader } })) },
    ]);
    const streams: number[] = [];
    for (let i = 0; i < 3; i++) streams.push((await listStream(berthd.socket)).seconds);
    streams.sort((a, b) => a - b);

    const regNote = `registered ${total} in ${regSeconds.toFixed(1)} s (${rate(total / regSeconds, 'Register/s')}, 64 in flight); leaders+scopes took ${setupSeconds.toFixed(1)} s${shortfall}`;
    if (ctx.selected('registry.scale.rss')) {
      r.absolute('registry.scale.rss', {
        berth: rssLarge,
        format: megabytes,
        target: 120 * 1024 * 1024,
        atMost: true,
        note: `${label} machines; with 10: ${megabytes(rss10)}; ${regNote}`,
      });
    }
    const p99 = (large: LoadResult, ten: LoadResult) => `p50, ${label} machines (1,000 of them in turn) vs 10; p99 ${micros(large.p99_us)} vs ${micros(ten.p99_us)}`;
    if (ctx.selected('registry.scale.list-name')) r.scaling('registry.scale.list-name', nameLarge!.p50_us, name10!.p50_us, 1.2, '10', micros, p99(nameLarge!, name10!));
    if (ctx.selected('registry.scale.list-pid')) r.scaling('registry.scale.list-pid', pidLarge!.p50_us, pid10!.p50_us, 1.2, '10', micros, p99(pidLarge!, pid10!));
    if (ctx.selected('registry.scale.list-more')) {
      r.info('registry.scale.list-more', millis(streams[1]! * 1000), {}, `List --more of ${total + 1} entries (incl. .host), median of 3`);
    }

    // Every leader dies at once: how long until berthd has dropped them all.
    const tKill = performance.now();
    await leaders.close();
    const dropped = await waitDropped(berthd.socket, machines, 60_000);
    if (ctx.selected('registry.scale.leader-exit')) {
      r.info(
        'registry.scale.leader-exit',
        dropped === undefined ? 'not within 60 s' : millis(performance.now() - tKill),
        {},
        `all ${total} leaders SIGKILLed at once until List shows only .host`,
      );
    }
    if (!berthd.alive) throw new Error(`berthd died: ${berthd.logTail()}`);
  } finally {
    await leaders?.close();
    await berthd?.stop();
    await small.stop();
    await scopes.close();
  }
}

/**
 * Waits until berthd has dropped every machine: polls a sample of 100 names spread over all of them
 * (pipelined List calls, cheap next to streaming 10,000 entries), then confirms with the full stream.
 * Undefined on timeout.
 */
async function waitDropped(socket: string, machines: MachineSpec[], timeoutMs: number): Promise<true | undefined> {
  const deadline = Date.now() + timeoutMs;
  const sample = spread(machines, 100).concat(machines.slice(-1));
  const c = await VarlinkClient.connect(`unix:${socket}`, { timeout: timeoutMs });
  try {
    while (Date.now() < deadline) {
      const alive = await Promise.all(
        sample.map((m) => c.callRaw(LIST, { name: m.name }).then(() => true, () => false)),
      );
      if (!alive.some(Boolean)) {
        let n = 0;
        for await (const _ of c.moreRaw(LIST, {})) n++;
        if (n <= 1) return true;
      }
      await sleep(50);
    }
    return undefined;
  } finally {
    c.close();
  }
}
