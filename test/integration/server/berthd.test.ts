// berthd as its users meet it: berthctl (tables, JSON, exit codes), io.berth.Machine (Watch with
// sequence numbers, RegisterReplacingDead, ranges and UID owners, overlap warnings), the policy for
// a real unprivileged user, and machines surviving an idle exit under berth-activate.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoBerthMachine, type WatchResult } from '../../../src/generated/io.berth.Machine.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { waitFor, within } from '../../helpers/wait.js';
import { cannotSwitchUser, exited, rawClient, rawClientResult, tearDown, unprivilegedUser } from '../../helpers/processes.js';

const repo = resolve(import.meta.dirname, '../../..');
const BERTHD = join(repo, 'dist/src/server/main.js');
const BERTHCTL = join(repo, 'dist/src/client/berthctl.js');
const ACTIVATE = join(repo, 'dist/src/server/berth-activate.js');
const why = process.getuid?.() !== 0 ? 'needs root (cgroups, user namespaces)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping berthd tests: ${why}`);

const tag = `b${process.pid % 100000}`;
const children: ChildProcess[] = [];
const dirs: string[] = [];

function worldDir(prefix: string): string {
  const d = mkdtempSync(join('/var/tmp', prefix));
  chmodSync(d, 0o755);
  dirs.push(d);
  return d;
}

