/**
 * Starting a container's PID 1: everything from the machine lock to a running leader process, with each
 * step's undo registered on a Teardown. The process chain is
 *   unshare --mount → stage 0 (host root: enter the scope, mount the tree, /run, /tmp, /dev, binds)
 *   → nsenter --user (the prepared user namespace) → unshare --pid --mount --uts --ipc --cgroup [--net]
 *   --fork → stage 1 (PID 1: /proc, /sys, hostname, pivot_root) → init
 * PID 1 is in its scope before anything of the container runs, and in a user namespace whose maps the
 * launcher wrote from the host (0 → base, 65536 IDs). The user namespace is created by a holder process
 * started in parallel with stage 0; stage 0 waits for "maps written" on a pipe before joining it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { run, type Process } from '../process.js';
import { Scope } from '../cgroup.js';
import { allocateUidRange, treeBase, type UidLease } from '../uid-range.js';
import { shiftTree } from '../ownership.js';
import { NotifySocket } from '../notify.js';
import { hostIfName, setupVeth, removeVeth, type Veth } from '../network.js';
import { berthSpawnMark, LaunchRecord, vethAlias } from '../launch-record.js';
import { clearLeftovers } from '../leftovers.js';
import { Teardown, waitFor } from '../teardown.js';
import { buildEnvironment, parseOsRelease } from './environment.js';
import { containerMachineId, hostOsReleaseText, linkJournal, prepareHostDir, syncLocaltime, type Owner } from './host-dir.js';
import { Console } from './console.js';
import { stageArgv } from './stage1.js';
import { DEVICE_NODES, stage0DevFstab, stage0Fstab, stage1Fstab, type TreeLayout } from './fstab.js';
import { ContainerOptionError, type ContainerOptions } from './options.js';
import { checkOptions, initArgv } from './tree-checks.js';
import { lockName, lockTree, machinesDir, treeLockPath } from './locks.js';

export interface Launched {
  child: Process;
  leader: number;
  notify: NotifySocket;
  scope: Scope;
  lease?: UidLease;
  veth?: Veth;
  runDir: string;
  owner: Owner;
  machineId: string;
  root: string;
}

export type Log = (msg: string) => void;

/** The container's root (an unprivileged host UID) must be able to walk to its run directory. */
function assertSearchable(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = fs.statSync(d);
    if ((st.mode & 0o001) === 0) {
      throw new ContainerOptionError(`${d} is not searchable by others (mode ${(st.mode & 0o777).toString(8)}); the container's root must reach ${dir}: use a runtime directory whose parents have mode 755`);
    }
    if (d === '/') return;
  }
}

