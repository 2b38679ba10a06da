/**
 * berthctl poweroff|reboot|pause|resume against the real berthd (in process, on a temp runtime dir): a
 * container berth-spawn registered with its controlAddress is acted on through io.systemd.MachineInstance;
 * a machine registered without one gets machined's signal to its leader; a controlAddress nobody answers
 * on fails as machinectl 262 fails, and nothing is done to the machine.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/server/daemon.js';
import { machineSocketPath } from '../../../src/domain/runtime-paths.js';
import { Supervisor } from '../../../src/launcher/supervisor.js';
import { Scope, isCgroupFrozen } from '../../../src/launcher/cgroup.js';
import { waitFor } from '../../../src/launcher/teardown.js';
import { varlinkCall } from '../../helpers/call-once.js';
import { newUuid } from '../../../src/domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';
import { busyboxTree, cannotRun, INIT, removeTree, TRAP_READY_IDLE, type Tree } from './fixture.js';
import { leftovers } from './leftovers.js';

const BERTHCTL = path.resolve(import.meta.dirname, '../../../dist/bin/berthctl.mjs');
const why = cannotRun() ?? (fs.existsSync(BERTHCTL) ? undefined : `${BERTHCTL} is missing: run 'npm run build' first`);
if (why) console.warn(`skipping the berthctl instance tests: ${why}`);
let rt: string;
let daemon: Daemon | undefined;
const trees: Tree[] = [];

beforeAll(async () => {
  if (why) return;
  rt = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rt-'));
  fs.chmodSync(rt, 0o755);
  daemon = new Daemon({
    runtimeDir: rt, userdbService: `io.berth.test${process.pid}`, idleExitSeconds: 0, logLevel: 'silent',
    allowUserRegister: false, imageDirectories: [],
  }, pino({ level: 'silent' }));
  await daemon.start();
});

afterAll(async () => {
  await daemon?.stop();
  for (const t of trees) removeTree(t);
  if (rt) fs.rmSync(rt, { recursive: true, force: true });
});

function berthctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTHCTL, '--runtime-dir', rt, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * A process in a machine scope of its own, registered without a control address (as nspawn registers):
 * a bash that records the signals machined would send. Returns its pid and a cleanup.
 */
async function plainMachine(name: string, extra: Record<string, unknown> = {}): Promise<{ pid: number; log: string; done: () => Promise<void> }> {
  const log = path.join(rt, `${name}.signals`);
  const child = spawn('bash', ['-c', `trap 'echo RTMIN+4 >> ${log}' RTMIN+4; trap 'echo INT >> ${log}' INT; echo ready >> ${log}; while :; do sleep 0.05; done`], { stdio: 'ignore' });
  const pid = child.pid!;
  const scope = Scope.locate(name);
  scope.create();
  for (const p of scope.paths) fs.writeFileSync(path.join(p, 'cgroup.procs'), String(pid));
  await waitFor(() => fs.existsSync(log), 5000, 'the plain machine to start');
  await varlinkCall(machineSocketPath(rt), 'io.systemd.Machine.Register', { name, class: 'container', leader: pid, allocateUnit: false, ...extra });
  return {
    pid, log,
    done: async () => {
      await varlinkCall(machineSocketPath(rt), 'io.systemd.Machine.Unregister', { name }).catch(() => {});
      scope.killAll();
      await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty');
      scope.remove();
    },
  };
}

describe.skipIf(!!why)('berthctl poweroff, reboot, pause, resume', () => {
  it('act on a berth-spawn container through its registered control address', async (ctx) => {
    const t = await busyboxTree(`trap 'echo stopped > /data/stopped; exit 0' 37
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    trees.push(t);
    const sup = await Supervisor.start({
      directory: t.root, name: 'inst-ctl', uuid: newUuid(), boot: false, command: INIT, privateUsers: { mode: 'pick' }, binds: [],
      setenv: [], credentials: [], linkJournal: 'no', networkVeth: false, register: 'yes', runtimeDir: rt,
      notifyReady: true, ttys: [], listenFds: [], killSignal: SIGRTMIN_PLUS_3, quiet: true,
      hostJournalDir: path.join(rt, 'journal'), consoleOutput: new PassThrough().resume(),
    }, { readyTimeoutMs: 10_000 });
    try {
      const m = await varlinkCall(machineSocketPath(rt), 'io.systemd.Machine.List', { name: 'inst-ctl' });
      expect(m.controlAddress).toBe(path.join(sup.runDir!, 'io.systemd.MachineInstance'));
      const scope = sup.scope!.freezable();
      if (!scope) ctx.skip('no cgroup v2 scope to freeze on this host');

      expect(await berthctl('pause', 'inst-ctl')).toMatchObject({ code: 0 });
      expect(isCgroupFrozen(scope!)).toBe(true);
      expect(await berthctl('resume', 'inst-ctl')).toMatchObject({ code: 0 });
      expect(isCgroupFrozen(scope!)).toBe(false);

      // The payload is no init: the launcher answers NotSupported, as machinectl 262 would print it.
      const r = await berthctl('reboot', 'inst-ctl');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('Machine control call failed: io.systemd.MachineInstance.NotSupported');

      expect(await berthctl('poweroff', 'inst-ctl')).toMatchObject({ code: 0 });
      expect(await sup.wait()).toMatchObject({ code: 0, reason: 'exit' });
      expect(fs.readFileSync(path.join(t.root, 'data/stopped'), 'utf8')).toBe('stopped\n');
      expect(leftovers(rt, 'inst-ctl')).toEqual([]);
    } finally {
      sup.kill();
      await sup.wait().catch(() => {});
    }
  }, 60_000);

  it('send machined\'s signals to the leader of a machine without a control address', async () => {
    const pm = await plainMachine('inst-plain');
    try {
      expect(await berthctl('poweroff', 'inst-plain')).toMatchObject({ code: 0 });
      // One at a time: pending together, SIGINT would be delivered before the real-time signal.
      await waitFor(() => fs.readFileSync(pm.log, 'utf8').includes('RTMIN+4'), 5000, 'SIGRTMIN+4');
      expect(await berthctl('reboot', 'inst-plain')).toMatchObject({ code: 0 });
      await waitFor(() => fs.readFileSync(pm.log, 'utf8').includes('INT'), 5000, 'the signals');
      expect(fs.readFileSync(pm.log, 'utf8')).toBe('ready\nRTMIN+4\nINT\n');
      const p = await berthctl('pause', 'inst-plain');
      expect(p.code).toBe(1);
      expect(p.stderr).toContain("Machine 'inst-plain' does not expose a varlink control socket.");
    } finally {
      await pm.done();
    }
  }, 60_000);

  it('fail on a control address nobody answers on, leaving the machine alone', async () => {
    const pm = await plainMachine('inst-dead', { controlAddress: path.join(rt, 'nobody-here') });
    try {
      for (const verb of ['poweroff', 'reboot', 'pause', 'resume']) {
        const r = await berthctl(verb, 'inst-dead');
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('Failed to connect to machine control socket: No such file or directory');
      }
      expect(fs.readFileSync(pm.log, 'utf8')).toBe('ready\n');
      process.kill(pm.pid, 0); // still there
      const n = await berthctl('pause', 'no-such-machine');
      expect(n.code).toBe(4);
      expect(n.stderr).toContain("Failed to look up machine 'no-such-machine': io.systemd.Machine.NoSuchMachine");
    } finally {
      await pm.done();
    }
  }, 60_000);
});
