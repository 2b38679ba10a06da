// The launch service for real: berthd starts a busybox container from its NAME.berth file under a
// detached berth-spawn, the machine keeps running while berthd is killed and started again, and
// Poweroff, Reboot and Stop reach it through the saved supervisor record. Nothing is mocked.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { VarlinkError } from '../../../src/varlink/errors.js';
import { IoBerthLauncher } from '../../../src/generated/io.berth.Launcher.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { waitFor } from '../../helpers/wait.js';

const repo = resolve(import.meta.dirname, '../../..');
const berthd = join(repo, 'dist/src/server/main.js');
let rootfs = '';
try {
  rootfs = join(execFileSync('bash', [join(repo, 'scripts/rootfs.sh'), 'path'], { encoding: 'utf8' }).trim(), 'busybox/rootfs');
} catch {
  rootfs = '';
}
const why =
  process.getuid?.() !== 0
    ? 'needs root'
    : !existsSync(berthd)
      ? 'berthd is not built (npm run build)'
      : !existsSync(join(rootfs, 'init'))
        ? 'no busybox tree (bash scripts/rootfs.sh busybox)'
        : '';
if (why) console.warn(`skipping the launch service test: ${why}`);

describe.skipIf(!!why)('launch service (io.berth.Launcher)', () => {
  let dir = '';
  let runtime = '';
  let daemon: ChildProcess | undefined;
  const name = `ls${process.pid % 100000}`;

  const startDaemon = async () => {
    daemon = spawn(process.execPath, [berthd, '--runtime-dir', runtime, '--config-dir', join(dir, 'cfg'), '--userdb-service', `io.berth.test.${name}`, '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const socket = join(runtime, 'systemd/machine/io.systemd.Machine');
    await waitFor(async () => {
      try {
        (await VarlinkClient.connect(`unix:${socket}`)).close();
        return true;
      } catch {
        return false;
      }
    }, 'berthd to listen', { timeoutMs: 30_000 });
  };
  const client = () => VarlinkClient.connect(`unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`, { timeout: 120_000 });
  const registered = async (): Promise<boolean> => {
    const c = await client();
    try {
      await c.proxy(IoSystemdMachine).List({ name });
      return true;
    } catch (e) {
      if (e instanceof VarlinkError && e.error === 'io.systemd.Machine.NoSuchMachine') return false;
      throw e;
    } finally {
      c.close();
    }
  };

  beforeAll(async () => {
    // The container's root must reach the runtime directory: parents must be searchable by others.
    dir = mkdtempSync('/var/tmp/berth-launch-');
    chmodSync(dir, 0o755);
    runtime = join(dir, 'run');
    mkdirSync(join(dir, 'cfg'));
    cpSync(rootfs, join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    writeFileSync(
      join(dir, 'cfg', `${name}.berth`),
      ['# the launch service test machine', '[Spawn]', `Directory=${join(dir, 'rootfs')}`, 'PrivateUsers=pick', 'NotifyReady=yes', 'StopTimeout=5', 'Command=/init'].join('\n') + '\n',
    );
    writeFileSync(join(dir, 'cfg', 'broken.berth'), '[Spawn]\nDirectory=/x\nPrivateUser=pick\n');
    await startDaemon();
  }, 60_000);

  afterAll(async () => {
    try {
      const c = await client();
      await c.proxy(IoBerthLauncher).Stop({ name }).catch(() => {});
      c.close();
    } catch {
      // berthd already gone
    }
    daemon?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('lists configurations and refuses broken or missing ones with a clear error', async () => {
    const c = await client();
    try {
      const l = c.proxy(IoBerthLauncher);
      const { machines } = await l.ListConfigured();
      expect(machines.map((m) => m.name).sort()).toEqual(['broken', name].sort());
      expect(machines.find((m) => m.name === name)).toMatchObject({ class: 'container' });
      await expect(l.Start({ name: 'broken' })).rejects.toMatchObject({
        error: 'io.berth.Launcher.BadConfiguration',
        parameters: { line: 3, reason: "unknown setting 'PrivateUser' for a container" },
      });
      await expect(l.Start({ name: 'nope' })).rejects.toMatchObject({ error: 'io.berth.Launcher.NoSuchConfiguration' });
      await expect(l.Stop({ name })).rejects.toMatchObject({ error: 'io.berth.Launcher.NotLaunched' });
    } finally {
      c.close();
    }
  });

  it('starts the machine with progress under more, and refuses to start it twice', async () => {
    const c = await client();
    try {
      const l = c.proxy(IoBerthLauncher);
      const states: string[] = [];
      let leader = 0;
      for await (const s of l.Start.more({ name })) {
        states.push(s.state);
        if (s.leader) leader = s.leader;
      }
      expect(states).toEqual(['starting', 'running']);
      expect(leader).toBeGreaterThan(1);
      const m = await c.proxy(IoSystemdMachine).List({ name });
      expect(m.leader?.pid).toBe(leader);
      expect(m.unit).toBe(`machine-${name}.scope`);
      await expect(l.Start({ name })).rejects.toMatchObject({ error: 'io.berth.Launcher.AlreadyRunning' });
    } finally {
      c.close();
    }
  }, 120_000);

  it('keeps the machine running when berthd is killed, and finds its supervisor again after a restart', async () => {
    const before = daemon!;
    const gone = new Promise((r) => before.once('exit', r));
    before.kill('SIGKILL');
    await gone;
    await startDaemon();
    expect(await registered()).toBe(true);
    const c = await client();
    try {
      const { machines } = await c.proxy(IoBerthLauncher).ListConfigured();
      expect(machines.find((m) => m.name === name)).toMatchObject({ state: 'running' });
      expect(machines.find((m) => m.name === name)?.supervisor).toBeGreaterThan(1);
    } finally {
      c.close();
    }
  }, 120_000);

  it('reboots (clean shutdown, then a new supervisor) and powers off', async () => {
    const c = await client();
    try {
      const l = c.proxy(IoBerthLauncher);
      const before = (await l.ListConfigured()).machines.find((m) => m.name === name)?.supervisor;
      const { supervisor } = await l.Reboot({ name });
      expect(supervisor).toBeGreaterThan(1);
      expect(supervisor).not.toBe(before);
      expect(await registered()).toBe(true);
      await l.Poweroff({ name });
      expect(await registered()).toBe(false);
      const scope = `/sys/fs/cgroup/unified/machine.slice/machine-${name}.scope`;
      await waitFor(() => !existsSync(scope), 'the scope to be removed', { timeoutMs: 10_000 });
      await expect(l.Poweroff({ name })).rejects.toMatchObject({ error: 'io.berth.Launcher.NotLaunched' });
    } finally {
      c.close();
    }
  }, 180_000);
});
