// A machine that ended on its own (its leader died, berthd dropped it) can still be unregistered, for a short
// while and once, by the process that registered it: systemd-nspawn 262 does exactly that after its container
// ended, and warns its user when it gets NoSuchMachine (src/server/registry/ended-machines.ts). Anyone else,
// and the registering process a second time, still get NoSuchMachine.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/wait.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { RawConnection } from '../../helpers/raw.js';

const repo = resolve(import.meta.dirname, '../../..');
const BERTHD = join(repo, 'dist/src/server/main.js');
const why = process.getuid?.() !== 0 ? 'needs root (cgroups)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
const tag = `ue${process.pid % 100000}`;
const children: ChildProcess[] = [];
const dirs: string[] = [];

/**
 * A supervisor: a node process that registers `name` with `leader` on one connection, then sends one Unregister
 * of `name` per line it reads on stdin and prints each reply as a line.
 */
function supervisor(socket: string, name: string, leader: number): { child: ChildProcess; next(): Promise<string>; unregister(): Promise<string> } {
  const script = `
const net = require('net'); const rl = require('readline').createInterface({ input: process.stdin });
const [socket, name, leader] = process.argv.slice(1);
const c = net.connect(socket); let buf = '';
c.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\0')) >= 0) { process.stdout.write(buf.slice(0, i) + '\\n'); buf = buf.slice(i + 1); } });
c.on('connect', () => c.write(JSON.stringify({ method: 'io.systemd.Machine.Register', parameters: { name, class: 'container', leader: Number(leader), allocateUnit: true } }) + '\\0'));
rl.on('line', () => c.write(JSON.stringify({ method: 'io.systemd.Machine.Unregister', parameters: { name } }) + '\\0'));
rl.on('close', () => c.end());`;
  const child = spawn(process.execPath, ['-e', script, socket, name, String(leader)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
    wake?.();
  });
  const next = async () => {
    await waitFor(() => lines.length > 0, 'a reply from the supervisor', { timeoutMs: 10_000 });
    return lines.shift()!;
  };
  return { child, next, unregister: () => (child.stdin!.write('\n'), next()) };
}

afterAll(async () => {
  const daemons = children.filter((c) => c.spawnargs.includes(BERTHD));
  const others = children.filter((c) => !daemons.includes(c));
  for (const c of others) c.kill('SIGKILL');
  await Promise.all(others.map((c) => exited(c, 5000).catch(() => undefined)));
  const scopes: string[] = [];
  for (const h of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd']) {
    const slice = join(h, 'machine.slice');
    if (existsSync(slice)) for (const e of readdirSync(slice)) if (e.startsWith(`machine-${tag}`)) scopes.push(join(slice, e));
  }
  await tearDown({ children: daemons, cgroups: scopes });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

describe.skipIf(!!why)('Unregister of a machine that just ended', () => {
  it('succeeds once for its supervisor, and is NoSuchMachine for anyone else', async () => {
    const dir = mkdtempSync('/tmp/berth-ue-');
    dirs.push(dir);
    const runtime = join(dir, 'run');
    const d = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', `io.berth.test.${tag}`, '--log-level', 'warn', '--dbus', 'no'], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(d);
    const socket = join(runtime, 'systemd/machine/io.systemd.Machine');
    await waitFor(() => existsSync(socket), 'berthd to listen', { timeoutMs: 30_000 });
    const isGone = async (name: string) => {
      const c = await RawConnection.connect(socket);
      try {
        return (await c.roundTrip({ method: 'io.systemd.Machine.List', parameters: { name } })).error === 'io.systemd.Machine.NoSuchMachine';
      } finally {
        c.destroy();
      }
    };

    // a: its supervisor unregisters it after the leader died.
    const la = spawn('sleep', ['3600'], { stdio: 'ignore' });
    children.push(la);
    const a = supervisor(socket, `${tag}-a`, la.pid!);
    expect(await a.next()).toBe('{"parameters":{}}');
    // Someone else first: NoSuchMachine, and that does not use up the supervisor's claim.
    la.kill('SIGKILL');
    await waitFor(() => isGone(`${tag}-a`), 'berthd to drop a');
    const other = await RawConnection.connect(socket);
    expect((await other.roundTrip({ method: 'io.systemd.Machine.Unregister', parameters: { name: `${tag}-a` } })).error).toBe('io.systemd.Machine.NoSuchMachine');
    expect(await a.unregister()).toBe('{"parameters":{}}');
    // Once only.
    expect(JSON.parse(await a.unregister()).error).toBe('io.systemd.Machine.NoSuchMachine');

    // b: a name that never existed gets NoSuchMachine from anyone, the registering process of another included.
    expect((await other.roundTrip({ method: 'io.systemd.Machine.Unregister', parameters: { name: `${tag}-never` } })).error).toBe('io.systemd.Machine.NoSuchMachine');

    // c: registered again under the same name by someone else after it ended: the old supervisor's claim is void.
    const lc = spawn('sleep', ['3600'], { stdio: 'ignore' });
    children.push(lc);
    const c = supervisor(socket, `${tag}-c`, lc.pid!);
    expect(await c.next()).toBe('{"parameters":{}}');
    lc.kill('SIGKILL');
    await waitFor(() => isGone(`${tag}-c`), 'berthd to drop c');
    const lc2 = spawn('sleep', ['3600'], { stdio: 'ignore' });
    children.push(lc2);
    expect((await other.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name: `${tag}-c`, class: 'container', leader: lc2.pid, allocateUnit: true } })).error).toBeUndefined();
    expect(await other.roundTrip({ method: 'io.systemd.Machine.Unregister', parameters: { name: `${tag}-c` } })).toMatchObject({ parameters: {} });
    expect(JSON.parse(await c.unregister()).error).toBe('io.systemd.Machine.NoSuchMachine');
    other.destroy();
  }, 60_000);
});
