/**
 * Scenario 3, state-damage: berthd starts over a state directory (RUNTIME/systemd/machines) that
 * holds valid files next to truncated, garbled and foreign-version ones, a machine whose `unit:`
 * link is missing, a file whose leader pid now belongs to a different process, and odd entries.
 * berthd must start, keep every valid machine (with its own leader, and put the missing link
 * back), drop the rest with a log line naming each, and never resolve a dead machine to a new
 * process.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  alive,
  call,
  cannotRunBerthd,
  cgroupsUsable,
  connect,
  isRoot,
  leftoverScopes,
  listAll,
  logLines,
  machineSocket,
  removeScopes,
  rmrf,
  sleeper,
  startBerthd,
  tempRuntime,
  waitFor,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import { machineScopeUnit } from '../../src/domain/unit-names.js';

interface Case {
  name: string;
  what: string;
  /** keep: must be listed with this leader; drop: must be absent and named in a log line; either: kept (same leader) or dropped-and-logged. */
  expect: 'keep' | 'drop' | 'either';
  leader?: number;
}

export async function runStateDamage(opts: ScenarioOptions): Promise<ScenarioResult> {
  const name = 'state-damage';
  const why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (berthd creates cgroup scopes)');
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const prefix = `ssd${process.pid}`;
  const runtime = tempRuntime('state');
  const dir = path.join(runtime, 'systemd/machines');
  const children: ChildProcess[] = [];
  const spawnLeader = () => {
    const c = sleeper();
    children.push(c);
    return c;
  };
  const failures: string[] = [];
  const notes: string[] = [];
  try {
    // 1. Valid machines, registered through berthd so their files are exactly what it writes.
    const first = await startBerthd(runtime, { logLevel: 'warn' });
    // A process older than every registration, never registered: a garbled LEADER= may point at it.
    const elder = spawnLeader();
    const valid = ['a', 'b', 'c', 'nolink', 'trunc1', 'trunc2', 'garble', 'foreign', 'swap1', 'swap2'].map((s) => `${prefix}${s}`);
    const leaders = new Map<string, number>();
    const c1 = await connect(machineSocket(runtime));
    for (const m of valid) {
      const l = spawnLeader();
      leaders.set(m, l.pid);
      const r = await call(c1, 'io.systemd.Machine.Register', { name: m, class: 'container', leader: l.pid, allocateUnit: true });
      if (!('ok' in r)) throw new Error(`cannot register ${m}: ${JSON.stringify(r)}`);
    }
    c1.close();
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const text = (m: string) => fs.readFileSync(path.join(dir, m), 'utf8');

    const cases: Case[] = [];
    for (const m of [`${prefix}a`, `${prefix}b`, `${prefix}c`]) cases.push({ name: m, what: 'valid', expect: 'keep', leader: leaders.get(m)! });

    // Missing unit: link.
    fs.unlinkSync(path.join(dir, `unit:${machineScopeUnit(`${prefix}nolink`)}`));
    cases.push({ name: `${prefix}nolink`, what: 'unit: link removed', expect: 'keep', leader: leaders.get(`${prefix}nolink`)! });

    // Truncated: in the middle of the LEADER line, and right after the header.
    const t1 = text(`${prefix}trunc1`);
    fs.writeFileSync(path.join(dir, `${prefix}trunc1`), t1.slice(0, t1.indexOf('LEADER=') + 8));
    cases.push({ name: `${prefix}trunc1`, what: 'truncated in LEADER=', expect: 'either', leader: leaders.get(`${prefix}trunc1`)! });
    fs.writeFileSync(path.join(dir, `${prefix}trunc2`), text(`${prefix}trunc2`).slice(0, 20));
    cases.push({ name: `${prefix}trunc2`, what: 'truncated after 20 bytes', expect: 'drop' });

    // Garbled: bytes flipped all over, NULs included.
    const g = Buffer.from(text(`${prefix}garble`));
    for (let i = 0; i < g.length; i += 7) g[i] = (g[i]! * 31 + 17) & 0xff;
    g[3] = 0;
    fs.writeFileSync(path.join(dir, `${prefix}garble`), g);
    cases.push({ name: `${prefix}garble`, what: 'garbled bytes with NUL', expect: 'drop' });

    // Foreign version: keys a future machined might write, and a class this one does not know.
    fs.writeFileSync(
      path.join(dir, `${prefix}foreign`),
      text(`${prefix}foreign`).replace('CLASS=container', 'CLASS=container\nFORMAT_VERSION=99\nSUPERVISOR_PIDFDID=1\nNEW_FIELD=x y z') + 'TRAILING_GARBAGE\n',
    );
    cases.push({ name: `${prefix}foreign`, what: 'foreign version keys', expect: 'either', leader: leaders.get(`${prefix}foreign`)! });
    fs.writeFileSync(path.join(dir, `${prefix}alien`), `NAME=${prefix}alien\nLEADER=${leaders.get(`${prefix}a`)}\nCLASS=spaceship\nREALTIME=1\n`);
    cases.push({ name: `${prefix}alien`, what: 'unknown class, leader of another machine', expect: 'drop' });

    // LEADER= rewritten to an older live process (as a flipped digit could): with and without LEADER_PIDFDID.
    for (const [m, keepId] of [[`${prefix}swap1`, true], [`${prefix}swap2`, false]] as const) {
      let t = text(m).replace(/^LEADER=\d+$/m, `LEADER=${elder.pid}`);
      if (!keepId) t = t.replace(/^LEADER_PIDFDID=.*\n/m, '');
      fs.writeFileSync(path.join(dir, m), t);
      cases.push({ name: m, what: `LEADER= points at an older unrelated process${keepId ? '' : ', no LEADER_PIDFDID'}`, expect: 'drop' });
    }
    // A leader pid that now belongs to a different process: the process started long after REALTIME.
    const impostor = spawnLeader();
    const hourAgoUs = (Date.now() - 3600_000) * 1000;
    fs.writeFileSync(
      path.join(dir, `${prefix}reused`),
      `# This is private data. Do not parse.\nNAME=${prefix}reused\nSCOPE=${machineScopeUnit(`${prefix}reused`)}\nLEADER=${impostor.pid}\nCLASS=container\nREALTIME=${hourAgoUs}\nMONOTONIC=1\n`,
    );
    cases.push({ name: `${prefix}reused`, what: 'leader pid now a different process (REALTIME before it started)', expect: 'drop' });
    const impostor2 = spawnLeader();
    fs.writeFileSync(
      path.join(dir, `${prefix}reused2`),
      `# This is private data. Do not parse.\nNAME=${prefix}reused2\nLEADER=${impostor2.pid}\nLEADER_PIDFDID=1\nCLASS=container\nREALTIME=${Date.now() * 1000 + 10_000_000}\n`,
    );
    cases.push({ name: `${prefix}reused2`, what: 'leader pid now a different process (LEADER_PIDFDID mismatch)', expect: 'drop' });
    // A dead leader.
    const dead = spawnLeader();
    const deadPid = dead.pid;
    dead.kill('SIGKILL');
    await new Promise((r) => dead.once('exit', r));
    fs.writeFileSync(path.join(dir, `${prefix}dead`), `NAME=${prefix}dead\nLEADER=${deadPid}\nCLASS=container\nREALTIME=${Date.now() * 1000}\n`);
    cases.push({ name: `${prefix}dead`, what: 'leader gone', expect: 'drop' });
    // Odd entries: a file named for another machine, empty file, huge file, directory, symlink, bad name, dangling link.
    fs.writeFileSync(path.join(dir, `${prefix}named`), text(`${prefix}a`));
    cases.push({ name: `${prefix}named`, what: 'file names another machine', expect: 'drop' });
    fs.writeFileSync(path.join(dir, `${prefix}empty`), '');
    cases.push({ name: `${prefix}empty`, what: 'empty file', expect: 'drop' });
    fs.writeFileSync(path.join(dir, `${prefix}huge`), `NAME=${prefix}huge\n` + 'X='.padEnd(8 << 20, 'y') + '\n');
    cases.push({ name: `${prefix}huge`, what: '8 MiB file', expect: 'drop' });
    fs.mkdirSync(path.join(dir, `${prefix}isdir`));
    fs.symlinkSync('/etc/passwd', path.join(dir, `${prefix}symlink`));
    fs.writeFileSync(path.join(dir, 'bad name!'), `NAME=bad name!\nLEADER=${impostor.pid}\n`);
    fs.symlinkSync(`${prefix}nosuch`, path.join(dir, `unit:${machineScopeUnit(`${prefix}nosuch`)}`));

    // 2. Start over the damage.
    const files = fs.readdirSync(dir).length;
    const b = await startBerthd(runtime, { logLevel: 'info' });
    const c = await connect(machineSocket(runtime));
    const list = await listAll(c);
    const byName = new Map(list.map((m) => [m.name as string, m]));
    const logs = logLines(b.stderr());
    const logged = (m: string) => logs.some((l) => l.machine === m || l.file === m || (typeof l.msg === 'string' && l.msg.includes(m)));
    let kept = 0;
    let dropped = 0;
    let silent = 0;
    let wrong = 0;
    const table: string[] = [];
    for (const k of cases) {
      const entry = byName.get(k.name);
      const leader = (entry?.leader as { pid?: number } | undefined)?.pid;
      let outcome: string;
      if (entry) {
        kept++;
        outcome = `kept (leader ${leader})`;
        if (k.expect === 'drop' || leader !== k.leader) {
          wrong++;
          failures.push(`${k.name} (${k.what}) was kept with leader ${leader}; expected ${k.expect === 'drop' ? 'dropped' : `leader ${k.leader}`}`);
        }
      } else {
        dropped++;
        outcome = logged(k.name) ? 'dropped, logged' : 'dropped, NOT logged';
        if (!logged(k.name)) {
          silent++;
          failures.push(`${k.name} (${k.what}) was dropped without a log line naming it`);
        }
        if (k.expect === 'keep') failures.push(`${k.name} (${k.what}) was dropped; it is valid and its leader ${k.leader} runs`);
      }
      table.push(`${k.what.padEnd(66)} ${k.expect.padEnd(6)} → ${outcome}`);
    }
    // The link of `nolink` is back; the dangling one is gone.
    const link = path.join(dir, `unit:${machineScopeUnit(`${prefix}nolink`)}`);
    const relinked = fs.existsSync(link) && fs.readlinkSync(link) === `${prefix}nolink`;
    if (byName.has(`${prefix}nolink`) && !relinked) failures.push('the missing unit: link of a kept machine was not recreated');
    if (fs.existsSync(path.join(dir, `unit:${machineScopeUnit(`${prefix}nosuch`)}`))) failures.push('a dangling unit: link was left in place');
    // Never resolve a dead machine to the new process: lookups by the impostors' pids find nothing, and they still run.
    for (const imp of [impostor, impostor2, elder]) {
      const r = await call(c, 'io.systemd.Machine.List', { pid: { pid: imp.pid } });
      if ('ok' in r) {
        wrong++;
        failures.push(`lookup by the pid of a new process ${imp.pid} resolved to machine ${r.ok.name}`);
      }
      if (!alive(imp.pid)) failures.push(`the new process ${imp.pid} that reused a recorded leader pid was killed`);
    }
    const info = await call(c, 'org.varlink.service.GetInfo');
    if (!('ok' in info) || b.child.exitCode !== null) failures.push('berthd did not keep serving after the restore');
    // The machines berthd registered and then dropped for their damaged files leave scopes berthd made
    // (they carry its mark): once their leaders end, the running berthd removes them.
    const droppedOwn = valid.filter((m) => !byName.has(m));
    for (const m of droppedOwn) {
      try {
        process.kill(leaders.get(m)!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const scopesOf = (ms: string[]) => ms.flatMap((m) => leftoverScopes(m).filter((d) => d.endsWith(`/${machineScopeUnit(m)}`)));
    await waitFor(() => scopesOf(droppedOwn).length === 0, 'berthd to remove the scopes of the machines it dropped', 15_000).catch(() => undefined);
    const scopesLeft = scopesOf(droppedOwn);
    if (scopesLeft.length) failures.push(`${scopesLeft.length} scopes of dropped machines left after their leaders ended: ${scopesLeft.slice(0, 3).join(', ')}`);
    c.close();
    await b.stop();
    notes.push(...table);
    return {
      name,
      figures: { entries: files, cases: cases.length, kept, dropped, 'scopes-left': scopesLeft.length, 'dropped-silently': silent, 'wrong-resolutions': wrong, relinked: relinked ? 'yes' : 'no' },
      failures,
      notes,
    };
  } finally {
    for (const ch of children) ch.kill('SIGKILL');
    await Promise.all(children.map((ch) => (ch.exitCode !== null || ch.signalCode !== null ? undefined : new Promise((r) => ch.once('exit', r)))));
    removeScopes(prefix);
    rmrf(runtime);
  }
}
