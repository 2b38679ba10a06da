// SystemdScopes (src/server/registry/systemd-scope.ts) against a stand-in for PID 1's Manager on a private
// bus: the StartTransientUnit call it makes, waiting for JobRemoved whether the signal comes before or after
// the reply, a failed job and systemd's refusals as errnos, and StopUnit/KillUnit as machined sends them;
// the caller's own scope properties go after berth's; and the Registry's RegisterReplacingDead path asking
// that stand-in for the scope as Register does.
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, DBusError, requestName, ObjectServer, variant, type Connection, type Variant } from '../../../src/dbus/index.js';
import { SystemdScopes } from '../../../src/server/registry/systemd-scope.js';
import { liveProcessProbe, Registry } from '../../../src/server/registry/registry.js';
import { validateRegistration } from '../../../src/server/machine-params.js';
import { startPrivateBus, type PrivateBus } from '../dbus/private-bus.js';
import { tempDir } from '../../helpers/tmp.js';

const MANAGER = 'org.freedesktop.systemd1.Manager';
let bus: PrivateBus | undefined;
let pid1: Connection;
let why: string | undefined;
const calls: { member: string; args: unknown[] }[] = [];
/** how the stand-in answers the next StartTransientUnit */
let mode: 'signal-first' | 'reply-first' | 'failed-job' | 'exists' = 'reply-first';
let job = 0;

beforeAll(async () => {
  try {
    bus = await startPrivateBus();
  } catch (e) {
    why = `no dbus-daemon for a private bus: ${(e as Error).message}`;
    return;
  }
  pid1 = await connectBus({ address: bus.address });
  await requestName(pid1, 'org.freedesktop.systemd1');
  const emitRemoved = (path: string, unit: string, result: string): void =>
    pid1.signal('/org/freedesktop/systemd1', MANAGER, 'JobRemoved', 'uoss', [job, path, unit, result]);
  const server = new ObjectServer(pid1);
  server.addObject('/org/freedesktop/systemd1', [{
    name: MANAGER,
    methods: {
      StartTransientUnit: {
        in: 'ssa(sv)a(sa(sv))', out: 'o',
        handler: ([unit, jobMode, props]) => {
          calls.push({ member: 'StartTransientUnit', args: [unit, jobMode, (props as [string, Variant][]).map(([k, v]) => [k, v.value])] });
          if (mode === 'exists') throw new DBusError('org.freedesktop.systemd1.UnitExists', `Unit ${unit as string} already exists.`);
          const path = `/org/freedesktop/systemd1/job/${++job}`;
          const result = mode === 'failed-job' ? 'failed' : 'done';
          if (mode === 'signal-first') emitRemoved(path, unit as string, result);
          else setTimeout(() => emitRemoved(path, unit as string, result), 20);
          return [path];
        },
      },
      StopUnit: {
        in: 'ss', out: 'o',
        handler: (args) => {
          calls.push({ member: 'StopUnit', args });
          const path = `/org/freedesktop/systemd1/job/${++job}`;
          setTimeout(() => emitRemoved(path, args[0] as string, 'done'), 20);
          return [path];
        },
      },
      KillUnit: { in: 'ssi', handler: (args) => { calls.push({ member: 'KillUnit', args }); return []; } },
    },
  }]);
});

afterAll(async () => {
  pid1?.close();
  await bus?.stop();
});

