/**
 * io.systemd.Machine.Open in `shell` and `login` mode, without a service manager inside the machine.
 *
 * machined asks the machine's own systemd, over the machine's D-Bus, to start the program on the
 * terminal; a machine without systemd and D-Bus inside (busybox, any application container) gets
 * nothing. berth starts it from the host instead: `setsid --ctty` makes a new session whose
 * controlling terminal is the machine's terminal, and `nsenter --all` runs the program inside every
 * namespace of the leader (user, mount, pid, ...), as the requested user of the machine, in its home
 * directory. The process joins the leader's cgroups before it starts, so the machine's scope holds
 * it and Terminate or Kill reach it. `login` runs the machine's own login program, which asks for user and password.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SystemError } from '../varlink/errors.js';
import { ENOENT, errno } from '../domain/libc.js';
import { machineRoot, type Machine } from './registry/machine.js';
import type { CgroupLayout } from '../domain/cgroup-paths.js';
import { pidCgroupDirs } from './registry/pid-cgroup.js';
import { mapIdToHost } from './userdb/idmap.js';
import { readFileInRoot, statInRoot } from './registry/machine-files.js';
import { openPtyPeerOwnedBy, type MachinePty } from './pty.js';

export interface ShellRequest {
  mode: 'shell' | 'login';
  user?: string | null;
  path?: string | null;
  args?: string[] | null;
  environment?: string[] | null;
}

interface Account {
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const LOGIN_PROGRAMS = ['/bin/login', '/usr/bin/login', '/sbin/login'];

/** The user's entry in the machine's /etc/passwd; undefined when the machine has no such user. */
export function machineAccount(root: string, user: string): Account | undefined {
  let text = '';
  try {
    text = readFileInRoot(root, '/etc/passwd');
  } catch {
    // no passwd: only root is known
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] !== user) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    return { uid, gid, home: f[5] || '/', shell: f[6] || '/bin/sh' };
  }
  return user === 'root' ? { uid: 0, gid: 0, home: '/root', shell: '/bin/sh' } : undefined;
}

/** True when `path` names an executable regular file, as seen inside the machine. */
function executableIn(root: string, path: string): boolean {
  const st = statInRoot(root, path);
  return st !== undefined && st.isFile() && (st.mode & 0o111) !== 0;
}

/**
 * Starts the program of a shell or login request on the machine's terminal `pty`. Throws what the
 * caller should answer when it cannot (no such user, no program to run); `noSuchUser` makes the
 * machine interface's error.
 */
export function startOnTerminal(m: Machine, pty: MachinePty, req: ShellRequest, cgroups: CgroupLayout, log: Logger, noSuchUser: () => Error): void {
  const root = machineRoot(m);
  const login = req.mode === 'login';
  const account = machineAccount(root, login ? 'root' : (req.user ?? 'root'));
  if (!account) throw noSuchUser();
  let path: string;
  let args: string[];
  if (login) {
    const found = LOGIN_PROGRAMS.find((p) => executableIn(root, p));
    if (!found) throw new SystemError(ENOENT);
    path = found;
    args = [];
  } else {
    path = req.path ?? account.shell;
    if (!executableIn(root, path)) throw new SystemError(ENOENT);
    // args carries argv[0] first, as for execve(); nsenter passes the program's path as argv[0].
    args = (req.args?.length ? req.args : [path]).slice(1);
  }

  // The terminal side comes from the master itself, not from a path the machine could redirect, and
  // belongs to the user it is for, as login would arrange.
  const hostUid = m.class === 'host' ? account.uid : mapIdToHost(m.leader.pid, 'uid_map', account.uid);
  const slave = openPtyPeerOwnedBy(pty.fd, hostUid);
  if (slave < 0) throw new SystemError(errno() || ENOENT);

  const env: Record<string, string> = login
    ? { PATH: DEFAULT_PATH, TERM: 'vt220' }
    : { PATH: DEFAULT_PATH, TERM: 'vt220', HOME: account.home, USER: req.user ?? 'root', LOGNAME: req.user ?? 'root', SHELL: account.shell };
  for (const e of req.environment ?? []) {
    const eq = e.indexOf('=');
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const target = m.class === 'host' ? 1 : m.leader.pid;
  const ids = login ? [] : [`--setuid=${account.uid}`, `--setgid=${account.gid}`];
  const command = ['setsid', '--ctty', 'nsenter', `--target=${target}`, '--all', ...ids, `--wdns=${login ? '/' : account.home}`, '--', path, ...args];
  // A host shell first puts itself into the leader's cgroups, then execs the rest, so that every
  // process of the program starts inside the machine's scope.
  const procs = m.class === 'host' ? [] : pidCgroupDirs(m.leader.pid, cgroups).map((d) => join(d, 'cgroup.procs'));
  const script = 'while [ "$1" != -- ]; do { echo $$ >"$1"; } 2>/dev/null; shift; done; shift; exec "$@"';
  let child;
  try {
    child = spawn('/bin/sh', ['-c', script, 'sh', ...procs, '--', ...command], { stdio: [slave, slave, slave], env });
  } finally {
    fs.closeSync(slave);
  }
  child.on('error', (err) => log.warn({ err, machine: m.name }, 'cannot start the program for Open'));
  child.on('exit', (code, signal) => log.debug({ machine: m.name, code, signal }, 'program started by Open exited'));
  child.unref();
  log.info({ machine: m.name, mode: req.mode, path, uid: account.uid, pty: pty.path }, 'started a program on a terminal of the machine');
}
