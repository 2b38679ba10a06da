// berthd as it starts in production (dist/bin/berthd.cjs, the bundle run from its code cache) answers calls that need no libc without loading the native
// module (koffi): a socket-activated berthd's first client waits for its start-up. A preload
// (test/helpers/record-native.cjs) logs every native module the daemon loads; the log must stay empty
// through GetInfo and a userdb miss, and fill once a lookup of `.host` opens a pidfd.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { REPO } from '../../helpers/generated.js';
import { exited } from '../../helpers/processes.js';
import { tempDir } from '../../helpers/tmp.js';
import { waitFor, within } from '../../helpers/wait.js';

const BERTHD = join(REPO, 'dist/bin/berthd.cjs');
const CODE = join(REPO, 'dist/bin/berthd-code.cjs');
const PRELOAD = join(REPO, 'test/helpers/record-native.cjs');
const why =
  process.getuid?.() !== 0 ? 'needs root (berthd runs as root)' : !existsSync(BERTHD) ? `${BERTHD} is not built (run npm run build)` : undefined;
const noActivator = spawnSync('systemd-socket-activate', ['--version']).status === 0 ? undefined : 'systemd-socket-activate is not installed (Debian package systemd)';
if (why) console.warn(`lazy native module tests skipped: ${why}`);

const children: ChildProcess[] = [];
const clients: VarlinkClient[] = [];
const dirs: { remove(): void }[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const c of children.splice(0).reverse()) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await exited(c, 5000).catch(() => undefined);
  }
  for (const d of dirs.splice(0)) d.remove();
});

interface Started {
  runtime: string;
  /** What the preload recorded so far: one entry per native module load, with the stack that loaded it. */
  loads(): string[];
}

function setUp(): { runtime: string; log: string; loads(): string[] } {
  const d = tempDir('lazy-native');
  dirs.push(d);
  const log = join(d.path, 'native.log');
  const loads = () => (existsSync(log) ? readFileSync(log, 'utf8').split(/\n(?=\S)/).filter(Boolean) : []);
  return { runtime: join(d.path, 'run'), log, loads };
}

function berthdArgv(runtime: string): string[] {
  return [process.execPath, '--require', PRELOAD, BERTHD, '--runtime-dir', runtime, '--log-level', 'warn'];
}

/** berthd listening on its own sockets under a fresh runtime directory. */
async function startBerthd(): Promise<Started> {
  const { runtime, log, loads } = setUp();
  const [node, ...args] = berthdArgv(runtime);
  const child = spawn(node!, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, BERTH_NATIVE_LOG: log } });
  children.push(child);
  await waitFor(() => existsSync(join(runtime, 'systemd/userdb/io.systemd.Machine')), 'berthd to listen', { timeoutMs: 30_000 });
  return { runtime, loads };
}

/** berthd exec'd by systemd-socket-activate on the first connection to its sockets. */
async function activateBerthd(): Promise<Started> {
  const { runtime, log, loads } = setUp();
  const sockets = [join(runtime, '..', 'machine.sock'), join(runtime, '..', 'userdb.sock')];
  const activator = [...sockets.flatMap((p) => ['-l', p]), '--fdname=varlink:userdb', `--setenv=BERTH_NATIVE_LOG=${log}`];
  const child = spawn('systemd-socket-activate', [...activator, ...berthdArgv(runtime)], { stdio: ['ignore', 'ignore', 'ignore'] });
  children.push(child);
  await waitFor(() => sockets.every((p) => existsSync(p)), 'systemd-socket-activate to listen');
  return { runtime, loads };
}

async function connect(address: string): Promise<VarlinkClient> {
  const c = await VarlinkClient.connect(address, { timeout: 20_000 });
  clients.push(c);
  return c;
}

/** The first native module load the preload saw: its first line and the stack that caused it. */
function firstLoad(loads: () => string[]): string {
  return loads()[0] ?? '';
}

async function getInfo(address: string): Promise<VarlinkClient> {
  const c = await connect(address);
  const info = await within(c.callRaw('org.varlink.service.GetInfo'), 30_000, 'berthd to answer its first call');
  expect(info.interfaces).toEqual(expect.arrayContaining(['io.systemd.Machine']));
  return c;
}

describe.skipIf(why)(`berthd loads koffi only when a call needs it${why ? ` (skipped: ${why})` : ''}`, () => {
  it('answers GetInfo without the native module, and loads it for a lookup of .host', async () => {
    // scripts/bundle.mjs keeps koffi external, and berth requires it only inside functions.
    expect(readFileSync(CODE, 'utf8')).not.toMatch(/^(var|const|let) \w+ = (__toESM\()?require\(["']koffi["']\)/m);
    const { runtime, loads } = await startBerthd();
    expect(loads(), 'native modules loaded at start-up').toEqual([]);
    const m = await getInfo(`unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`);
    expect(loads(), 'native modules loaded before any call needed one').toEqual([]);
    // A lookup reads the caller's credentials (SO_PEERCRED) and describes `.host` with the pidfd id of PID 1
    // (pidfd_open): that needs libc, so the module loads now.
    expect(await m.callRaw('io.systemd.Machine.List', { name: '.host' })).toMatchObject({ name: '.host', class: 'host' });
    expect(loads().map((e) => e.split('\n')[0])).toEqual(expect.arrayContaining([expect.stringMatching(/koffi/)]));
  });

  it('answers a userdb miss (an error reply) without the native module', async () => {
    const { runtime, loads } = await startBerthd();
    const u = await connect(`unix:${join(runtime, 'systemd/userdb/io.systemd.Machine')}`);
    await expect(
      u.callRaw('io.systemd.UserDatabase.GetUserRecord', { userName: 'berth-lazy-no-such-user', service: 'io.systemd.Machine' }),
    ).rejects.toMatchObject({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(loads(), 'native modules loaded for an error reply').toEqual([]);
  });

  it.skipIf(noActivator)('socket-activated, answers its first call without the native module', async () => {
    const { runtime, loads } = await activateBerthd();
    await getInfo(`unix:${join(runtime, '..', 'machine.sock')}`);
    expect(loads(), 'native modules loaded before the first reply').toEqual([]);
  });
});