describe('scopes from systemd over the bus', () => {
  it('asks for machine-NAME.scope with machined\'s properties and waits for its job, the signal before or after the reply', async (ctx) => {
    if (why) ctx.skip(why);
    const s = new SystemdScopes(bus!.address);
    try {
      for (const m of ['reply-first', 'signal-first'] as const) {
        mode = m;
        calls.length = 0;
        expect(await s.start('web-1', 4242, 'container')).toEqual({ unit: 'machine-web\\x2d1.scope', unitCgroup: '/machine.slice/machine-web\\x2d1.scope' });
        expect(calls).toEqual([{ member: 'StartTransientUnit', args: ['machine-web\\x2d1.scope', 'fail', [
          ['Slice', 'machine.slice'], ['Description', 'Container web-1'], ['Delegate', true], ['CollectMode', 'inactive-or-failed'],
          ['TasksMax', 16384n], ['PIDs', [4242]],
        ]] }]);
      }
    } finally {
      s.close();
    }
  });

  it('sends the caller\'s scope properties after its own, so that they win, as machined does', async (ctx) => {
    if (why) ctx.skip(why);
    const s = new SystemdScopes(bus!.address);
    try {
      mode = 'reply-first';
      calls.length = 0;
      const extra: [string, Variant][] = [['After', variant('as', ['libvirtd.service'])], ['Description', variant('s', 'mine')]];
      expect(await s.start('qemu-1-t', 4242, 'vm', extra)).toMatchObject({ unit: 'machine-qemu\\x2d1\\x2dt.scope' });
      expect((calls[0]!.args[2] as [string, unknown][]).slice(-3)).toEqual([['PIDs', [4242]], ['After', ['libvirtd.service']], ['Description', 'mine']]);
    } finally {
      s.close();
    }
  });

  it('answers a failed job with EIO and an existing unit with EEXIST', async (ctx) => {
    if (why) ctx.skip(why);
    const s = new SystemdScopes(bus!.address);
    try {
      mode = 'failed-job';
      expect(await s.start('a', 1, 'vm')).toMatchObject({ errno: 5, message: expect.stringContaining("ended 'failed'") });
      mode = 'exists';
      expect(await s.start('a', 1, 'vm')).toMatchObject({ errno: 17 });
    } finally {
      s.close();
    }
  });

  it('stops and signals a unit through systemd', async (ctx) => {
    if (why) ctx.skip(why);
    const s = new SystemdScopes(bus!.address);
    try {
      calls.length = 0;
      await s.stop('machine-a.scope');
      await s.kill('machine-a.scope', 'all', 15);
      expect(calls).toEqual([
        { member: 'StopUnit', args: ['machine-a.scope', 'fail'] },
        { member: 'KillUnit', args: ['machine-a.scope', 'all', 15] },
      ]);
    } finally {
      s.close();
    }
  });

  it('gives EIO when there is no bus to ask', async () => {
    const s = new SystemdScopes('unix:path=/nonexistent/bus');
    expect(await s.start('a', 1, 'container')).toMatchObject({ errno: 5 });
    s.close();
  });

  it('RegisterReplacingDead asks systemd for the scope as Register does, and stops a dead machine\'s unit before asking for the new one', async (ctx) => {
    if (why) ctx.skip(why);
    if (process.getuid?.() !== 0) ctx.skip('needs root (pidfds of other processes, the state directory)');
    const dir = tempDir('sd-replace');
    const r = new Registry({ stateDir: dir.path, host: false, systemdScopes: new SystemdScopes(bus!.address) });
    const a = spawn('sleep', ['600'], { stdio: 'ignore' });
    const b = spawn('sleep', ['600'], { stdio: 'ignore' });
    const spec = (pid: number) => {
      const v = validateRegistration({ name: 'rep', class: 'container', leader: pid, allocateUnit: true }, liveProcessProbe);
      if (!v.ok) throw new Error(JSON.stringify(v.error));
      return v.value;
    };
    try {
      mode = 'reply-first';
      calls.length = 0;
      const first = await r.registerOrReplaceIfDead(spec(a.pid!), { uid: 0 });
      expect(first).toMatchObject({ ok: true, value: { replaced: false, machine: { unit: 'machine-rep.scope', unitCgroup: '/machine.slice/machine-rep.scope', ownsScope: false } } });
      expect(calls.map((c) => [c.member, c.args[0]])).toEqual([['StartTransientUnit', 'machine-rep.scope']]);
      expect(await r.registerOrReplaceIfDead(spec(b.pid!), { uid: 0 })).toEqual({ ok: false, error: { error: 'io.systemd.Machine.MachineExists' } });
      // The leader dies; the call comes before the event loop has seen the exit (the registry still has it).
      a.kill('SIGKILL');
      execFileSync('sleep', ['0.3']);
      calls.length = 0;
      const second = await r.registerOrReplaceIfDead(spec(b.pid!), { uid: 0 });
      expect(second).toMatchObject({ ok: true, value: { replaced: true, machine: { unit: 'machine-rep.scope', leader: { pid: b.pid } } } });
      expect(calls).toEqual([
        { member: 'StopUnit', args: ['machine-rep.scope', 'fail'] },
        { member: 'StartTransientUnit', args: ['machine-rep.scope', 'fail', expect.arrayContaining([['PIDs', [b.pid]]])] },
      ]);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
      r.close();
      dir.remove();
    }
  });
});
