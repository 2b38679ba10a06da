// org.freedesktop.machine1 served by berthd on a private system-like bus (berth's own policy file), called
// with a real client (Debian's busctl): lookups, properties, registration over D-Bus seen by Varlink and the
// state dir and the other way round, machined's errors, the policy for a non-root caller, a real pty fd.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { closeFd, type Connection } from '../../../src/dbus/index.js';
import { exited } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { BERTHD, berthdOnBus, busctl, scopeLeader, type BerthdOnBus, type SystemBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (cgroups, bus policy)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping D-Bus API tests: ${why}`);

const M = ['org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager'];
const tag = `db${process.pid % 100000}`;
const TEST_UID = 999; // berth-test

describe.skipIf(!!why)('org.freedesktop.machine1 on a bus', () => {
  let t: BerthdOnBus;
  let bus: SystemBus;
  let runtime: string;
  let varlink: VarlinkClient;
  let conn: Connection;

  beforeAll(async () => {
    t = await berthdOnBus('dbusapi');
    ({ bus, runtime, varlink, conn } = t);
  }, 60_000);

  afterAll(() => t?.stop());

  const call = (...args: string[]) => busctl(bus, ['call', ...M, ...args]);
  const json = async (...args: string[]) => {
    const r = await busctl(bus, ['call', '--json=short', ...M, ...args]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout).data;
  };

  const varlinkRegister = (name: string) => t.register(name, { service: 'test', rootDirectory: '/' });

  it('lists .host and answers GetMachine, properties and introspection', async () => {
    const [list] = await json('ListMachines');
    expect(list).toContainEqual(['.host', 'host', '', '/org/freedesktop/machine1/machine/_2ehost']);
    expect(await json('GetMachine', 's', '.host')).toEqual(['/org/freedesktop/machine1/machine/_2ehost']);
    const r = await busctl(bus, ['get-property', 'org.freedesktop.machine1', '/org/freedesktop/machine1/machine/_2ehost', 'org.freedesktop.machine1.Machine', 'Class', 'Leader', 'Unit', 'VSockCID', 'State']);
    expect(r.stdout).toBe('s "host"\nu 1\ns "-.slice"\nu 1\ns "running"\n');
    const pool = await busctl(bus, ['get-property', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'PoolPath', 'PoolLimit']);
    expect(pool.stdout).toBe('s "/var/lib/machines"\nt 18446744073709551615\n');
    const intro = await busctl(bus, ['introspect', 'org.freedesktop.machine1', '/org/freedesktop/machine1']);
    expect(intro.stdout).toContain('.RegisterMachineEx');
    expect(intro.stdout).toContain('.MachineNew');
  });

  it('shows a machine registered over Varlink with the properties machined gives', async () => {
    const name = `${tag}-vl`;
    const l = await varlinkRegister(name);
    const path = `/org/freedesktop/machine1/machine/${name.replace(/-/g, '_2d')}`;
    expect(await json('GetMachine', 's', name)).toEqual([path]);
    expect(await json('GetMachineByPID', 'u', String(l.pid))).toEqual([path]);
    const r = await busctl(bus, ['call', '--json=short', 'org.freedesktop.machine1', path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', 'org.freedesktop.machine1.Machine']);
    const props = JSON.parse(r.stdout).data[0];
    expect(props.Name).toEqual({ type: 's', data: name });
    expect(props.Id).toEqual({ type: 'ay', data: [] });
    expect(props.Leader).toEqual({ type: 'u', data: l.pid });
    expect(props.Unit).toEqual({ type: 's', data: `${name}.scope` });
    expect(props.Service).toEqual({ type: 's', data: 'test' });
    expect(props.VSockCID).toEqual({ type: 'u', data: 4294967295 });
    expect(props.State).toEqual({ type: 's', data: 'running' });
    const [list] = await json('ListMachines');
    expect(list).toContainEqual([name, 'container', 'test', path]);
  });

  it('registers over D-Bus into the one registry, with MachineNew, and unregisters', async () => {
    const name = `${tag}-db`;
    const l = scopeLeader(`${name}.scope`);
    t.leaders.push(l);
    const signals: unknown[][] = [];
    conn.on('signal', (m) => {
      if (m.member === 'MachineNew' || m.member === 'MachineRemoved') signals.push([m.member, ...m.body]);
    });
    await conn.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: ["type='signal',interface='org.freedesktop.machine1.Manager'"] });
    const path = `/org/freedesktop/machine1/machine/${name.replace(/-/g, '_2d')}`;
    expect(await json('RegisterMachine', 'sayssus', name, '16', ...'0123456789abcdef0123456789abcdef'.match(/../g)!.map((h) => String(parseInt(h, 16))), 'nspawn', 'container', String(l.pid), '/srv')).toEqual([path]);
    const v = await varlink.proxy(IoSystemdMachine).List({ name });
    expect(v).toMatchObject({ name, class: 'container', service: 'nspawn', id: '0123456789abcdef0123456789abcdef', rootDirectory: '/srv', unit: `${name}.scope` });
    const state = readFileSync(join(runtime, 'systemd/machines', name), 'utf8');
    expect(state).toContain(`LEADER=${l.pid}`);
    await waitFor(() => signals.some((s) => s[0] === 'MachineNew' && s[1] === name), 'MachineNew');
    expect(signals).toContainEqual(['MachineNew', name, path]);
    // Registered twice: machined's error.
    const again = await call('RegisterMachine', 'sayssus', name, '0', 'nspawn', 'container', String(l.pid), '/srv');
    expect(again.stderr).toContain(`Machine '${name}' already exists`);
    expect((await call('UnregisterMachine', 's', name)).code).toBe(0);
    await waitFor(() => signals.some((s) => s[0] === 'MachineRemoved' && s[1] === name), 'MachineRemoved');
    expect(existsSync(join(runtime, 'systemd/machines', name))).toBe(false);
  });

  it('answers bad calls with machined errors', async () => {
    const r = await call('GetMachine', 's', 'nope');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("No machine 'nope' known");
    expect((await call('GetMachine', 'u', '5')).stderr).toContain("Invalid arguments 'u' to call org.freedesktop.machine1.Manager.GetMachine(), expecting 's'.");
    expect((await call('GetMachineByPID', 'u', '1')).stderr).toContain('PID 1 does not belong to any known machine');
    expect((await call('TerminateMachine', 's', 'nope')).stderr).toContain("No machine 'nope' known");
    expect((await call('RegisterMachine', 'sayssus', 'a b', '0', 'x', 'container', '0', '/')).stderr).toContain('Invalid machine name');
    expect((await call('MapToMachineUser', 'u', '5')).stderr).toContain('User 5 belongs to host UID range');
    // Error names, with our own client.
    const e = await conn.call({ destination: M[0], path: M[1], interface: M[2], member: 'GetMachine', signature: 's', body: ['nope'] }).catch((x) => x);
    expect(e.type).toBe('org.freedesktop.machine1.NoSuchMachine');
    const w = await conn.call({ destination: M[0], path: M[1], interface: M[2], member: 'GetMachine', signature: 'u', body: [5] }).catch((x) => x);
    expect(w.type).toBe('org.freedesktop.DBus.Error.InvalidArgs');
  });

  it('refuses a non-root caller what the policy refuses, and lets it look', async () => {
    const name = `${tag}-pol`;
    await varlinkRegister(name);
    expect((await busctl(bus, ['call', ...M, 'GetMachine', 's', name], TEST_UID)).code).toBe(0);
    const t = await busctl(bus, ['call', ...M, 'TerminateMachine', 's', name], TEST_UID);
    expect(t.stderr).toContain('Access denied');
    const p = await busctl(bus, ['call', ...M, 'OpenMachinePTY', 's', name], TEST_UID);
    expect(p.stderr).toContain('Access denied');
    expect(await varlink.proxy(IoSystemdMachine).List({ name })).toMatchObject({ name });
  });

  it('OpenMachinePTY hands out a real pty master', async () => {
    const r = await conn.call({ destination: M[0], path: M[1], interface: M[2], member: 'OpenMachinePTY', signature: 's', body: ['.host'] });
    const [fd, ptyPath] = r.body as [number, string];
    try {
      expect(ptyPath).toMatch(/^\/dev\/pts\/\d+$/);
      expect(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).toMatch(/tty-index:\s*\d+/);
    } finally {
      closeFd(fd);
    }
  });

  it('OpenMachineShell runs the program on the terminal it hands out', async () => {
    // A machine whose leader shares our namespaces (nsenter into PID 1's may be refused in a sandbox).
    const name = `${tag}-sh`;
    await varlinkRegister(name);
    const r = await conn.call({
      destination: M[0], path: M[1], interface: M[2], member: 'OpenMachineShell', signature: 'sssasas',
      body: [name, 'root', '/bin/sh', ['/bin/sh', '-c', 'echo berth-$((6*7))'], ['BERTH_T=1']],
    });
    const [fd] = r.body as [number, string];
    // cat reads the master until the shell is gone (EIO), away from this event loop.
    const cat = spawn('cat', [], { stdio: [fd, 'pipe', 'ignore'] });
    closeFd(fd);
    let out = '';
    cat.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('berth-42'), 'the shell output', { timeoutMs: 10_000 });
    cat.kill();
    const bad = await conn.call({ destination: M[0], path: M[1], interface: M[2], member: 'OpenMachineShell', signature: 'sssasas', body: ['.host', '', 'sh', [], []] }).catch((e) => e);
    expect(bad.message).toBe("Specified path 'sh' is not absolute");
  });

  it('TerminateMachine stops a machine and it leaves the registry', async () => {
    const name = `${tag}-term`;
    const l = await varlinkRegister(name);
    expect((await call('TerminateMachine', 's', name)).code).toBe(0);
    await exited(l, 10_000);
    await waitFor(async () => (await call('GetMachine', 's', name)).code !== 0, 'the machine to go');
  });
});
