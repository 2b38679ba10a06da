/**
 * berth on a host where systemd is PID 1 (issue 11): a Debian machine booted with systemd, the README's
 * install command run in it verbatim, then what systemd must do for berth (socket and bus activation,
 * restart keeping machines, scopes as transient units, machinectl), and uninstall giving machined back as
 * it was. Each step prints what it does. A host that cannot boot the machine skips every step, saying why.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootMachine, cannotBoot, checkout, systemdHostTree, type Booted } from '../../bench/lib/booted-machine.js';

/** The README's install and uninstall commands (section "Installing"), run in the checkout. */
const README_INSTALL = 'node dist/bin/berthctl.mjs install';
const README_UNINSTALL = 'berthctl uninstall';

let why = cannotBoot();
/** A small tree for systemd-nspawn inside the machine (scripts/rootfs.sh busybox). */
const busybox = path.join(process.env.BERTH_CACHE || '/var/tmp/berth-cache', 'busybox/rootfs');
let m: Booted | undefined;
let work: string | undefined;
const say = (s: string): void => void process.stderr.write(`systemd-host: ${s}\n`);

beforeAll(async () => {
  if (why) return;
  try {
    const tree = await systemdHostTree();
    work = fs.mkdtempSync('/var/tmp/berth-syshost-');
    fs.chmodSync(work, 0o755);
    m = await bootMachine(tree, work, `syshost-${process.pid}`, fs.existsSync(busybox) ? [`${busybox}:/srv/bb`] : []);
    say(`booted ${m.name}: systemd is PID 1 (host PID ${m.leader})`);
  } catch (e) {
    why = `cannot boot a machine with systemd as PID 1 here: ${(e as Error).message}`;
  }
  if (why) console.warn(`skipping the systemd-host test: ${why}`);
}, 900_000);

