/**
 * A system-like bus for the D-Bus API tests: a private dbus-daemon whose policy is a system bus's (deny
 * by default) plus berth's own units/dbus/org.freedesktop.machine1.conf, berthd on it with a temp runtime dir,
 * leaders in unit-shaped cgroups, and busctl (Debian's, 252) against that bus.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, rmdirSync, chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../helpers/generated.js';
import { waitFor } from '../../helpers/wait.js';
import { run, type RunResult } from '../../helpers/run.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { connectBus, getNameOwner, type Connection } from '../../../src/dbus/index.js';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { runDbusDaemon } from '../dbus/private-bus.js';

export const BERTHD = join(REPO, 'dist/src/server/main.js');
export const POLICY = join(REPO, 'units/dbus/org.freedesktop.machine1.conf');

export interface SystemBus {
  address: string;
  /** The dbus-daemon's pid (tests stop it with SIGSTOP to stall the bus). */
  pid: number;
  socketPath: string;
  dir: string;
  stop(): Promise<void>;
}

/** A private bus configured like a system bus, with berth's policy file included; `serviceDir` for activation. */
export async function startSystemBus({ serviceDir }: { serviceDir?: string } = {}): Promise<SystemBus> {
  const dir = mkdtempSync('/var/tmp/berth-dbus-');
  chmodSync(dir, 0o755);
  const socketPath = join(dir, 'system_bus_socket');
  const config = join(dir, 'system.conf');
  writeFileSync(
    config,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>${POLICY}</include>
  ${serviceDir ? `<servicedir>${serviceDir}</servicedir>` : ''}
</busconfig>
`,
  );
  const daemon = await runDbusDaemon(config);
  return {
    address: daemon.address,
    pid: daemon.pid,
    socketPath,
    dir,
    async stop() {
      await daemon.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until someone owns `name` on the bus. */
export async function waitForName(address: string, name: string, timeoutMs = 30_000): Promise<string> {
  const conn = await connectBus({ address });
  try {
    return await waitFor(async () => (await getNameOwner(conn, name)) ?? false, `${name} on the bus`, { timeoutMs });
  } finally {
    conn.close();
  }
}

/** berthd on `bus` with its own runtime dir; resolves once it serves Varlink and owns org.freedesktop.machine1. */
export async function startBerthd(runtime: string, bus: SystemBus, extra: string[] = []): Promise<ChildProcess> {
  const d = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', `io.berth.dbus.${process.pid}`, '--log-level', 'warn', '--dbus=yes', ...extra], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address },
  });
  await waitFor(() => existsSync(join(runtime, 'systemd/machine/io.systemd.Machine')), 'berthd to listen', { timeoutMs: 30_000 });
  await waitForName(bus.address, 'org.freedesktop.machine1');
  return d;
}

/** busctl (Debian's) on the bus, optionally as another user. Never throws for a non-zero exit. */
export function busctl(bus: SystemBus, args: string[], asUid?: number): Promise<RunResult> {
  const argv = ['busctl', `--address=${bus.address}`, '--no-pager', ...args];
  return run(asUid === undefined ? argv : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', ...argv]);
}

const layout = detectCgroupLayout();

/** Cgroup dirs made by scopeLeader, to remove afterwards. */
export const madeCgroups: string[] = [];

/** A `sleep` moved into `/UNIT` in every hierarchy (a unit-shaped cgroup, for RegisterMachine). */
export function scopeLeader(unit: string): ChildProcess {
  const c = spawn('sleep', ['3600'], { stdio: 'ignore' });
  for (const h of layout.hierarchies) {
    const d = join(h.root, unit);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'cgroup.procs'), `${c.pid}\n`);
    madeCgroups.push(d);
  }
  return c;
}

export function removeCgroups(): void {
  for (const d of madeCgroups.splice(0).reverse()) {
    try {
      rmdirSync(d);
    } catch {
      /* still busy or gone */
    }
  }
}

/** What a test suite works with: a bus, berthd on it, a Varlink client and a bus connection of its own. */
export interface BerthdOnBus {
  bus: SystemBus;
  runtime: string;
  daemon: ChildProcess;
  varlink: VarlinkClient;
  conn: Connection;
  /** Processes to kill at the end (leaders). */
  leaders: ChildProcess[];
  /** Registers `name` over Varlink with a sleeping leader in `UNIT` (default NAME.scope). */
  register(name: string, params?: Record<string, unknown>, unit?: string): Promise<ChildProcess>;
  stop(): Promise<void>;
}

export async function berthdOnBus(prefix: string): Promise<BerthdOnBus> {
  const bus = await startSystemBus();
  const runtime = mkdtempSync(`/var/tmp/berth-${prefix}-`);
  const daemon = await startBerthd(runtime, bus);
  const varlink = await VarlinkClient.connect(`unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`);
  const conn = await connectBus({ address: bus.address });
  const leaders: ChildProcess[] = [];
  return {
    bus, runtime, daemon, varlink, conn, leaders,
    async register(name, params = {}, unit = `${name}.scope`) {
      const l = scopeLeader(unit);
      leaders.push(l);
      await varlink.proxy(IoSystemdMachine).Register({ name, class: 'container', leader: l.pid!, ...params });
      return l;
    },
    async stop() {
      conn.close();
      varlink.close();
      for (const l of leaders) l.kill('SIGKILL');
      await Promise.all(leaders.map((l) => exited(l, 5000).catch(() => undefined)));
      await tearDown({ daemon });
      removeCgroups();
      await bus.stop();
      rmSync(runtime, { recursive: true, force: true });
    },
  };
}
