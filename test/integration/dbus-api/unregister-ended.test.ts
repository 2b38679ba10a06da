// UnregisterMachine over D-Bus right after the machine ended on its own: answered like Varlink's Unregister
// (src/server/registry/ended-machines.ts): success once for the process that registered the machine, the
// machined error for everyone else. The supervisor is a node process that registers over Varlink and later
// calls UnregisterMachine on the private system-like bus with this build's D-Bus client.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/generated.js';
import { waitFor } from '../../helpers/wait.js';
import { berthdOnBus, busctl, scopeLeader, type BerthdOnBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (cgroups, the bus policy)' : '';
let env: BerthdOnBus;
const tag = `dbue${process.pid % 100000}`;
const extra: ChildProcess[] = [];

beforeAll(async () => {
  if (!why) env = await berthdOnBus('dbus-ended');
}, 60_000);
afterAll(async () => {
  for (const c of extra) c.kill('SIGKILL');
  await env?.stop();
}, 60_000);

/** Registers over Varlink, then calls UnregisterMachine on the bus for each line on stdin, printing each outcome. */
function supervisor(name: string, leader: number): { next(): Promise<string>; unregister(): Promise<string> } {
  const dbus = `file://${join(REPO, 'dist/src/dbus/index.js')}`;
  const script = `
import net from 'node:net'; import readline from 'node:readline';
const { connectBus } = await import(${JSON.stringify(dbus)});
const [socket, bus, name, leader] = process.argv.slice(1);
const c = net.connect(socket); let buf = '';
c.on('data', (d) => { buf += d; const i = buf.indexOf('\\0'); if (i >= 0) { console.log(buf.slice(0, i)); buf = ''; } });
c.on('connect', () => c.write(JSON.stringify({ method: 'io.systemd.Machine.Register', parameters: { name, class: 'container', leader: Number(leader) } }) + '\\0'));
const conn = await connectBus({ address: bus });
readline.createInterface({ input: process.stdin }).on('line', async () => {
  try {
    await conn.call({ destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager', member: 'UnregisterMachine', signature: 's', body: [name] });
    console.log('ok');
  } catch (e) { console.log('error ' + e.message); }
});`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, join(env.runtime, 'systemd/machine/io.systemd.Machine'), env.bus.address, name, String(leader)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  extra.push(child);
  const lines: string[] = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  const next = async () => {
    await waitFor(() => lines.length > 0, 'a line from the supervisor', { timeoutMs: 10_000 });
    return lines.shift()!;
  };
  return { next, unregister: () => (child.stdin!.write('\n'), next()) };
}

describe.skipIf(!!why)('UnregisterMachine of a machine that just ended', () => {
  it('succeeds once for its supervisor, machined\'s error for anyone else', async () => {
    const name = `${tag}a`;
    const leader = scopeLeader(`${name}.scope`);
    extra.push(leader);
    const s = supervisor(name, leader.pid!);
    expect(await s.next()).toBe('{"parameters":{}}');
    leader.kill('SIGKILL');
    await waitFor(async () => (await busctl(env.bus, ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'GetMachine', 's', name])).code !== 0, 'berthd to drop the machine');
    // busctl is not the supervisor: machined's "No machine 'NAME' known".
    const other = await busctl(env.bus, ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'UnregisterMachine', 's', name]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain(`No machine '${name}' known`);
    expect(await s.unregister()).toBe('ok');
    const again = await s.unregister();
    expect(again).toMatch(/^error /);
    expect(again).toContain(`No machine '${name}' known`);
  }, 60_000);
});
