/**
 * Scenario 6, pid-reuse: a leader dies and a new process gets the same PID; lookups by pid, List
 * and Kill must never reach the new process.
 *
 * The reuse is forced with ns_last_pid, so berthd runs inside a new pid namespace
 * (`unshare --pid --fork --mount-proc`) whose PID 1 is a small shell that takes commands on stdin:
 * it starts and kills berthd and leaders, and forks a process at a chosen pid. Clients talk to
 * berthd from outside over its socket. Three rounds:
 *   live     – berthd sees the leader exit; then the pid is reused
 *   stopped  – berthd is SIGSTOPped while the leader dies and the pid is reused, then continued and
 *              asked at once (the exit notification and the calls race)
 *   restart  – berthd is SIGKILLed, the leader dies, the pid is reused, berthd restarts from state
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  BERTHD,
  BERTHD_NODE_ARGS,
  call,
  cannotRunBerthd,
  cgroupsUsable,
  connect,
  exited,
  isRoot,
  listAll,
  machineSocket,
  removeScopes,
  rmrf,
  tempRuntime,
  waitFor,
  ChildLines,
  type Outcome,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import { VarlinkClient } from '../../src/varlink/client.js';

const HELPER = `
start() { "$NODE" $NODE_ARGS "$BERTHD" --runtime-dir "$RUNTIME" --log-level warn 2>>"$RUNTIME/berthd.log" & B=$!; echo "berthd $B"; }
start
while read -r cmd arg; do
  case "$cmd" in
    spawn) sleep 100000 & echo "pid $!" ;;
    spawnat) echo $((arg - 1)) > /proc/sys/kernel/ns_last_pid && { sleep 100000 & echo "pid $!"; } || echo "pid -1" ;;
    kill) kill -9 "$arg"; wait "$arg" 2>/dev/null; echo "killed $arg" ;;
    alive) if kill -0 "$arg" 2>/dev/null; then echo "alive yes"; else echo "alive no"; fi ;;
    stop) kill -STOP "$B"; echo "stopped" ;;
    cont) kill -CONT "$B"; echo "continued" ;;
    killb) kill -9 "$B"; wait "$B" 2>/dev/null; echo "berthd-killed" ;;
    startb) start ;;
    *) echo "unknown $cmd" ;;
  esac
done
`;

class NsHelper {
  private readonly out: ChildLines;
  private constructor(readonly child: ChildProcess) {
    this.out = new ChildLines(child);
  }
  static start(runtime: string): NsHelper {
    const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', 'bash', '-c', HELPER], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, NODE: process.execPath, NODE_ARGS: BERTHD_NODE_ARGS.join(' '), BERTHD, RUNTIME: runtime },
    });
    return new NsHelper(child);
  }
  line(timeoutMs = 10_000): Promise<string> {
    return this.out.next(timeoutMs, 'the namespace helper', 'namespace helper exited');
  }
  async cmd(c: string): Promise<string> {
    this.child.stdin!.write(c + '\n');
    return this.line();
  }
  async spawnAt(pid: number, tries = 40): Promise<number> {
    for (let i = 0; i < tries; i++) {
      const got = Number((await this.cmd(`spawnat ${pid}`)).split(' ')[1]);
      if (got === pid) return got;
      if (got > 0) await this.cmd(`kill ${got}`);
    }
    return -1;
  }
  async alive(pid: number): Promise<boolean> {
    return (await this.cmd(`alive ${pid}`)) === 'alive yes';
  }
  async stop(): Promise<void> {
    this.child.stdin!.end();
    this.child.kill('SIGKILL');
    await exited(this.child, 10_000).catch(() => undefined);
  }
}

async function ready(socket: string): Promise<VarlinkClient> {
  return waitFor(async () => {
    try {
      const c = await connect(socket, 2000);
      const r = await call(c, 'org.varlink.service.GetInfo', {}, 2000);
      if ('ok' in r) return c;
      c.close();
    } catch {
      /* not yet */
    }
    return undefined;
  }, 'berthd in the pid namespace to answer', 20_000);
}

