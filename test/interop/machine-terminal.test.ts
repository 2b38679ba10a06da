// Terminals and the journal of a booted systemd container through berthd's D-Bus API, with the real clients:
// `machinectl shell` (OpenMachineShell), `machinectl login` (OpenMachineLogin: the container's login prompt) and `systemd-run -M NAME --pty` (OpenMachinePTY on the host, then the
// container's own systemd starts the program on that terminal) each get a working shell that answers
// `echo ok; exit`, and `journalctl -M NAME` (OpenMachineRootDirectory in 257 and 262, the leader's root in 252) reads
// a line the container logged. The container is the project's Debian tree booted by berth-spawn (systemd 252
// as its PID 1, its own system bus), registered with berthd; every client runs where the standard paths
// are berthd's (host-paths.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/run.js';
import { exited } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { REPO } from '../helpers/generated.js';
import { REFERENCE_SCRIPT, referenceTool } from '../helpers/reference.js';
import { cannotOpenPty } from '../helpers/open-pty.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { inHost, onTerminalInHost } from './host-paths.js';

const DEBIAN = join(process.env.BERTH_CACHE || '/var/tmp/berth-cache', 'debian/rootfs');
const SPAWN = join(REPO, 'dist/bin/berth-spawn.mjs');
const why =
  process.getuid?.() !== 0 ? 'needs root (namespaces, cgroups)'
  : !existsSync(BERTHD) ? 'not built (npm run build)'
  : !existsSync(join(DEBIAN, 'lib/systemd/systemd')) ? `no Debian tree with systemd at ${DEBIAN} (bash scripts/rootfs.sh debian)`
  : cannotOpenPty() ?? '';
const NAME = `term${process.pid % 100000}`;
// Each tool in Debian's 252 and the reference 257 and 262.

/** Debian's 252, the reference 257 and 262 of a tool (argv, or why it cannot run). */
async function clients(tool: string): Promise<{ label: string; argv: string[] | string }[]> {
  const ref = await referenceTool(tool);
  const sid = await referenceTool(tool, { suite: 'sid' });
  return [
    { label: '252', argv: existsSync(`/usr/bin/${tool}`) ? [`/usr/bin/${tool}`] : `${tool} 252 is not installed` },
    { label: '257', argv: typeof ref === 'string' ? ref : ['bash', REFERENCE_SCRIPT, 'run', tool] },
    { label: '262', argv: typeof sid === 'string' ? sid : ['env', '-u', 'BERTH_REFERENCE_ROOT', 'BERTH_REFERENCE_SUITE=sid', 'bash', REFERENCE_SCRIPT, 'run', tool] },
  ];
}
// Debian's systemd-run 252 opens the terminal path OpenMachinePTY names (a path inside the container) in its
// own /dev/pts and hands that to the container's systemd: on a host with terminals of its own it talks to one
// of the host's. That is the client's doing (machined names the same container-side path); 257 uses the
// master it was given. So only 257 is tried, and a 252 found here is skipped with that reason.
const runs = why ? [] : (await clients('systemd-run')).map((c) => (c.label === '252' ? { ...c, argv: 'systemd-run 252 -M --pty opens the pty path in the host\'s /dev/pts, not the container\'s' } : c));
const journalctls = why ? [] : await clients('journalctl');
const machinectls = why ? [] : await clients('machinectl');
if (why) console.warn(`skipping the booted-container terminal tests: ${why}`);
for (const c of [...runs, ...journalctls, ...machinectls]) if (typeof c.argv === 'string') console.warn(`skipping ${c.label}: ${c.argv}`);

