// Bad input over D-Bus, through a real dbus-daemon: bodies of the wrong signature, unknown members, objects,
// interfaces and properties, a message the bus itself refuses, a sender that hangs up mid-call, a
// CreateMachine whose leader is dead or dies at once, a name already taken and an unprivileged caller acting
// on root's machine. Each gets a clear error, leaves nothing behind (no machine, state file or scope), and
// every other client is answered with every registration kept. The exact error texts against machined are
// the differential test's job.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { closeFd, connectBus, createMessage, encodeMessage, MessageType, variant } from '../../../src/dbus/index.js';
import { detectCgroupLayout, machineScopeDirs } from '../../../src/domain/cgroup-paths.js';
import { exited, firstLine } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { BERTHD, berthdOnBus, busctl, type BerthdOnBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (cgroups, bus policy, another uid)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping D-Bus bad-input tests: ${why}`);

const tag = `db${process.pid % 100000}`;
const MGR = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' };
const INVALID = 'org.freedesktop.DBus.Error.InvalidArgs';
const layout = detectCgroupLayout();

describe.skipIf(!!why)('bad input over D-Bus', () => {
  let t: BerthdOnBus;
  /** Machines registered before the bad calls, which must all still be there afterwards. */
  const kept: string[] = [];
  const extra: ChildProcess[] = [];

  const err = (p: Promise<unknown>) => p.then((r) => ({ ok: r }) as { ok: unknown; type?: string; message?: string }, (e) => e as { type?: string; message?: string });
  const names = async () => ((await t.conn.call({ ...MGR, member: 'ListMachines' })).body[0] as string[][]).map((m) => m[0]!);
  /** Nothing of machine `name`: not listed, no state file, no scope. */
  const nothingOf = async (name: string) => {
    expect(await names()).not.toContain(name);
    expect(existsSync(join(t.runtime, 'systemd/machines', name))).toBe(false);
    for (const d of machineScopeDirs(name, layout.hierarchies)) expect(existsSync(d)).toBe(false);
  };
  /** berthd still answers another client on both protocols, and no registration was lost. */
  const stillServing = async () => {
    const other = await connectBus({ address: t.bus.address });
    try {
      const r = await other.call({ ...MGR, member: 'GetMachine', signature: 's', body: [kept[0]!] });
      expect(r.body[0]).toMatch(/^\/org\/freedesktop\/machine1\/machine\//);
    } finally {
      other.close();
    }
    expect(await names()).toEqual(expect.arrayContaining(kept));
    const v = await t.varlink.proxy(IoSystemdMachine).List({ name: kept[0]! });
    expect(v).toMatchObject({ name: kept[0] });
    expect(t.daemon.exitCode).toBe(null);
  };

  beforeAll(async () => {
    t = await berthdOnBus('dbusbad');
    for (const n of ['a', 'b']) {
      await t.register(`${tag}-${n}`);
      kept.push(`${tag}-${n}`);
    }
  }, 60_000);

  afterAll(async () => {
    for (const c of extra) c.kill('SIGKILL');
    await Promise.all(extra.map((c) => exited(c, 5000).catch(() => undefined)));
    await t?.stop();
  });

  it('a body of the wrong signature gets InvalidArgs, for Manager and Machine methods alike', async () => {
    const machine = `/org/freedesktop/machine1/machine/${kept[0]!.replace(/-/g, '_2d')}`;
    const cases: [string, string, string, unknown[]][] = [
      [MGR.path, 'GetMachine', 'u', [5]],
      [MGR.path, 'GetMachine', '', []],
      [MGR.path, 'GetMachine', 'ss', ['a', 'b']],
      [MGR.path, 'ListMachines', 's', ['x']],
      [MGR.path, 'RegisterMachine', 'sayssu', [`${tag}-x`, Buffer.alloc(0), 's', 'container', 1]],
      [MGR.path, 'CreateMachine', 'sayssus', [`${tag}-x`, Buffer.alloc(0), 's', 'container', 1, '/']],
      [MGR.path, 'CreateMachineEx', 'sa(sv)', [`${tag}-x`, []]],
      [MGR.path, 'RegisterMachineEx', 'sa{sv}', [`${tag}-x`, new Map()]],
      [MGR.path, 'KillMachine', 'ssu', [kept[0]!, 'all', 9]],
      [MGR.path, 'OpenMachineShell', 'sss', [kept[0]!, 'root', '/bin/sh']],
      [MGR.path, 'MapToMachineUser', 'i', [5]],
      [machine, 'Kill', 'ss', ['all', '9']],
      [machine, 'Terminate', 's', ['now']],
    ];
    for (const [path, member, signature, body] of cases) {
      const iface = path === MGR.path ? MGR.interface : 'org.freedesktop.machine1.Machine';
      const e = await err(t.conn.call({ destination: MGR.destination, path, interface: iface, member, signature, body }));
      expect({ member, signature, type: e.type }).toEqual({ member, signature, type: INVALID });
    }
    // Properties with the wrong argument types.
    const p = await err(t.conn.call({ destination: MGR.destination, path: MGR.path, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'su', body: [MGR.interface, 1] }));
    expect(p.type).toBe(INVALID);
    await nothingOf(`${tag}-x`);
    await stillServing();
  });

  it('unknown methods, objects, interfaces and properties get the Unknown* errors', async () => {
    const call = (path: string, iface: string, member: string, signature = '', body: unknown[] = []) =>
      err(t.conn.call({ destination: MGR.destination, path, interface: iface, member, signature, body }));
    expect((await call(MGR.path, MGR.interface, 'Nope')).type).toBe('org.freedesktop.DBus.Error.UnknownMethod');
    expect((await call('/org/freedesktop/machine1/nope', MGR.interface, 'ListMachines')).type).toBe('org.freedesktop.DBus.Error.UnknownObject');
    expect((await call('/org/freedesktop/machine1/machine/nope', 'org.freedesktop.machine1.Machine', 'Terminate')).type).toBe('org.freedesktop.DBus.Error.UnknownObject');
    expect((await call(MGR.path, 'org.example.Nope', 'ListMachines')).type).toMatch(/^org\.freedesktop\.DBus\.Error\.Unknown(Interface|Method)$/);
    const props = 'org.freedesktop.DBus.Properties';
    expect((await call(MGR.path, props, 'Get', 'ss', [MGR.interface, 'Nope'])).type).toBe('org.freedesktop.DBus.Error.UnknownProperty');
    expect((await call(MGR.path, props, 'GetAll', 's', ['org.example.Nope'])).type).toMatch(/^org\.freedesktop\.DBus\.Error\.Unknown(Interface|Property)$/);
    expect((await call(MGR.path, props, 'Set', 'ssv', [MGR.interface, 'PoolPath', variant('s', '/x')])).type).toBe('org.freedesktop.DBus.Error.PropertyReadOnly');
    await stillServing();
  });

  it('a message the bus refuses (a body cut short) costs its sender the connection, and nobody else anything', async () => {
    const raw = net.connect(t.bus.socketPath);
    await new Promise<void>((r, j) => raw.once('connect', r).once('error', j));
    let inbox = '';
    raw.on('data', (d: Buffer) => (inbox += d.toString('latin1')));
    raw.on('error', () => undefined);
    raw.write(Buffer.concat([Buffer.from([0]), Buffer.from(`AUTH EXTERNAL ${Buffer.from('0').toString('hex')}\r\n`)]));
    await waitFor(() => inbox.includes('OK '), 'the bus to accept EXTERNAL');
    raw.write('BEGIN\r\n');
    const hello = createMessage({ type: MessageType.MethodCall, destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello', signature: '', body: [] });
    hello.serial = 1;
    raw.write(encodeMessage(hello).data);
    const bad = createMessage({ type: MessageType.MethodCall, ...MGR, member: 'GetMachine', signature: 's', body: [kept[0]!] });
    bad.serial = 2;
    const data = Buffer.from(encodeMessage(bad).data);
    // Claims a longer string than the body holds.
    const bodyStart = data.length - (kept[0]!.length + 5);
    data.writeUInt32LE(4096, bodyStart);
    raw.write(data);
    await waitFor(() => raw.destroyed || raw.readableEnded, 'the bus to drop the sender', { timeoutMs: 10_000 });
    raw.destroy();
    await stillServing();
  });

  it('a sender that hangs up during CreateMachine or OpenMachineShell leaves a consistent registry and no stray shell', async () => {
    // The sender hangs up at once or a little later: the call may fail (its credentials can no longer be
    // asked for) or go through; either way the registry is whole: listed with its state file and scope, or
    // nothing of it at all.
    let registered = 0;
    for (let i = 0; i < 6; i++) {
      const name = `${tag}-hup${i}`;
      const l = spawn('sleep', ['3600'], { stdio: 'ignore' });
      extra.push(l);
      const quitter = await connectBus({ address: t.bus.address });
      quitter.call({ ...MGR, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [name, Buffer.alloc(0), 'hup', 'container', l.pid!, '', []] }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, i * 4));
      quitter.close();
      await new Promise((r) => setTimeout(r, 1000));
      if ((await names()).includes(name)) {
        registered++;
        expect(existsSync(join(t.runtime, 'systemd/machines', name))).toBe(true);
        expect(readFileSync(`/proc/${l.pid}/cgroup`, 'utf8')).toContain(`machine-${name.replace(/-/g, '\\x2d')}.scope`);
        await t.conn.call({ ...MGR, member: 'TerminateMachine', signature: 's', body: [name] });
        await exited(l, 10_000);
        await waitFor(async () => !(await names()).includes(name), `${name} to go`, { timeoutMs: 10_000 });
        await waitFor(() => machineScopeDirs(name, layout.hierarchies).every((d) => !existsSync(d)), `${name}'s scope to go`, { timeoutMs: 10_000 });
      }
      await nothingOf(name);
    }
    console.log(`CreateMachine from a sender that hung up: ${registered} of 6 went through`);

    // A shell asked for by a sender that is gone by the time the answer (its terminal) is sent.
    const marker = `${4000 + (process.pid % 1000)}.${Date.now() % 1000}`;
    const shellQuitter = await connectBus({ address: t.bus.address });
    const pending = shellQuitter.call({ ...MGR, member: 'OpenMachineShell', signature: 'sssasas', body: [kept[0]!, 'root', '/bin/sleep', ['sleep', marker], []] });
    pending.then((m) => m.fds.forEach(closeFd), () => undefined);
    shellQuitter.close();
    const strays = () =>
      readdirSync('/proc').filter((p) => {
        if (!/^\d+$/.test(p)) return false;
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(marker);
        } catch {
          return false;
        }
      });
    // The shell may have started; with nobody holding its terminal it gets a hangup and ends.
    await waitFor(() => strays().length === 0, 'the orphaned shell to end', { timeoutMs: 15_000 });
    await stillServing();
  });

  it('a CreateMachine whose leader is dead, a zombie, or killed at once leaves nothing behind', async () => {
    const dead = spawn('true');
    await exited(dead);
    const e1 = await err(t.conn.call({ ...MGR, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [`${tag}-dead`, Buffer.alloc(0), 't', 'container', dead.pid!, '', []] }));
    expect(e1.type).toMatch(/^org\.freedesktop\.DBus\.Error\.|^System\.Error\./);
    await nothingOf(`${tag}-dead`);

    // A zombie: the child of a process that never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 3600'], { stdio: ['ignore', 'pipe', 'ignore'] });
    extra.push(parent);
    const zombie = Number(await firstLine(parent));
    await waitFor(() => /^State:\s+Z/m.test(readFileSync(`/proc/${zombie}/status`, 'utf8')), 'the zombie', { timeoutMs: 5000 });
    const e2 = await err(t.conn.call({ ...MGR, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [`${tag}-zomb`, Buffer.alloc(0), 't', 'container', zombie, '', []] }));
    // An error, or a machine that goes again as soon as berthd sees its leader has ended.
    if (e2.type === undefined) await waitFor(async () => !(await names()).includes(`${tag}-zomb`), 'the zombie-led machine to go', { timeoutMs: 10_000 });
    await waitFor(() => machineScopeDirs(`${tag}-zomb`, layout.hierarchies).every((d) => !existsSync(d)), 'its scope to go', { timeoutMs: 10_000 });
    await nothingOf(`${tag}-zomb`);

    // Killed right after the call was sent: whichever way the race goes, nothing is left once it is over.
    for (let i = 0; i < 5; i++) {
      const name = `${tag}-race${i}`;
      const l = spawn('sleep', ['3600'], { stdio: 'ignore' });
      const p = err(t.conn.call({ ...MGR, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [name, Buffer.alloc(0), 't', 'container', l.pid!, '', []] }));
      l.kill('SIGKILL');
      await p;
      await exited(l);
      await waitFor(async () => !(await names()).includes(name), `${name} to go`, { timeoutMs: 10_000 });
      await waitFor(() => !existsSync(join(t.runtime, 'systemd/machines', name)) && machineScopeDirs(name, layout.hierarchies).every((d) => !existsSync(d)), `${name}'s state and scope to go`, { timeoutMs: 10_000 });
    }
    await stillServing();
  });

  it('a name already taken gets MachineExists and leaves the registered machine as it was', async () => {
    const before = await t.varlink.proxy(IoSystemdMachine).List({ name: kept[0]! });
    const l = spawn('sleep', ['3600'], { stdio: 'ignore' });
    extra.push(l);
    for (const [member, signature, body] of [
      ['CreateMachine', 'sayssusa(sv)', [kept[0]!, Buffer.alloc(0), 't', 'container', l.pid!, '', []]],
      ['RegisterMachine', 'sayssus', [kept[0]!, Buffer.alloc(0), 't', 'container', l.pid!, '/']],
      ['CreateMachineEx', 'sa(sv)a(sv)', [kept[0]!, [['Class', variant('s', 'container')], ['LeaderPID', variant('u', l.pid!)]], []]],
    ] as [string, string, unknown[]][]) {
      const e = await err(t.conn.call({ ...MGR, member, signature, body }));
      expect({ member, type: e.type }).toEqual({ member, type: 'org.freedesktop.machine1.MachineExists' });
    }
    const after = await t.varlink.proxy(IoSystemdMachine).List({ name: kept[0]! });
    expect(after.leader).toEqual(before.leader);
    expect(readFileSync(`/proc/${l.pid}/cgroup`, 'utf8')).not.toContain('machine-');
    await stillServing();
  });

  it("an unprivileged caller (nobody) may look at root's machine but not act on it", async () => {
    const M = ['call', MGR.destination, MGR.path, MGR.interface];
    const target = kept[1]!;
    const look = await busctl(t.bus, [...M, 'GetMachine', 's', target], 65534);
    expect(look.stdout).toMatch(/^o "\/org\/freedesktop\/machine1\/machine\//);
    for (const args of [
      ['TerminateMachine', 's', target],
      ['KillMachine', 'ssi', target, 'all', '18'],
      ['UnregisterMachine', 's', target],
      ['OpenMachinePTY', 's', target],
      ['OpenMachineShell', 'sssasas', target, 'root', '/bin/sh', '0', '0'],
      ['CopyToMachine', 'sss', target, '/etc/hostname', '/tmp/x'],
    ]) {
      const r = await busctl(t.bus, [...M, ...args], 65534);
      expect({ args, code: r.code, stderr: r.stderr }).toMatchObject({ args, code: 1, stderr: expect.stringMatching(/Access denied|Permission denied|auth/i) });
    }
    await stillServing();
  });
});
