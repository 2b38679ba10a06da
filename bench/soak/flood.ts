/**
 * Scenario 4, flood: with ~2,000 machines registered, berthd gets
 *   - 4,096 connection attempts from one unprivileged user (berth-test, else nobody): at most
 *     1,024 may be served (the per-uid limit), the rest refused;
 *   - 100 clients (as nobody) that write a call one byte per second;
 *   - 50 clients that ask `List` with `more` and never read the stream;
 *   - root connections filling up towards the global limit of 4,096;
 * while a separate client keeps doing GetInfo, List-by-name, List-by-pid and userdb lookups.
 * Figures: that client's p50/p99/max latency before and during the flood (goal p99 ≤ 5 ms),
 * berthd's peak RSS (VmHWM), and what each swarm saw.
 */
import {
  call,
  cannotRunBerthd,
  cgroupsUsable,
  connect,
  isRoot,
  LeaderPool,
  lookupUser,
  machineSocket,
  mib,
  peakRssKiB,
  percentile,
  removeScopes,
  rmrf,
  rssKiB,
  startBerthd,
  tempRuntime,
  userdbSocket,
  fdCount,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import { Swarm } from './swarm.js';
import { spawnSync } from 'node:child_process';
import type { VarlinkClient } from '../../src/varlink/client.js';

export interface FloodOptions extends ScenarioOptions {
  machines?: number;
  measureMs?: number;
}

const P99_GOAL_MS = 5;

async function measure(c: VarlinkClient, u: VarlinkClient, names: string[], pids: number[], ms: number): Promise<{ lat: number[]; errors: string[] }> {
  const lat: number[] = [];
  const errors: string[] = [];
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    const k = i % names.length;
    const t0 = process.hrtime.bigint();
    const r =
      i % 4 === 0
        ? await call(c, 'org.varlink.service.GetInfo', {}, 10_000)
        : i % 4 === 1
          ? await call(c, 'io.systemd.Machine.List', { name: names[k] }, 10_000)
          : i % 4 === 2
            ? await call(c, 'io.systemd.Machine.List', { pid: { pid: pids[k] } }, 10_000)
            : await call(u, 'io.systemd.UserDatabase.GetUserRecord', { userName: 'vu-nosuch-0', service: 'io.systemd.Machine' }, 10_000);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if ('error' in r && r.error !== 'io.systemd.UserDatabase.NoRecordFound' && errors.length < 5) errors.push(`${r.error} ${JSON.stringify(r.parameters)}`);
  }
  return { lat: lat.sort((a, b) => a - b), errors };
}

const fmt = (lat: number[]) => `${percentile(lat, 50).toFixed(2)}/${percentile(lat, 99).toFixed(2)}/${(lat[lat.length - 1] ?? NaN).toFixed(1)}`;

