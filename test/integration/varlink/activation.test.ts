/**
 * Socket activation with Debian's systemd-socket-activate (which listens, waits for the first
 * connection, then execs the server with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES), and the connected
 * socket handover of `exec:` addresses. Run first against a minimal server made from berth's
 * Varlink library (test/helpers/activated-server.mjs), then against berthd itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { REPO } from '../../helpers/generated.js';
import { exited } from '../../helpers/processes.js';
import { tempDir } from '../../helpers/tmp.js';
import { waitFor, within } from '../../helpers/wait.js';

const SERVER = join(REPO, 'test/helpers/activated-server.mjs');
const LIBRARY = join(REPO, 'dist/src/varlink/server.js');
const BERTHD = join(REPO, 'dist/src/server/main.js');

const noActivator = spawnSync('systemd-socket-activate', ['--version']).status === 0 ? undefined : 'systemd-socket-activate is not installed (Debian package systemd)';
const noLibrary = existsSync(LIBRARY) ? undefined : `${LIBRARY} is not built (run npm run build)`;
const skipLibrary = noActivator ?? noLibrary;
if (skipLibrary) console.warn(`activation tests skipped: ${skipLibrary}`);

/** Why berthd cannot be started from dist/, or undefined when it can. */
function berthdProblem(): string | undefined {
  if (noActivator) return noActivator;
  if (!existsSync(BERTHD)) return `${BERTHD} is not built (run npm run build)`;
  const r = spawnSync(process.execPath, [BERTHD, '--version'], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) return `berthd does not start yet: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
  return undefined;
}
const skipDaemon = berthdProblem();
if (skipDaemon) console.warn(`berthd activation tests skipped: ${skipDaemon}`);

const children: ChildProcess[] = [];
const clients: VarlinkClient[] = [];
const dirs: { remove(): void }[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) d.remove();
});

function dir(): string {
  const d = tempDir('activate');
  dirs.push(d);
  return d.path;
}

/** systemd-socket-activate listening on each path, with the given names, running argv. */
function activate(paths: string[], names: string[], argv: string[]): ChildProcess & { stderrText(): string } {
  const args = [...paths.flatMap((p) => ['-l', p]), `--fdname=${names.join(':')}`, ...argv];
  const child = spawn('systemd-socket-activate', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  children.push(child);
  return Object.assign(child, { stderrText: () => stderr });
}

async function connect(address: string): Promise<VarlinkClient> {
  const c = await VarlinkClient.connect(address, { timeout: 20_000 });
  clients.push(c);
  return c;
}

async function listening(path: string): Promise<void> {
  await waitFor(() => existsSync(path), `systemd-socket-activate to create ${path}`);
}

describe.skipIf(skipLibrary)(`activated Varlink library server${skipLibrary ? ` (skipped: ${skipLibrary})` : ''}`, () => {
  it('answers the first call on the activated socket, drops LISTEN_* from its environment, and exits once idle', async () => {
    const sock = join(dir(), 'activated.sock');
    const child = activate([sock], ['varlink'], [process.execPath, SERVER, '--idle-exit', '1']);
    await listening(sock);
    const c = await connect(`unix:${sock}`);
    const info = await c.callRaw('org.varlink.service.GetInfo');
    // systemd-socket-activate execs the server, so its pid is the server's: LISTEN_PID matched.
    expect(info).toMatchObject({ product: 'activated-server', version: 'varlink', url: `pid:${child.pid}` });
    const env = (await c.callRaw('io.systemd.service.GetEnvironment')).environment as string[];
    expect(env.filter((e) => e.startsWith('LISTEN_'))).toEqual([]);
    const closedAt = Date.now();
    c.close();
    expect(await exited(child, 15_000, 'the idle server to exit')).toBe(0);
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(900);
    expect(child.stderrText()).toContain('idle, exiting');
  });

  it('serves every socket of LISTEN_FDS (two listening sockets)', async () => {
    const d = dir();
    const [a, b] = [join(d, 'a.sock'), join(d, 'b.sock')];
    const child = activate([a, b], ['varlink', 'second'], [process.execPath, SERVER, '--idle-exit', '1']);
    await listening(a);
    await listening(b);
    const ca = await connect(`unix:${a}`);
    expect((await ca.callRaw('org.varlink.service.GetInfo')).version).toBe('varlink:second');
    const cb = await connect(b);
    expect(await cb.callRaw('io.systemd.service.Ping')).toEqual({});
    // Both are one process: the same pid answers on each.
    expect((await cb.callRaw('org.varlink.service.GetInfo')).url).toBe(`pid:${child.pid}`);
    ca.close();
    cb.close();
    expect(await exited(child, 15_000, 'the idle server to exit')).toBe(0);
  });

  it('takes a connected socket as fd 3: exec: addresses work', async () => {
    const c = await connect(`exec:${SERVER}`);
    expect(c.child?.pid).toBeGreaterThan(0);
    const info = await c.callRaw('org.varlink.service.GetInfo');
    // LISTEN_PID is set to the server's own pid by the exec wrapper.
    expect(info).toMatchObject({ product: 'activated-server', version: 'varlink', url: `pid:${c.child!.pid}` });
    const results = await Promise.all(Array.from({ length: 50 }, () => c.callRaw('io.systemd.service.Ping')));
    expect(results).toEqual(Array.from({ length: 50 }, () => ({})));
    const child = c.child!;
    c.close();
    expect(await exited(child, 10_000, 'the exec: server to go away with its client')).not.toBeUndefined();
  });

  it('a server started without sockets says so and exits', async () => {
    const child = spawn(process.execPath, [SERVER], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '1' } });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // LISTEN_PID names another process, so the descriptors are not ours to take.
    expect(await exited(child)).toBe(3);
    expect(stderr).toContain('no sockets');
  });
});

describe.skipIf(skipDaemon)(`activated berthd${skipDaemon ? ` (skipped: ${skipDaemon})` : ''}`, () => {
  it('answers its first call, serves two sockets by name (varlink, userdb), and exits once idle', async () => {
    const d = dir();
    const [machine, userdb] = [join(d, 'machine.sock'), join(d, 'userdb.sock')];
    const child = activate([machine, userdb], ['varlink', 'userdb'], [process.execPath, BERTHD, '--runtime-dir', join(d, 'run'), '--idle-exit', '1', '--log-level', 'info']);
    await listening(machine);
    await listening(userdb);
    const started = Date.now();
    const c = await connect(`unix:${machine}`);
    const info = await within(c.callRaw('org.varlink.service.GetInfo'), 30_000, 'berthd to answer its first call');
    console.info(`activated berthd answered its first call after ${Date.now() - started} ms`);
    expect(info.interfaces).toEqual(expect.arrayContaining(['io.systemd.Machine', 'org.varlink.service']));
    const u = await connect(`unix:${userdb}`);
    expect((await u.callRaw('org.varlink.service.GetInfo')).interfaces).toEqual(expect.arrayContaining(['io.systemd.UserDatabase']));
    c.close();
    u.close();
    expect(await exited(child, 20_000, 'the idle berthd to exit')).toBe(0);
  });

  it('takes a connected socket over exec: (a script that execs berthd)', async () => {
    const d = tempDir('activate', { world: true });
    dirs.push(d);
    const script = join(d.path, 'berthd-exec.sh');
    writeFileSync(script, `#!/bin/sh\nexec '${process.execPath}' '${BERTHD}' --runtime-dir '${join(d.path, 'run')}' --log-level warn "$@"\n`);
    chmodSync(script, 0o755);
    const c = await connect(`exec:${script}`);
    const info = await within(c.callRaw('org.varlink.service.GetInfo'), 30_000, 'berthd to answer over exec:');
    expect(info.interfaces).toEqual(expect.arrayContaining(['io.systemd.Machine']));
    expect(await c.callRaw('io.systemd.service.Ping')).toEqual({});
    const child = c.child!;
    c.close();
    await exited(child, 15_000, 'berthd to stop with its exec: client');
  });
});
