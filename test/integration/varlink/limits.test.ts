/**
 * Connection limits: sd-varlink refuses (closes) connections beyond 4096 in total and, with uid
 * accounting, beyond 1024 per uid. Here with small limits so the edge is reachable.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { RawConnection } from '../../helpers/raw.js';
import { startTestServer, type TestServer } from '../../helpers/test-server.js';
import { waitFor } from '../../helpers/wait.js';
import { cannotSwitchUser, exited, rawClient, rawClientResult, unprivilegedUser, type UserIds } from '../../helpers/processes.js';

let t: TestServer | undefined;
const children: ChildProcess[] = [];
const conns: RawConnection[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.stdin?.end();
    c.kill();
  }
  for (const c of conns.splice(0)) c.destroy();
  await t?.close();
  t = undefined;
});

const PING = [{ method: 'io.systemd.service.Ping' }];
const ok = { replies: [{ parameters: {} }], closed: false, error: null };

function hold(user: UserIds, connections: number): ChildProcess {
  const c = rawClient(t!.path, PING, { user, connections, hold: true });
  children.push(c);
  return c;
}

function outcome(r: { replies: unknown[]; closed: boolean }): string {
  return r.closed ? 'closed' : r.replies.length === 1 ? 'answered' : 'other';
}

const noSwitch = cannotSwitchUser();

describe('maxConnectionsPerUid', () => {
  it.skipIf(noSwitch)(`closes the extra connection of one uid; other uids and root are unaffected${noSwitch ? ` (skipped: ${noSwitch})` : ''}`, async () => {
    t = await startTestServer({ maxConnectionsPerUid: 2 }, { world: true });
    const berthTest = unprivilegedUser()!;
    const nobody: UserIds = { name: 'nobody', uid: 65534, gid: 65534 };
    const [a, b] = berthTest.uid === nobody.uid ? [nobody, { name: 'daemon', uid: 1, gid: 1 }] : [berthTest, nobody];

    // Three connections from uid A: two are served, the third is closed at once.
    const first = hold(a, 3);
    const r1 = await rawClientResult(first);
    expect(r1.uid).toBe(a.uid);
    expect(r1.connections.map(outcome).sort()).toEqual(['answered', 'answered', 'closed']);
    expect(r1.connections.filter((c) => !c.closed)).toEqual([ok, ok]);

    // While A holds its two, uid B gets its own two, and root is exempt (as with sd-varlink).
    const second = hold(b, 2);
    const r2 = await rawClientResult(second);
    expect(r2.uid).toBe(b.uid);
    expect(r2.connections.map(outcome)).toEqual(['answered', 'answered']);
    for (let i = 0; i < 3; i++) {
      const c = await RawConnection.connect(t.path);
      conns.push(c);
      expect(await c.roundTrip(PING[0]!)).toEqual({ parameters: {} });
    }

    // Once A's connections are gone, A may connect again.
    first.stdin!.end();
    expect(await exited(first)).toBe(0);
    await waitFor(() => t!.server.connectionCount === 2 + 3, 'the server to forget the closed connections');
    const again = rawClient(t.path, PING, { user: a, connections: 2 });
    children.push(again);
    expect((await rawClientResult(again)).connections.map(outcome)).toEqual(['answered', 'answered']);
  });
});

describe('maxConnections', () => {
  it('closes connections beyond the total limit, and accepts again once one is gone', async () => {
    t = await startTestServer({ maxConnections: 3 });
    const held: RawConnection[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await RawConnection.connect(t.path);
      conns.push(c);
      held.push(c);
      expect(await c.roundTrip(PING[0]!)).toEqual({ parameters: {} });
    }
    const extra = await RawConnection.connect(t.path);
    conns.push(extra);
    extra.call(PING[0]!);
    expect(await extra.waitClosed()).toEqual([]);
    held[0]!.destroy();
    await waitFor(() => t!.server.connectionCount === 2, 'the server to forget the closed connection');
    const next = await RawConnection.connect(t.path);
    conns.push(next);
    expect(await next.roundTrip(PING[0]!)).toEqual({ parameters: {} });
    for (const c of held.slice(1)) expect(await c.roundTrip(PING[0]!)).toEqual({ parameters: {} });
  });
});
