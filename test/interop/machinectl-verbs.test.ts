// machinectl 252 (Debian's), 257 and 262 against berthd over D-Bus, the verbs beyond list/show: `status`
// (compared with the same machinectl against the real machined: without systemd on the bus both print the
// machine and one error line for the unit's cgroup), `show -p … --value`, `kill` (the signal reaches the
// leader only, or the whole scope), `poweroff` and `reboot` (SIGRTMIN+4 and SIGINT to the leader over
// D-Bus; 262 falls back to D-Bus as the record has no controlAddress), `terminate`, and `shell` and `login`
// on a real terminal. Each client runs where /run/systemd and the system bus are berthd's (host-paths.ts).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { detectCgroupLayout } from '../../src/domain/cgroup-paths.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { run } from '../helpers/run.js';
import { REFERENCE_SCRIPT } from '../helpers/reference.js';
import { inHost, intoUnit, machinectls, onTerminalInHost, trappingLeader, withMachined } from './host-paths.js';
import { cannotOpenPty } from '../helpers/open-pty.js';

const why = process.getuid?.() !== 0 ? 'needs root (mount namespaces, cgroups)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
const variants = why ? [] : await machinectls();
const tag = `mv${process.pid % 100000}`;

/** `machinectl status` with the parts that differ between two runs (times, pids) replaced. */
function normaliseStatus(s: string): string {
  return s
    .replace(/Since: .*$/m, 'Since: T')
    .replace(/Leader: \d+/, 'Leader: N')
    .replace(/Superv\.: \d+/, 'Superv.: N')
    .replace(/^(Failed to query unit control group path): .*$/m, '$1: E');
}