export async function runPidReuse(opts: ScenarioOptions): Promise<ScenarioResult> {
  const name = 'pid-reuse';
  let why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (pid namespaces, ns_last_pid)');
  if (!why && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0) why = 'unshare --pid --fork --mount-proc does not work here';
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const prefix = `spr${process.pid}`;
  const runtime = tempRuntime('pidreuse');
  const socket = machineSocket(runtime);
  const ns = NsHelper.start(runtime);
  const failures: string[] = [];
  const notes: string[] = [];
  let forced = 0;
  let wrongLookups = 0;
  let wrongList = 0;
  let killReached = 0;
  const rounds: string[] = [];
  try {
    await ns.line(); // "berthd PID"
    let c = await ready(socket);
    const leader = async () => Number((await ns.cmd('spawn')).split(' ')[1]);
    const register = async (m: string, pid: number) => {
      const r = await call(c, 'io.systemd.Machine.Register', { name: m, class: 'container', leader: pid, allocateUnit: true });
      if (!('ok' in r)) throw new Error(`Register ${m} (leader ${pid}) failed: ${JSON.stringify(r)}`);
      const l = await call(c, 'io.systemd.Machine.List', { pid: { pid } });
      if (!('ok' in l) || l.ok.name !== m) throw new Error(`lookup of the live leader ${pid} did not find ${m}: ${JSON.stringify(l)}`);
    };
    /** The checks after the pid was reused: nothing may point at the new process. */
    const check = async (round: string, m: string, pid: number, replies?: Outcome[]) => {
      const byPid = replies?.[0] ?? (await call(c, 'io.systemd.Machine.List', { pid: { pid } }));
      const kill1 = replies?.[1] ?? (await call(c, 'io.systemd.Machine.Kill', { name: m, whom: 'leader', signal: 15 }));
      const kill2 = replies?.[2] ?? (await call(c, 'io.systemd.Machine.Kill', { name: m, whom: 'all', signal: 15 }));
      const kill3 = await call(c, 'io.systemd.Machine.Kill', { pid: { pid }, whom: 'leader', signal: 15 });
      const list = await listAll(c);
      const bad: string[] = [];
      if ('ok' in byPid) {
        wrongLookups++;
        bad.push(`List {pid: ${pid}} resolved the new process to ${byPid.ok.name}`);
      }
      const listed = list.filter((e) => (e.leader as { pid?: number } | undefined)?.pid === pid);
      if (listed.length) {
        wrongList++;
        bad.push(`List shows ${listed.map((e) => e.name).join(', ')} with leader ${pid} (the new process)`);
      }
      const alive = await ns.alive(pid);
      if (!alive) {
        killReached++;
        bad.push(`the new process ${pid} was killed (Kill replies: ${JSON.stringify([kill1, kill2, kill3])})`);
      }
      rounds.push(`${round}: pid ${pid} reused; lookup→${'ok' in byPid ? byPid.ok.name : byPid.error}, kill→${'ok' in kill1 ? 'ok' : kill1.error}, new process ${alive ? 'alive' : 'KILLED'}`);
      for (const b of bad) failures.push(`${round}: ${b}`);
      await ns.cmd(`kill ${pid}`);
    };

    // live
    {
      const m = `${prefix}live`;
      const p = await leader();
      await register(m, p);
      await ns.cmd(`kill ${p}`);
      await waitFor(async () => {
        const r = await call(c, 'io.systemd.Machine.List', { name: m });
        return 'error' in r && r.error === 'io.systemd.Machine.NoSuchMachine';
      }, 'the machine of the dead leader to go', 5000);
      const got = await ns.spawnAt(p);
      if (got === p) {
        forced++;
        await check('live', m, p);
      } else rounds.push(`live: could not force pid ${p}`);
    }
    // stopped
    {
      const m = `${prefix}stop`;
      const p = await leader();
      await register(m, p);
      await ns.cmd('stop');
      await ns.cmd(`kill ${p}`);
      const got = await ns.spawnAt(p);
      if (got === p) {
        forced++;
        // Queue the calls while berthd is stopped, so they are read together with the exit notification.
        const pending = [
          call(c, 'io.systemd.Machine.List', { pid: { pid: p } }, 10_000),
          call(c, 'io.systemd.Machine.Kill', { name: m, whom: 'leader', signal: 15 }, 10_000),
          call(c, 'io.systemd.Machine.Kill', { name: m, whom: 'all', signal: 15 }, 10_000),
        ];
        await ns.cmd('cont');
        await check('stopped', m, p, await Promise.all(pending));
      } else {
        await ns.cmd('cont');
        rounds.push(`stopped: could not force pid ${p}`);
      }
    }
    // restart
    {
      const m = `${prefix}rst`;
      const p = await leader();
      await register(m, p);
      c.close();
      await ns.cmd('killb');
      await ns.cmd(`kill ${p}`);
      const got = await ns.spawnAt(p);
      await ns.cmd('startb');
      c = await ready(socket);
      if (got === p) {
        forced++;
        await check('restart', m, p);
      } else rounds.push(`restart: could not force pid ${p}`);
    }
    c.close();
    if (forced === 0) failures.push('no round managed to force pid reuse');
    notes.push(...rounds);
    return {
      name,
      figures: { rounds: 3, 'reuse-forced': forced, 'pid-lookups-wrong': wrongLookups, 'list-wrong': wrongList, 'kill-reached-new': killReached },
      failures,
      notes,
    };
  } finally {
    await ns.stop();
    removeScopes(prefix);
    rmrf(runtime);
  }
}
