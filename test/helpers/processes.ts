/** Child processes for tests: started with argv arrays, read line by line, always reaped. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, within } from './wait.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The first line a child writes to stdout. */
export function firstLine(child: ChildProcess, timeoutMs = 10_000, what = 'a line from the child'): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl !== -1) resolve(out.slice(0, nl));
      });
      child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before printing: ${err.trim()}`)));
    }),
    timeoutMs,
    what,
  );
}

/** Resolves with the exit code (or signal name) once the child has exited. */
export function exited(child: ChildProcess, timeoutMs = 10_000, what = 'the child to exit'): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return within(
    new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))),
    timeoutMs,
    what,
  );
}

export interface UserIds {
  uid: number;
  gid: number;
  name: string;
}

/** uid/gid of an unprivileged test user: berth-test if it exists, else nobody. */
export function unprivilegedUser(): UserIds | undefined {
  for (const name of ['berth-test', 'nobody']) {
    const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    if (u.status === 0 && g.status === 0) return { name, uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  }
  return undefined;
}

/** Why running a process as another user is impossible here, or undefined when it is possible. */
export function cannotSwitchUser(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to run a client as another user';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'setpriv (util-linux) is not installed';
  if (!unprivilegedUser()) return 'neither berth-test nor nobody exists';
  return undefined;
}

export interface RawClientResult {
  pid: number;
  uid: number;
  gid: number;
  connections: { replies: Record<string, any>[]; closed: boolean; error: string | null }[];
}

/**
 * Runs test/helpers/raw-client.mjs, as `user` (through setpriv) when given. The script is passed
 * with -e so the user needs no access to the repository; the socket's directory must be reachable.
 */
export function rawClient(
  socket: string,
  messages: object[],
  { connections = 1, user, hold = false }: { connections?: number; user?: UserIds; hold?: boolean } = {},
): ChildProcess {
  const code = readFileSync(join(HERE, 'raw-client.mjs'), 'utf8');
  const node = [process.execPath, '--input-type=module', '-e', code, '--', socket, String(connections), JSON.stringify(messages)];
  if (hold) node.push('--hold');
  const argv = user
    ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', ...node]
    : node;
  return spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
}

export async function rawClientResult(child: ChildProcess, timeoutMs = 10_000): Promise<RawClientResult> {
  return JSON.parse(await firstLine(child, timeoutMs, 'the raw client to report')) as RawClientResult;
}

/**
 * The common end of a test that started processes and cgroups: SIGKILL to `strays` (processes that
 * are not our children, such as PID 1 of an unshare) and `children`, SIGTERM (then SIGKILL) to
 * `daemon`, then each cgroup directory in `cgroups` removed, deepest first, once it has emptied.
 */
export async function tearDown(o: { strays?: number[]; children?: ChildProcess[]; daemon?: ChildProcess; cgroups?: Iterable<string> }): Promise<void> {
  for (const pid of o.strays ?? []) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const c of o.children ?? []) {
    c.kill('SIGKILL');
    await exited(c, 5000).catch(() => undefined);
  }
  const d = o.daemon;
  if (d) {
    d.kill('SIGTERM');
    await exited(d, 10_000).catch(() => d.kill('SIGKILL'));
  }
  // Deepest first, so that a parent is empty of children when its turn comes; a killed process
  // leaves its cgroup a moment after it is reaped.
  for (const dir of [...(o.cgroups ?? [])].sort((a, b) => b.length - a.length)) {
    await waitFor(() => !existsSync(dir) || readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() === '', `${dir} to empty`, { timeoutMs: 5000 }).catch(
      () => undefined,
    );
    try {
      rmdirSync(dir);
    } catch {
      // still busy or already gone
    }
  }
}
