// SystemdScopes (src/server/registry/systemd-scope.ts) against a stand-in for PID 1's Manager on a private
// bus: the StartTransientUnit call it makes, waiting for JobRemoved whether the signal comes before or after
// the reply, a failed job and systemd's refusals as errnos, and StopUnit/KillUnit as machined sends them;
// the caller's own scope properties go after berth's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, DBusError, requestName, ObjectServer, variant, type Connection, type Variant } from '../../../src/dbus/index.js';
import { SystemdScopes } from '../../../src/server/registry/systemd-scope.js';
import { startPrivateBus, type PrivateBus } from '../dbus/private-bus.js';

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
      StopUnit: { in: 'ss', out: 'o', handler: (args) => { calls.push({ member: 'StopUnit', args }); return [`/org/freedesktop/systemd1/job/${++job}`]; } },
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
});
