/**
 * The D-Bus module against a real dbus-daemon (a private bus): Hello, names, calls between two of
 * our connections, descriptors both ways, credentials, signals and properties, and the real
 * clients dbus-send, gdbus and busctl (Debian's 252 and upstream 257) against our exported object.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fstatSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addMatch, connectBus, DBusError, DBusErrors, getConnectionCredentials, NameFlags, releaseName, requestName,
  RequestNameReply, ReleaseNameReply, Variant, type Connection, type Message,
} from '../../../src/dbus/index.js';
import { startPrivateBus, type PrivateBus } from './private-bus.js';
import { exportTestObject, IFACE, NAME, PATH } from './test-object.js';
import { waitFor, within } from '../../helpers/wait.js';

const run = promisify(execFile);
const REFERENCE = '/work/shared/tools/systemd-reference';

let bus: PrivateBus;
let service: Connection;
let client: Connection;
let exported: ReturnType<typeof exportTestObject>;
const state = { count: 1, items: ['alpha', 'b_2deta'], file: '' };

beforeAll(async () => {
  bus = await startPrivateBus();
  state.file = join(bus.dir, 'payload');
  writeFileSync(state.file, 'hello');
  service = await connectBus({ address: bus.address });
  client = await connectBus({ address: bus.address });
  exported = exportTestObject(service, state);
  expect(await requestName(service, NAME, NameFlags.DoNotQueue)).toBe(RequestNameReply.PrimaryOwner);
});

afterAll(async () => {
  client?.close();
  service?.close();
  await bus?.stop();
});

const call = (member: string, signature = '', body: unknown[] = [], extra: object = {}) =>
  client.call({ destination: NAME, path: PATH, interface: IFACE, member, signature, body, ...extra });

describe('bus basics', () => {
  it('Hello gave unique names and descriptors were agreed', () => {
    expect(service.uniqueName).toMatch(/^:1\.\d+$/);
    expect(client.uniqueName).not.toBe(service.uniqueName);
    expect(service.unixFds).toBe(true);
  });

  it('RequestName / ReleaseName', async () => {
    expect(await requestName(client, NAME, NameFlags.DoNotQueue)).toBe(RequestNameReply.Exists);
    expect(await requestName(service, NAME)).toBe(RequestNameReply.AlreadyOwner);
    expect(await requestName(client, 'org.berth.Other')).toBe(RequestNameReply.PrimaryOwner);
    expect(await releaseName(client, 'org.berth.Other')).toBe(ReleaseNameReply.Released);
    expect(await releaseName(client, 'org.berth.Other')).toBe(ReleaseNameReply.NonExistent);
  });

  it('GetConnectionCredentials of a peer', async () => {
    const c = await getConnectionCredentials(client, service.uniqueName);
    expect(c.uid).toBe(process.getuid!());
    expect(c.pid).toBe(process.pid);
    if (c.pidfd !== undefined) closeSync(c.pidfd);
  });
});

describe('calls between two of our connections', () => {
  it('round trips', async () => {
    expect((await call('Echo', 's', ['grüß'])).body).toEqual(['grüß']);
    expect((await call('Add', 'ii', [2, -5])).body).toEqual([-3]);
  });

  it('errors are typed', async () => {
    const err = (p: Promise<unknown>) => p.then(() => { throw new Error('no error'); }, (e: DBusError) => e);
    expect(await err(call('Fail'))).toMatchObject({ type: 'org.berth.Test1.Nope', message: 'it failed on purpose' });
    expect((await err(call('Crash'))).type).toBe(DBusErrors.Failed);
    expect((await err(call('Echo', 'i', [1]))).type).toBe(DBusErrors.InvalidArgs);
    expect((await err(call('Nope'))).type).toBe(DBusErrors.UnknownMethod);
    // As sd-bus: an interface the object lacks is an unknown method, a call without an interface an unknown object.
    expect(await err(call('Echo', 's', ['x'], { interface: 'org.berth.Missing' }))).toMatchObject({ type: DBusErrors.UnknownMethod, message: 'Unknown method Echo or interface org.berth.Missing.' });
    expect(await err(call('Echo', 's', ['x'], { interface: undefined }))).toMatchObject({ type: DBusErrors.UnknownObject, message: `Unknown object '${PATH}'.` });
    expect((await err(call('Errno'))).type).toBe('System.Error.EHOSTUNREACH');
    expect(await err(call('ErrnoNamed', 's', ['ENOENT']))).toMatchObject({ type: DBusErrors.FileNotFound, message: 'No such file or directory' });
    expect((await err(call('Echo', 's', ['x'], { path: '/org/berth/none' }))).type).toBe(DBusErrors.UnknownObject);
    expect((await err(call('Later', 'u', [2000], { timeoutMs: 50 }))).type).toBe(DBusErrors.NoReply);
    const unknownProp = await err(client.call({ destination: NAME, path: PATH, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [IFACE, 'Nope'] }));
    expect(unknownProp).toMatchObject({ type: DBusErrors.UnknownProperty, message: `Unknown interface ${IFACE} or property Nope.` });
    const props = (member: string, signature: string, body: unknown[]) =>
      err(client.call({ destination: NAME, path: PATH, interface: 'org.freedesktop.DBus.Properties', member, signature, body }));
    expect(await props('Get', 's', [IFACE])).toMatchObject({ type: DBusErrors.InvalidArgs, message: 'Expected interface and member parameters' });
    expect(await props('GetAll', 'i', [1])).toMatchObject({ type: DBusErrors.InvalidArgs, message: 'Expected interface parameter' });
    expect(await props('GetAll', 's', ['org.x.Y'])).toMatchObject({ type: DBusErrors.UnknownInterface, message: "Unknown interface 'org.x.Y'." });
    expect(await props('Set', 'ssv', [IFACE, 'Count', new Variant('s', 'x')])).toMatchObject({ type: DBusErrors.InvalidArgs });
    expect(await props('Nope', '', [])).toMatchObject({ type: DBusErrors.UnknownMethod, message: 'Unknown method Nope or interface org.freedesktop.DBus.Properties.' });
    const intro = (body: unknown[], path = PATH) =>
      err(client.call({ destination: NAME, path, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect', signature: body.length ? 's' : '', body }));
    expect(await intro(['x'])).toMatchObject({ type: DBusErrors.InvalidArgs, message: 'Expected no parameters' });
    expect(await intro([], '/nope/deeper')).toMatchObject({ type: DBusErrors.UnknownObject, message: "Unknown object '/nope/deeper'." });
    const peer = await err(client.call({ destination: NAME, path: '/nope', interface: 'org.freedesktop.DBus.Peer', member: 'Nope' }));
    expect(peer).toMatchObject({ type: DBusErrors.UnknownMethod, message: "Unknown method 'Nope' on interface 'org.freedesktop.DBus.Peer'." });
    const ro = await err(client.call({ destination: NAME, path: PATH, interface: 'org.freedesktop.DBus.Properties', member: 'Set', signature: 'ssv', body: [IFACE, 'Name', new Variant('s', 'y')] }));
    expect(ro.type).toBe(DBusErrors.PropertyReadOnly);
  });

  it('descriptors both ways, none leaked', async () => {
    const before = readdirSync('/proc/self/fd').length;
    const fd = (await import('node:fs')).openSync(state.file, 'r');
    const st = statSync(state.file, { bigint: true });
    // The descriptor we send belongs to the connection once sent.
    expect((await call('Stat', 'h', [fd])).body).toEqual([st.dev, st.ino]);
    const reply = await call('Open');
    const [got] = reply.body as [number];
    expect(reply.fds).toEqual([got]);
    expect(fstatSync(got, { bigint: true }).ino).toBe(st.ino);
    closeSync(got);
    const fd2 = (await import('node:fs')).openSync(state.file, 'r');
    expect((await call('Keep', 'h', [fd2])).body).toEqual([true]);
    // A signal's descriptors are closed after its listeners ran; a dropped reply's right away.
    const fd3 = (await import('node:fs')).openSync(state.file, 'r');
    service.signal(PATH, IFACE, 'Pinged', 'h', [fd3], client.uniqueName);
    await call('Echo', 's', ['sync']);
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });

  it('large messages cross in pieces, many calls in flight at once (dbus-daemon allows 128 pending)', async () => {
    const big = 'ab'.repeat(3 * 1024 * 1024);
    expect((await call('Echo', 's', [big])).body[0]).toBe(big);
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => call('Add', 'ii', [i, 1])));
    expect(replies.map((r) => r.body[0])).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) await call('Add', 'ii', [i, 1]);
    console.log(`sequential round trips through dbus-daemon: ${Math.round(300 / ((performance.now() - t0) / 1000))}/s`);
  });

  it('the handler asks the bus who called', async () => {
    expect((await call('WhoAmI')).body).toEqual([process.getuid!(), process.pid]);
  });

  it('the broker is asked once per sender, each sender answered as itself, and a sender that left is forgotten', async () => {
    const senders = exported.server.senders;
    let asked = 0;
    const callOf = service.call.bind(service);
    service.call = (o) => {
      if (o.member === 'GetConnectionCredentials') asked++;
      return callOf(o);
    };
    try {
      await call('WhoAmI');
      await call('WhoAmI');
      await call('WhoAmI');
    } finally {
      service.call = callOf;
    }
    expect(asked).toBeLessThanOrEqual(1);
    expect(senders.size).toBeGreaterThan(0);
    const before = senders.size;
    // Two other processes, one of them nobody: each gets its own answer, though the first is remembered.
    const whoAmI = async (argv: string[]) => {
      const { stdout } = await run(argv[0]!, [...argv.slice(1), 'dbus-send', `--bus=${bus.address}`, '--print-reply', `--dest=${NAME}`, PATH, `${IFACE}.WhoAmI`]);
      return [...stdout.matchAll(/uint32 (\d+)/g)].map((m) => Number(m[1]));
    };
    const [rootUid, rootPid] = await whoAmI(['env']);
    const [nobodyUid, nobodyPid] = await whoAmI(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(rootUid).toBe(process.getuid!());
    expect(nobodyUid).toBe(65534);
    expect(new Set([rootPid, nobodyPid, process.pid]).size).toBe(3);
    // Both dbus-sends have left the bus: NameOwnerChanged takes them out again.
    await waitFor(() => senders.size === before, 'the two dbus-sends forgotten', { timeoutMs: 5000 });
    expect(senders.size).toBe(before);
  });

  it('signals and PropertiesChanged', async () => {
    await addMatch(client, `type='signal',sender='${NAME}'`);
    const got: Message[] = [];
    const seen = new Promise<void>((resolve) => {
      const on = (m: Message) => {
        got.push(m);
        if (got.length === 3) {
          client.off('signal', on);
          resolve();
        }
      };
      client.on('signal', on);
    });
    exported.server.emitSignal(PATH, exported.iface, 'Pinged', ['hi']);
    await client.call({ destination: NAME, path: PATH, interface: 'org.freedesktop.DBus.Properties', member: 'Set', signature: 'ssv', body: [IFACE, 'Count', new Variant('u', 7)] });
    await exported.server.emitPropertiesChanged(PATH, exported.iface, ['Count', 'Secret', 'Name']);
    await exported.server.emitPropertiesChanged(PATH, exported.iface, ['Secret']);
    await within(seen, 5000, 'three signals');
    expect(got[0]).toMatchObject({ member: 'Pinged', body: ['hi'], path: PATH, interface: IFACE });
    expect(got[1]).toMatchObject({ member: 'PropertiesChanged', body: [IFACE, new Map([['Count', new Variant('u', 7)]]), ['Secret']] });
    expect(got[2].body).toEqual([IFACE, new Map(), ['Secret']]);
    expect(state.count).toBe(7);
  });

  it('Peer and GetAll', async () => {
    await client.call({ destination: NAME, path: '/any/where', interface: 'org.freedesktop.DBus.Peer', member: 'Ping' });
    const id = await client.call({ destination: NAME, path: PATH, interface: 'org.freedesktop.DBus.Peer', member: 'GetMachineId' });
    expect(id.body[0]).toMatch(/^[0-9a-f]{32}$/);
    const all = await client.call({ destination: NAME, path: `${PATH}/item/alpha`, interface: 'org.freedesktop.DBus.Properties', member: 'GetAll', signature: 's', body: ['org.berth.Item1'] });
    expect(all.body).toEqual([new Map([['Label', new Variant('s', 'alpha')]])]);
  });
});

describe('a connection that passes no descriptors (read through the event loop)', () => {
  it('says Hello, calls, gets signals and refuses descriptors; a closed bus socket closes it', async () => {
    const plain = await connectBus({ address: bus.address, negotiateFds: false });
    try {
      expect(plain.unixFds).toBe(false);
      expect(plain.uniqueName).toMatch(/^:1\.\d+$/);
      const r = await plain.call({ destination: NAME, path: PATH, interface: IFACE, member: 'Echo', signature: 's', body: ['über'] });
      expect(r.body).toEqual(['über']);
      // Many calls in flight at once come back complete and in order.
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) =>
        plain.call({ destination: NAME, path: PATH, interface: IFACE, member: 'Echo', signature: 's', body: [`n${i}`.repeat(200)] })));
      expect(many.map((m) => m.body[0])).toEqual(Array.from({ length: 50 }, (_, i) => `n${i}`.repeat(200)));
      await addMatch(plain, "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'");
      const seen = new Promise<Message>((resolve) => plain.on('signal', (m: Message) => {
        if (m.member === 'NameOwnerChanged' && m.body[0] === 'org.berth.NoFds') resolve(m);
      }));
      expect(await requestName(client, 'org.berth.NoFds')).toBe(RequestNameReply.PrimaryOwner);
      expect((await within(seen, 5000, 'NameOwnerChanged')).body[2]).toBe(client.uniqueName);
      await releaseName(client, 'org.berth.NoFds');
      // Descriptors were not agreed: a call carrying one is refused before it is sent.
      const fd = (await import('node:fs')).openSync('/dev/null', 'r');
      await expect(plain.call({ destination: NAME, path: PATH, interface: IFACE, member: 'Stat', signature: 'h', body: [fd] })).rejects.toThrow(DBusError);
    } finally {
      plain.close();
    }
    expect(plain.isClosed).toBe(true);
  });
});

describe('real clients', () => {
  it('dbus-send, with error names', async () => {
    const { stdout } = await run('dbus-send', [`--bus=${bus.address}`, '--print-reply', `--dest=${NAME}`, PATH, `${IFACE}.Add`, 'int32:40', 'int32:2']);
    expect(stdout).toMatch(/int32 42/);
    const fail = (...args: string[]) => run('dbus-send', [`--bus=${bus.address}`, '--print-reply', `--dest=${NAME}`, PATH, ...args]).then(() => 'succeeded', (e) => String(e.stderr));
    expect(await fail(`${IFACE}.Echo`, 'int32:1')).toMatch(/^Error org\.freedesktop\.DBus\.Error\.InvalidArgs: Invalid arguments 'i' to call org\.berth\.Test1\.Echo\(\), expecting 's'\./);
    expect(await fail(`${IFACE}.Nope`)).toMatch(/^Error org\.freedesktop\.DBus\.Error\.UnknownMethod/);
    expect(await fail(`org.berth.Missing.Echo`, 'string:x')).toMatch(/^Error org\.freedesktop\.DBus\.Error\.UnknownMethod: Unknown method Echo or interface org\.berth\.Missing\./);
  });

  it('gdbus', async (t) => {
    if (!existsSync('/usr/bin/gdbus')) return t.skip('gdbus is not installed');
    const gdbus = (...args: string[]) => run('gdbus', ['call', '--address', bus.address, '--dest', NAME, '--object-path', PATH, ...args]);
    expect((await gdbus('--method', `${IFACE}.Echo`, 'hi')).stdout.trim()).toBe("('hi',)");
    expect((await gdbus('--method', `${IFACE}.Add`, '1', '2')).stdout.trim()).toBe('(3,)');
    const err = await gdbus('--method', `${IFACE}.Fail`).then(() => '', (e) => String(e.stderr));
    expect(err).toMatch(/GDBus\.Error:org\.berth\.Test1\.Nope: it failed on purpose/);
  });

  const busctls: [string, string[]][] = [['busctl 252', ['busctl']]];
  if (existsSync(REFERENCE)) busctls.push(['busctl 257', [REFERENCE, 'run', 'busctl']]);
  describe.each(busctls)('%s', (_name, cmd) => {
    const busctl = (...args: string[]) => run(cmd[0], [...cmd.slice(1), `--address=${bus.address}`, ...args]);
    const failing = (...args: string[]) => busctl(...args).then(() => 'succeeded', (e) => String(e.stderr));

    it('introspect, tree, get-property, set-property, call', async () => {
      const intro = (await busctl('introspect', NAME, PATH)).stdout;
      expect(intro).toMatch(/\.Echo\s+method\s+s\s+s/);
      expect(intro).toMatch(/\.Count\s+property\s+u\s+\d+\s+emits-change writable/);
      expect(intro).toMatch(/\.Name\s+property\s+s\s+"box"\s+const/);
      expect(intro).toMatch(/\.Pinged\s+signal\s+s/);
      const tree = (await busctl('tree', NAME)).stdout;
      expect(tree).toMatch(/\/org\/berth\/test\/item\/alpha/);
      expect(tree).toMatch(/\/org\/berth\/test\/item\/b_2deta/);
      expect((await busctl('get-property', NAME, PATH, IFACE, 'Name')).stdout.trim()).toBe('s "box"');
      await busctl('set-property', NAME, PATH, IFACE, 'Count', 'u', '9');
      expect((await busctl('get-property', NAME, PATH, IFACE, 'Count')).stdout.trim()).toBe('u 9');
      expect((await busctl('call', NAME, PATH, IFACE, 'Echo', 's', 'hej')).stdout.trim()).toBe('s "hej"');
      expect((await busctl('get-property', NAME, `${PATH}/item/alpha`, 'org.berth.Item1', 'Label')).stdout.trim()).toBe('s "alpha"');
    });

    it('bad calls', async () => {
      expect(await failing('call', NAME, PATH, IFACE, 'Echo', 'i', '1')).toMatch(/Invalid arguments 'i' to call org\.berth\.Test1\.Echo\(\), expecting 's'/);
      expect(await failing('call', NAME, PATH, IFACE, 'Nope')).toMatch(/Unknown method Nope or interface org\.berth\.Test1/);
      expect(await failing('get-property', NAME, PATH, IFACE, 'Nope')).toMatch(/Unknown interface org\.berth\.Test1 or property Nope\./);
      expect(await failing('call', NAME, '/org/berth/none', IFACE, 'Echo', 's', 'x')).toMatch(/Unknown object/);
    });

    it('descriptors from busctl', async (t) => {
      // busctl 257 sends descriptors handed to it the socket-activation way (LISTEN_FDS); 252 cannot send them.
      if (cmd[0] === 'busctl') return t.skip('busctl 252 cannot send UNIX descriptors');
      const script = `exec 3<'${state.file}'; LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"`;
      const { stdout } = await run('sh', ['-c', script, 'sh', ...cmd, `--address=${bus.address}`, 'call', NAME, PATH, IFACE, 'Stat', 'h', '3']);
      const st = statSync(state.file, { bigint: true });
      expect(stdout.trim()).toBe(`tt ${st.dev} ${st.ino}`);
    });
  });
});
