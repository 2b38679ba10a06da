// Large messages are parsed in a worker thread (src/varlink/offload.ts, parse-worker.ts). Two berthd
// processes get the same bytes: one sends every message, however small, through the worker
// (BERTH_OFFLOAD_ABOVE=0), the other parses everything on its event loop (BERTH_OFFLOAD_ABOVE=off).
// Their replies, and whether they close the connection, must be identical. A third check shows what
// the worker is for: a call on another connection is answered while a hostile 16 MiB message is
// still being parsed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/generated.js';
import { ConnectionClosed, RawConnection } from '../../helpers/raw.js';
import { tempDir } from '../../helpers/tmp.js';
import { exited } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';

const MAIN = join(REPO, 'dist/src/server/main.js');
const WORKER = join(REPO, 'dist/src/server/parse-worker.js');
const why = !existsSync(MAIN) || !existsSync(WORKER) ? `${MAIN} or its parse worker is missing: run 'npm run build' first` : '';
if (why) console.warn(`offload tests skipped: ${why}`);

interface Berthd {
  proc: ChildProcess;
  machine: string;
  userdb: string;
  remove(): void;
}

const daemons: Berthd[] = [];

/** A berthd; `offloadAbove` sets BERTH_OFFLOAD_ABOVE, undefined keeps the default (32 KiB). */
async function berthd(offloadAbove: string | undefined): Promise<Berthd> {
  const dir = tempDir('offload');
  const env = { ...process.env };
  delete env.BERTH_OFFLOAD_ABOVE;
  if (offloadAbove !== undefined) env.BERTH_OFFLOAD_ABOVE = offloadAbove;
  const proc = spawn(process.execPath, [MAIN, '--runtime-dir', dir.path, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  const d = {
    proc,
    machine: join(dir.path, 'systemd/machine/io.systemd.Machine'),
    userdb: join(dir.path, 'systemd/userdb/io.systemd.Machine'),
    remove: dir.remove,
  };
  daemons.push(d);
  await waitFor(() => existsSync(d.machine) && existsSync(d.userdb), 'berthd to listen', { timeoutMs: 30_000 });
  return d;
}

const SENTINEL = '{"method":"org.varlink.service.GetInfo"}\0';

/**
 * Sends the bytes and then a GetInfo on one connection; returns every reply up to the GetInfo's,
 * or up to the server closing the connection (then ending with "<closed>").
 */
async function exchange(socket: string, data: string | Buffer): Promise<string[]> {
  const c = await RawConnection.connect(socket);
  c.send(data);
  c.send(SENTINEL);
  const out: string[] = [];
  try {
    for (;;) {
      const text = await c.nextText(60_000);
      if (text.includes('"vendor":"berth"')) break;
      out.push(text);
    }
  } catch (e) {
    if (!(e instanceof ConnectionClosed)) throw e;
    out.push('<closed>');
  } finally {
    c.destroy();
  }
  // The .host entry carries its daemon's start time.
  return out.map((t) => t.replace(/"realtime":\d+/g, '"realtime":0'));
}

const m = (method: string, parameters?: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ method, ...(parameters === undefined ? {} : { parameters }), ...extra }) + '\0';
const big = (n: number) => 'x'.repeat(n);

/** [label, bytes, socket] — small and large, good and bad, on both sockets. */
const CASES: [string, string | Buffer, 'machine' | 'userdb'][] = [
  ['GetInfo', m('org.varlink.service.GetInfo'), 'machine'],
  ['interface description', m('org.varlink.service.GetInterfaceDescription', { interface: 'io.systemd.Machine' }), 'machine'],
  ['unknown interface description', m('org.varlink.service.GetInterfaceDescription', { interface: 'a.b' }), 'machine'],
  ['List .host', m('io.systemd.Machine.List', { name: '.host' }), 'machine'],
  ['List, streamed', m('io.systemd.Machine.List', {}, { more: true }), 'machine'],
  ['List with null parameters', '{"method":"io.systemd.Machine.List","parameters":null}\0', 'machine'],
  ['Ping', m('io.systemd.service.Ping', {}), 'machine'],
  ['unknown method', m('io.systemd.Machine.Nope', {}), 'machine'],
  ['unknown interface', m('a.b.C', {}), 'machine'],
  ['no interface part', m('Nope', {}), 'machine'],
  ['wrong type', m('io.systemd.Machine.Kill', { name: 'x', whom: 'all', signal: 'nine' }), 'machine'],
  ['integer as a string', m('io.systemd.Machine.List', { pid: { pid: '1' } }), 'machine'],
  ['unknown parameter', m('io.systemd.Machine.List', { name: '.host', bogus: 1 }), 'machine'],
  ['missing parameter', m('io.systemd.Machine.Register', { class: 'container' }), 'machine'],
  ['bad name', m('io.systemd.Machine.Register', { name: 'a/b', class: 'container', leader: 1 }), 'machine'],
  ['doubled parameter key', '{"method":"io.systemd.Machine.List","parameters":{"name":".host","name":".host"}}\0', 'machine'],
  ['doubled key in a builtin', '{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"a","interface":"b"}}\0', 'machine'],
  ['doubled header key', '{"method":"io.systemd.Machine.List","method":"io.systemd.Machine.List"}\0', 'machine'],
  ['unknown header key', '{"method":"io.systemd.Machine.List","bogus":true}\0', 'machine'],
  ['two flags', m('io.systemd.Machine.List', {}, { more: true, oneway: true }), 'machine'],
  ['upgrade not supported', m('io.systemd.Machine.List', {}, { upgrade: true }), 'machine'],
  ['oneway call that fails', m('io.systemd.Machine.Kill', { name: 'nope', signal: 9 }, { oneway: true }), 'machine'],
  ['invalid JSON', '{"method":\0', 'machine'],
  ['not an object', '[1,2,3]\0', 'machine'],
  ['DEL character', '{"method":"io.systemd.Machine.List","parameters":{"name":"\x7f"}}\0', 'machine'],
  ['escaped NUL', '{"method":"io.systemd.Machine.List","parameters":{"name":"\\u0000"}}\0', 'machine'],
  ['unpaired surrogate', '{"method":"io.systemd.Machine.List","parameters":{"name":"\\ud800"}}\0', 'machine'],
  ['invalid UTF-8', Buffer.concat([Buffer.from('{"method":"io.systemd.Machine.List","parameters":{"name":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}\0')]), 'machine'],
  ['nested 3000 deep', `{"method":"io.systemd.Machine.List","parameters":{"name":${'['.repeat(3000)}${']'.repeat(3000)}}}\0`, 'machine'],
  ['nested 2000 deep', `{"method":"io.systemd.Machine.List","parameters":{"name":${'['.repeat(2000)}${']'.repeat(2000)}}}\0`, 'machine'],
  ['1 MiB name', m('io.systemd.Machine.List', { name: big(1 << 20) }), 'machine'],
  ['1 MiB of keys', `{"method":"io.systemd.Machine.List","parameters":{${Array.from({ length: 100_000 }, (_, i) => `"k${i}":1`).join(',')}}}\0`, 'machine'],
  ['a doubled key among many', `{"method":"io.systemd.Machine.List","parameters":{${Array.from({ length: 5000 }, (_, i) => `"k${i}":1`).join(',')},"k17":2}}\0`, 'machine'],
  ['100,000 ifIndices', m('io.systemd.Machine.Register', { name: 'offl', class: 'container', leader: 1, ifIndices: Array(100_000).fill(1) }), 'machine'],
  ['user by name', m('io.systemd.UserDatabase.GetUserRecord', { userName: 'vu-nope-0', service: 'io.systemd.Machine' }), 'userdb'],
  ['user, 1 MiB name', m('io.systemd.UserDatabase.GetUserRecord', { userName: big(1 << 20), service: 'io.systemd.Machine' }), 'userdb'],
  ['user, wrong service', m('io.systemd.UserDatabase.GetUserRecord', { uid: 5, service: 'x' }), 'userdb'],
  ['memberships, streamed', m('io.systemd.UserDatabase.GetMemberships', { service: 'io.systemd.Machine' }, { more: true }), 'userdb'],
  ['machine method on the userdb socket', m('io.systemd.Machine.List', {}), 'userdb'],
];

describe.skipIf(!!why)('parsing in the worker', () => {
  let viaWorker: Berthd;
  let onLoop: Berthd;
  let usual: Berthd;

  beforeAll(async () => {
    [viaWorker, onLoop, usual] = await Promise.all([berthd('0'), berthd('off'), berthd(undefined)]);
  }, 60_000);

  afterAll(async () => {
    for (const d of daemons) {
      d.proc.kill('SIGTERM');
      await exited(d.proc, 10_000).catch(() => d.proc.kill('SIGKILL'));
      d.remove();
    }
  }, 30_000);

  it('answers every message exactly as parsing on the event loop does', async () => {
    const diffs: string[] = [];
    let closed = 0;
    for (const [label, data, socket] of CASES) {
      const [a, b] = await Promise.all([exchange(viaWorker[socket], data), exchange(onLoop[socket], data)]);
      if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${label}\n  worker: ${JSON.stringify(a).slice(0, 400)}\n    loop: ${JSON.stringify(b).slice(0, 400)}`);
      if (b.at(-1) === '<closed>') closed++;
    }
    expect(diffs.join('\n')).toBe('');
    // The list holds both kinds: calls that are answered and messages that drop the connection.
    expect(closed).toBeGreaterThanOrEqual(8);
    expect(CASES.length - closed).toBeGreaterThanOrEqual(20);
  }, 120_000);

  it('keeps answering other connections while a hostile 16 MiB message is parsed', async () => {
    // Arrays nested 2,000 deep, repeated to 16 MiB: a JSON.parse of about two seconds here.
    const unit = `${'['.repeat(2000)}${']'.repeat(2000)}`;
    const hostile = `{"method":"io.systemd.Machine.List","parameters":{"x":[${Array(Math.floor((16 * 1024 * 1024 - 200) / (unit.length + 1))).fill(unit).join(',')}]}}\0`;
    // The usual threshold: the bystander's small call stays on the event loop.
    const attacker = await RawConnection.connect(usual.machine);
    const bystander = await RawConnection.connect(usual.machine);
    const order: string[] = [];
    try {
      await new Promise<void>((resolve) => attacker.socket.write(hostile, () => resolve()));
      const attacked = attacker.nextText(60_000).then((t) => order.push(`attacker: ${t}`));
      // The bystander asks only once the whole message has left the attacker.
      const answered = bystander.roundTrip({ method: 'io.systemd.Machine.List', parameters: { name: '.host' } }, 60_000).then((r) => order.push(`bystander: ${r.parameters?.name}`));
      await Promise.all([attacked, answered]);
    } finally {
      attacker.destroy();
      bystander.destroy();
    }
    expect(order).toEqual(['bystander: .host', 'attacker: {"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"x"}}']);
  }, 120_000);
});