afterAll(async () => {
  await m?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 120_000);

async function run(argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const t0 = Date.now();
  const r = await m!.inside(argv);
  say(`$ ${argv.join(' ')} -> ${r.exitCode} (${Date.now() - t0} ms)${r.stdout.trim() ? `\n${indent(r.stdout)}` : ''}${r.stderr.trim() ? `\n${indent(r.stderr)}` : ''}`);
  return r;
}
async function sh(line: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await m!.sh(line);
  say(`$ ${line} -> ${r.exitCode}${r.stdout.trim() ? `\n${indent(r.stdout)}` : ''}${r.stderr.trim() ? `\n${indent(r.stderr)}` : ''}`);
  return r;
}
const indent = (s: string): string => s.trim().split('\n').map((l) => `    ${l}`).join('\n');
const unitState = async (u: string): Promise<string> =>
  (await m!.inside(['systemctl', 'show', '-p', 'LoadState,UnitFileState,ActiveState', u])).stdout.trim();
/** What berth could leave behind: every path below the places install writes to. */
const berthPlaces = async (): Promise<string> =>
  (await m!.inside(['sh', '-c', 'find /usr/local /etc/systemd/system /etc/dbus-1 /var/lib/berth 2>/dev/null | sort'])).stdout;
async function until(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const leaderIn = async (): Promise<number> => Number((await m!.inside(['sh', '-c', 'sleep 100000 >/dev/null 2>&1 & echo $!'])).stdout.trim());

describe('berth on a host with systemd as PID 1', () => {
  let machinedBefore = '';
  let placesBefore = '';
  let oldLeader = 0;

  it('install refuses while machined runs with a machine registered, naming it, and changes nothing', async (ctx) => {
    if (why) ctx.skip(why);
    // machined as a Debian host has it: started (through D-Bus), with one machine it made the scope for.
    oldLeader = await leaderIn();
    const reg = await run(['busctl', 'call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager',
      'CreateMachine', 'sayssusa(sv)', 'old', '0', 'test', 'container', String(oldLeader), '', '0']);
    expect(reg.exitCode).toBe(0);
    machinedBefore = await unitState('systemd-machined.service');
    expect(machinedBefore).toContain('ActiveState=active');
    placesBefore = await berthPlaces();
    const r = await sh(README_INSTALL);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/systemd-machined is running with machines registered: old;.*--force/);
    expect(await berthPlaces()).toBe(placesBefore);
    expect(await unitState('systemd-machined.service')).toBe(machinedBefore);
  });

  it('the README install command (with --force) puts berth in machined\'s place and carries its machine over; a second run changes nothing', async (ctx) => {
    if (why) ctx.skip(why);
    const r = await sh(`${README_INSTALL} --force`);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('systemctl mask systemd-machined.service');
    expect(r.stdout).toContain('machines carried over from systemd-machined: old');
    expect(await unitState('systemd-machined.service')).toContain('LoadState=masked');
    expect((await run(['systemctl', 'is-active', 'berthd.socket', 'berthd-userdb.socket', 'berthd-resolve-hook.socket'])).stdout.split('\n').filter(Boolean)).toEqual(['active', 'active', 'active']);
    expect((await run(['berthctl', 'list', '--no-legend'])).stdout).toMatch(/^old\s+container/m);
    const places = await berthPlaces();
    const again = await sh(README_INSTALL);
    expect(again.stdout).toContain('nothing changed');
    expect(await berthPlaces()).toBe(places);
  });

  it('the first Varlink connection starts berthd.service through its socket', async (ctx) => {
    if (why) ctx.skip(why);
    await run(['systemctl', 'stop', 'berthd.service']);
    expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toBe('inactive');
    const u = await run(['userdbctl', 'user', '--output=classic']);
    expect(u.exitCode).toBe(0);
    // Type=exec: 'active' once berthd is exec'd, which may be just after the first answer is on its way
    expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toMatch(/^(activating|active)$/);
    await until('berthd.service active', async () => (await m!.inside(['systemctl', 'is-active', 'berthd.service'])).stdout.trim() === 'active');
    // and it has the machine it restored from the state files
    expect((await run(['berthctl', 'list', '--no-legend'])).stdout).toMatch(/^old\s/m);
  });

  it('the first D-Bus call starts berthd.service through bus activation', async (ctx) => {
    if (why) ctx.skip(why);
    await run(['systemctl', 'stop', 'berthd.service']);
    expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toBe('inactive');
    const r = await run(['busctl', 'call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'ListMachines']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('"old"');
    expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toBe('active');
    expect((await run(['busctl', 'status', 'org.freedesktop.machine1'])).stdout).toMatch(/^Unit=berthd\.service$/m);
  });

  it('berthd exits when idle, and the next lookup (getent through nss-systemd) starts it again with its machines', async (ctx) => {
    if (why) ctx.skip(why);
    // The installed unit waits 60 s; a runtime drop-in makes it 2 s for this step, and is taken out again.
    const exec = (await run(['systemctl', 'show', '-p', 'ExecStart', '--value', 'berthd.service'])).stdout;
    const argv = /argv\[\]=([^;]+);/.exec(exec)?.[1]?.trim();
    expect(argv).toMatch(/--idle-exit 60$/);
    const dropIn = '/run/systemd/system/berthd.service.d/zz-test-idle.conf';
    await sh(`mkdir -p ${path.dirname(dropIn)} && printf '[Service]\\nExecStart=\\nExecStart=${argv!.replace(/60$/, '2')}\\n' > ${dropIn} && systemctl daemon-reload && systemctl restart berthd.service`);
    try {
      expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toBe('active');
      await until('berthd to exit when idle', async () => (await m!.inside(['systemctl', 'is-active', 'berthd.service'])).stdout.trim() === 'inactive', 20_000);
      expect((await run(['systemctl', 'show', '-p', 'Result', '--value', 'berthd.service'])).stdout.trim()).toBe('success');
      // nss-systemd asks every userdb service for a name it does not find in the files: berthd's socket starts it
      expect((await run(['getent', 'passwd', 'vu-nosuch-0'])).exitCode).toBe(2);
      expect((await run(['systemctl', 'is-active', 'berthd.service'])).stdout.trim()).toMatch(/^(activating|active)$/);
      expect((await run(['berthctl', 'list', '--no-legend'])).stdout).toMatch(/^old\s/m);
    } finally {
      await sh(`rm -f ${dropIn} && systemctl daemon-reload && systemctl restart berthd.service`);
    }
  });

  it('a machine berth registers gets a transient machine-NAME.scope in machine.slice from systemd, kept by systemctl restart berthd', async (ctx) => {
    if (why) ctx.skip(why);
    const leader = await leaderIn();
    expect((await run(['berthctl', 'register', 'web', '--leader', String(leader)])).exitCode).toBe(0);
    const st = await run(['systemctl', 'status', '--no-pager', 'machine-web.scope']);
    expect(st.stdout).toContain('Transient: yes');
    expect(st.stdout).toMatch(new RegExp(`└─${leader} sleep 100000`));
    expect((await run(['systemctl', 'show', '-p', 'Slice', 'machine-web.scope'])).stdout.trim()).toBe('Slice=machine.slice');
    expect((await run(['cat', `/proc/${leader}/cgroup`])).stdout).toMatch(/:\/machine\.slice\/machine-web\.scope$/m);
    // machined's properties, set by berthd's own StartTransientUnit call (no helper process)
    expect((await run(['systemctl', 'show', '-p', 'CollectMode,Delegate', 'machine-web.scope'])).stdout.split('\n').filter(Boolean).sort())
      .toEqual(['CollectMode=inactive-or-failed', 'Delegate=yes']);
    await run(['systemctl', 'restart', 'berthd']);
    const list = await run(['berthctl', 'list', '--no-legend']);
    expect(list.stdout).toMatch(/^web\s+container/m);
    expect(list.stdout).toMatch(/^old\s+container/m);
  });

  it('a leader that is gone when systemd makes its scope leaves no machine and no unit', async (ctx) => {
    if (why) ctx.skip(why);
    // A zombie: still in /proc (berthd's checks pass), already exited. systemd may refuse it or make the scope;
    // either way berthd must not keep the machine, and the unit must go (stopped as machined stops it).
    const zombie = Number((await m!.inside(['sh', '-c',
      'sh -c "sleep 0.1 & exec sleep 100000" >/dev/null 2>&1 & sleep 0.5; for p in /proc/[0-9]*; do grep -q "^State:.Z" $p/status 2>/dev/null && grep -q "^Name:.sleep" $p/status && echo ${p#/proc/}; done | tail -1'])).stdout.trim());
    say(`zombie leader ${zombie}`);
    expect(zombie).toBeGreaterThan(1);
    await run(['berthctl', 'register', 'ghost', '--leader', String(zombie)]);
    await until('ghost to go', async () => !/^ghost\s/m.test((await m!.inside(['berthctl', 'list', '--no-legend'])).stdout));
    await until('no machine-ghost.scope', async () => !(await m!.inside(['systemctl', 'list-units', '--all', '--no-legend', 'machine-ghost.scope'])).stdout.trim());
  });

  it('machinectl lists and shows the machines, with the unit\'s processes from systemd, and terminates one', async (ctx) => {
    if (why) ctx.skip(why);
    const list = await run(['machinectl', 'list', '--no-legend']);
    expect(list.stdout).toMatch(/^web\s+container/m);
    const st = await run(['machinectl', 'status', 'web']);
    expect(st.stdout).toMatch(/Unit: machine-web\.scope/);
    expect(st.stdout).toMatch(/└─\d+ sleep 100000/);
    expect((await run(['machinectl', 'terminate', 'web'])).exitCode).toBe(0);
    await until('web to go', async () => !(await m!.inside(['berthctl', 'list', '--no-legend'])).stdout.includes('web'));
    await until('machine-web.scope to go', async () => (await m!.inside(['systemctl', 'is-active', 'machine-web.scope'])).stdout.trim() !== 'active');
    // stopped by systemd (a stop job, which StopUnit makes; a scope whose processes just died has none), as machined terminates
    expect((await run(['journalctl', '--no-pager', '-o', 'cat', '-u', 'machine-web.scope'])).stdout).toMatch(/^Stopping machine-web\.scope/m);
  });

  it('systemd-nspawn without --keep-unit registers with berth (CreateMachine: berth asks systemd for the scope); machinectl status, shell, ps -o machine, restart, terminate and kill', async (ctx) => {
    if (why) ctx.skip(why);
    if (!fs.existsSync(path.join(busybox, 'bin/sh'))) ctx.skip(`no busybox tree at ${busybox} (scripts/rootfs.sh busybox)`);
    await run(['sh', '-c', 'systemd-nspawn -q -D /srv/bb --read-only -M bb /bin/sleep 100000 </dev/null >/tmp/nspawn.log 2>&1 &']);
    await until('bb to be registered', async () => /^bb\s/m.test((await m!.inside(['berthctl', 'list', '--no-legend'])).stdout));
    expect((await run(['machinectl', 'list', '--no-legend'])).stdout).toMatch(/^bb\s+container\s+systemd-nspawn\s+busybox/m);
    // nspawn registers its child before that execs the payload
    await until('the leader to run the payload', async () => /Leader: \d+ \(sleep\)/.test((await m!.inside(['machinectl', 'status', 'bb'])).stdout));
    const st = await run(['machinectl', 'status', 'bb']);
    expect(st.stdout).toMatch(/Unit: machine-bb\.scope/);
    const leader = Number(/Leader: (\d+)/.exec(st.stdout)?.[1]);
    expect(st.stdout).toMatch(new RegExp(`└─${leader} /bin/sleep 100000`));
    expect((await run(['systemctl', 'show', '-p', 'Slice,CollectMode', 'machine-bb.scope'])).stdout).toContain('Slice=machine.slice');
    expect((await run(['ps', '-o', 'machine=', '-p', String(leader)])).stdout.trim()).toBe('bb');
    expect((await run(['sh', '-c', 'machinectl shell bb /bin/echo hello-from-bb </dev/null'])).stdout).toContain('hello-from-bb');
    await run(['systemctl', 'restart', 'berthd']);
    expect((await run(['machinectl', 'list', '--no-legend'])).stdout).toMatch(/^bb\s/m);
    // kill: to every process of the unit through systemd (SIGTERM, which sleep as the container's PID 1 ignores)
    expect((await run(['machinectl', 'kill', 'bb', '--signal=SIGTERM'])).exitCode).toBe(0);
    expect((await run(['machinectl', 'list', '--no-legend'])).stdout).toMatch(/^bb\s/m);
    // terminate: systemd stops the unit, with the unit settings nspawn asked for in CreateMachine's scope
    // properties (berth passes them on to StartTransientUnit after its own, as machined does)
    const props = await run(['sh', '-c', "systemctl show machine-bb.scope | grep -E '^(Kill|TimeoutStop|Device|Delegate=)'"]);
    expect(props.stdout).toMatch(/^DevicePolicy=closed$/m);
    expect(props.stdout).toMatch(/^DeviceAllow=char-pts rw$/m);
    expect((await run(['machinectl', 'terminate', 'bb'])).exitCode).toBe(0);
    await until('bb to go', async () => !/^bb\s/m.test((await m!.inside(['berthctl', 'list', '--no-legend'])).stdout));
    await until('nspawn to report the end', async () => (await m!.inside(['cat', '/tmp/nspawn.log'])).stdout.includes('Container bb terminated by signal'));
  });

  it('uninstall removes every file of berth and gives machined back as it was', async (ctx) => {
    if (why) ctx.skip(why);
    const r = await run(['sh', '-c', `cd ${checkout} && ${README_UNINSTALL}`]);
    expect(r.exitCode).toBe(0);
    expect(await unitState('systemd-machined.service')).toBe(machinedBefore);
    expect(await berthPlaces()).toBe(placesBefore);
    expect((await run(['systemctl', 'is-active', 'berthd.socket'])).stdout.trim()).not.toBe('active');
    // machined answers again, on the bus as before
    const t0 = Date.now();
    const list = await run(['machinectl', 'list']);
    if (list.exitCode !== 0 || Date.now() - t0 > 5000) {
      await run(['sh', '-c', 'journalctl -o short-monotonic --no-pager -u systemd-machined -u berthd -u dbus | tail -40; head -50 /run/systemd/machines/*']);
    }
    expect(list.exitCode).toBe(0);
    const again = await run(['sh', '-c', `cd ${checkout} && node dist/bin/berthctl.mjs uninstall`]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('berth is not installed here');
    await m!.inside(['kill', String(oldLeader)]);
  });
});

