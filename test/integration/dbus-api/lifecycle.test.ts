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
    const auto = berthd(runtime, missing, []);
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
