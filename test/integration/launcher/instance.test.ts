/**
 * io.systemd.MachineInstance of a real busybox container: the launcher serves it on the machine's control
 * socket; Describe, Pause (the scope's cgroup.freeze, processes stop), Resume, SubscribeEvents, PowerOff of
 * a payload that is not an init (the clean stop), Reboot refused for it, Terminate, and the socket gone after.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../../../src/launcher/supervisor.js';
import type { ContainerOptions } from '../../../src/launcher/container/options.js';
import { newUuid } from '../../../src/domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachineInstance, NotSupported } from '../../../src/generated/io.systemd.MachineInstance.js';
import { isCgroupFrozen } from '../../../src/launcher/cgroup.js';
import { cannotRun, INIT, TRAP_READY_IDLE, useScratch, type Tree } from './fixture.js';
import { leftovers } from './leftovers.js';
import { waitFor } from '../../../src/launcher/teardown.js';

const why = cannotRun();
if (why) console.warn(`skipping the container instance tests: ${why}`);
const scratch = useScratch(why);

function options(t: Tree, name: string, extra: Partial<ContainerOptions> = {}): ContainerOptions {
  return {
    directory: t.root, name, uuid: newUuid(), boot: false, command: INIT, privateUsers: { mode: 'pick' }, binds: [],
    setenv: [], credentials: [], linkJournal: 'no', networkVeth: false, register: 'no', runtimeDir: scratch.rt,
    notifyReady: true, ttys: [], listenFds: [], killSignal: SIGRTMIN_PLUS_3, quiet: true,
    hostJournalDir: path.join(scratch.rt, 'journal'), consoleOutput: new PassThrough(),
    ...extra,
  };
}

async function control(sup: Supervisor) {
  expect(sup.controlAddress).toBe(path.join(sup.runDir!, 'io.systemd.MachineInstance'));
  const c = await VarlinkClient.connect({ kind: 'unix', path: sup.controlAddress! }, { interfaces: [IoSystemdMachineInstance], timeout: 10_000 });
  return { c, m: c.proxy(IoSystemdMachineInstance) };
}

/** The state letter of a process (R, S, ...; frozen tasks of cgroup v2 sleep in the freezer). */
const procState = (pid: number): string => /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';

