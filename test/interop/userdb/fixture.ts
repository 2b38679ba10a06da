/**
 * A berthd whose userdb socket sits in /run/systemd/userdb/ (the only place userdbctl, nss-systemd
 * and friends look) under a unique name, socket-activated by Debian's systemd-socket-activate, with
 * everything else under a temporary runtime directory; plus a user-namespaced machine registered
 * in it. Everything is removed again by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawConnection } from '../../helpers/raw.js';
import { tempDir } from '../../helpers/tmp.js';
import { tearDown } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN_JS = join(REPO, 'dist/src/server/main.js');
const USERDB_DIR = '/run/systemd/userdb';
const CGROUP_HIERARCHIES = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'];

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd]).status === 0;
}

/** Why these tests cannot run here, or undefined. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (writes /run/systemd/userdb, uid_map and cgroups)';
  if (!existsSync(MAIN_JS)) return `${MAIN_JS} is missing: run 'npm run build' first`;
  for (const cmd of ['systemd-socket-activate', 'unshare', 'nsenter', 'getent', 'ps', 'stat', 'userdbctl']) {
    if (!which(cmd)) return `${cmd} is not installed (apt-get install systemd systemd-userdbd util-linux procps)`;
  }
  if (!CGROUP_HIERARCHIES.some((h) => existsSync(join(h, 'cgroup.procs')))) return 'no writable cgroup hierarchy under /sys/fs/cgroup';
  const probe = spawnSync('unshare', ['--user', 'true']);
  if (probe.status !== 0) return `user namespaces are not available: ${probe.stderr.toString().trim()}`;
  return undefined;
}

/** Moves a process into machine.slice/machine-NAME.scope, the unit-shaped cgroup a leader must have. */
export function placeInScope(name: string, pid: number): string[] {
  const dirs: string[] = [];
  for (const h of CGROUP_HIERARCHIES) {
    if (!existsSync(join(h, 'cgroup.procs'))) continue;
    const dir = join(h, 'machine.slice', `machine-${name}.scope`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    dirs.push(dir);
  }
  return dirs;
}

export interface UserdbFixture {
  /** Socket name = the records' `service`. */
  service: string;
  socket: string;
  runtime: string;
  /** berthd's io.systemd.Machine socket (under the runtime directory). */
  machineSocket: string;
  machine: string;
  /** First host UID/GID of the machine's range. */
  base: number;
  leader: number;
  /** A process inside the machine running as UID/GID 1000 of the machine. */
  member: number;
  /** A second container whose leader stays in the host's user namespace (identity maps). */
  plainMachine: string;
  /** A world-writable directory holding files created inside the machine. */
  shared: string;
  /** Sends a call with the parameters exactly as written (JSON text) and returns the reply's text. */
  call(method: string, parameters: string, more?: boolean): Promise<string>;
  /**
   * Registers another user-namespaced container before its maps are written (as a launcher that
   * registers first would); `writeMaps()` then maps it to `base`.
   */
  registerUnmapped(): Promise<{ name: string; base: number; writeMaps(): void }>;
  stop(): Promise<void>;
}

export async function startUserdbFixture(): Promise<UserdbFixture> {
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const service = `berth-test-userdb-${tag}`;
  const socket = join(USERDB_DIR, service);
  const runtime = tempDir('userdb-interop');
  const shared = tempDir('userdb-shared');
  chmodSync(shared.path, 0o1777);
  const machine = `ud-t${process.pid % 100000}`;
  const plainMachine = `ud-p${process.pid % 100000}`;
  // A range far from the reference machined's test machines (0x70000000 and up), unique per run.
  const base = 0x60000000 + (process.pid % 4096) * 0x10000;
  const children: ChildProcess[] = [];
  /** Processes that are not our children (the namespace's PID 1 ignores SIGTERM; unshare does not pass SIGKILL on). */
  const strays: number[] = [];
  const scopes: string[] = [];
  let daemon: ChildProcess | undefined;
  let conn: RawConnection | undefined;

  const stop = async (): Promise<void> => {
    conn?.socket.destroy();
    await tearDown({ strays, children: children.reverse(), ...(daemon ? { daemon } : {}), cgroups: scopes });
    // systemd-socket-activate bound the socket, so nobody else removes it.
    try {
      unlinkSync(socket);
    } catch {
      // already gone
    }
    runtime.remove();
    shared.remove();
  };

  try {
    mkdirSync(USERDB_DIR, { recursive: true });
    daemon = spawn(
      'systemd-socket-activate',
      ['-l', socket, '--fdname=userdb', process.execPath, MAIN_JS, '--runtime-dir', runtime.path, '--userdb-service', service, '--log-level', 'warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(() => existsSync(socket), `systemd-socket-activate to bind ${socket}`);
    // The first connection starts berthd; its answer shows that the handed-over socket is served.
    conn = await RawConnection.connect(socket);
    const info = await conn.roundTrip({ method: 'org.varlink.service.GetInfo', parameters: {} }, 20_000).catch((e) => {
      throw new Error(`berthd did not answer on ${socket}: ${String(e)}\n${log}`);
    });
    if (!(info.parameters?.interfaces as string[] | undefined)?.includes('io.systemd.UserDatabase')) throw new Error(`unexpected GetInfo: ${JSON.stringify(info)}`);

    // The leader: PID 1 of a new user and PID namespace, its maps written from here.
    const ns = spawn('unshare', ['--user', '--fork', '--pid', '--mount-proc', 'sleep', 'infinity'], { stdio: 'ignore' });
    children.push(ns);
    const leader = await waitFor(() => {
      const kids = readFileSync(`/proc/${ns.pid}/task/${ns.pid}/children`, 'utf8').trim();
      return kids ? Number(kids.split(' ')[0]) : 0;
    }, 'unshare to fork the leader');
    strays.push(leader);
    writeFileSync(`/proc/${ns.pid}/setgroups`, 'deny');
    writeFileSync(`/proc/${ns.pid}/uid_map`, `0 ${base} 65536\n`);
    writeFileSync(`/proc/${ns.pid}/gid_map`, `0 ${base} 65536\n`);
    scopes.push(...placeInScope(machine, leader));

    const machineSocket = join(runtime.path, 'systemd/machine/io.systemd.Machine');
    await waitFor(() => existsSync(machineSocket), 'berthd to bind its machine socket');
    const reg = await RawConnection.connect(machineSocket);
    const r = await reg.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name: machine, class: 'container', leader } });
    if (r.error) throw new Error(`Register failed: ${JSON.stringify(r)}`);

    const plain = spawn('sleep', ['infinity'], { stdio: 'ignore' });
    children.push(plain);
    scopes.push(...placeInScope(plainMachine, plain.pid!));
    const r2 = await reg.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name: plainMachine, class: 'container', leader: plain.pid } });
    reg.socket.destroy();
    if (r2.error) throw new Error(`Register of the plain container failed: ${JSON.stringify(r2)}`);

    // A process of the machine running as its UID 1000, in the machine's cgroup.
    const member = spawn('nsenter', ['--target', String(leader), '--user', '--setuid', '1000', '--setgid', '1000', 'sleep', 'infinity'], { stdio: 'ignore' });
    children.push(member);
    await waitFor(() => {
      try {
        return readFileSync(`/proc/${member.pid}/comm`, 'utf8').trim() === 'sleep';
      } catch {
        return false;
      }
    }, 'nsenter to exec sleep');
    placeInScope(machine, member.pid!);

    // Files created inside the machine, as its root and as its UID 1000.
    for (const id of ['0', '1000']) {
      const t = spawnSync('nsenter', ['--target', String(leader), '--user', '--setuid', id, '--setgid', id, 'touch', join(shared.path, `by-${id}`)]);
      if (t.status !== 0) throw new Error(`touch inside the machine failed: ${t.stderr.toString()}`);
    }

    const registerUnmapped = async () => {
      const name = `ud-l${process.pid % 100000}`;
      const lateBase = 0x58000000 + (process.pid % 4096) * 0x10000;
      const lateNs = spawn('unshare', ['--user', '--fork', '--pid', '--mount-proc', 'sleep', 'infinity'], { stdio: 'ignore' });
      children.push(lateNs);
      const lateLeader = await waitFor(() => {
        const kids = readFileSync(`/proc/${lateNs.pid}/task/${lateNs.pid}/children`, 'utf8').trim();
        return kids ? Number(kids.split(' ')[0]) : 0;
      }, 'unshare to fork the late leader');
      strays.push(lateLeader);
      scopes.push(...placeInScope(name, lateLeader));
      const rc = await RawConnection.connect(machineSocket);
      const rr = await rc.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name, class: 'container', leader: lateLeader } });
      rc.socket.destroy();
      if (rr.error) throw new Error(`Register of ${name} failed: ${JSON.stringify(rr)}`);
      return {
        name,
        base: lateBase,
        writeMaps: () => {
          writeFileSync(`/proc/${lateNs.pid}/setgroups`, 'deny');
          writeFileSync(`/proc/${lateNs.pid}/uid_map`, `0 ${lateBase} 65536\n`);
          writeFileSync(`/proc/${lateNs.pid}/gid_map`, `0 ${lateBase} 65536\n`);
        },
      };
    };

    const c = conn;
    return {
      registerUnmapped,
      service,
      socket,
      runtime: runtime.path,
      machineSocket,
      machine,
      plainMachine,
      base,
      leader,
      member: member.pid!,
      shared: shared.path,
      call: async (method, parameters, more = false) => {
        c.send(`{"method":${JSON.stringify(method)},"parameters":${parameters}${more ? ',"more":true' : ''}}\0`);
        return c.nextText();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
