/**
 * What berth-spawn leaves when it is killed with SIGKILL, and who removes it: the next start of the same machine,
 * or `berthctl cleanup`. Real processes throughout: the shipped bundles (dist/bin), busybox containers with a
 * veth pair, real cgroups and links. A live machine next to the dead one, and scopes without berth-spawn's mark
 * for this runtime directory, must come through untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../src/launcher/teardown.js';
import { killCgroupTree, Scope } from '../../../src/launcher/cgroup.js';
import { hostIfName } from '../../../src/launcher/network.js';
import { berthSpawnMark, readLaunchRecord } from '../../../src/launcher/launch-record.js';
import { markScope, scopeMaker } from '../../../src/domain/scope-mark.js';
import { cgroupTreePids } from '../../../src/domain/cgroup-paths.js';
import { cannotRun, TRAP_READY_IDLE, useScratch } from './fixture.js';
import { leftovers } from './leftovers.js';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const spawnCli = path.join(repo, 'dist/bin/berth-spawn.mjs');
const ctlCli = path.join(repo, 'dist/bin/berthctl.mjs');
const why = cannotRun() ?? (fs.existsSync(spawnCli) && fs.existsSync(ctlCli) ? undefined : 'dist/bin is missing: run \'npm run build\' first');
if (why) console.warn(`skipping kill -9 leftover tests: ${why}`);

const scratch = useScratch(why);
const foreign: Scope[] = [];
const started: { name: string; p: ResultPromise }[] = [];
const output = new Map<ResultPromise, string>();
// Whatever a failed test left running must not outlive the file (nor reach the next run's machines).
afterAll(async () => {
  for (const s of foreign) s.remove();
  for (const { name, p } of started) {
    p.kill('SIGKILL');
    const scope = Scope.locate(name);
    scope.killAll();
    await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty').catch(() => {});
    scope.remove();
  }
});

function start(name: string, root: string): ResultPromise {
  const p = execa(process.execPath, [spawnCli, '-D', root, '-M', name, '-U', '--network-veth', '--notify-ready=yes', `--runtime-dir=${scratch.rt}`,
    '--register=no', '/bin/sh', '/init.sh'], { reject: false, all: true, stdin: 'ignore' });
  started.push({ name, p });
  output.set(p, '');
  p.all?.on('data', (d: Buffer) => output.set(p, output.get(p) + d.toString()));
  return p;
}

function cleanup(...args: string[]): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  return execa(process.execPath, [ctlCli, `--runtime-dir=${scratch.rt}`, 'cleanup', ...args], { reject: false, stdin: 'ignore' });
}

function stateOf(name: string): string | undefined {
  try { return JSON.parse(fs.readFileSync(path.join(scratch.rt, 'berth/machines', name, 'state.json'), 'utf8')).state; } catch { return undefined; }
}

/** Waits until this berth-spawn (not a killed one before it, whose files may still be there) runs its machine. */
async function running(name: string, p: ResultPromise): Promise<void> {
  const mine = (): boolean => readLaunchRecord(path.join(scratch.rt, 'berth/machines', name))?.pid === p.pid && stateOf(name) === 'running';
  await waitFor(() => mine() || (p.exitCode ?? null) !== null, 15_000, `${name} to run`, 10);
  expect(mine(), output.get(p)).toBe(true);
}

const linkExists = (link: string): boolean => fs.existsSync(`/sys/class/net/${link}`);

/** Starts a machine, kills its berth-spawn with SIGKILL, and checks what it left; returns the dead berth-spawn's pid. */
async function startAndKill9(name: string): Promise<number> {
  const t = await scratch.tree(TRAP_READY_IDLE);
  const p = start(name, t.root);
  await running(name, p);
  const pid = p.pid!;
  p.kill('SIGKILL');
  // Not `await p`: the payload still holds berth-spawn's stdout and stderr open.
  await waitFor(() => p.exitCode !== null || p.signalCode !== null, 5000, 'berth-spawn to die', 10);
  const runDir = path.join(scratch.rt, 'berth/machines', name);
  const rec = readLaunchRecord(runDir);
  expect(rec).toMatchObject({ name, kind: 'container', pid, veth: hostIfName(name).name });
  const left = leftovers(scratch.rt, name);
  for (const kind of ['cgroup', 'run directory', 'name lock', 'uid lease', 'tree lock', 'process']) expect(left.some((l) => l.startsWith(kind)), kind).toBe(true);
  for (const d of Scope.locate(name).paths) expect(scopeMaker(d)).toBe(berthSpawnMark(scratch.rt));
  expect(linkExists(hostIfName(name).name)).toBe(true); // the payload outlived its berth-spawn, and its network with it
  return pid;
}