describe.skipIf(!!why)('io.systemd.MachineInstance of a container', () => {
  it('describes, pauses (cgroup.freeze), resumes and streams the events', async (ctx) => {
    // A counter that only moves while the container runs.
    const t = await scratch.tree(`${TRAP_READY_IDLE.split('\n')[0]}
/usr/bin/ct-helper notify READY=1
i=0; while :; do i=$((i+1)); echo $i > /data/tick; sleep 0.05; done`);
    const sup = await Supervisor.start(options(t, 'bt-inst'), { readyTimeoutMs: 10_000 });
    const { c, m } = await control(sup);
    try {
      const scope = sup.scope!.freezable();
      if (!scope) ctx.skip('no cgroup v2 scope to freeze on this host');
      expect(await m.Describe()).toEqual({ running: true, status: 'running' });

      const events: string[] = [];
      let shutdown: unknown;
      const sub = await VarlinkClient.connect({ kind: 'unix', path: sup.controlAddress! }, { timeout: 0 });
      const stream = (async () => {
        for await (const e of sub.proxy(IoSystemdMachineInstance).SubscribeEvents.more({})) {
          events.push(e.event);
          if (e.event === 'SHUTDOWN') shutdown = e.data;
        }
      })().catch(() => {});
      await m.Describe(); // one round trip on another connection: the subscription is in place by now

      await m.Pause();
      expect(isCgroupFrozen(scope!)).toBe(true);
      expect(fs.readFileSync(path.join(scope!, 'cgroup.freeze'), 'utf8').trim()).toBe('1');
      expect(await m.Describe()).toEqual({ running: false, status: 'paused' });
      const frozenAt = fs.readFileSync(path.join(t.root, 'data/tick'), 'utf8');
      await new Promise((r) => setTimeout(r, 400));
      expect(fs.readFileSync(path.join(t.root, 'data/tick'), 'utf8')).toBe(frozenAt);
      expect(procState(sup.leader)).not.toBe('R');

      await m.Resume();
      expect(isCgroupFrozen(scope!)).toBe(false);
      expect(await m.Describe()).toEqual({ running: true, status: 'running' });
      await new Promise((r) => setTimeout(r, 400));
      expect(fs.readFileSync(path.join(t.root, 'data/tick'), 'utf8')).not.toBe(frozenAt);

      // Reboot needs an init; this payload is a shell script.
      await expect(m.Reboot()).rejects.toBeInstanceOf(NotSupported);

      // PowerOff of a non-init payload is the clean stop: its SIGRTMIN+3 trap runs, it exits 0.
      await m.PowerOff();
      expect(await sup.wait()).toMatchObject({ code: 0, reason: 'exit' });
      await stream;
      expect(events).toEqual(['STOP', 'RESUME', 'POWERDOWN', 'SHUTDOWN']);
      expect(shutdown).toEqual({ reason: 'exit', code: 0 });
      sub.close();
      expect(fs.existsSync(path.join(scratch.rt, 'machines', 'bt-inst'))).toBe(false);
      expect(leftovers(scratch.rt, 'bt-inst')).toEqual([]);
    } finally {
      c.close();
      sup.kill();
      await sup.wait().catch(() => {});
    }
  }, 60_000);

  it('terminates a paused container at once', async (ctx) => {
    const t = await scratch.tree(TRAP_READY_IDLE);
    const sup = await Supervisor.start(options(t, 'bt-inst-term'), { readyTimeoutMs: 10_000 });
    const { c, m } = await control(sup);
    try {
      if (!sup.scope!.freezable()) ctx.skip('no cgroup v2 scope to freeze on this host');
      await m.Pause();
      await m.Terminate();
      expect(await sup.wait()).toMatchObject({ code: 1, reason: 'killed' });
      expect(leftovers(scratch.rt, 'bt-inst-term')).toEqual([]);
    } finally {
      c.close();
      sup.kill();
      await sup.wait().catch(() => {});
    }
  }, 60_000);

  it('stops a paused container with the clean stop (it is thawed first)', async (ctx) => {
    const t = await scratch.tree(`trap 'echo stopped > /data/stopped; exit 0' 37
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const sup = await Supervisor.start(options(t, 'bt-inst-stop'), { readyTimeoutMs: 10_000 });
    const { c, m } = await control(sup);
    try {
      if (!sup.scope!.freezable()) ctx.skip('no cgroup v2 scope to freeze on this host');
      await m.Pause();
      expect((await sup.stop(5000)).reason).toBe('exit');
      expect(fs.readFileSync(path.join(t.root, 'data/stopped'), 'utf8')).toBe('stopped\n');
    } finally {
      c.close();
      sup.kill();
      await sup.wait().catch(() => {});
    }
  }, 60_000);

  it('asks a booted init as machined does: SIGRTMIN+4 to power off, SIGINT to reboot', async () => {
    // An "init" that records what it is asked; it ends on the power-off request.
    const t = await scratch.tree('');
    fs.writeFileSync(path.join(t.root, 'sbin/init'), `#!/bin/sh
trap 'echo INT >> /data/asked' INT
trap 'echo RTMIN+4 >> /data/asked; exit 0' 38
/usr/bin/ct-helper notify READY=1
while :; do sleep 0.05; done
`, { mode: 0o755 });
    const sup = await Supervisor.start(options(t, 'bt-inst-boot', { boot: true, command: [] }), { readyTimeoutMs: 10_000 });
    const { c, m } = await control(sup);
    try {
      await m.Reboot();
      await waitFor(() => fs.existsSync(path.join(t.root, 'data/asked')), 5000, 'the reboot request');
      expect(sup.state).toBe('running');
      await m.PowerOff();
      expect(await sup.wait()).toMatchObject({ code: 0, reason: 'exit' });
      expect(fs.readFileSync(path.join(t.root, 'data/asked'), 'utf8')).toBe('INT\nRTMIN+4\n');
    } finally {
      c.close();
      sup.kill();
      await sup.wait().catch(() => {});
    }
  }, 60_000);
});
