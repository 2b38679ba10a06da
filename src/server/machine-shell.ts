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
import { errno, openPtyPeer } from '../launcher/libc.js';
import type { Machine } from './registry/machine.js';
import { parseProcCgroup, type CgroupLayout } from './registry/scope.js';
import { mapIdToHost } from './userdb/idmap.js';
import { openInRoot } from './registry/leaders.js';
import type { MachinePty } from './pty.js';

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

const ENOENT = 2;
const O_PATH = 0o10000000;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const LOGIN_PROGRAMS = ['/bin/login', '/usr/bin/login', '/sbin/login'];

/** Where the machine's file system is reachable from the host. */
export function machineRoot(m: Machine): string {
  return m.class === 'host' ? '/' : `/proc/${m.leader.pid}/root`;
}

/** Reads a file of the machine, resolved as inside it; undefined when it cannot. */
function readInMachine(root: string, path: string): string | undefined {
  let fd: number;
  try {
    fd = openInRoot(root, path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  try {
    return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd, 'utf8') : undefined;
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** The user's entry in the machine's /etc/passwd; undefined when the machine has no such user. */
export function machineAccount(root: string, user: string): Account | undefined {
  const text = readInMachine(root, '/etc/passwd') ?? '';
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
  let fd: number;
  try {
    fd = openInRoot(root, path, O_PATH);
  } catch {
    return false;
  }
  try {
    const st = fs.fstatSync(fd);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } finally {
    fs.closeSync(fd);
  }
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
  const slave = openPtyPeer(pty.fd);
  if (slave < 0) throw new SystemError(errno() || ENOENT);
  const hostUid = m.class === 'host' ? account.uid : mapIdToHost(m.leader.pid, 'uid_map', account.uid);
  try {
    if (hostUid !== undefined) fs.fchownSync(slave, hostUid, -1);
  } catch {
    // Not fatal: the program still gets its terminal.
  }

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
  const procs = m.class === 'host' ? [] : leaderCgroupProcs(m.leader.pid, cgroups);
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

/** The cgroup.procs files of the leader's cgroups, one per hierarchy. */
function leaderCgroupProcs(leader: number, cgroups: CgroupLayout): string[] {
  let paths: { v2?: string; systemd?: string };
  try {
    paths = parseProcCgroup(fs.readFileSync(`/proc/${leader}/cgroup`, 'utf8'));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const h of cgroups.hierarchies) {
    const rel = h.version === 2 ? paths.v2 : paths.systemd;
    if (rel !== undefined) out.push(join(h.root, rel, 'cgroup.procs'));
  }
  return out;
}
