/**
 * org.freedesktop.machine1 (issue 10's numbers): ListMachines, GetMachine and GetMachineByPID calls/s of
 * berthd against machined 262, each on a dbus-daemon of its own (both want the same bus name; 262's is the
 * one reference-tools.sh starts in its mount namespace), with the same client: 16 calls in flight on one
 * connection, alternating rounds. Also berthd's RSS with the D-Bus binding against without, and the first
 * call to a stopped berthd answered through bus activation (dbus-daemon execs it from a service file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { connectBus } from '../../src/dbus/bus.js';
import { VarlinkClient } from '../../src/varlink/client.js';
import type { Connection } from '../../src/dbus/connection.js';
import type { BenchContext } from '../lib/context.js';
import { LeaderSet, Scopes } from '../lib/leaders.js';
import { registerAll, unregisterAll } from '../lib/machines.js';
import { megabytes, millis, rate } from '../lib/report.js';
import { Berthd, BERTHD, BERTHD_NODE_OPTIONS } from '../lib/servers.js';
import { errorText, median, percentile, rssBytes, runtimeDir, sleep, waitFor } from '../lib/util.js';

export const DBUS_SCENARIOS = ['dbus.list-machines', 'dbus.get-machine', 'dbus.get-machine-by-pid', 'dbus.rss', 'dbus.activation'];

const M1 = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' };

/** A private dbus-daemon (session-type: activation without the setuid helper) that lets root own anything. */
class Bus {
  private constructor(
    readonly dir: string,
    readonly address: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(serviceDir?: string): Promise<Bus> {
    const dir = runtimeDir('bn-bus-');
    const socket = path.join(dir, 'bus');
    fs.writeFileSync(
      path.join(dir, 'bus.conf'),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><listen>unix:path=${socket}</listen><auth>EXTERNAL</auth>${serviceDir ? `<servicedir>${serviceDir}</servicedir>` : ''}
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>`,
    );
    const child = spawn('dbus-daemon', [`--config-file=${path.join(dir, 'bus.conf')}`, '--nofork', '--nopidfile'], { stdio: 'ignore' });
    await waitFor('the private dbus-daemon', 10_000, () => fs.existsSync(socket));
    return new Bus(dir, `unix:path=${socket}`, child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Calls `member` with `body` for `seconds`, 16 in flight; calls per second (`calls` counts them too, when given). */
async function callRate(conn: Connection, member: string, signature: string | undefined, body: unknown[], seconds: number, calls?: { n: number }): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await conn.call({ ...M1, member, ...(signature ? { signature } : {}), body });
      n++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, worker));
  if (calls) calls.n += n;
  return n / ((performance.now() - t0) / 1000);
}

/**
 * The same kind of query over Varlink, `count` times, 16 in flight, so that the berthd without D-Bus has
 * served as many calls as the one with it when their RSS is compared (a server's heap grows with what it served).
 */
async function varlinkCalls(client: VarlinkClient, parameters: object, count: number): Promise<void> {
  let left = count;
  const worker = async () => {
    while (left-- > 0) {
      for await (const _ of client.moreRaw('io.systemd.Machine.List', parameters)) void _;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

export async function dbusScenarios(ctx: BenchContext): Promise<void> {
  if (!ctx.anySelected(DBUS_SCENARIOS)) return;
  const r = ctx.report;
  const failAll = (why: string) => {
    for (const n of DBUS_SCENARIOS) if (ctx.selected(n) && !r.rows.some((row) => row.scenario === n)) r.fail(n, why);
  };
  let bus: Bus | undefined;
  let berthd: Berthd | undefined;
  let plain: Berthd | undefined;
  let leaders: LeaderSet | undefined;
  const scopes = new Scopes();
  const conns: Connection[] = [];
  const registered: { socket: string; name: string }[] = [];
  const closeLater: (() => void)[] = [];
  try {
    bus = await Bus.start();
    const env = { ...process.env, BERTH_DBUS: 'yes', DBUS_SYSTEM_BUS_ADDRESS: bus.address };
    berthd = await Berthd.start(BERTHD, ['--dbus=yes'], env);
    plain = await Berthd.start(BERTHD, ['--dbus=no'], { ...process.env, BERTH_DBUS: 'no' });
    const m262 = await ctx.machined262();
    leaders = await LeaderSet.spawn(3);
    const specs = [
      { name: `bn-${ctx.run}-db`, leader: leaders.pids[0]!, socket: berthd.socket },
      { name: `bn-${ctx.run}-dp`, leader: leaders.pids[1]!, socket: plain.socket },
      ...(m262 ? [{ name: `bn-${ctx.run}-dm`, leader: leaders.pids[2]!, socket: m262.socket }] : []),
    ];
    for (const s of specs) scopes.add(s.name, s.leader);
    for (const s of specs) {
      await registerAll(s.socket, [s]);
      registered.push({ socket: s.socket, name: s.name });
    }
    const cb = await connectBus({ address: bus.address });
    conns.push(cb);
    await waitFor('berthd to own org.freedesktop.machine1', 10_000, () =>
      cb.call({ ...M1, member: 'ListMachines' }).then(() => true, () => false),
    );
    const plainClient = await VarlinkClient.connect(`unix:${plain.socket}`);
    closeLater.push(() => plainClient.close());
    const cm = m262 ? await connectBus({ address: `unix:path=${m262.root}/run/dbus/system_bus_socket` }) : undefined;
    if (cm) conns.push(cm);
    const rows = [
      { name: 'dbus.list-machines', member: 'ListMachines', sig: undefined, body: () => [] as unknown[], varlink: {} },
      { name: 'dbus.get-machine', member: 'GetMachine', sig: 's', body: (i: number) => [specs[i === 0 ? 0 : 2]!.name], varlink: { name: specs[1]!.name } },
      { name: 'dbus.get-machine-by-pid', member: 'GetMachineByPID', sig: 'u', body: (i: number) => [specs[i === 0 ? 0 : 2]!.leader], varlink: { pid: { pid: specs[1]!.leader } } },
    ];
    /** What the berthd without D-Bus is given for each round of a row, so both have served alike by dbus.rss. */
    const servePlain = (row: (typeof rows)[number], calls: { n: number }) => varlinkCalls(plainClient, row.varlink, calls.n);
    for (const row of rows) {
      if (!ctx.selected(row.name)) continue;
      try {
        const b: number[] = [];
        const m: number[] = [];
        for (let round = 0; round < ctx.rounds; round++) {
          const calls = { n: 0 };
          b.push(await callRate(cb, row.member, row.sig, row.body(0), ctx.duration, calls));
          if (cm) m.push(await callRate(cm, row.member, row.sig, row.body(2), ctx.duration));
          if (ctx.selected('dbus.rss')) await servePlain(row, calls);
        }
        r.versus(row.name, median(b), { '262': cm ? median(m) : undefined }, 1.0, 'one connection, 16 calls in flight, same client for both; each on a dbus-daemon of its own', rate);
      } catch (e) {
        r.fail(row.name, errorText(e));
      }
    }
    if (ctx.selected('dbus.rss')) {
      // Rows not run: both serve the same queries now, the one over D-Bus, the other over Varlink.
      for (const row of rows) {
        if (ctx.selected(row.name)) continue;
        const calls = { n: 0 };
        await callRate(cb, row.member, row.sig, row.body(0), ctx.duration, calls);
        await servePlain(row, calls);
      }
      await sleep(1000);
      const withBus = rssBytes(berthd.pid);
      const without = rssBytes(plain.pid);
      r.absolute('dbus.rss', {
        berth: withBus - without,
        format: megabytes,
        target: 10 * 1024 * 1024,
        atMost: true,
        unitText: '10 MB more than without D-Bus',
        note: `RSS with the binding active ${megabytes(withBus)}, without ${megabytes(without)}; one machine each, after both served as many of the call rows' queries (D-Bus and Varlink)`,
      });
    }
  } catch (e) {
    failAll(errorText(e));
  } finally {
    for (const c of conns) c.close();
    for (const close of closeLater) close();
    for (const m of registered) await unregisterAll(m.socket, [m.name]);
    await berthd?.stop();
    await plain?.stop();
    await leaders?.close();
    await scopes.close();
    await bus?.stop();
  }
  if (ctx.selected('dbus.activation')) {
    try {
      await activation(ctx);
    } catch (e) {
      r.fail('dbus.activation', errorText(e));
    }
  }
}

