// berthd's life on the bus: --dbus=yes without a bus fails the start, auto without one serves Varlink alone,
// idle exit gives the name up, and bus activation through berth's own service file starts berthd on the
// first call and again after an idle exit, with the registered machine still there.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { connectBus, getNameOwner } from '../../../src/dbus/index.js';
import { REPO } from '../../helpers/generated.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { varlinkCall } from '../../helpers/call-once.js';
import { BERTHD, busctl, removeCgroups, scopeLeader, startBerthd, startSystemBus, type SystemBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (cgroups, bus policy)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping D-Bus lifecycle tests: ${why}`);

const tag = `dl${process.pid % 100000}`;
const dirs: string[] = [];
const children: ChildProcess[] = [];
const buses: SystemBus[] = [];

function runtimeDir(): string {
  const d = mkdtempSync('/var/tmp/berth-dbuslife-');
  dirs.push(d);
  return d;
}

afterAll(async () => {
  await tearDown({ children });
  // An activated berthd is the bus's child: stop the bus, then whatever berthd is left in our runtime dirs.
  for (const b of buses) await b.stop();
  removeCgroups();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function berthd(runtime: string, env: NodeJS.ProcessEnv, extra: string[]): ChildProcess {
  const c = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', `io.berth.dbuslife.${process.pid}`, '--log-level', 'info', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push(c);
  return c;
}

describe.skipIf(!!why)('berthd on and off the bus', () => {
  it('--dbus=yes without a bus fails the start; auto serves Varlink alone and says so', async () => {
    const missing = { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/berth/bus' };
    const yes = berthd(runtimeDir(), missing, ['--dbus=yes']);
    expect(await exited(yes, 30_000)).toBe(1);

    const runtime = runtimeDir();
    const auto = berthd(runtime, missing, ['--dbus=auto']);
    let log = '';
    auto.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(() => log.includes('serving Varlink only'), 'the no-bus note', { timeoutMs: 30_000 });
    const c = await VarlinkClient.connect(`unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`);
    try {
      expect(await c.proxy(IoSystemdMachine).List({ name: '.host' })).toMatchObject({ name: '.host' });
    } finally {
      c.close();
    }
    expect(auto.exitCode).toBe(null);
  });

  it('a stalled bus delays no Varlink or userdb answer, at start or later', async () => {
    const bus = await startSystemBus();
    buses.push(bus);
    const timed = async (runtime: string, userdbService: string) => {
      const t0 = performance.now();
      const list = await varlinkCall(join(runtime, 'systemd/machine/io.systemd.Machine'), 'io.systemd.Machine.List', { name: '.host' }, 2000);
      expect(list).toMatchObject({ name: '.host' });
      const user = await varlinkCall(join(runtime, 'systemd/userdb', userdbService), 'io.systemd.UserDatabase.GetUserRecord', { service: userdbService, userName: 'root' }, 2000).catch((e) => e);
      expect(String(user.error ?? user)).toMatch(/NoRecordFound/);
      return performance.now() - t0;
    };
    // Stalled while berthd starts: it serves Varlink at once, the bus handshake waits in the background.
    process.kill(bus.pid, 'SIGSTOP');
    let first: ChildProcess | undefined;
    try {
      const runtime = runtimeDir();
      first = berthd(runtime, { DBUS_SYSTEM_BUS_ADDRESS: bus.address }, ['--dbus=auto']);
      const service = `io.berth.dbuslife.${process.pid}`;
      await waitFor(() => existsSync(join(runtime, 'systemd/userdb', service)), 'berthd to listen', { timeoutMs: 30_000 });
      expect(await timed(runtime, service)).toBeLessThan(1000);
    } finally {
      process.kill(bus.pid, 'SIGCONT');
      // Once the bus runs again the first berthd takes the name: stop it for the second part.
      first?.kill('SIGTERM');
      if (first) await exited(first, 10_000);
    }
    // Stalled while berthd owns the name, with a D-Bus call waiting on the bus.
    const runtime = runtimeDir();
    children.push(await startBerthd(runtime, bus));
    const conn = await connectBus({ address: bus.address });
    process.kill(bus.pid, 'SIGSTOP');
    try {
      const pending = conn.call({ destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager', member: 'ListMachines' });
      pending.catch(() => undefined);
      expect(await timed(runtime, `io.berth.dbus.${process.pid}`)).toBeLessThan(1000);
      process.kill(bus.pid, 'SIGCONT');
      expect((await pending).body[0]).toContainEqual(['.host', 'host', '', '/org/freedesktop/machine1/machine/_2ehost']);
    } finally {
      process.kill(bus.pid, 'SIGCONT');
      conn.close();
    }
  });

  it('idle exit gives org.freedesktop.machine1 up', async () => {
    const bus = await startSystemBus();
    buses.push(bus);
    const d = await startBerthd(runtimeDir(), bus, ['--idle-exit', '1']);
    children.push(d);
    expect(await exited(d, 30_000)).toBe(0);
    const conn = await connectBus({ address: bus.address });
    try {
      expect(await getNameOwner(conn, 'org.freedesktop.machine1')).toBeUndefined();
    } finally {
      conn.close();
    }
  });

  it('bus activation through the shipped service file starts berthd, again after an idle exit, nothing lost', async () => {
    const services = runtimeDir();
    const runtime = runtimeDir();
    mkdirSync(services, { recursive: true });
    // The shipped file, with Exec= pointing at this build and a private runtime dir.
    const shipped = readFileSync(join(REPO, 'units/dbus/org.freedesktop.machine1.service'), 'utf8');
    expect(shipped).toMatch(/^Name=org\.freedesktop\.machine1$/m);
    expect(shipped).toMatch(/^User=root$/m);
    expect(shipped).toMatch(/^SystemdService=berthd\.service$/m);
    const exec = `Exec=${process.execPath} ${BERTHD} --runtime-dir ${runtime} --userdb-service io.berth.dbuslife.${process.pid} --log-level warn --idle-exit 1 --dbus=yes`;
    writeFileSync(join(services, 'org.freedesktop.machine1.service'), shipped.replace(/^Exec=.*$/m, exec));
    const bus = await startSystemBus({ serviceDir: services });
    buses.push(bus);

    const M = ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager'];
    const first = await busctl(bus, [...M, 'GetMachine', 's', '.host']);
    expect(first.stderr).toBe('');
    expect(first.stdout).toBe('o "/org/freedesktop/machine1/machine/_2ehost"\n');

    const name = `${tag}-act`;
    const l = scopeLeader(`${name}.scope`);
    children.push(l);
    const reg = await busctl(bus, [...M, 'RegisterMachine', 'sayssus', name, '0', 'act', 'container', String(l.pid), '/']);
    expect(reg.stderr).toBe('');

    // Idle exit: the name goes away...
    const conn = await connectBus({ address: bus.address });
    try {
      await waitFor(async () => (await getNameOwner(conn, 'org.freedesktop.machine1')) === undefined, 'berthd to idle out', { timeoutMs: 30_000 });
    } finally {
      conn.close();
    }
    // ...and the next call starts berthd again, which restored the machine.
    const again = await busctl(bus, [...M, 'GetMachine', 's', name]);
    expect(again.stderr).toBe('');
    expect(again.stdout).toContain(`/org/freedesktop/machine1/machine/`);
  });
});
