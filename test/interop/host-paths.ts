/**
 * The real clients of org.freedesktop.machine1 (machinectl, systemd-nspawn, systemd-run, journalctl, ps,
 * userdbctl, getent with nss-mymachines) look at fixed paths: /run/dbus/system_bus_socket, /run/systemd/
 * (machines/, userdb/, system/) and /etc/nsswitch.conf. This runs such a client in a private mount namespace
 * where those paths are berthd's: its runtime dir's systemd/ over /run/systemd (with system/ made so that
 * the tools think systemd booted), its private bus socket at /run/dbus/system_bus_socket and, on request, a
 * modified nsswitch.conf over /etc/nsswitch.conf. The host's files are never changed. Also: a leader in a
 * unit-shaped cgroup of every hierarchy, and the real machined of a suite on a bus of its own namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from '../helpers/run.js';
import { onTerminal, type TerminalRun } from '../helpers/on-terminal.js';
import { REFERENCE_SCRIPT, referenceTool, type ReferenceSuite } from '../helpers/reference.js';
import { madeCgroups, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { detectCgroupLayout } from '../../src/domain/cgroup-paths.js';

const ENTER = [
  'set -e',
  'mkdir -p "$RUNTIME/systemd/system"',
  'mount --bind "$RUNTIME/systemd" /run/systemd',
  // nspawn only cleans up what it keeps there on a tmpfs (the runtime dir is on disk).
  'mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn',
  'mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus',
  'touch /run/dbus/system_bus_socket && mount --bind "$BUS_SOCKET" /run/dbus/system_bus_socket',
  'if [ -n "$NSSWITCH" ]; then mount --bind "$NSSWITCH" /etc/nsswitch.conf; fi',
  'exec "$@"',
].join('\n');

export interface HostOptions {
  /** A file to see as /etc/nsswitch.conf. */
  nsswitch?: string;
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** argv wrapped so that it runs with berthd's paths in place of the host's. */
export function hostArgv(t: BerthdOnBus, argv: string[]): { argv: string[]; env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = { ...process.env, RUNTIME: t.runtime, BUS_SOCKET: t.bus.socketPath };
  delete env.DBUS_SYSTEM_BUS_ADDRESS;
  return { argv: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', ENTER, 'sh', ...argv], env };
}

/** Runs argv where the standard paths are berthd's (never throws for a non-zero exit). */
export function inHost(t: BerthdOnBus, argv: string[], o: HostOptions = {}): Promise<RunResult> {
  const w = hostArgv(t, argv);
  return run(w.argv, { timeoutMs: o.timeoutMs ?? 60_000, input: o.input, env: { ...w.env, ...o.env, NSSWITCH: o.nsswitch ?? '' } });
}

/** The same on a real terminal, playing `steps` (see onTerminal). */
export function onTerminalInHost(t: BerthdOnBus, argv: string[], steps: [string, string][], timeoutMs = 30_000): Promise<TerminalRun> {
  const w = hostArgv(t, argv);
  return onTerminal(w.argv, steps, { timeoutMs, env: { ...w.env, NSSWITCH: '' } });
}

const layout = detectCgroupLayout();

/** Moves `pid` into `/UNIT` of every hierarchy (removed again by the fixture's removeCgroups). */
export function intoUnit(pid: number, unit: string): void {
  for (const h of layout.hierarchies) {
    const d = join(h.root, unit);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'cgroup.procs'), `${pid}\n`);
    if (!madeCgroups.includes(d)) madeCgroups.push(d);
  }
}

/**
 * A bash leader that writes the name of each signal it catches (poweroff's SIGRTMIN+4, reboot's SIGINT,
 * SIGUSR1, SIGHUP) to `log`, one per line, and exits on SIGTERM.
 */
export function trappingLeader(log: string): ChildProcess {
  const traps = ['RTMIN+4', 'INT', 'USR1', 'HUP'].map((s) => `trap 'echo ${s} >>"$LOG"' ${s}`).join('; ');
  return spawn('bash', ['-c', `${traps}; trap 'exit 0' TERM; echo ready >>"$LOG"; while :; do sleep 0.2 & wait $!; done`], { stdio: 'ignore', env: { ...process.env, LOG: log } });
}

/** The machinectl variants: Debian's 252, the reference 257 and 262 (argv, or why it cannot run). */
export async function machinectls(): Promise<{ label: string; suite: ReferenceSuite; argv: string[] | string }[]> {
  const out: { label: string; suite: ReferenceSuite; argv: string[] | string }[] = [];
  const { existsSync } = await import('node:fs');
  out.push({ label: '252', suite: 'trixie', argv: existsSync('/usr/bin/machinectl') ? ['/usr/bin/machinectl'] : 'machinectl 252 is not installed (apt-get install systemd-container)' });
  for (const [label, suite] of [['257', 'trixie'], ['262', 'sid']] as const) {
    const ref = await referenceTool('machinectl', { suite });
    out.push({ label, suite, argv: typeof ref === 'string' ? ref : ['env', `BERTH_REFERENCE_SUITE=${suite}`, 'bash', REFERENCE_SCRIPT, 'run', 'machinectl'] });
  }
  return out;
}

/**
 * Runs `script` (bash) next to the real machined of `suite`, in a namespace of its own with tmpfs over
 * /run/systemd, /run/dbus and the reference state dir; `$REF` is reference-tools.sh. Returns its output.
 */
export async function withMachined(suite: ReferenceSuite, script: string, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const state = suite === 'trixie' ? '/var/tmp/berth-reference/state' : `/var/tmp/berth-reference-${suite}/state`;
  const full = `
set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus ${state} && mount -t tmpfs tmpfs /run/dbus && mount -t tmpfs tmpfs ${state}
mkdir -p /run/systemd/system
bash "$REF" machined start >/dev/null 2>&1
set +e
${script}
bash "$REF" machined stop >/dev/null 2>&1 || true
`;
  const e: NodeJS.ProcessEnv = { ...process.env, ...env, REF: REFERENCE_SCRIPT, BERTH_REFERENCE_SUITE: suite };
  delete e.DBUS_SYSTEM_BUS_ADDRESS;
  if (suite !== 'trixie') delete e.BERTH_REFERENCE_ROOT;
  return run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', full], { timeoutMs: 180_000, env: e });
}