/** The first ListMachines to a stopped berthd that dbus-daemon starts from its service file; berthd exits when idle. */
async function activation(ctx: BenchContext): Promise<void> {
  const services = runtimeDir('bn-busact-');
  const runtime = runtimeDir('bn-busrt-');
  const bus = await Bus.start(services);
  const conns: Connection[] = [];
  try {
    // The system bus starts its services with a clean environment; this host's shells carry NODE_EXTRA_CA_CERTS,
    // which makes every Node start read a CA bundle (about 50 ms here) that berthd never uses.
    const exec = ['/usr/bin/env', '-u', 'NODE_EXTRA_CA_CERTS', `DBUS_SYSTEM_BUS_ADDRESS=${bus.address}`, process.execPath, ...BERTHD_NODE_OPTIONS, BERTHD,
      '--runtime-dir', runtime, '--log-level', 'warn', '--dbus=yes', '--idle-exit', '1'];
    fs.writeFileSync(path.join(services, 'org.freedesktop.machine1.service'), `[D-BUS Service]\nName=org.freedesktop.machine1\nExec=${exec.join(' ')}\n`);
    const c = await connectBus({ address: bus.address });
    conns.push(c);
    const n = ctx.quick ? 5 : 15;
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await c.call({ ...M1, member: 'ListMachines', timeoutMs: 20_000 });
      samples.push(performance.now() - t0);
      // Until the name has no owner again: berthd left after its idle second.
      await waitFor('berthd to exit when idle', 30_000, async () => {
        const r = await c.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameHasOwner', signature: 's', body: ['org.freedesktop.machine1'] });
        return r.body[0] === false;
      }, 50);
    }
    ctx.report.absolute('dbus.activation', {
      berth: median(samples),
      format: millis,
      target: 150,
      atMost: true,
      unitText: '150 ms p50',
      note: `ListMachines to a stopped berthd, started by dbus-daemon; p50 of ${n}, min ${millis(Math.min(...samples))}, p90 ${millis(percentile(samples, 0.9))}`,
    });
  } finally {
    for (const c of conns) c.close();
    await bus.stop();
    fs.rmSync(services, { recursive: true, force: true });
    fs.rmSync(runtime, { recursive: true, force: true });
  }
}
