/**
 * io.systemd.UserDatabase for user-namespaced machines: GetUserRecord by uid and by name on one connection,
 * 16 pipelined and 4 connections, and misses (berth vs machined 257, 262 and a baseline commit), and berth's lookup latency with 1,000 such machines
 * against 1. Each leader is a fork in its own user namespace mapping 0 → a distinct base (65536 ids).
 */
import type { BenchContext } from '../lib/context.js';
import { LeaderSet, Scopes } from '../lib/leaders.js';
import { byPeer, interleaved, latencies } from '../lib/loadgen.js';
import { describe, registerAll, unregisterAll, type MachineSpec } from '../lib/machines.js';
import { micros, rate } from '../lib/report.js';
import { Berthd, callOnce, serverPid, USERDB_SERVICE } from '../lib/servers.js';
import { errorText, pidHeadroom } from '../lib/util.js';

const GET_USER = 'io.systemd.UserDatabase.GetUserRecord';
/** uid bases: berth's machines from 0x68000000 up, each peer's (257, 262, baseline) clear of them and each other. */
const BERTH_BASE = 0x6800_0000;
const PEER_BASES = [0x6c00_0000, 0x6400_0000, 0x6000_0000];
const STEP = 0x1_0000;

const MODES = [
  { id: '1conn', connections: 1, pipeline: 1, min: 1.5 },
  { id: 'pipe16', connections: 1, pipeline: 16, min: 4 },
  { id: '4conn', connections: 4, pipeline: 1, min: 2 },
] as const;
const KINDS = ['uid', 'name'] as const;

export const USERDB_SCENARIOS = [
  ...KINDS.flatMap((k) => MODES.map((m) => `userdb.${k}.${m.id}`)),
  'userdb.miss.1conn',
  'userdb.miss.pipe16',
  'userdb.scale.uid',
  'userdb.scale.name',
];

type Kind = (typeof KINDS)[number];

function lookup(kind: Kind, m: MachineSpec, base: number): object {
  return kind === 'uid' ? { uid: base, service: USERDB_SERVICE } : { userName: `vu-${m.name}-0`, service: USERDB_SERVICE };
}

/** One call, to fail early with the server's answer when lookups do not work at all. */
async function probe(socket: string, params: object, expectName: string, who: string): Promise<void> {
  let reply: Record<string, unknown>;
  try {
    reply = await callOnce(socket, GET_USER, params);
  } catch (e) {
    throw new Error(`${who}: GetUserRecord ${JSON.stringify(params)} failed: ${describe(e)}`);
  }
  const rec = reply.record as { userName?: string } | undefined;
  if (rec?.userName !== expectName) throw new Error(`${who}: GetUserRecord ${JSON.stringify(params)} returned ${JSON.stringify(reply).slice(0, 200)}`);
}

