// The registry with real processes and real cgroups, state in a temporary runtime directory.
// Needs root and a mounted cgroup hierarchy; otherwise every test is skipped with the reason.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { liveProcessProbe, Registry, type CallerContext, type RegistryEvent } from '../../../src/server/registry/registry.js';
import { validateRegistration } from '../../../src/server/machine-params.js';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { machineScopeUnit, MACHINE_SLICE } from '../../../src/domain/unit-names.js';
import { readStartTime } from '../../../src/domain/process.js';
import { pidfdIdOf } from '../../../src/server/registry/leader.js';
import { unprivilegedUser } from '../../helpers/processes.js';

/** Validate Register parameters as the Varlink binding does, then register the spec. */
function register(r: Registry, input: Record<string, unknown>, caller: CallerContext) {
  const v = validateRegistration(input, liveProcessProbe);
  return v.ok ? r.registerSpec(v.value, caller) : v;
}

/**
 * A registry finishes a change once its caller is answered: the unit link and the leader watch are made
 * in a microtask after the call (registry/after-answer.ts). In-process callers wait for that here.
 */
const answered = () => Promise.resolve();

async function replaceIfDead(r: Registry, input: Record<string, unknown>, caller: CallerContext) {
  const v = validateRegistration(input, liveProcessProbe);
  return v.ok ? r.registerOrReplaceIfDead(v.value, caller) : v;
}