/** Ends the payload a killed berth-spawn left running (it sits in its own session, so it survives). */
async function killPayload(name: string): Promise<void> {
  const scope = Scope.locate(name);
  for (const d of scope.paths) killCgroupTree(d);
  await waitFor(() => scope.paths.every((d) => cgroupTreePids(d).length === 0) && !leftovers(scratch.rt, name).some((l) => l.startsWith('process')), 5000, 'the payload to end', 10);
}

/** Nothing of the machine is left (killed processes may take a moment to be reaped). */
async function gone(name: string): Promise<void> {
  await waitFor(() => leftovers(scratch.rt, name).length === 0, 5000, `${name}'s leftovers to go`, 20).catch(() => {});
  expect(leftovers(scratch.rt, name)).toEqual([]);
}

describe.skipIf(!!why)('berth-spawn killed with SIGKILL', () => {
  it('the next start of the same machine removes what it left, names each on stderr, and starts', async () => {
    const name = 'k9-restart';
    const dead = await startAndKill9(name);
    await killPayload(name);
    const t = await scratch.tree(TRAP_READY_IDLE);
    const p = start(name, t.root);
    await running(name, p);
    p.kill('SIGTERM');
    const r = await p;
    expect(r.exitCode, r.all).toBe(0);
    for (const kind of ['scope', 'run directory', 'uid lease', 'tree lock']) {
      expect(r.all).toMatch(new RegExp(`removing leftover ${kind} \\S+ of a berth-spawn that ended \\(pid ${dead}\\)`));
    }
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('a start refuses while the killed berth-spawn\'s payload still runs, and names the way out', async () => {
    const name = 'k9-busy';
    const dead = await startAndKill9(name);
    const t = await scratch.tree(TRAP_READY_IDLE);
    const r = await start(name, t.root);
    expect(r.exitCode).toBe(1);
    expect(r.all).toContain(`machine '${name}' is already running without its berth-spawn (pid ${dead} ended)`);
    expect(r.all).toContain(`berthctl cleanup --kill ${name}`);
    // the refusal took nothing away from the machine that runs
    expect(linkExists(hostIfName(name).name)).toBe(true);
    expect(Scope.locate(name).pids().length).toBeGreaterThan(0);
    const c = await cleanup('--kill', name);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toContain(`removed leftover veth ${hostIfName(name).name} of a berth-spawn that ended (pid ${dead})`);
    await gone(name);
  });

  it('berthctl cleanup removes the leftovers of dead berth-spawns only: not a live machine, not a scope without its mark', async () => {
    const dead = 'k9-clean';
    const payloadAlive = 'k9-orphan';
    const live = 'k9-live';
    const deadPid = await startAndKill9(dead);
    const orphanPid = await startAndKill9(payloadAlive);
    await killPayload(dead);
    const lt = await scratch.tree(TRAP_READY_IDLE);
    const lp = start(live, lt.root);
    await running(live, lp);
    // Scopes of the same shape that berth-spawn did not make for this runtime directory: one unmarked (as systemd
    // or nspawn make them), one marked by a berth-spawn of another runtime directory.
    const unmarked = Scope.locate('k9-foreign');
    const otherRuntime = Scope.locate('k9-other');
    foreign.push(unmarked, otherRuntime);
    unmarked.create();
    otherRuntime.create();
    for (const d of otherRuntime.paths) expect(markScope(d, berthSpawnMark('/elsewhere'))).toBe(true);

    try {
      const dry = await cleanup('--dry-run');
      expect(dry.exitCode, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(new RegExp(`would remove leftover run directory \\S+/${dead} of a berth-spawn that ended \\(pid ${deadPid}\\)`));
      expect(leftovers(scratch.rt, dead).length).toBeGreaterThan(0);

      const c = await cleanup();
      expect(c.exitCode, c.stderr).toBe(0);
      // (its UID lease may be gone already: any start that picks a range drops leases nobody holds)
      for (const kind of ['scope', 'run directory', 'name lock', 'tree lock']) {
        expect(c.stdout).toMatch(new RegExp(`removed leftover ${kind} \\S+ of a berth-spawn that ended \\(pid ${deadPid}\\)`));
      }
      expect(leftovers(scratch.rt, dead)).toEqual([]);
      expect(c.stdout).toContain(`left alone: machine ${live}: its berth-spawn (pid ${lp.pid}) is running`);
      expect(c.stdout).toMatch(new RegExp(`left alone: machine ${payloadAlive}: \\d+ processes still run in its scope`));

      // --kill also ends a payload its berth-spawn left running, its veth link first
      const k = await cleanup('--kill', '--json=short');
      expect(k.exitCode, k.stderr).toBe(0);
      const out = JSON.parse(k.stdout) as { removed: { machine: string; kind: string; path: string; launcherPid: number }[]; leftAlone: { machine: string }[] };
      const mine = out.removed.filter((x) => x.machine === payloadAlive);
      expect(mine.map((x) => x.kind)).toEqual(expect.arrayContaining(['veth', 'scope', 'run directory', 'name lock', 'tree lock'])); // (lease: see above)
      expect(mine.find((x) => x.kind === 'veth')).toMatchObject({ path: hostIfName(payloadAlive).name, launcherPid: orphanPid });
      expect(out.leftAlone.map((x) => x.machine)).toEqual([live]);
      await gone(payloadAlive);
      expect(linkExists(hostIfName(payloadAlive).name)).toBe(false);

      // the live machine and the foreign scopes are as they were
      expect(stateOf(live)).toBe('running');
      expect(linkExists(hostIfName(live).name)).toBe(true);
      expect(Scope.locate(live).pids().length).toBeGreaterThan(0);
      expect(unmarked.exists() && otherRuntime.exists()).toBe(true);
      expect(out.removed.some((x) => x.machine === 'k9-foreign' || x.machine === 'k9-other')).toBe(false);

      const again = await cleanup(dead);
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toBe('No leftovers.');
    } finally {
      lp.kill('SIGTERM');
      await lp;
    }
    expect(leftovers(scratch.rt, live)).toEqual([]);
  });

  it('berthctl cleanup unmounts what is mounted below a dead run directory before removing it, and never deletes through a mount', async () => {
    // berth-spawn mounts only in the container's own mount namespace; a mount left on the host's (say, propagated
    // by a tool) must still not take the tree with it. A record of a berth-spawn that is gone (no such pid).
    const name = 'k9-mount';
    const runDir = path.join(scratch.rt, 'berth/machines', name);
    const tree = await scratch.tree('true');
    fs.mkdirSync(path.join(runDir, 'root'), { recursive: true });
    fs.writeFileSync(path.join(runDir, 'launcher.json'), JSON.stringify({ name, kind: 'container', pid: 2 ** 22 + 1, starttime: 1, runDir }));
    await execa('mount', ['--bind', tree.root, path.join(runDir, 'root')]);
    try {
      const c = await cleanup(name);
      expect(c.exitCode, c.stderr).toBe(0);
      expect(c.stdout).toContain(`removed leftover mount ${runDir}/root of a berth-spawn that ended (pid ${2 ** 22 + 1})`);
      expect(c.stdout).toContain(`removed leftover run directory ${runDir}`);
      expect(fs.existsSync(runDir)).toBe(false);
      expect(fs.existsSync(path.join(tree.root, 'init.sh'))).toBe(true);
    } finally {
      await execa('umount', [path.join(runDir, 'root')], { reject: false });
    }
  });

  it('berthctl cleanup refuses a name that is not a machine name (exit 2)', async () => {
    const r = await cleanup('no/slash');
    expect(r.exitCode).toBe(2);
  });
});