describe.skipIf(!!why)('a booted container: shells and the journal through D-Bus', () => {
  let t: BerthdOnBus;
  let work: string;
  let spawned: ChildProcess;
  let leader = 0;

  beforeAll(async () => {
    t = await berthdOnBus('term');
    // The container's root reaches berth-spawn's run dir below the runtime dir.
    chmodSync(t.runtime, 0o755);
    work = mkdtempSync('/var/tmp/berth-term-');
    chmodSync(work, 0o755);
    const root = join(work, 'debian');
    const cp = await run(['cp', '-a', '--reflink=auto', DEBIAN, root], { timeoutMs: 120_000 });
    if (cp.code !== 0) throw new Error(cp.stderr);
    spawned = spawn(process.execPath, [SPAWN, '-D', root, '-M', NAME, '-U', '--boot', '--register=yes', `--runtime-dir=${t.runtime}`, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    spawned.stderr!.on('data', (d) => (err += d));
    await waitFor(async () => {
      if (spawned.exitCode !== null) throw new Error(`berth-spawn exited: ${err}`);
      const s = await inHost(t, ['machinectl', 'show', '-p', 'Leader', '--value', NAME]);
      leader = Number(s.stdout.trim()) || 0;
      if (!leader) return false;
      // Booted far enough that its system bus answers.
      const bus = await run(['nsenter', '-t', String(leader), '-a', 'systemctl', 'is-system-running']);
      return ['running', 'degraded'].includes(bus.stdout.trim());
    }, 'the container to boot', { timeoutMs: 90_000 });
  }, 240_000);

  afterAll(async () => {
    if (spawned && spawned.exitCode === null) {
      spawned.kill('SIGTERM');
      await exited(spawned, 30_000).catch(() => spawned.kill('SIGKILL'));
    }
    await t?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  for (const v of machinectls) {
    it.skipIf(typeof v.argv === 'string')(`machinectl ${v.label} shell: echo ok; exit`, async () => {
      const r = await onTerminalInHost(t, [...(v.argv as string[]), 'shell', NAME], [['Press ^] three times', 'echo o""k; exit\r']]);
      // bash in the container brackets its input with paste-mode switches (ESC [?2004l CR before the output).
      expect(r.output).toMatch(/[\r\n]ok\r\n/);
      expect(r.output).toContain(`Connection to machine ${NAME} terminated.`);
      expect(r.code).toBe(0);
    }, 60_000);
  }

  for (const v of machinectls) {
    it.skipIf(typeof v.argv === 'string')(`machinectl ${v.label} login: the container's login prompt`, async () => {
      const r = await onTerminalInHost(t, [...(v.argv as string[]), 'login', NAME], [[' login: ', '\x1d\x1d\x1d']], 40_000);
      expect(r.steps, r.output).toBe(1);
      expect(r.output).toMatch(/debian login: /);
      // 262 words the end of an escaped session differently; the machine itself stays.
      expect(r.output).toMatch(new RegExp(`(Connection to machine|Machine) ${NAME} terminated\\.`));
      expect((await inHost(t, ['machinectl', 'list'])).stdout).toContain(`${NAME} `);
    }, 60_000);
  }

  for (const v of runs) {
    it.skipIf(typeof v.argv === 'string')(`systemd-run ${v.label} -M NAME --pty: echo ok; exit`, async () => {
      const r = await onTerminalInHost(t, [...(v.argv as string[]), '-M', NAME, '--pty', '--quiet', '/bin/sh'], [['#', 'echo o""k; exit\r']], 40_000);
      expect(r.steps, r.output).toBe(1);
      expect(r.output).toMatch(/[\r\n]ok\r\n/);
      expect(r.code, r.output).toBe(0);
    }, 60_000);
  }

  for (const v of journalctls) {
    it.skipIf(typeof v.argv === 'string')(`journalctl ${v.label} -M NAME reads the container's journal`, async () => {
      const mark = `berth-journal-${v.label}-${process.pid}`;
      const log = await run(['nsenter', '-t', String(leader), '-a', 'logger', '-t', 'berthtest', mark]);
      expect(log.code, log.stderr).toBe(0);
      await waitFor(async () => (await inHost(t, [...(v.argv as string[]), '-M', NAME, '--no-pager', '-t', 'berthtest'])).stdout.includes(mark), `journalctl ${v.label} -M to show the line`, { timeoutMs: 20_000 });
      const r = await inHost(t, [...(v.argv as string[]), '-M', NAME, '--no-pager', '-o', 'cat', '-t', 'berthtest']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')).toContain(mark);
    }, 60_000);
  }
});