export async function userdbScenarios(ctx: BenchContext): Promise<void> {
  if (!ctx.anySelected(USERDB_SCENARIOS)) return;
  const r = ctx.report;
  const scaleWanted = ctx.anySelected(['userdb.scale.uid', 'userdb.scale.name']);
  const total = scaleWanted ? (ctx.quick ? 200 : 1000) : 1;
  const failAll = (why: string) => {
    for (const n of USERDB_SCENARIOS) if (ctx.selected(n) && !r.rows.some((row) => row.scenario === n)) r.fail(n, why);
  };
  if (pidHeadroom() < total + 2000) return failAll(`too few free PIDs for ${total} leaders (kernel.pid_max)`);

  // berthd `one` holds one userns machine (compared with each peer, which holds one too); berthd `many`
  // holds all of them, for the latency at scale, measured alternately with `one`.
  let one: Berthd | undefined;
  let many: Berthd | undefined;
  let bLeaders: LeaderSet | undefined;
  const pLeaders: LeaderSet[] = [];
  const scopes = new Scopes();
  const registered: { socket: string; name: string }[] = [];
  try {
    const peers = await ctx.peers();
    one = await Berthd.start();
    bLeaders = await LeaderSet.spawn(total, { base: BERTH_BASE, step: STEP });
    const berthMachines = bLeaders.pids.map((leader, i) => ({ name: `bn-${ctx.run}-u${i}`, leader }));
    const peerMachines: MachineSpec[] = [];
    for (const [k, p] of peers.entries()) {
      const l = await LeaderSet.spawn(1, { base: PEER_BASES[k]!, step: STEP });
      pLeaders.push(l);
      peerMachines.push({ name: `bn-${ctx.run}-${p.label}u`, leader: l.pids[0]! });
    }
    for (const m of [...berthMachines, ...peerMachines]) scopes.add(m.name, m.leader);

    const first = berthMachines[0]!;
    await registerAll(one.socket, [first]);
    for (const [k, p] of peers.entries()) {
      await registerAll(p.socket, [peerMachines[k]!]);
      registered.push({ socket: p.socket, name: peerMachines[k]!.name });
    }
    for (const kind of KINDS) {
      await probe(one.userdbSocket, lookup(kind, first, BERTH_BASE), `vu-${first.name}-0`, 'berth');
      for (const [k, p] of peers.entries()) {
        await probe(p.userdbSocket, lookup(kind, peerMachines[k]!, PEER_BASES[k]!), `vu-${peerMachines[k]!.name}-0`, p.label);
      }
    }

    const o = { method: GET_USER, duration: ctx.duration, warmup: ctx.warmup, scratch: ctx.scratch };
    for (const kind of KINDS) {
      for (const mode of MODES) {
        const name = `userdb.${kind}.${mode.id}`;
        if (!ctx.selected(name)) continue;
        try {
          const shape = { connections: mode.connections, pipeline: mode.pipeline };
          const [rb, ...rp] = await interleaved(ctx.rounds, [
            { ...o, ...shape, socket: one.userdbSocket, pid: one.pid, params: lookup(kind, first, BERTH_BASE) },
            ...peers.map((p, k) => ({ ...o, ...shape, socket: p.userdbSocket, pid: p.pid(), params: lookup(kind, peerMachines[k]!, PEER_BASES[k]!) })),
          ]);
          r.versus(name, rb!.rate, byPeer(peers, rp, (x) => x.rate), mode.min, latencies(rb!, peers, rp, micros));
        } catch (e) {
          r.fail(name, errorText(e));
        }
      }
    }

    // The most frequent lookup of all: NSS asks every userdb service about every host user (ls -l,
    // ps, id), and machined's and berth's answer is NoRecordFound.
    for (const mode of MODES.filter((m) => m.id !== '4conn')) {
      const name = `userdb.miss.${mode.id}`;
      if (!ctx.selected(name)) continue;
      try {
        const shape = { connections: mode.connections, pipeline: mode.pipeline, allowErrors: true };
        const params = { uid: 0, service: USERDB_SERVICE };
        const [rb, ...rp] = await interleaved(ctx.rounds, [one, ...peers].map((s) => ({ ...o, ...shape, socket: s.userdbSocket, pid: serverPid(s), params })));
        r.versus(name, rb!.rate, byPeer(peers, rp, (x) => x.rate), 1.0, `GetUserRecord uid 0 → NoRecordFound; ${latencies(rb!, peers, rp, micros)}`);
      } catch (e) {
        r.fail(name, errorText(e));
      }
    }

    if (scaleWanted) {
      many = await Berthd.start();
      const regSeconds = await registerAll(many.socket, berthMachines);
      const last = berthMachines[total - 1]!;
      await probe(many.userdbSocket, lookup('uid', last, BERTH_BASE + (total - 1) * STEP), `vu-${last.name}-0`, 'berth');
      for (const kind of KINDS) {
        const name = `userdb.scale.${kind}`;
        if (!ctx.selected(name)) continue;
        const [small, large] = await interleaved(ctx.rounds, [
          { ...o, socket: one.userdbSocket, params: lookup(kind, first, BERTH_BASE) },
          { ...o, socket: many.userdbSocket, params: berthMachines.map((m, i) => lookup(kind, m, BERTH_BASE + i * STEP)) },
        ]);
        r.scaling(name, large!.p50_us, small!.p50_us, 1.2, '1', micros,
          `p50, ${total} userns machines, lookups over all in turn; p99 ${micros(large!.p99_us)} vs ${micros(small!.p99_us)}; registered in ${regSeconds.toFixed(1)} s (${rate(total / regSeconds, 'Register/s')})`);
      }
      if (!many.alive) throw new Error(`berthd died: ${many.logTail()}`);
    }
    if (!one.alive) throw new Error(`berthd died: ${one.logTail()}`);
  } catch (e) {
    failAll(errorText(e));
  } finally {
    for (const m of registered) await unregisterAll(m.socket, [m.name]);
    await one?.stop();
    await many?.stop();
    await bLeaders?.close();
    for (const l of pLeaders) await l.close();
    await scopes.close();
  }
}