describe.skipIf(!!why)('machinectl verbs against berthd', () => {
  let t: BerthdOnBus;
  let dir: string;

  beforeAll(async () => {
    t = await berthdOnBus('mcverbs');
    dir = mkdtempSync('/var/tmp/berth-mcverbs-');
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    // The reference tools' `scope` put machined's leaders into machine.slice/machine-NAME.scope, which
    // outlives the test's mount namespace (cgroups are not private).
    for (const v of variants) {
      // (reference-tools.sh names the scope without escaping the dash, so not machineScopeDirs.)
      for (const d of detectCgroupLayout().hierarchies.map((h) => join(h.root, 'machine.slice', `machine-${tag}-s${v.label}.scope`))) {
        try {
          rmdirSync(d);
        } catch {
          /* never made (skipped) or gone */
        }
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A trapping leader registered as NAME in NAME.scope; resolves with it and its signal log. */
  async function leaderMachine(name: string) {
    const log = join(dir, `${name}.log`);
    const l = trappingLeader(log);
    t.leaders.push(l);
    await waitFor(() => existsSync(log), 'the leader to set its traps');
    intoUnit(l.pid!, `${name}.scope`);
    // Registered by a short-lived client, as on the machined side (machined 262 shows a live supervisor).
    const params = JSON.stringify({ name, class: 'container', leader: l.pid!, service: 'berth-test', rootDirectory: '/' });
    const r = await run(['bash', REFERENCE_SCRIPT, 'run', 'varlinkctl', 'call', join(t.runtime, 'systemd/machine/io.systemd.Machine'), 'io.systemd.Machine.Register', params]);
    expect(r.stderr).toBe('');
    const caught = () => readFileSync(log, 'utf8').split('\n').filter((x) => x && x !== 'ready');
    return { l, caught };
  }

  for (const v of variants) {
    const skip = typeof v.argv === 'string' ? v.argv : '';
    const mc = (...args: string[]) => inHost(t, [...(v.argv as string[]), '--no-pager', ...args]);

    it.skipIf(!!skip)(`machinectl ${v.label}: status as against machined ${v.suite === 'sid' ? '262' : '257'}; show -p --value`, async () => {
      const name = `${tag}-s${v.label}`;
      const { l } = await leaderMachine(name);
      const ours = await mc('status', name);
      expect(ours.code).toBe(0);
      const lines = ours.stdout.split('\n').map((x) => x.trim());
      expect(lines[0]).toBe(name);
      for (const want of [`Leader: ${l.pid} (bash)`, 'Service: berth-test; class container', 'Root: /', `Unit: ${name}.scope`]) expect(lines).toContain(want);
      // No systemd on the bus: one line saying the unit's cgroup could not be asked for.
      expect(ours.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Failed to query unit control group path: /)]);

      const theirs = await withMachined(v.suite, `
bash -c 'trap "" INT; while :; do sleep 0.2 & wait $!; done' & L=$!
bash "$REF" scope ${name} $L >/dev/null
bash "$REF" run varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register "{\\"name\\":\\"${name}\\",\\"class\\":\\"container\\",\\"leader\\":$L,\\"rootDirectory\\":\\"/\\",\\"service\\":\\"berth-test\\"}" >/dev/null
echo "=== supervisor"; $MC --no-pager show -p Supervisor --value ${name} 2>&1
echo "=== status"; $MC --no-pager status ${name} 2>&1
kill $L; wait $L 2>/dev/null`, { MC: (v.argv as string[]).join(' ') });
      const machined = theirs.stdout.split('=== status\n')[1] ?? '';
      expect(machined, theirs.stdout + theirs.stderr).toContain('Failed to query unit control group path');
      // machined's scope is machine-NAME.scope under machine.slice, berth's the unit it was given.
      expect(normaliseStatus(machined).replace(`machine-${name}.scope`, `${name}.scope`)).toBe(normaliseStatus(ours.stderr + ours.stdout));

      // Supervisor: the process that registered the machine (a short-lived varlinkctl on both sides).
      const theirSupervisor = Number(/=== supervisor\n(.*)\n/.exec(theirs.stdout)?.[1]);
      const ourSupervisor = Number((await mc('show', '-p', 'Supervisor', '--value', name)).stdout.trim());
      // machined 257 has no Supervisor property (berth serves 262's set to every client).
      expect([v.suite === 'trixie' || theirSupervisor > 0, ourSupervisor > 0, ourSupervisor !== l.pid]).toEqual([true, true, true]);

      const value = await mc('show', '-p', 'Leader', '--value', name);
      expect(value.stdout).toBe(`${l.pid}\n`);
      const two = await mc('show', '-p', 'Class', '-p', 'Service', name);
      expect(two.stdout.split('\n').filter(Boolean).sort()).toEqual(['Class=container', 'Service=berth-test']);
      const two2 = await mc('show', '-p', 'Name', '-p', 'Unit', '--value', name);
      expect(two2.stdout.split('\n').filter(Boolean).sort()).toEqual([name, `${name}.scope`].sort());
    }, 240_000);

    it.skipIf(!!skip)(`machinectl ${v.label}: kill, poweroff, reboot reach the leader; terminate ends the machine`, async () => {
      const name = `${tag}-k${v.label}`;
      const { l, caught } = await leaderMachine(name);
      // A second process of the scope, which leader-only signals must not touch.
      const other = spawn('sleep', ['3600'], { stdio: 'ignore' });
      t.leaders.push(other);
      intoUnit(other.pid!, `${name}.scope`);

      for (const [args, sig] of [[['kill', '--kill-whom=leader', '--signal=SIGUSR1'], 'USR1'], [['poweroff'], 'RTMIN+4'], [['reboot'], 'INT']] as const) {
        const r = await mc(...args, name);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        await waitFor(() => caught().at(-1) === sig, `the leader to catch SIG${sig}`);
      }
      expect(caught()).toEqual(['USR1', 'RTMIN+4', 'INT']);
      expect(other.exitCode === null && other.signalCode === null).toBe(true);

      // Without --kill-whom the signal goes to every process of the machine.
      const all = await mc('kill', '--signal=SIGHUP', name);
      expect(all.code).toBe(0);
      expect(await exited(other, 10_000)).toBe('SIGHUP');
      await waitFor(() => caught().at(-1) === 'HUP', 'the leader to catch SIGHUP');

      const term = await mc('terminate', name);
      expect(term.stderr).toBe('');
      expect(term.code).toBe(0);
      expect(await exited(l, 10_000)).toBe(0);
      await waitFor(async () => !(await mc('list')).stdout.includes(name), 'the machine to leave the list');
      const gone = await mc('kill', name);
      expect(gone.code).not.toBe(0);
      expect(gone.stderr).toContain(`No machine '${name}' known`);
    }, 120_000);

    it.skipIf(!!skip || !!cannotOpenPty())(`machinectl ${v.label}: shell and login on a real terminal`, async () => {
      const name = `${tag}-t${v.label}`;
      await leaderMachine(name);
      const sh = await onTerminalInHost(t, [...(v.argv as string[]), 'shell', name, '/bin/sh'], [['Press ^] three times', 'echo o""k-$((6*7)); exit\r']]);
      expect(sh.output).toContain(`Connected to machine ${name}.`);
      expect(sh.output).toMatch(/\r\nok-42\r\n/);
      expect(sh.output).toContain(`Connection to machine ${name} terminated.`);
      expect(sh.code).toBe(0);

      // login: the machine's login program asks on the new terminal; ^]^]^] leaves.
      const login = await onTerminalInHost(t, [...(v.argv as string[]), 'login', name], [['login:', '\x1d\x1d\x1d']], 40_000);
      expect(login.output).toContain(`Connected to machine ${name}.`);
      expect(login.output).toMatch(/ login: /);
      expect(login.steps).toBe(1);
      // 262 words the end of an escaped session differently; the machine itself stays.
      expect(login.output).toMatch(new RegExp(`(Connection to machine|Machine) ${name} terminated\\.`));
      expect((await inHost(t, [...(v.argv as string[]), 'list'])).stdout).toContain(`${name} `);
    }, 120_000);
  }
});
