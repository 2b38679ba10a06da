/**
 * Run inside the booted systemd machine by bench/scenarios/systemd-host.ts: measures whoever owns
 * org.freedesktop.machine1 there (systemd-machined or berthd) and prints one JSON line.
 *
 *   node dist/bench/systemd-host-inner.js register N [PREFIX [WARMUP]]   CreateMachine (a systemd scope) + TerminateMachine cycles/s
 *   node dist/bench/systemd-host-inner.js register-varlink N [PREFIX [WARMUP]]   the same through Varlink: Register with allocateUnit + Terminate
 *   node dist/bench/systemd-host-inner.js first-call N   berthd stopped, then one Varlink Ping through the socket: ms each
 */
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { connectBus } from '../src/dbus/index.js';
import { VarlinkClient } from '../src/varlink/client.js';

const MANAGER = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' };

async function register(n: number): Promise<object> {
  const bus = await connectBus();
  try {
    return await cycles(
      n,
      async (name, leader) => void (await bus.call({ ...MANAGER, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [name, Buffer.alloc(0), 'bench', 'container', leader, '', []] })),
      async (name) => void (await bus.call({ ...MANAGER, member: 'TerminateMachine', signature: 's', body: [name] })),
    );
  } finally {
    bus.close();
  }
}

/**
 * What both register loops share: a fresh leader per cycle, WARMUP cycles untimed (their rate is reported
 * apart), then N timed ones; with the mean time of each step (the register call, the terminate call, and the
 * leader's exit after it), in ms.
 */