/** Files, directories and links /dev starts with (copied onto its tmpfs; nodes are bind-mounted over the files). */
function makeDevTemplate(runDir: string, owner: Owner): string {
  const d = path.join(runDir, 'dev');
  fs.mkdirSync(d, { mode: 0o755 });
  for (const n of [...DEVICE_NODES, 'console']) fs.writeFileSync(path.join(d, n), '', { mode: 0o644 });
  fs.mkdirSync(path.join(d, 'pts'));
  fs.mkdirSync(path.join(d, 'shm'));
  const links: [string, string][] = [['ptmx', 'pts/ptmx'], ['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
  for (const [n, t] of links) fs.symlinkSync(t, path.join(d, n));
  for (const e of fs.readdirSync(d)) fs.lchownSync(path.join(d, e), owner.uid, owner.gid);
  fs.chownSync(d, owner.uid, owner.gid);
  return d;
}

/** A process whose only job is to own a fresh user namespace until the container has joined it. */
function startHolder(t: Teardown): { pid: number; stop: () => Promise<void>; ready: Promise<void> } {
  const holder = run('unshare', ['--user', '--', 'sleep', 'infinity'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async (): Promise<void> => { holder.kill('SIGKILL'); await holder; };
  t.add('stop the user namespace holder', stop);
  const pid = holder.pid;
  if (!pid) throw new Error('cannot start unshare for the user namespace');
  const own = fs.readlinkSync('/proc/self/ns/user');
  let ended: { stderr?: unknown } | undefined;
  void holder.then((r) => { ended = r; });
  const ready = waitFor(() => {
    if (ended) throw new Error(`unshare --user failed: ${String(ended.stderr ?? 'it exited')}`);
    try { return fs.readlinkSync(`/proc/${pid}/ns/user`) !== own; } catch { return false; }
  }, 5000, 'the user namespace', 1).then(() => undefined);
  ready.catch(() => {});
  return { pid, stop, ready };
}

export async function launchContainer(o: ContainerOptions, t: Teardown, log: Log): Promise<Launched> {
  // BERTH_TRACE=1: timestamps of the steps below, to see where start-up time goes.
  const t0 = performance.now();
  const trace = process.env.BERTH_TRACE === '1' ? (m: string): void => log(`+${(performance.now() - t0).toFixed(1)} ms ${m}`) : (): void => {};
  const root = checkOptions(o);
  lockName(o, t);
  // What an earlier berth-spawn of this machine left when it was killed (its name lock was free, so it ended).
  await clearLeftovers(o.runtimeDir, o.name, 'container', log, (m) => new ContainerOptionError(m));

  const runDir = path.join(machinesDir(o.runtimeDir), o.name);
  fs.mkdirSync(runDir, { mode: 0o755 });
  t.add('remove the run directory', () => fs.rmSync(runDir, { recursive: true, force: true }));
  // From here on, each part is noted in the record before it is made.
  const record = LaunchRecord.create(runDir, o.name, 'container');
  record.note({ treeLock: treeLockPath(root, o.runtimeDir) });
  lockTree(root, o.name, o.runtimeDir, t);

  const scope = Scope.locate(o.name);
  if (scope.exists()) {
    // Not berth-spawn's (its own leftovers are gone by now): an empty one is in the way, a busy one is a machine.
    if (scope.pids().length) throw new ContainerOptionError(`machine '${o.name}' is already running (its cgroup ${scope.paths[0]} has processes)`);
    scope.remove();
  }

  trace('checked, locked');
  const lease = allocateUidRange({ machineName: o.name, root, spec: o.privateUsers, runtimeDir: o.runtimeDir });
  if (lease) t.add('release the UID range', () => lease.release());
  if (lease) record.note({ uidLease: lease.base });
  if (lease) assertSearchable(runDir);
  // The user namespace comes up while the rest is prepared.
  const holder = lease ? startHolder(t) : undefined;
  const owner: Owner = lease ? { uid: lease.base, gid: lease.base } : { uid: 0, gid: 0 };
  trace(`UID range ${lease?.base ?? 'none'}`);
  if (lease && o.privateUsers.mode !== 'yes' && treeBase(root) !== lease.base) {
    const r = shiftTree(root, lease.base, lease.range);
    log(`shifted ownership of ${root} to ${lease.base} (${r.changed} of ${r.inodes} inodes)`);
  }

  const hostDir = prepareHostDir(runDir, o.uuid, owner, o.credentials);
  const notify = new NotifySocket(hostDir.notifyPath);
  t.add('close the notify socket', () => notify.close());
  fs.chownSync(hostDir.notifyPath, owner.uid, owner.gid);

  if (syncLocaltime(root, owner) === 'linked') log('linked /etc/localtime to the host\'s zone');
  const machineId = containerMachineId(root, o.uuid);
  const journal = linkJournal(root, machineId, o.linkJournal, o.hostJournalDir, owner);
  for (const c of journal.created) t.add(`remove ${c}`, () => fs.rmSync(c, { recursive: true, force: true }), { onlyOnFailure: true });

  const con = Console.open(owner, o.consoleOutput ?? process.stdout);
  t.add('close the console', () => con.close());

  record.note({ scope: scope.paths });
  scope.create(berthSpawnMark(o.runtimeDir), lease ? owner : undefined);
  t.add('remove the cgroup scope', async () => {
    scope.killAll();
    await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty');
    if (!scope.remove()) throw new Error(`cgroup scope ${scope.paths.join(', ')} could not be removed`);
  });

  const runRoot = path.join(runDir, 'root');
  fs.mkdirSync(runRoot, { mode: 0o755 });
  const layout: TreeLayout = { runRoot, tree: root, hostDir: hostDir.dir, owner, console: con.slavePath, ownNetwork: o.networkVeth,
    cgroup2: scope.hierarchies.some((h) => h.version === 2) };
  const fstab0 = path.join(runDir, 'fstab0');
  const fstab0Dev = path.join(runDir, 'fstab0-dev');
  const fstab1 = path.join(runDir, 'fstab1');
  fs.writeFileSync(fstab0, stage0Fstab(layout));
  fs.writeFileSync(fstab0Dev, stage0DevFstab(layout));
  fs.writeFileSync(fstab1, stage1Fstab(layout), { mode: 0o644 });
  const devTemplate = makeDevTemplate(runDir, owner);

  const env = buildEnvironment({
    uuid: o.uuid,
    hostOsRelease: parseOsRelease(hostOsReleaseText()),
    notifySocket: '/run/host/notify',
    credentialsDirectory: hostDir.credentialsDir ? '/run/host/credentials' : undefined,
    listenFds: o.listenFds.length,
    listenFdNames: o.listenFdNames,
    ttys: o.ttys,
    term: process.env.TERM,
    setenv: o.setenv,
  });
  const syncFd = 3 + o.listenFds.length;
  const binds = [...o.binds, ...(journal.bind ? [journal.bind] : [])];
  const argv = [
    'unshare', '--mount', '--propagation', 'private', '--',
    ...stageArgv({
      runRoot, fstab0, fstab0Dev, fstab1, devTemplate, owner: owner.uid, hostname: o.name, cgroups: scope.paths,
      syncFd, waitInStage0: !!holder, waitInStage1: o.networkVeth, binds, init: initArgv(root, o),
      namespaces: [
        ...(holder ? ['nsenter', `--user=/proc/${holder.pid}/ns/user`, '--'] : []),
        'unshare', '--mount', '--pid', '--uts', '--ipc', '--cgroup', ...(o.networkVeth ? ['--net'] : []), '--fork', '--kill-child', '--',
      ],
    }),
  ];
  const stdio = ['inherit', 'inherit', 'inherit', ...o.listenFds, 'pipe'];
  trace('prepared; spawning');
  // A session of its own (as nspawn does): ^C on berth-spawn's terminal must reach berth-spawn, which stops
  // the container cleanly, not the container's init (to systemd, SIGINT means ctrl-alt-del: reboot).
  const child = run(argv[0]!, argv.slice(1), { env, stdio: stdio as never, detached: true });
  let leaderPid = 0;
  t.add('stop the container processes', async () => {
    // Kill PID 1 first: its PID namespace goes with it and unshare reaps it. Killing unshare first would
    // leave PID 1 an orphan of the host's init, which may never reap it.
    if (leaderPid) {
      try { process.kill(leaderPid, 'SIGKILL'); } catch { /* gone */ }
      const done = await Promise.race([child.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000))]);
      if (done) return;
    }
    child.kill('SIGKILL');
    await child;
  });
  if (!child.pid) throw new Error(`cannot start ${argv[0]}`);
  const pid = child.pid;
  const sync = child.stdio[syncFd] as NodeJS.WritableStream;
  sync.on('error', () => { /* the chain ended early; reported through its exit */ });

  let exited = false;
  void child.then(() => { exited = true; });

  if (holder && lease) {
    await holder.ready;
    const map = `0 ${lease.base} ${lease.range}\n`;
    fs.writeFileSync(`/proc/${holder.pid}/uid_map`, map);
    fs.writeFileSync(`/proc/${holder.pid}/gid_map`, map);
    sync.write('go\n');
    trace('maps written');
  }

  // PID 1 is the first child of the chain that lives in another PID namespace (stage 0's helpers do not).
  const ownPidNs = fs.readlinkSync('/proc/self/ns/pid');
  const leader = await waitFor(() => {
    try {
      for (const k of fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
        try { if (fs.readlinkSync(`/proc/${k}/ns/pid`) !== ownPidNs) return Number(k); } catch { /* gone */ }
      }
    } catch { /* not yet, or gone */ }
    if (exited) throw new ContainerOptionError('the container could not be started (see the messages above)');
    return undefined;
  }, 10_000, 'the container\'s PID 1', 1);
  leaderPid = leader;
  // The container's processes keep the user namespace alive from here on.
  if (holder) void holder.stop(); // the teardown awaits it too
  trace('PID 1 found');

  let veth: Veth | undefined;
  if (o.networkVeth) {
    try {
      record.note({ veth: hostIfName(o.name).name });
      veth = await setupVeth(o.name, leader, vethAlias(o.runtimeDir, o.name));
      const name = veth.hostName;
      t.add('remove the veth pair', () => removeVeth(name));
      sync.write('go\n');
    } catch (e) {
      sync.write('stop\n');
      throw e;
    }
  }
  sync.end();
  return { child, leader, notify, scope, lease, veth, runDir, owner, machineId, root };
}