/** A leader that lives until killed. */
function leader(): ChildProcess {
  const c = spawn('sleep', ['3600'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

/** A leader in its own user namespace with uid/gid maps at `base`. */
async function usernsLeader(base: number): Promise<ChildProcess> {
  const c = spawn('unshare', ['--user', '--fork', '--kill-child', '--', 'sleep', '3600'], { stdio: 'ignore' });
  children.push(c);
  // The sleeping grandchild is the one in the new namespace.
  const pid = await waitFor(() => {
    const r = spawnSync('pgrep', ['-P', String(c.pid)], { encoding: 'utf8' });
    return Number(r.stdout.trim().split('\n')[0]) || 0;
  }, 'the namespaced child');
  writeFileSync(`/proc/${pid}/setgroups`, 'deny');
  writeFileSync(`/proc/${pid}/uid_map`, `0 ${base} 65536\n`);
  writeFileSync(`/proc/${pid}/gid_map`, `0 ${base} 65536\n`);
  (c as ChildProcess & { inner: number }).inner = pid;
  return c;
}

function berthctl(runtime: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BERTHCTL, '--runtime-dir', runtime, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function startBerthd(runtime: string, extra: string[] = []): Promise<ChildProcess> {
  const d = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', `io.berth.test.${tag}`, '--log-level', 'warn', ...extra], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(d);
  await waitFor(() => existsSync(join(runtime, 'systemd/machine/io.systemd.Machine')), 'berthd to listen', { timeoutMs: 30_000 });
  return d;
}

afterAll(async () => {
  // Leaders first, then the daemons, then the scopes berthd made for this run's machines: a daemon
  // killed together with its leaders has no time left to remove them.
  const byDaemons = children.filter((c) => c.spawnargs.some((a) => a === BERTHD || a === ACTIVATE));
  const leaders = children.filter((c) => !byDaemons.includes(c));
  for (const c of leaders) c.kill('SIGKILL');
  await Promise.all(leaders.map((c) => exited(c, 5000).catch(() => undefined)));
  await tearDown({ children: byDaemons, cgroups: ourScopes() });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

/** machine.slice/machine-TAG….scope in every cgroup hierarchy. */
function ourScopes(): string[] {
  const out: string[] = [];
  for (const h of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd']) {
    const slice = join(h, 'machine.slice');
    if (!existsSync(join(h, 'cgroup.procs')) || !existsSync(slice)) continue;
    for (const e of readdirSync(slice)) if (e.startsWith(`machine-${tag}`)) out.push(join(slice, e));
  }
  return out;
}

describe.skipIf(!!why)('berthctl and io.berth.Machine against berthd', () => {
  let runtime = '';
  let socket = '';
  beforeAll(async () => {
    runtime = join(worldDir('berthd-'), 'run');
    socket = `unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`;
    await startBerthd(runtime);
  }, 60_000);

  it('registers, lists (table, no legend, JSON), shows, kills and terminates with exit codes scripts can rely on', async () => {
    const l = leader();
    const name = `${tag}ctl`;
    expect(berthctl(runtime, 'register', name, '--leader', String(l.pid), '--directory', '/srv')).toMatchObject({ status: 0 });
    const table = berthctl(runtime, 'list');
    expect(table.status).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^MACHINE +CLASS +SERVICE +OS +VERSION +ADDRESSES$/);
    expect(table.stdout).toMatch(new RegExp(`^${name} +container +berthctl `, 'm'));
    expect(table.stdout).toMatch(/^\d+ machines listed\.$/m);
    const bare = berthctl(runtime, 'list', '--no-legend');
    expect(bare.stdout).not.toMatch(/MACHINE|listed/);
    const json = JSON.parse(berthctl(runtime, 'list', '--json=short').stdout) as { name: string; rootDirectory?: string }[];
    expect(json.find((m) => m.name === name)?.rootDirectory).toBe('/srv');
    expect(berthctl(runtime, 'status', name).stdout).toMatch(new RegExp(`Leader: ${l.pid}`));
    expect(berthctl(runtime, 'show', name).stdout).toMatch(new RegExp(`^Unit=machine-${name}.scope$`, 'm'));
    expect(berthctl(runtime, 'status', `${tag}nope`).status).toBe(4);
    expect(berthctl(runtime, 'kill', name, '--kill-whom=nobody').status).toBe(2);
    expect(berthctl(runtime, 'register').status).toBe(2);
    const gone = new Promise((r) => l.once('exit', (_c, s) => r(s)));
    expect(berthctl(runtime, 'kill', name, '--kill-whom=leader', '--signal=SIGUSR1').status).toBe(0);
    expect(await within(gone, 10_000, 'the leader to get SIGUSR1')).toBe('SIGUSR1');
    await waitFor(() => berthctl(runtime, 'status', name).status === 4, 'the machine to go with its leader');
    const l2 = leader();
    expect(berthctl(runtime, 'register', name, '--leader', String(l2.pid)).status).toBe(0);
    expect(berthctl(runtime, 'register', name, '--leader', String(l2.pid)).stderr).toMatch(/MachineExists/);
    expect(berthctl(runtime, 'terminate', name).status).toBe(0);
    await waitFor(() => l2.exitCode !== null || l2.signalCode !== null, 'terminate to stop the leader');
  }, 120_000);

  it('Watch streams changes with growing sequence numbers, replays what a reconnecting client missed, and resets after a gap', async () => {
    const c = await VarlinkClient.connect(socket, { timeout: 0 });
    const w = c.proxy(IoBerthMachine).Watch.more({});
    const events: WatchResult[] = [];
    const next = async () => {
      const r = await within(w.next(), 10_000, 'a Watch reply');
      events.push(r.value as WatchResult);
      return r.value as WatchResult;
    };
    let e = await next();
    while (e.event !== 'synced') e = await next();
    expect(events[0]!.reset).toBe(true);
    const name = `${tag}w`;
    const l = leader();
    expect(berthctl(runtime, 'register', name, '--leader', String(l.pid)).status).toBe(0);
    const added = await next();
    expect(added).toMatchObject({ event: 'added', machine: { name } });
    expect(added.sequence).toBeGreaterThan(e.sequence);
    c.close();
    // Changes while nobody watches are replayed to a client that says where it stopped.
    l.kill();
    await waitFor(() => berthctl(runtime, 'status', name).status === 4, 'the machine to go');
    const c2 = await VarlinkClient.connect(socket, { timeout: 0 });
    const w2 = c2.proxy(IoBerthMachine).Watch.more({ since: added.sequence });
    const removed = (await within(w2.next(), 10_000, 'the replayed removal')).value as WatchResult;
    expect(removed).toMatchObject({ event: 'removed', name });
    expect(removed.reset).toBeUndefined();
    expect(removed.sequence).toBeGreaterThan(added.sequence);
    expect(((await within(w2.next(), 10_000, 'synced')).value as WatchResult).event).toBe('synced');
    c2.close();
    // A sequence from before this daemon's journal cannot be replayed: a full listing, marked reset.
    const c3 = await VarlinkClient.connect(socket, { timeout: 0 });
    const first = (await within(c3.proxy(IoBerthMachine).Watch.more({ since: 1 }).next(), 10_000, 'the reset')).value as WatchResult;
    expect(first.reset).toBe(true);
    c3.close();
  }, 60_000);

  it('RegisterReplacingDead refuses a live entry and registers a new one, saying it replaced nothing', async () => {
    const c = await VarlinkClient.connect(socket);
    try {
      const b = c.proxy(IoBerthMachine);
      const name = `${tag}r`;
      const l = leader();
      expect(await b.RegisterReplacingDead({ name, class: 'container', leader: l.pid, allocateUnit: true })).toEqual({ replaced: false });
      const l2 = leader();
      await expect(b.RegisterReplacingDead({ name, class: 'container', leader: l2.pid, allocateUnit: true })).rejects.toMatchObject({
        error: 'io.berth.Machine.MachineExists',
      });
      expect((await b.Describe({ name })).machine.leader?.pid).toBe(l.pid);
      await c.proxy(IoSystemdMachine).Unregister({ name });
    } finally {
      c.close();
    }
  });

  it('lists UID ranges, answers who owns a UID, and warns when a new range overlaps another machine', async () => {
    const base = 0x5a000000 + (process.pid % 64) * 0x10000 * 4;
    const a = await usernsLeader(base);
    const b = await usernsLeader(base + 0x8000);
    const inner = (c: ChildProcess) => String((c as ChildProcess & { inner: number }).inner);
    expect(berthctl(runtime, 'register', `${tag}ua`, '--leader', inner(a)).status).toBe(0);
    expect(berthctl(runtime, 'register', `${tag}ub`, '--leader', inner(b)).status).toBe(0);
    const users = berthctl(runtime, 'users', `${tag}ua`);
    expect(users.stdout).toMatch(new RegExp(`^${tag}ua +UID +${base} +${base + 65535} +65536 +0 +0$`, 'm'));
    const owner = berthctl(runtime, 'uid-owner', String(base + 7));
    expect(owner.stdout).toBe(`${base + 7} is UID 7 of machine ${tag}ua (range ${base}…${base + 65535}).\n`);
    expect(berthctl(runtime, 'uid-owner', '4242').status).toBe(1);
    const status = berthctl(runtime, 'status', `${tag}ub`);
    expect(status.stdout).toMatch(new RegExp(`Warnings: uid range ${base + 0x8000}\\+65536 overlaps machine ${tag}ua`));
  }, 60_000);
});

describe.skipIf(!!why || !!cannotSwitchUser())('policy for an unprivileged peer', () => {
  it('lets anyone list, refuses Register unless allowed, and lets only root and the owner manage a machine', async () => {
    const user = unprivilegedUser()!;
    const runtime = join(worldDir('berthd-pol-'), 'run');
    await startBerthd(runtime, ['--allow-user-register']);
    const sock = join(runtime, 'systemd/machine/io.systemd.Machine');
    // A leader the unprivileged user owns, and one root owns.
    const own = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', 'sleep', '3600'], { stdio: 'ignore' });
    children.push(own);
    const roots = leader();
    await waitFor(() => spawnSync('ps', ['-o', 'user=', '-p', String(own.pid)], { encoding: 'utf8' }).stdout.trim() !== 'root', 'setpriv to drop privileges');
    const call = async (messages: object[]) => (await rawClientResult(rawClient(sock, messages, { user }), 20_000)).connections[0]!.replies;
    const name = `${tag}p`;
    const replies = await call([
      { method: 'io.systemd.Machine.Register', parameters: { name: `${name}x`, class: 'container', leader: roots.pid, allocateUnit: true } },
      { method: 'io.systemd.Machine.Register', parameters: { name, class: 'container', leader: own.pid, allocateUnit: true } },
      { method: 'io.systemd.Machine.List', parameters: { name } },
    ]);
    expect(replies[0]).toEqual({ error: 'org.varlink.service.PermissionDenied', parameters: {} });
    expect(replies[1]).toEqual({ parameters: {} });
    expect(replies[2]).toMatchObject({ parameters: { name, class: 'container' } });
    // root's machine: the unprivileged user may list it but not touch it.
    const c = await VarlinkClient.connect(`unix:${sock}`);
    await c.proxy(IoSystemdMachine).Register({ name: `${name}r`, class: 'container', leader: roots.pid, allocateUnit: true });
    c.close();
    const manage = await call([
      { method: 'io.systemd.Machine.Kill', parameters: { name: `${name}r`, signal: 18 } },
      { method: 'io.systemd.Machine.Unregister', parameters: { name: `${name}r` } },
      { method: 'io.systemd.Machine.Kill', parameters: { name, signal: 18 } },
      { method: 'io.systemd.Machine.Unregister', parameters: { name } },
    ]);
    expect(manage.map((r) => r.error ?? 'ok')).toEqual(['org.varlink.service.PermissionDenied', 'org.varlink.service.PermissionDenied', 'ok', 'ok']);
  }, 60_000);

  it('refuses Register from an unprivileged peer by default', async () => {
    const user = unprivilegedUser()!;
    const runtime = join(worldDir('berthd-pol2-'), 'run');
    await startBerthd(runtime);
    const own = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', 'sleep', '3600'], { stdio: 'ignore' });
    children.push(own);
    const r = await rawClientResult(
      rawClient(join(runtime, 'systemd/machine/io.systemd.Machine'), [
        { method: 'io.systemd.Machine.Register', parameters: { name: `${tag}d`, class: 'container', leader: own.pid, allocateUnit: true } },
      ], { user }),
      20_000,
    );
    expect(r.connections[0]!.replies[0]).toEqual({ error: 'org.varlink.service.PermissionDenied', parameters: {} });
  }, 60_000);
});

describe.skipIf(!!why)('idle exit under berth-activate', () => {
  it('restores live machines and drops the ones whose leader died while berthd was not running', async () => {
    const runtime = join(worldDir('berthd-idle-'), 'run');
    const act = spawn(process.execPath, [ACTIVATE, '--runtime-dir', runtime, '--userdb-service', `io.berth.test.${tag}i`, '--idle-exit', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(act);
    let log = '';
    act.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(() => existsSync(join(runtime, 'systemd/machine/io.systemd.Machine')), 'the activator to bind');
    const live = leader();
    const dying = leader();
    expect(berthctl(runtime, 'register', `${tag}live`, '--leader', String(live.pid)).status).toBe(0);
    expect(berthctl(runtime, 'register', `${tag}dying`, '--leader', String(dying.pid)).status).toBe(0);
    await waitFor(() => /berthd exited/.test(log), 'berthd to exit when idle', { timeoutMs: 20_000 });
    dying.kill('SIGKILL');
    await exited(dying);
    expect(existsSync(join(runtime, 'systemd/machines', `${tag}dying`))).toBe(true);
    // The next connection starts berthd again, which restores what is still alive.
    const list = berthctl(runtime, 'list', '--no-legend');
    expect(list.stdout).toMatch(new RegExp(`^${tag}live `, 'm'));
    expect(list.stdout).not.toMatch(new RegExp(`${tag}dying`));
    expect(existsSync(join(runtime, 'systemd/machines', `${tag}dying`))).toBe(false);
    await waitFor(() => (log.match(/started berthd/g) ?? []).length === 2, 'the activator to report the second start');
    act.kill('SIGTERM');
    await exited(act, 15_000);
  }, 90_000);
});