async function cycles(n: number, register: (name: string, leader: number) => Promise<void>, terminate: (name: string) => Promise<void>): Promise<object> {
  const sum = { spawn: 0, register: 0, terminate: 0, exit: 0 };
  const once = async (name: string): Promise<void> => {
    const t0 = monoMs();
    const leader = spawn('sleep', ['100000'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => leader.once('exit', () => r()));
    await new Promise<void>((r) => leader.once('spawn', () => r()));
    const t1 = monoMs();
    await register(name, leader.pid!);
    const t2 = monoMs();
    await terminate(name);
    const t3 = monoMs();
    await exited;
    const t4 = monoMs();
    sum.spawn += t1 - t0;
    sum.register += t2 - t1;
    sum.terminate += t3 - t2;
    sum.exit += t4 - t3;
  };
  // A scope systemd is still stopping keeps its name a moment: each run names its machines apart.
  const w0 = process.hrtime.bigint();
  for (let i = 0; i < warmup; i++) await once(`${prefix}-w${i}`);
  const warmupPerSecond = warmup / (Number(process.hrtime.bigint() - w0) / 1e9);
  for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await once(`${prefix}-${i}`);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const mean = (x: number) => x / n;
  return { cycles: n, seconds: s, perSecond: n / s, warmup, warmupPerSecond, terminateRetries, spawnMs: mean(sum.spawn), registerMs: mean(sum.register), terminateMs: mean(sum.terminate), exitMs: mean(sum.exit) };
}

/** Register (allocateUnit: the service asks systemd for the scope) + Terminate over one Varlink connection. */
async function registerVarlink(n: number): Promise<object> {
  const c = await VarlinkClient.connect('unix:/run/systemd/machine/io.systemd.Machine', { timeout: 60_000 });
  try {
    return await cycles(
      n,
      async (name, leader) => void (await c.callRaw('io.systemd.Machine.Register', { name, class: 'container', service: 'bench', leader, allocateUnit: true })),
      async (name) => {
        // machined 257 answers Register before systemd has run the scope's start job; a Terminate that comes
        // first fails with EDEADLK ('destructive transaction'), and a client has to ask again.
        for (;;) {
          try {
            await c.callRaw('io.systemd.Machine.Terminate', { name });
            return;
          } catch (e) {
            if ((e as { parameters?: { errno?: number } }).parameters?.errno !== 35 || ++terminateRetries > 10_000) throw e;
            await new Promise((r) => setImmediate(r));
          }
        }
      },
    );
  } finally {
    c.close();
  }
}

/** One Varlink Ping through the socket: when it connected and when the reply came (ms, CLOCK_MONOTONIC). */
function ping(): Promise<{ t0: number; t1: number }> {
  return new Promise((resolve, reject) => {
    const t0 = monoMs();
    const c = net.connect('/run/systemd/machine/io.systemd.Machine');
    c.on('connect', () => c.write('{"method":"io.systemd.service.Ping"}\0'));
    c.on('data', (d) => {
      if (d.includes(0)) {
        c.destroy();
        resolve({ t0, t1: monoMs() });
      }
    });
    c.on('error', reject);
  });
}

/** process.hrtime is CLOCK_MONOTONIC on Linux, the clock of systemd's ...TimestampMonotonic. */
const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Wall time of running node with these arguments, ms. */
function timeNode(args: string[]): number {
  const t0 = monoMs();
  execFileSync(process.execPath, args, { stdio: 'ignore' });
  return monoMs() - t0;
}

/** When berthd.service's process was forked, as systemd recorded it (ms, CLOCK_MONOTONIC). */
function execStartMs(): number {
  const out = execFileSync('systemctl', ['show', '-p', 'ExecMainStartTimestampMonotonic', '--value', 'berthd.service'], { encoding: 'utf8' });
  return Number(out.trim()) / 1000;
}

/** When the berthd now running logged 'berthd ready' (pino's wall clock, ms, turned into CLOCK_MONOTONIC). */
function readyMs(): number | undefined {
  const pid = execFileSync('systemctl', ['show', '-p', 'MainPID', '--value', 'berthd.service'], { encoding: 'utf8' }).trim();
  const log = execFileSync('journalctl', ['-q', '-o', 'cat', '--no-pager', `_PID=${pid}`], { encoding: 'utf8' });
  const line = log.split('\n').find((l) => l.includes('"berthd ready"'));
  if (!line) return undefined;
  const wall = (JSON.parse(line) as { time: number }).time;
  return wall - (Date.now() - monoMs());
}

/**
 * berthd stopped, then the first Ping through the socket, N times: the time to the reply (p50, max) and
 * where it goes (medians): systemd from the connection to forking berthd, berthd from its fork to
 * 'berthd ready' (node's own start, loading berthd's bundle, the daemon's start) and from ready to the reply;
 * node's start and the bundle's load are timed apart (node -e 0; berthd --version loads the whole bundle).
 */
async function firstCall(n: number): Promise<object> {
  const total: number[] = [];
  const systemd: number[] = [];
  const toReady: number[] = [];
  const readyToReply: number[] = [];
  for (let i = 0; i < n; i++) {
    execFileSync('systemctl', ['stop', 'berthd.service'], { stdio: 'ignore' });
    // systemd's start rate limit (5 starts in 10 s) would refuse the sixth start in a row
    execFileSync('systemctl', ['reset-failed', 'berthd.service'], { stdio: 'ignore' });
    const { t0, t1 } = await ping();
    total.push(t1 - t0);
    const forked = execStartMs();
    systemd.push(forked - t0);
    // the log line may take a moment to reach the journal
    let ready: number | undefined;
    for (let k = 0; k < 20 && ready === undefined; k++) {
      ready = readyMs();
      if (ready === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    if (ready !== undefined) {
      toReady.push(ready - forked);
      readyToReply.push(t1 - ready);
    }
  }
  const nodeStart: number[] = [];
  const bundle: number[] = [];
  for (let i = 0; i < Math.min(n, 9); i++) {
    nodeStart.push(timeNode(['-e', '0']));
    bundle.push(timeNode(['dist/bin/berthd.mjs', '--version']));
  }
  total.sort((a, b) => a - b);
  return {
    samples: n,
    p50: median(total),
    max: total.at(-1),
    systemdToFork: median(systemd),
    forkToReady: toReady.length ? median(toReady) : null,
    readyToReply: readyToReply.length ? median(readyToReply) : null,
    nodeStart: median(nodeStart),
    nodeWithBundle: median(bundle),
  };
}

const [what, count, namePrefix, warmupCount] = process.argv.slice(2);
const n = Number(count ?? 50);
/** Machine names are PREFIX-0, PREFIX-1, …; PREFIX (the third argument) defaults to 'bench'. */
const prefix = namePrefix || 'bench';
/** Untimed cycles before the timed ones (the fourth argument, default 1). */
const warmup = Number(warmupCount ?? 1);
/** Terminate calls asked again after EDEADLK (see registerVarlink). */
let terminateRetries = 0;
const modes: Record<string, (n: number) => Promise<object>> = { register, 'register-varlink': registerVarlink, 'first-call': firstCall };
const r = what !== undefined && modes[what] ? await modes[what](n) : undefined;
if (!r) {
  process.stderr.write('usage: systemd-host-inner.js register|register-varlink|first-call N\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(r)}\n`);
process.exit(0);
