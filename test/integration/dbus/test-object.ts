/** The object the D-Bus integration tests export: a few methods, properties, a signal and a subtree. */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { DBusError, errnoError, ObjectServer, type Connection, type InterfaceSpec } from '../../../src/dbus/index.js';

export const NAME = 'org.berth.Test';
export const PATH = '/org/berth/test';
export const IFACE = 'org.berth.Test1';

export function exportTestObject(conn: Connection, state: { count: number; items: string[]; file: string }): { server: ObjectServer; iface: InterfaceSpec } {
  const iface: InterfaceSpec = {
    name: IFACE,
    methods: {
      Echo: { in: 's', out: 's', inNames: ['text'], outNames: ['text'], handler: ([s]) => [s] },
      Add: { in: 'ii', out: 'i', handler: ([a, b]) => [a + b] },
      Fail: { handler: () => { throw new DBusError('org.berth.Test1.Nope', 'it failed on purpose'); } },
      Errno: { handler: () => { throw errnoError(113); } },
      ErrnoNamed: { in: 's', handler: ([name]) => { throw errnoError(name); } },
      Crash: { handler: () => { throw new Error('unexpected'); } },
      Stat: {
        in: 'h', out: 'tt',
        handler: ([fd]) => {
          const st = fstatSync(fd, { bigint: true });
          return [st.dev, st.ino];
        },
      },
      Open: { out: 'h', handler: () => [openSync(state.file, 'r')] },
      Keep: {
        in: 'h', out: 'b',
        handler: (_args, ctx) => {
          const [fd] = ctx.takeFds();
          closeSync(fd);
          return [true];
        },
      },
      WhoAmI: {
        out: 'uu',
        handler: async (_a, ctx) => {
          const c = await ctx.credentials();
          if (c.pidfd !== undefined) closeSync(c.pidfd);
          return [c.uid, c.pid];
        },
      },
      Later: { in: 'u', out: 'u', handler: ([ms]) => new Promise((r) => setTimeout(() => r([ms]), ms)) },
    },
    properties: {
      Name: { type: 's', get: () => 'box', emitsChange: 'const' },
      Count: { type: 'u', get: () => state.count, set: (v: number) => void (state.count = v) },
      Secret: { type: 's', get: () => 'x', emitsChange: 'invalidates' },
    },
    signals: { Pinged: { signature: 's', names: ['text'] } },
  };
  const item: InterfaceSpec = {
    name: 'org.berth.Item1',
    properties: { Label: { type: 's', get: (ctx) => ctx.path.split('/').pop() } },
  };
  const server = new ObjectServer(conn);
  server.addObject(PATH, [iface]);
  server.addSubtree(`${PATH}/item`, {
    interfaces: [item],
    exists: (p) => state.items.includes(p.split('/').pop()!),
    children: () => state.items.map((i) => `${PATH}/item/${i}`),
  });
  return { server, iface };
}
