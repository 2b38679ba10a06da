/**
 * An in-process Varlink server for tests: berth's VarlinkServer serving io.berth.test (generated
 * at test time from test/helpers/io.berth.test.varlink), io.systemd.service and
 * org.varlink.service on a socket in a temp dir.
 */
import { openSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { VarlinkServer, type ServerOptions } from '../../src/varlink/server.js';
import { Replies, Unbound } from '../../src/varlink/call.js';
import { serveSystemdService } from '../../src/varlink/systemd-service.js';
import type { PeerCredentials } from '../../src/varlink/peer.js';
import { loadTestInterface, type LoadedInterface } from './generated.js';
import { tempDir } from './tmp.js';
import { deferred } from './wait.js';

export interface TestServer {
  server: VarlinkServer;
  iface: LoadedInterface;
  /** The socket's path and its `unix:` address. */
  path: string;
  address: string;
  dir: string;
  /** Answers every pending `Wait` call made with this tag. */
  release(tag: string): void;
  /** Tags of `Wait` calls currently waiting. */
  waiting(): string[];
  /** Peers of the calls handled, in order. */
  peers: PeerCredentials[];
  /** Bytes an upgraded connection received (after the Upgrade call). */
  upgraded: Buffer[];
  /** How many `Hang` calls saw their connection go away (call.signal aborted). */
  hangsAborted(): number;
  close(): Promise<void>;
}

export const TEST_SERVER_INFO = { vendor: 'berth tests', product: 'test-server', version: '0', url: 'https://example.invalid/berth' };

export async function startTestServer(options: Partial<ServerOptions> = {}, { world = false } = {}): Promise<TestServer> {
  const iface = await loadTestInterface();
  const Failed = iface.module.Failed as new (p: { reason: string }) => Error;
  const dir = tempDir('varlink', { world });
  const logger = pino({ level: 'silent' });
  const server = new VarlinkServer({ ...TEST_SERVER_INFO, logger, ...options });
  const waiters = new Map<string, (() => void)[]>();
  const peers: PeerCredentials[] = [];
  const upgraded: Buffer[] = [];
  let aborted = 0;
  const range = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));
  server.implement(
    iface,
    {
      Echo: (p: Record<string, unknown>) => {
        const { text, count, color, inner, list, blob } = p;
        return { text, count, color, inner, list, blob };
      },
      Count: ({ n, failAt }: { n: number; failAt?: number | null }) =>
        new Replies(
          (async function* () {
            for (const r of range(n)) {
              if (r.i === failAt) throw new Failed({ reason: `at ${r.i}` });
              yield r;
            }
          })(),
        ),
      Watch: ({ n }: { n: number }) => new Replies(range(n)),
      Fail: ({ reason }: { reason?: string }) => {
        throw new Failed({ reason: reason ?? 'asked to' });
      },
      Wait: ({ tag }: { tag: string }) => {
        const d = deferred();
        waiters.set(tag, [...(waiters.get(tag) ?? []), d.resolve]);
        return d.promise.then(() => ({ tag }));
      },
      Hang: (_p: unknown, call: { signal: AbortSignal }) =>
        new Promise(() => {
          call.signal.addEventListener('abort', () => aborted++);
        }),
      Peer: (_p: unknown, call: { peer: PeerCredentials }) => {
        peers.push(call.peer);
        return { ...call.peer };
      },
      Unbound,
      OpenFile: ({ path, fail }: { path: string; fail?: boolean | null }, call: { pushFd(fd: number): number }) => {
        const fd = call.pushFd(openSync(path, 'r'));
        if (fail) throw new Failed({ reason: 'after attaching a descriptor' });
        return { fd };
      },
      Upgrade: (_p: unknown, call: { onUpgrade(h: (s: import('node:net').Socket, rest: Buffer) => void): void }) => {
        call.onUpgrade((socket, rest) => {
          if (rest.length) upgraded.push(rest);
          // The upgraded socket is ours now: close it when the peer does.
          socket.on('end', () => socket.destroy());
          socket.on('error', () => socket.destroy());
          socket.on('data', (d: Buffer) => {
            upgraded.push(d);
            socket.write(Buffer.concat([Buffer.from('echo:'), d]));
          });
        });
        return {};
      },
    } as never,
    { upgradable: ['Upgrade'] as never },
  );
  serveSystemdService(server, logger);
  const path = join(dir.path, 'io.berth.test');
  await server.listen(`unix:${path}`);
  return {
    server,
    iface,
    path,
    address: `unix:${path}`,
    dir: dir.path,
    release(tag) {
      const list = waiters.get(tag) ?? [];
      waiters.delete(tag);
      for (const r of list) r();
    },
    waiting: () => [...waiters.keys()],
    peers,
    upgraded,
    hangsAborted: () => aborted,
    async close() {
      await server.close();
      dir.remove();
    },
  };
}