const layout = detectCgroupLayout();
const isRoot = process.getuid?.() === 0;
const skipReason = !isRoot ? 'needs root (cgroups)' : !layout.primary ? 'no cgroup hierarchy mounted' : undefined;
if (skipReason) console.warn(`registry integration tests skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

const tag = `rg-it${process.pid}`;
let runtime: string;
const children: ChildProcess[] = [];
const registries: Registry[] = [];
const extraCgroups: string[] = [];

function sleeper(uid?: number): ChildProcess & { pid: number } {
  const c = spawn('sleep', ['600'], { stdio: 'ignore', ...(uid !== undefined ? { uid, gid: uid } : {}) });
  children.push(c);
  return c as ChildProcess & { pid: number };
}

/** A process moved into a unit-shaped cgroup of its own (`/<tag>.slice/<unit>`) in every hierarchy. */
function sleeperInUnit(unit: string) {
  const c = sleeper();
  for (const h of layout.hierarchies) {
    const dir = path.join(h.root, `${tag}.slice`, unit);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), `${c.pid}\n`);
    extraCgroups.push(dir);
  }
  return c;
}

function newRegistry(opts: { host?: boolean } = {}) {
  const logs: { level: string; obj: object; msg?: string }[] = [];
  const log = (level: string) => (obj: object, msg?: string) => logs.push({ level, obj, msg });
  const r = new Registry({
    runtimeDir: runtime,
    cgroups: layout,
    host: opts.host ?? false,
    logger: { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') },
  });
  registries.push(r);
  return { r, logs };
}

/** Resolve when `pred` holds for an event, reject after `ms`. */
function nextEvent(r: Registry, pred: (e: RegistryEvent) => boolean, ms = 1000): Promise<RegistryEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      r.off('event', on);
      reject(new Error(`no matching registry event within ${ms} ms`));
    }, ms);
    const on = (e: RegistryEvent) => {
      if (!pred(e)) return;
      clearTimeout(t);
      r.off('event', on);
      resolve(e);
    };
    r.on('event', on);
  });
}

/** Poll a condition until it holds or the deadline passes. */
async function until(cond: () => boolean, ms = 1000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

const stateFile = (name: string) => path.join(runtime, 'systemd', 'machines', name);
const unitLink = (unit: string) => path.join(runtime, 'systemd', 'machines', `unit:${unit}`);
const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};
function rmdirQuiet(dir: string) {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') console.warn(`cannot remove ${dir}: ${(e as Error).message}`);
  }
}
const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()));

suite('registry with real processes', () => {
  beforeAll(() => {
    runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-registry-'));
  });
  afterEach(() => {
    for (const r of registries.splice(0)) r.close();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    // Scopes of machines that were unregistered or whose registry was closed stay, as they would in berthd.
    for (const h of layout.hierarchies) {
      const slice = path.join(h.root, MACHINE_SLICE);
      for (const d of fs.existsSync(slice) ? fs.readdirSync(slice) : []) {
        if (d.startsWith(machineScopeUnit(tag).replace(/\.scope$/, ''))) rmdirQuiet(path.join(slice, d));
      }
    }
    for (const dir of extraCgroups.reverse()) rmdirQuiet(dir);
    for (const h of layout.hierarchies) rmdirQuiet(path.join(h.root, `${tag}.slice`));
    fs.rmSync(runtime, { recursive: true, force: true });
  });

  it('allocates machine.slice/machine-NAME.scope, and forgets the machine within 1 s of its leader exiting', async () => {
    const { r } = newRegistry();
    const c = sleeper();
    const name = `${tag}-a`;
    const res = register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 });
    expect(res.ok).toBe(true);
    const unit = machineScopeUnit(name);
    expect(res.ok && res.value.unit).toBe(unit);
    for (const h of layout.hierarchies) {
      const procs = fs.readFileSync(path.join(h.root, MACHINE_SLICE, unit, 'cgroup.procs'), 'latin1');
      expect(procs.split('\n')).toContain(String(c.pid));
    }
    expect(fs.readFileSync(stateFile(name), 'utf8')).toContain(`LEADER=${c.pid}\n`);
    await answered();
    expect(fs.readlinkSync(unitLink(unit))).toBe(name);
    expect(r.findByPid(c.pid)?.name).toBe(name);

    const removed = nextEvent(r, (e) => e.type === 'removed' && e.machine.name === name, 1000);
    const t0 = performance.now();
    c.kill('SIGKILL');
    const ev = await removed;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ev.reason).toBe('leader-exited');
    expect(r.get(name)).toBeUndefined();
    expect(exists(stateFile(name))).toBe(false);
    expect(exists(unitLink(unit))).toBe(false);
    await until(() => layout.hierarchies.every((h) => !exists(path.join(h.root, MACHINE_SLICE, unit))), 1000);
  });

  it('finishes removing the scope of a machine that just ended before it closes for good (berthd stop)', async () => {
    const { r } = newRegistry();
    const c = sleeper();
    const other = sleeper();
    const name = `${tag}-fin`;
    expect(register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    const unit = machineScopeUnit(name);
    // A second process in the scope: after the leader goes it is killed, and the scope can only be removed
    // once that process is gone too, which takes a retry.
    for (const h of layout.hierarchies) fs.writeFileSync(path.join(h.root, MACHINE_SLICE, unit, 'cgroup.procs'), `${other.pid}\n`);
    const removed = nextEvent(r, (e) => e.type === 'removed' && e.machine.name === name, 1000);
    c.kill('SIGKILL');
    await removed;
    r.close();
    await r.finishScopeRemovals(1000);
    expect(layout.hierarchies.filter((h) => exists(path.join(h.root, MACHINE_SLICE, unit)))).toEqual([]);
    await exited(other);
  });

  it('after Unregister keeps the scope it made while the leader runs, and removes it once the leader has ended', async () => {
    const { r } = newRegistry();
    const c = sleeper();
    const name = `${tag}-u`;
    expect(register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    const unit = machineScopeUnit(name);
    const dirs = layout.hierarchies.map((h) => path.join(h.root, MACHINE_SLICE, unit));
    expect(r.unregister(name).ok).toBe(true);
    // Unregister kills nothing: the leader still runs in the scope.
    expect(c.exitCode === null && c.signalCode === null).toBe(true);
    expect(dirs.every((d) => exists(d))).toBe(true);
    c.kill('SIGKILL');
    await until(() => dirs.every((d) => !exists(d)), 2000);
  });

  it('takes over a scope that holds only the leader (a Register retried after berthd was killed mid-way), not one with other processes', () => {
    const { r } = newRegistry();
    const name = `${tag}-t`;
    const unit = machineScopeUnit(name);
    const c = sleeper();
    const other = sleeper();
    for (const h of layout.hierarchies) {
      fs.mkdirSync(path.join(h.root, MACHINE_SLICE, unit), { recursive: true });
      fs.writeFileSync(path.join(h.root, MACHINE_SLICE, unit, 'cgroup.procs'), `${c.pid}\n`);
    }
    expect(register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    expect(r.unregister(name).ok).toBe(true);
    for (const h of layout.hierarchies) fs.writeFileSync(path.join(h.root, MACHINE_SLICE, unit, 'cgroup.procs'), `${other.pid}\n`);
    const again = register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 });
    expect(again.ok ? 'ok' : again.error).toEqual({ errno: 17 });
    other.kill('SIGKILL');
    c.kill('SIGKILL');
  });

  it('takes the unit from the leader cgroup, refuses a leader outside any unit, duplicates and PID 1', () => {
    const { r } = newRegistry();
    const inUnit = sleeperInUnit(`${tag}-b.scope`);
    const res = register(r, { name: `${tag}-b`, class: 'vm', leader: inUnit.pid }, { uid: 0 });
    expect(res).toMatchObject({ ok: true, value: { unit: `${tag}-b.scope`, class: 'vm' } });

    const loose = sleeper();
    expect(register(r, { name: `${tag}-c`, class: 'container', leader: loose.pid }, { uid: 0 })).toEqual({
      ok: false,
      error: { errno: 6 },
    });
    expect(register(r, { name: `${tag}-b`, class: 'container', leader: loose.pid }, { uid: 0 })).toEqual({
      ok: false,
      error: { error: 'io.systemd.Machine.MachineExists' },
    });
    expect(register(r, { name: `${tag}-d`, class: 'container', leader: inUnit.pid }, { uid: 0 })).toEqual({
      ok: false,
      error: { errno: 17 },
    });
    expect(register(r, { name: `${tag}-d`, class: 'container', leader: 1 }, { uid: 0 })).toEqual({
      ok: false,
      error: { invalidParameter: 'leader' },
    });
    // Nothing of the failed attempts was left behind.
    expect(exists(stateFile(`${tag}-c`))).toBe(false);
    expect(exists(stateFile(`${tag}-d`))).toBe(false);
    expect([...r.machines()].map((m) => m.name)).toEqual([`${tag}-b`]);
    expect(r.unregister(`${tag}-b`)).toEqual({ ok: true, value: undefined });
    expect(exists(stateFile(`${tag}-b`))).toBe(false);
    expect(inUnit.exitCode).toBeNull(); // Unregister kills nothing
  });

  it('of many parallel registrations of one name exactly one wins', async () => {
    const { r } = newRegistry();
    const leaders = Array.from({ length: 50 }, () => sleeper());
    const results = await Promise.all(
      leaders.map(
        (c) =>
          new Promise<ReturnType<Registry['register']>>((resolve) =>
            setImmediate(() => resolve(register(r, { name: `${tag}-race`, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 }))),
          ),
      ),
    );
    expect(results.filter((x) => x.ok)).toHaveLength(1);
    expect(results.filter((x) => !x.ok && 'error' in x.error && x.error.error === 'io.systemd.Machine.MachineExists')).toHaveLength(49);
    r.unregister(`${tag}-race`);
  });

  it('notices the exit of every one of many leaders within 1 s', async () => {
    const { r } = newRegistry();
    const n = 200;
    const leaders = Array.from({ length: n }, () => sleeperInUnit(`${tag}-m${children.length}.scope`));
    leaders.forEach((c, i) => expect(register(r, { name: `${tag}-m${i}`, class: 'container', leader: c.pid }, { uid: 0 }).ok).toBe(true));
    expect(r.size).toBe(n);
    const t0 = performance.now();
    for (const c of leaders) c.kill('SIGKILL');
    await until(() => r.size === 0, 1000);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(fs.readdirSync(path.join(runtime, 'systemd', 'machines')).filter((f) => f.includes('-m'))).toEqual([]);
  });

  it('finds a machine by any process of its unit, and kills all of them', async () => {
    const { r } = newRegistry();
    const leader = sleeper();
    const name = `${tag}-k`;
    expect(register(r, { name, class: 'container', leader: leader.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    const helper = sleeper();
    const m = r.get(name)!;
    for (const h of layout.hierarchies) fs.writeFileSync(path.join(h.root, m.unitCgroup!, 'cgroup.procs'), `${helper.pid}\n`);
    expect(r.findByPid(helper.pid)?.name).toBe(name);
    expect(r.lookup({ pid: { pid: helper.pid } })).toMatchObject({ ok: true, value: { name } });
    expect(r.lookup({ name, pid: { pid: process.pid } })).toEqual({ ok: false, error: { error: 'io.systemd.Machine.NoSuchMachine' } });
    expect(r.kill(name, 'leader', 28)).toEqual({ ok: true, value: undefined }); // SIGWINCH: ignored by sleep
    expect(leader.exitCode).toBeNull();
    const removed = nextEvent(r, (e) => e.type === 'removed' && e.machine.name === name, 2000);
    expect(r.terminate(name)).toEqual({ ok: true, value: undefined });
    await Promise.all([exited(leader), exited(helper), removed]);
    expect(helper.signalCode).toBe('SIGTERM');
    expect(r.kill(name, 'all', 9)).toEqual({ ok: false, error: { error: 'io.systemd.Machine.NoSuchMachine' } });
  });

  it('restores live machines after a restart and drops dead ones, logging each decision', async () => {
    const first = newRegistry().r;
    const live = sleeper(1000); // registered by uid 1000, which must own its leader
    const dead = sleeper();
    expect(register(first, { name: `${tag}-live`, class: 'container', leader: live.pid, allocateUnit: true, vSockCid: 7 }, { uid: 1000 }).ok).toBe(true);
    expect(register(first, { name: `${tag}-dead`, class: 'vm', leader: dead.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    first.close(); // as if berthd were SIGKILLed: the state files stay
    expect(exists(stateFile(`${tag}-dead`))).toBe(true);
    dead.kill('SIGKILL');
    await exited(dead);

    const { r, logs } = newRegistry();
    const res = r.restore();
    expect(res.kept).toContain(`${tag}-live`);
    expect(res.dropped).toContain(`${tag}-dead`);
    expect(r.get(`${tag}-live`)).toMatchObject({ vSockCid: 7, registeredBy: 1000, leader: { pid: live.pid } });
    expect(exists(stateFile(`${tag}-dead`))).toBe(false);
    expect(exists(unitLink(machineScopeUnit(`${tag}-dead`)))).toBe(false);
    expect(logs.some((l) => (l.obj as { machine?: string }).machine === `${tag}-dead` && /dropped/.test(l.msg ?? ''))).toBe(true);
    expect(logs.some((l) => (l.obj as { machine?: string }).machine === `${tag}-live` && /restored/.test(l.msg ?? ''))).toBe(true);
    // The restored leader is watched again.
    const removed = nextEvent(r, (e) => e.machine.name === `${tag}-live` && e.type === 'removed');
    live.kill('SIGKILL');
    await removed;
    expect(exists(stateFile(`${tag}-live`))).toBe(false);
  });

  it('never resurrects a machine through a reused PID', () => {
    const dir = path.join(runtime, 'systemd', 'machines');
    fs.mkdirSync(dir, { recursive: true });
    const unrelated = sleeperInUnit(`${tag}-reuse.scope`);
    const started = readStartTime(unrelated.pid)!;
    expect(started).toBeGreaterThan(0);
    // machined-format file (no LEADER_PIDFDID) registered an hour before this process started.
    const hourAgo = Math.floor((Date.now() - 3600_000) * 1000);
    fs.writeFileSync(
      path.join(dir, `${tag}-old`),
      `# This is private data. Do not parse.\nNAME=${tag}-old\nSCOPE=${tag}-reuse.scope\nLEADER=${unrelated.pid}\nCLASS=container\nREALTIME=${hourAgo}\nMONOTONIC=1\n`,
    );
    fs.symlinkSync(`${tag}-old`, path.join(dir, `unit:${tag}-reuse.scope`));
    // berth-format file whose pidfd inode number is not the live process's.
    const realId = pidfdIdOf(unrelated.pid);
    fs.writeFileSync(
      path.join(dir, `${tag}-ino`),
      `# This is private data. Do not parse.\nNAME=${tag}-ino\nLEADER=${unrelated.pid}\nLEADER_PIDFDID=${(realId ?? 5) + 1000}\nCLASS=container\nREALTIME=${Math.floor(Date.now() * 1000)}\nMONOTONIC=1\n`,
    );
    // A file as machined writes it, for a process that is the same one: kept.
    fs.writeFileSync(
      path.join(dir, `${tag}-same`),
      `# This is private data. Do not parse.\nNAME=${tag}-same\nSCOPE=${tag}-reuse.scope\nLEADER=${unrelated.pid}\nCLASS=container\nREALTIME=${Math.floor(Date.now() * 1000)}\nMONOTONIC=1\n`,
    );
    fs.writeFileSync(path.join(dir, `${tag}-junk`), '\u0000\u0001\u0002garbage');

    const { r, logs } = newRegistry();
    const res = r.restore();
    expect(res.dropped).toEqual(expect.arrayContaining([`${tag}-old`, `${tag}-junk`]));
    if (realId !== undefined) expect(res.dropped).toContain(`${tag}-ino`);
    expect(res.kept).toContain(`${tag}-same`);
    expect(r.get(`${tag}-old`)).toBeUndefined();
    expect(exists(path.join(dir, `${tag}-old`))).toBe(false);
    expect(fs.readlinkSync(path.join(dir, `unit:${tag}-reuse.scope`))).toBe(`${tag}-same`);
    expect(logs.some((l) => /another process/.test(String((l.obj as { reason?: string }).reason)))).toBe(true);
  });

  it('drops a machine whose leader died while berth was down, even when its PID now runs something else', async (ctx) => {
    const first = newRegistry().r;
    const a = sleeper();
    const name = `${tag}-recycled`;
    expect(register(first, { name, class: 'container', leader: a.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    first.close();
    const pid = a.pid;
    a.kill('SIGKILL');
    await exited(a);
    // Make the kernel hand out the same PID again (root only; other processes may race us, so retry).
    let b: (ChildProcess & { pid: number }) | undefined;
    for (let i = 0; i < 200 && !b; i++) {
      try {
        fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      } catch {
        break;
      }
      const c = sleeper();
      if (c.pid === pid) b = c;
      else c.kill('SIGKILL');
    }
    if (!b) {
      const why = `could not make the kernel hand out PID ${pid} again in 200 tries (ns_last_pid)`;
      console.warn(`skipped: ${why}`);
      return ctx.skip(why);
    }
    const { r, logs } = newRegistry();
    const res = r.restore();
    expect(res.dropped).toContain(name);
    expect(r.get(name)).toBeUndefined();
    expect(r.findByPid(pid)).toBeUndefined();
    expect(exists(stateFile(name))).toBe(false);
    expect(logs.find((l) => (l.obj as { machine?: string }).machine === name)?.obj).toMatchObject({
      reason: 'leader PID now belongs to another process',
    });
  });

  it('signals for a non-root caller only the processes that caller could signal itself', async () => {
    const user = unprivilegedUser();
    expect(user).toBeDefined();
    const { r } = newRegistry();
    const mine = sleeper(user!.uid);
    const mine2 = sleeper(user!.uid);
    const roots = sleeper();
    const name = `${tag}-asuid`;
    expect(register(r, { name, class: 'container', leader: roots.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    // Processes of the user in the unit, next to one of root (as a setuid program the user ran).
    for (const c of [mine, mine2]) for (const h of layout.hierarchies) fs.writeFileSync(path.join(h.root, r.get(name)!.unitCgroup!, 'cgroup.procs'), `${c.pid}\n`);
    const state = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
    // SIGSTOP on the user's behalf stops the user's processes only; root's keeps running.
    expect(r.kill(name, 'all', 19, user!.uid)).toEqual({ ok: true, value: undefined });
    await until(() => state(mine.pid) === 'T' && state(mine2.pid) === 'T');
    expect(state(roots.pid)).not.toBe('T');
    // The leader runs as root: out of the user's reach, for Kill and for Terminate alike.
    expect(r.kill(name, 'leader', 19, user!.uid)).toEqual({ ok: false, error: { errno: 1 } });
    expect(r.terminate(name, user!.uid).ok).toBe(true);
    await new Promise((res) => setTimeout(res, 100));
    expect(state(roots.pid)).not.toBe('T');
    expect(fs.existsSync(`/proc/${roots.pid}`)).toBe(true);
    // Root reaches everything.
    expect(r.kill(name, 'all', 19).ok).toBe(true);
    await until(() => state(roots.pid) === 'T');
    for (const c of [mine, mine2, roots]) c.kill('SIGKILL');
  });

  it('replaces an entry only when its leader is dead, and says so', async () => {
    const { r } = newRegistry();
    const a = sleeper();
    const b = sleeper();
    const name = `${tag}-rep`;
    expect(register(r, { name, class: 'container', leader: a.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    expect(await replaceIfDead(r, { name, class: 'container', leader: b.pid, allocateUnit: true }, { uid: 0 })).toEqual({
      ok: false,
      error: { error: 'io.systemd.Machine.MachineExists' },
    });
    const fresh = sleeper();
    const res = await replaceIfDead(r, { name: `${tag}-rep2`, class: 'container', leader: fresh.pid, allocateUnit: true }, { uid: 0 });
    expect(res).toMatchObject({ ok: true, value: { replaced: false } });
    a.kill('SIGKILL');
    await exited(a);
    // Whether or not the exit was already processed, the answer names the outcome truthfully.
    const res2 = await replaceIfDead(r, { name, class: 'container', leader: b.pid, allocateUnit: true }, { uid: 0 });
    expect(res2.ok).toBe(true);
    expect(r.get(name)?.leader.pid).toBe(b.pid);
  });

  it('makes `ps -o machine` show the machine (real /run/systemd/machines)', async () => {
    // What berthd does with the default runtime directory; a fresh host may not have it yet.
    fs.mkdirSync('/run/systemd/machines', { recursive: true, mode: 0o755 });
    const r = new Registry({ stateDir: '/run/systemd/machines', cgroups: layout, host: false });
    registries.push(r);
    const c = sleeper();
    const name = `${tag}-ps`;
    expect(register(r, { name, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 0 }).ok).toBe(true);
    await answered();
    try {
      const out = execFileSync('ps', ['-o', 'machine=', '-p', String(c.pid)], { encoding: 'utf8' }).trim();
      expect(out).toBe(name);
    } finally {
      const removed = nextEvent(r, (e) => e.machine.name === name && e.type === 'removed');
      c.kill('SIGKILL');
      await removed;
    }
    expect(exists(`/run/systemd/machines/${name}`)).toBe(false);
    expect(exists(`/run/systemd/machines/unit:${machineScopeUnit(name)}`)).toBe(false);
  });

  it('non-root registrants must own the leader', () => {
    const { r } = newRegistry();
    const c = sleeper();
    expect(register(r, { name: `${tag}-u`, class: 'container', leader: c.pid, allocateUnit: true }, { uid: 4321 })).toEqual({
      ok: false,
      error: { permissionDenied: true },
    });
  });
});
