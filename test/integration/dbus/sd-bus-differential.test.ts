/**
 * Our object server next to sd-bus's: upstream systemd 257's systemd-timedated (an sd-bus service)
 * runs on a private bus, in a private mount namespace with its own /run/systemd so it touches
 * nothing shared, and we export a look-alike (same name, path, interface, one method of the same
 * signature, one read-only property) on the same bus. The same bad calls go to both; the error
 * names and messages must be the same.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, DBusError, ObjectServer, requestName, Variant, type CallRequest, type Connection } from '../../../src/dbus/index.js';
import { startPrivateBus, type PrivateBus } from './private-bus.js';
import { waitFor } from '../../helpers/wait.js';

const REFERENCE = '/work/shared/tools/systemd-reference';
const available = existsSync(REFERENCE) && existsSync('/usr/bin/unshare');
const REF_NAME = 'org.freedesktop.timedate1';
const OUR_NAME = 'org.berth.LookAlike';
const PATH = '/org/freedesktop/timedate1';
const I = 'org.freedesktop.timedate1';
const P = 'org.freedesktop.DBus.Properties';

let bus: PrivateBus;
let timedated: ChildProcess;
let ours: Connection;
let client: Connection;

beforeAll(async () => {
  if (!available) return;
  bus = await startPrivateBus();
  timedated = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs none /run/systemd && exec ${REFERENCE} run systemd-timedated`], {
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address },
    stdio: 'ignore',
  });
  ours = await connectBus({ address: bus.address });
  client = await connectBus({ address: bus.address });
  const server = new ObjectServer(ours);
  server.addObject(PATH, [{
    name: I,
    methods: { SetTimezone: { in: 'sb', handler: () => {} } },
    properties: { Timezone: { type: 's', get: () => 'UTC' } },
  }]);
  await requestName(ours, OUR_NAME);
  await waitFor(
    () => client.call({ destination: REF_NAME, path: PATH, interface: 'org.freedesktop.DBus.Peer', member: 'Ping', flags: 2, timeoutMs: 500 }).then(() => true, () => false),
    'systemd-timedated on the private bus',
  );
});

afterAll(async () => {
  client?.close();
  ours?.close();
  timedated?.kill();
  await bus?.stop();
});

const cases: [string, Omit<CallRequest, 'destination'>][] = [
  ['wrong signature', { path: PATH, interface: I, member: 'SetTimezone', signature: 'i', body: [1] }],
  ['unknown method', { path: PATH, interface: I, member: 'Nope' }],
  ['no interface', { path: PATH, member: 'SetTimezone', signature: 'sb', body: ['UTC', false] }],
  ['interface the object lacks', { path: PATH, interface: 'org.x.Y', member: 'Nope' }],
  ['unknown object', { path: '/nope', interface: I, member: 'SetTimezone', signature: 'sb', body: ['UTC', false] }],
  ['introspect an unknown object', { path: '/nope/deeper', interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' }],
  ['introspect with arguments', { path: PATH, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect', signature: 's', body: ['x'] }],
  ['unknown Introspectable method', { path: PATH, interface: 'org.freedesktop.DBus.Introspectable', member: 'Nope' }],
  ['Get of an unknown property', { path: PATH, interface: P, member: 'Get', signature: 'ss', body: [I, 'Nope'] }],
  ['Get on an unknown interface', { path: PATH, interface: P, member: 'Get', signature: 'ss', body: ['org.x.Y', 'Nope'] }],
  ['Get with too few arguments', { path: PATH, interface: P, member: 'Get', signature: 's', body: [I] }],
  ['GetAll of an unknown interface', { path: PATH, interface: P, member: 'GetAll', signature: 's', body: ['org.x.Y'] }],
  ['GetAll with a wrong argument', { path: PATH, interface: P, member: 'GetAll', signature: 'i', body: [1] }],
  ['Set of a read-only property', { path: PATH, interface: P, member: 'Set', signature: 'ssv', body: [I, 'Timezone', new Variant('s', 'UTC')] }],
  ['Set of an unknown property', { path: PATH, interface: P, member: 'Set', signature: 'ssv', body: [I, 'Nope', new Variant('s', 'UTC')] }],
  ['unknown Properties method', { path: PATH, interface: P, member: 'Nope' }],
  ['Properties of an unknown object', { path: '/nope', interface: P, member: 'Get', signature: 'ss', body: [I, 'Timezone'] }],
  ['unknown Peer method', { path: '/nope', interface: 'org.freedesktop.DBus.Peer', member: 'Nope' }],
];

async function outcome(destination: string, req: Omit<CallRequest, 'destination'>): Promise<unknown> {
  try {
    const r = await client.call({ destination, ...req });
    return { ok: r.signature };
  } catch (e) {
    return e instanceof DBusError ? { type: e.type, message: e.message } : { thrown: String(e) };
  }
}

if (!available) it('routing errors against sd-bus', (t) => t.skip(`needs ${REFERENCE} and unshare`));

describe.runIf(available)('routing errors: berth and sd-bus (systemd-timedated 257)', () => {
  it.each(cases)('%s', async (_what, req) => {
    const theirs = await outcome(REF_NAME, req);
    expect(await outcome(OUR_NAME, req)).toEqual(theirs);
  });

  it('Peer answers whatever the body', async () => {
    for (const dest of [REF_NAME, OUR_NAME]) {
      const r = await client.call({ destination: dest, path: '/anywhere', interface: 'org.freedesktop.DBus.Peer', member: 'Ping', signature: 's', body: ['x'] });
      expect(r.body).toEqual([]);
    }
  });
});