export async function runFlood(opts: FloodOptions): Promise<ScenarioResult> {
  const name = 'flood';
  const flooder = lookupUser('berth-test') ?? lookupUser('nobody');
  const slowUser = lookupUser('nobody') ?? flooder;
  let why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (runs clients as other users, creates scopes)');
  if (!why && !flooder) why = 'neither berth-test nor nobody exists';
  if (!why && spawnSync('setpriv', ['--version']).status !== 0) why = 'setpriv (util-linux) is not installed';
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const n = opts.machines ?? (opts.short ? 1000 : 2000);
  const measureMs = opts.measureMs ?? (opts.short ? 15_000 : 60_000);
  const prefix = `sfl${process.pid}`;
  const runtime = tempRuntime('flood');
  const socket = machineSocket(runtime);
  const failures: string[] = [];
  const notes: string[] = [];
  const b = await startBerthd(runtime, { logLevel: 'warn' });
  let leaders: LeaderPool | undefined;
  const swarms: Swarm[] = [];
  try {
    leaders = await LeaderPool.spawn(n);
    const names = leaders.pids.map((_, i) => `${prefix}m${i}`);
    const regs = await Promise.all(Array.from({ length: 8 }, () => connect(socket)));
    await Promise.all(
      regs.map(async (c, w) => {
        for (let i = w; i < n; i += regs.length) {
          const r = await call(c, 'io.systemd.Machine.Register', { name: names[i], class: 'container', leader: leaders!.pids[i], allocateUnit: true }, 30_000);
          if (!('ok' in r)) throw new Error(`Register ${names[i]} failed: ${JSON.stringify(r)}`);
        }
      }),
    );
    for (const c of regs) c.close();
    opts.log(`flood: ${n} machines registered, RSS ${mib(rssKiB(b.pid))} MiB`);

    const c = await connect(socket, 10_000);
    const u = await connect(userdbSocket(runtime), 10_000);
    const base = await measure(c, u, names, leaders.pids, Math.min(5000, measureMs / 3));

    // The flood.
    const perUid = Swarm.start('connect', socket, 4096, flooder);
    swarms.push(perUid);
    const perUidReady = await perUid.report(120_000);
    const slow = Swarm.start('slow', socket, 100, slowUser);
    const noread = Swarm.start('noread', socket, 50);
    swarms.push(slow, noread);
    const slowReady = await slow.report();
    const noreadReady = await noread.report();
    const rootFill = 4096 - perUidReady.accepted - slowReady.open - noreadReady.open - 16;
    const fill = Swarm.start('connect', socket, Math.max(0, rootFill));
    swarms.push(fill);
    const fillReady = await fill.report(120_000);
    const fdsDuring = fdCount(b.pid);
    opts.log(
      `flood: per-uid ${perUidReady.accepted} served/${perUidReady.refused} refused, slow ${slowReady.open}, noread ${noreadReady.open}, root fill ${fillReady.accepted}/${rootFill}; berthd fds ${fdsDuring}`,
    );
    const during = await measure(c, u, names, leaders.pids, measureMs);
    const peak = peakRssKiB(b.pid);
    const ends = await Promise.all(swarms.map((s) => s.finish()));
    const after = await call(c, 'org.varlink.service.GetInfo');
    c.close();
    u.close();

    const p99 = percentile(during.lat, 99);
    if (perUidReady.accepted > 1024) failures.push(`uid ${flooder!.uid} got ${perUidReady.accepted} connections served; the per-uid limit is 1024`);
    if (perUidReady.accepted < 1000) failures.push(`uid ${flooder!.uid} got only ${perUidReady.accepted} connections served (expected the limit, 1024)`);
    if (fillReady.accepted < rootFill - 8) failures.push(`root got only ${fillReady.accepted} of ${rootFill} connections below the global limit`);
    if (p99 > P99_GOAL_MS) failures.push(`p99 lookup latency during the flood is ${p99.toFixed(2)} ms (goal ≤ ${P99_GOAL_MS} ms)`);
    if (during.errors.length || base.errors.length) failures.push(`lookups failed: ${[...base.errors, ...during.errors].join('; ')}`);
    if (!('ok' in after)) failures.push('berthd did not answer after the flood');
    notes.push(`swarm end reports: ${ends.map((e) => JSON.stringify(e)).join(' ')}`);
    return {
      name,
      figures: {
        machines: n,
        'uid-flood': `${perUidReady.accepted}served/${perUidReady.refused}refused/${perUidReady.errors}connect-errors`,
        'root-fill': `${fillReady.accepted}/${rootFill}`,
        'slow-open': `${slowReady.open}→${ends[1]?.open ?? '?'}`,
        'noread-open': `${noreadReady.open}→${ends[2]?.open ?? '?'}`,
        'lookups-before': base.lat.length,
        'lat-before-p50/p99/max-ms': fmt(base.lat),
        lookups: during.lat.length,
        'lat-p50/p99/max-ms': fmt(during.lat),
        'peak-rss-MiB': mib(peak),
        'fds-during': fdsDuring,
      },
      failures,
      notes,
    };
  } finally {
    for (const s of swarms) s.child.kill('SIGKILL');
    await leaders?.kill();
    await b.stop();
    removeScopes(prefix);
    rmrf(runtime);
  }
}
