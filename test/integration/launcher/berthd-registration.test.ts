/**
 * A container registered with the real berthd (in process, on a temp runtime dir): it appears in
 * io.systemd.Machine.List with its leader, class and scope unit while it runs, Open gives a terminal
 * of its own devpts, and it is gone after it stops.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../../src/server/daemon.js';
import { machineSocketPath, userdbSocketPath } from '../../../src/domain/runtime-paths.js';
import { Supervisor } from '../../../src/launcher/supervisor.js';
import { VarlinkError as VarlinkCallError } from '../../../src/varlink/errors.js';
import { varlinkCall } from '../../helpers/call-once.js';
import { newUuid } from '../../../src/domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';
import { busyboxTree, cannotRun, INIT, removeTree, TRAP_READY_IDLE, type Tree } from './fixture.js';
import { leftovers } from './leftovers.js';
import { cannotOpenPty, openPty } from '../../helpers/open-pty.js';

const BERTHCTL = path.resolve(import.meta.dirname, '../../../dist/bin/berthctl.mjs');
const why = cannotRun() ?? (fs.existsSync(BERTHCTL) ? undefined : `${BERTHCTL} is missing: run 'npm run build' first`);
let rt: string;
let daemon: Daemon | undefined;
let t: Tree | undefined;

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
  if (t) removeTree(t);
  if (rt) fs.rmSync(rt, { recursive: true, force: true });
});

describe.skipIf(!!why)('registration with berthd', () => {
  it('lists the running container and forgets it once stopped', async () => {
    t = await busyboxTree(TRAP_READY_IDLE);
    const uuid = newUuid();
    const sup = await Supervisor.start({
      directory: t.root, name: 'reg-berthd', uuid, boot: false, command: INIT, privateUsers: { mode: 'pick' }, binds: [],
      setenv: [], credentials: [], linkJournal: 'no', networkVeth: false, register: 'yes', runtimeDir: rt,
      notifyReady: true, ttys: [], listenFds: [], killSignal: SIGRTMIN_PLUS_3, quiet: true,
      hostJournalDir: path.join(rt, 'journal'), consoleOutput: new PassThrough().resume(),
    }, { readyTimeoutMs: 10_000 });
    const socket = machineSocketPath(rt);
    try {
      expect(sup.registered).toBe(true);
      const m = await varlinkCall(socket, 'io.systemd.Machine.List', { name: 'reg-berthd' });
      expect(m).toMatchObject({ name: 'reg-berthd', class: 'container', id: uuid.replace(/-/g, ''), rootDirectory: fs.realpathSync(t.root), unit: 'machine-reg\\x2dberthd.scope' });
      expect(JSON.stringify(m.leader)).toContain(String(sup.leader));
      // The container's root shows up as a user of the host through berthd's userdb.
      const service = `io.berth.test${process.pid}`;
      const u = await varlinkCall(userdbSocketPath(rt, service), 'io.systemd.UserDatabase.GetUserRecord', { uid: sup.uidBase, service });
      expect(JSON.stringify(u)).toContain('vu-reg-berthd-0');
      // A terminal inside the container: its own devpts instance (the first terminal there), owned by
      // the container's root, and the descriptor that came back is its master.
      const noPython = cannotOpenPty();
      if (noPython) console.warn(`Open not checked: ${noPython}`);
      else {
        const o = await openPty(socket, { name: 'reg-berthd', mode: 'tty' }, `/proc/${sup.leader}/root`);
        expect(o.reply).toEqual({ parameters: { ptyFileDescriptor: 0, ptyPath: '/dev/pts/0' } });
        expect(o.fds).toBe(1);
        expect(o.master).toBe('/dev/pts/ptmx');
        expect(o.slaveUid).toBe(sup.uidBase);
        expect(o.echo).toBe('ping\r\n');
        // A shell inside the container, started without anything of systemd in there: it runs as the
        // container's root in its namespaces, with the terminal as its controlling terminal, in the
        // container's scope.
        const sh = await openPty(
          socket,
          { name: 'reg-berthd', mode: 'shell', path: '/bin/sh', args: ['sh', '-c', 'echo "id=$(id -u) home=$HOME x=$X"; tty; [ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo same-cgroup-as-pid1'], environment: ['X=y'] },
          `/proc/${sup.leader}/root`,
          { read: true },
        );
        expect(sh.reply).toEqual({ parameters: { ptyFileDescriptor: 0, ptyPath: expect.stringMatching(/^\/dev\/pts\/\d+$/) } });
        expect(sh.output?.split('\r\n')).toEqual(['id=0 home=/root x=y', sh.reply.parameters?.ptyPath, 'same-cgroup-as-pid1', '']);
        // login runs the container's login program on the terminal.
        const login = await openPty(socket, { name: 'reg-berthd', mode: 'login' }, `/proc/${sup.leader}/root`, { read: true, settleMs: 1500 });
        expect(login.output).toMatch(/login: $/);
      }
      // berthctl shell: the same over Varlink alone, bridged to berthctl's own output.
      const ctl = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [BERTHCTL, '--runtime-dir', rt, 'shell', 'reg-berthd', '/bin/sh', '-c', 'echo "in $(hostname -s 2>/dev/null || echo ct) as $(id -u)"; exit 3'],
          { timeout: 20_000 },
          (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
        );
        child.stdin?.end();
      });
      expect(ctl.stderr).toBe('');
      expect(ctl.stdout).toMatch(/^in \S+ as 0\r\n$/);
      expect(ctl.code).toBe(0);
    } finally {
      await sup.stop(5000);
    }
    await expect(varlinkCall(socket, 'io.systemd.Machine.List', { name: 'reg-berthd' })).rejects.toBeInstanceOf(VarlinkCallError);
    expect(leftovers(rt, 'reg-berthd')).toEqual([]);
  });
});
