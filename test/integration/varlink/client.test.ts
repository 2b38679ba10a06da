/**
 * berth's client against a scripted peer (a plain net server that answers with exact bytes), for
 * what a real server would rarely send: lenient forms other implementations use, and replies the
 * client must refuse as protocol errors.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import type { VarlinkError } from '../../../src/varlink/errors.js';
import { tempDir } from '../../helpers/tmp.js';
import { within } from '../../helpers/wait.js';

type Script = (message: Record<string, unknown>, socket: Socket) => string | Buffer | undefined;

let server: Server | undefined;
let dir: { path: string; remove(): void } | undefined;
let client: VarlinkClient | undefined;
const received: Record<string, unknown>[] = [];

afterEach(async () => {
  client?.close();
  client = undefined;
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
  dir?.remove();
  received.length = 0;
});

/** A peer that answers each call with what `script` returns (written as is). */
async function peer(script: Script): Promise<VarlinkClient> {
  dir = tempDir('client');
  const path = join(dir.path, 'peer.sock');
  server = createServer((socket) => {
    let buf = '';
    socket.on('error', () => {});
    socket.on('data', (d) => {
      buf += d.toString();
      for (let nul = buf.indexOf('\0'); nul !== -1; nul = buf.indexOf('\0')) {
        const m = JSON.parse(buf.slice(0, nul)) as Record<string, unknown>;
        buf = buf.slice(nul + 1);
        received.push(m);
        const out = script(m, socket);
        if (out !== undefined) socket.write(out);
      }
    });
  });
  await new Promise<void>((r) => server!.listen(path, () => r()));
  client = await VarlinkClient.connect(`unix:${path}`);
  return client;
}

async function failure(p: Promise<unknown>): Promise<VarlinkError> {
  try {
    await within(p, 5000, 'the call to settle');
  } catch (e) {
    return e as VarlinkError;
  }
  throw new Error('expected the call to fail');
}

describe('what the client sends', () => {
  it('omits false flags and empty parameters (the canonical encoding)', async () => {
    const c = await peer(() => '{}\0');
    await c.callRaw('a.b.C');
    await c.callRaw('a.b.C', {});
    await c.callRaw('a.b.C', { x: 1 });
    c.onewayRaw('a.b.D', { y: 2 });
    const it = c.moreRaw('a.b.E');
    await it.next();
    await it.return?.();
    expect(received).toEqual([
      { method: 'a.b.C' },
      { method: 'a.b.C' },
      { method: 'a.b.C', parameters: { x: 1 } },
      { method: 'a.b.D', parameters: { y: 2 }, oneway: true },
      { method: 'a.b.E', more: true },
    ]);
  });
});

describe('lenient receiving', () => {
  it.each([
    ['parameters absent', '{}', {}],
    ['parameters null', '{"parameters":null}', {}],
    ['continues false on a plain call', '{"parameters":{"a":1},"continues":false}', { a: 1 }],
    ['whitespace around', ' { "parameters" : { "a" : 1 } } ', { a: 1 }],
    ['an integral float written as 1.0', '{"parameters":{"f":1.0}}', { f: 1 }],
  ])('%s', async (_what, reply, expected) => {
    const c = await peer(() => `${reply}\0`);
    expect(await c.callRaw('a.b.C')).toEqual(expected);
  });

  it('a stream whose last reply says "continues": false (as the Python server writes it)', async () => {
    const c = await peer(() => '{"parameters":{"i":0},"continues":true}\0{"parameters":{"i":1},"continues":false}\0');
    const got: unknown[] = [];
    for await (const r of c.moreRaw('a.b.C')) got.push(r);
    expect(got).toEqual([{ i: 0 }, { i: 1 }]);
  });

  it('replies split at every byte and many replies in one chunk', async () => {
    const c = await peer((m, socket) => {
      const bytes = Buffer.from(`{"parameters":{"n":${JSON.stringify((m.parameters as { n: number }).n)}}}\0`);
      for (let i = 0; i < bytes.length; i++) socket.write(bytes.subarray(i, i + 1));
      return undefined;
    });
    const results = await Promise.all([1, 2, 3].map((n) => c.callRaw('a.b.C', { n })));
    expect(results).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });
});

describe('errors', () => {
  it('an error reply rejects with its name and parameters and keeps the connection', async () => {
    const c = await peer((m) => (m.method === 'a.b.Bad' ? '{"error":"a.b.Nope","parameters":{"why":"x"}}\0' : '{}\0'));
    const e = await failure(c.callRaw('a.b.Bad'));
    expect({ error: e.error, parameters: e.parameters }).toEqual({ error: 'a.b.Nope', parameters: { why: 'x' } });
    expect(await c.callRaw('a.b.Good')).toEqual({});
  });

  it('an error ends a stream', async () => {
    const c = await peer(() => '{"parameters":{"i":0},"continues":true}\0{"error":"a.b.Broke"}\0');
    const it = c.moreRaw('a.b.C');
    expect(await it.next()).toEqual({ value: { i: 0 }, done: false });
    expect((await failure(it.next())).error).toBe('a.b.Broke');
  });

  it.each([
    ['invalid JSON', 'not json\0'],
    ['a reply that is not an object', '[1]\0'],
    ['"continues" on a call made without "more"', '{"parameters":{},"continues":true}\0'],
    ['parameters that are not an object', '{"parameters":[1]}\0'],
    ['an error name that is not a string', '{"error":5}\0'],
  ])('%s: io.systemd.Protocol, connection closed', async (_what, reply) => {
    const c = await peer(() => reply);
    expect((await failure(c.callRaw('a.b.C'))).error).toBe('io.systemd.Protocol');
    expect(c.closed).toBe(true);
  });

  it('a reply without a call (two replies to one call): the call succeeds, then the connection is dropped', async () => {
    const c = await peer(() => '{"parameters":{"first":true}}\0{"parameters":{"second":true}}\0');
    expect(await c.callRaw('a.b.C')).toEqual({ first: true });
    await within(
      (async () => {
        while (!c.closed) await new Promise((res) => setImmediate(res));
      })(),
      5000,
      'the client to drop the connection',
    );
    expect((await failure(c.callRaw('a.b.D'))).error).toBe('io.systemd.Protocol');
  });

  it('a peer that closes mid-call: every pending call fails with io.systemd.Disconnected', async () => {
    const c = await peer((_m, socket) => {
      socket.destroy();
      return undefined;
    });
    const [a, b] = await Promise.all([failure(c.callRaw('a.b.C')), failure(c.callRaw('a.b.D'))]);
    expect([a.error, b.error]).toEqual(['io.systemd.Disconnected', 'io.systemd.Disconnected']);
    expect((await failure(c.callRaw('a.b.E'))).error).toBe('io.systemd.Disconnected');
  });

  it('a reply of more than 16 MiB without a NUL: io.systemd.Protocol', async () => {
    const c = await peer((_m, socket) => {
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let n = 0;
      const pump = () => {
        while (n < 17 && !socket.destroyed) {
          n++;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
      return undefined;
    });
    expect((await failure(c.callRaw('a.b.C'))).error).toBe('io.systemd.Protocol');
  });
});
