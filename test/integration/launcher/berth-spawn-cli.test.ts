/**
 * berth-spawn as users run it: the shipped bundle (dist/bin/berth-spawn.mjs, built by `npm test` before
 * vitest runs), a real busybox container, signals, socket activation through systemd-socket-activate, and
 * bad input.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../../src/launcher/teardown.js';
import { cannotRun, TRAP_READY_IDLE, useScratch } from './fixture.js';
import { leftovers } from './leftovers.js';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const cli = path.join(repo, 'dist/bin/berth-spawn.mjs');
const why = cannotRun() ?? (fs.existsSync(cli) ? undefined : `${cli} is missing: run 'npm run build' first`);
if (why) console.warn(`skipping berth-spawn CLI tests: ${why}`);

const scratch = useScratch(why);
const tree = scratch.tree;

function spawnCli(args: string[], extra: { env?: Record<string, string>; prefix?: string[]; detached?: boolean } = {}): ResultPromise {
  const argv = [...(extra.prefix ?? []), process.execPath, cli, ...args];
  return execa(argv[0]!, argv.slice(1), { reject: false, all: true, env: { ...process.env, ...extra.env }, stdin: 'ignore', detached: extra.detached ?? false });
}

function stateOf(name: string): string | undefined {
  try { return JSON.parse(fs.readFileSync(path.join(scratch.rt, 'berth/machines', name, 'state.json'), 'utf8')).state; } catch { return undefined; }
}

describe.skipIf(!!why)('berth-spawn', () => {
  it('starts a container, reports it running, and stops it cleanly on SIGTERM', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const name = 'cli-run';
    const p = spawnCli(['-D', t.root, '-M', name, '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh']);
    await waitFor(() => stateOf(name) === 'running' || p.exitCode !== null && p.exitCode !== undefined, 15_000, 'the container to run', 10);
    expect(stateOf(name)).toBe('running');
    const t0 = Date.now();
    p.kill('SIGTERM');
    const r = await p;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.exitCode).toBe(0);
    expect(r.all).toContain(`Container ${name} is running`);
    expect(r.all).toContain('stopping-on-rtmin3');
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('turns ^C on its terminal (SIGINT to its process group) into a clean stop of the container', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const name = 'cli-ctrlc';
    const p = spawnCli(['-D', t.root, '-M', name, '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh'], { detached: true });
    await waitFor(() => stateOf(name) === 'running' || (p.exitCode ?? null) !== null, 15_000, 'the container to run', 10);
    process.kill(-p.pid!, 'SIGINT'); // what the terminal does: the whole foreground group
    const r = await p;
    expect(r.exitCode).toBe(0);
    expect(r.all).toContain('is being stopped');
    expect(r.all).toContain('stopping-on-rtmin3'); // the container got SIGRTMIN+3 from berth-spawn
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('forwards readiness to its own NOTIFY_SOCKET, also when a child of PID 1 sent READY=1', async () => {
    // READY=1 comes from a grandchild of PID 1 here (credentials: its parent shell, uid = the container's
    // root), not from PID 1 itself.
    const t = await tree(`trap 'exit 0' 37
/bin/sh -c '/usr/bin/ct-helper notify READY=1; true' &
wait
while :; do sleep 1 & wait $!; done`);
    const { NotifySocket: NotifyReceiver } = await import('../../../src/launcher/notify.js');
    const sock = path.join(scratch.rt, 'outer-notify');
    const outer = new NotifyReceiver(sock);
    const got = new Promise<string>((r) => outer.on('message', (m) => { if (m.fields.get('READY') === '1') r(m.raw); }));
    const name = 'cli-fwd';
    const p = spawnCli(['-D', t.root, '-M', name, '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh'],
      { env: { NOTIFY_SOCKET: sock } });
    try {
      const raw = await Promise.race([got, p.then(() => { throw new Error('berth-spawn ended before it was ready'); })]);
      expect(raw).toMatch(/X_BERTH_LEADER_PID=\d+/);
    } finally {
      p.kill('SIGTERM');
      await outer.close();
    }
    expect((await p).exitCode).toBe(0);
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('exits with PID 1\'s status and passes its output through', async () => {
    const t = await tree('exit 0');
    const r = await spawnCli(['-q', '-D', t.root, '-M', 'cli-status', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '-c', 'echo out-of-$(hostname); exit 7']);
    expect(r.exitCode).toBe(7);
    expect(r.all).toBe('out-of-cli-status');
    expect(leftovers(scratch.rt, 'cli-status')).toEqual([]);
  });

  it('hands sockets from systemd-socket-activate to PID 1', async () => {
    const t = await tree(`trap 'exit 0' 37
/usr/bin/ct-helper serve-once &
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const name = 'cli-listen';
    const p = spawnCli(['-D', t.root, '-M', name, '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh'],
      { prefix: ['systemd-socket-activate', '-l', `127.0.0.1:${port}`, '--fdname=web'] });
    try {
      // systemd-socket-activate starts berth-spawn on the first connection, which then waits in the backlog
      // until the container accepts it. Connect as soon as it listens.
      const connectOnce = (): Promise<string> => new Promise<string>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        let buf = '';
        c.on('data', (d) => { buf += d; });
        c.on('end', () => resolve(buf));
        c.on('error', reject);
        c.setTimeout(15_000, () => { c.destroy(); reject(new Error('no reply within 15 s')); });
      });
      let reply: string | undefined;
      const deadline = Date.now() + 10_000;
      while (reply === undefined) {
        try { reply = await connectOnce(); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 20)); // the listener is not up yet
        }
      }
      await waitFor(() => stateOf(name) === 'running' || (p.exitCode ?? null) !== null, 15_000, 'the container to run', 10);
      expect(reply).toMatch(/^served-by-container pid=\d+ uid=0 listen_fds=1 names=web\n$/);
    } finally {
      p.kill('SIGTERM');
    }
    expect((await p).exitCode).toBe(0);
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('refuses a second container of the same name and leaves the first alone', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const name = 'cli-dup';
    const first = spawnCli(['-D', t.root, '-M', name, '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh']);
    await waitFor(() => stateOf(name) === 'running' || (first.exitCode ?? null) !== null, 15_000, 'the first container', 10);
    const t2 = await tree(TRAP_READY_IDLE);
    const t0 = Date.now();
    const second = await spawnCli(['-D', t2.root, '-M', name, '-U', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(second.exitCode).toBe(1);
    expect(second.all).toContain(`machine '${name}' is already running`);
    expect(stateOf(name)).toBe('running');
    first.kill('SIGTERM');
    expect((await first).exitCode).toBe(0);
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it.each([
    ['a missing directory', ['-D', '/nonexistent/x', '-M', 'cli-bad1'], /directory \/nonexistent\/x does not exist/],
    // One message for a bad name everywhere now (src/domain/machine-name.ts); it quotes the name with "".
    ['an invalid name', ['-D', '/tmp', '-M', 'x y'], /invalid machine name "x y"/],
    ['an unknown option', ['-D', '/tmp', '--frob'], /unknown option --frob/],
    ['a bad UID range', ['-D', '/tmp', '--private-users=1:0'], /UID range/],
  ])('fails within 10 s on %s', async (_what, args, message) => {
    const t0 = Date.now();
    const r = await spawnCli([...args, `--runtime-dir=${scratch.rt}`, '--register=no']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(message);
    expect(leftovers(scratch.rt, 'cli-bad1')).toEqual([]);
  });

  it('fails within 10 s when PID 1 exits before it is ready, leaving nothing behind', async () => {
    const t = await tree('echo giving up; exit 4');
    const t0 = Date.now();
    const r = await spawnCli(['-D', t.root, '-M', 'cli-early', '-U', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`, '--register=no', '/bin/sh', '/init.sh']);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain('giving up');
    expect(r.all).toContain('PID 1 exited with status 4 before it was ready');
    expect(leftovers(scratch.rt, 'cli-early')).toEqual([]);
  });

  it('hands --vm over to the VM launcher', async () => {
    const r = await spawnCli(['--vm', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.all).toContain('berth-spawn --vm');
  });
});
