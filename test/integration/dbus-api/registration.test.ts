// The other registrations over D-Bus and the descriptors berthd hands out: CreateMachine (berth makes the
// scope machine-NAME.scope; scope properties accepted), RegisterMachineEx with a LeaderPIDFD descriptor,
// OpenMachineRootDirectory giving the machine's root as a directory fd.
import { spawn } from 'node:child_process';
import { existsSync, fstatSync, readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { closeFd, variant, type Connection } from '../../../src/dbus/index.js';
import { pidfdOpen } from '../../../src/domain/libc.js';
import { exited } from '../../helpers/processes.js';
import { BERTHD, berthdOnBus, scopeLeader, type BerthdOnBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (cgroups, bus policy)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping D-Bus registration tests: ${why}`);

const M = { destination: 'org.freedesktop.machine1', path: '/org/freedesktop/machine1', interface: 'org.freedesktop.machine1.Manager' };
const tag = `dr${process.pid % 100000}`;

describe.skipIf(!!why)('registrations and descriptors over D-Bus', () => {
  let t: BerthdOnBus;
  let varlink: VarlinkClient;
  let conn: Connection;

  beforeAll(async () => {
    t = await berthdOnBus('dbusreg');
    ({ varlink, conn } = t);
  }, 60_000);

  afterAll(() => t?.stop());

  const sleeper = () => {
    const c = spawn('sleep', ['3600'], { stdio: 'ignore' });
    t.leaders.push(c);
    return c;
  };

  it('CreateMachine puts the leader into machine-NAME.scope, which Varlink sees', async () => {
    const name = `${tag}-cr`;
    const l = sleeper();
    const r = await conn.call({
      ...M, member: 'CreateMachine', signature: 'sayssusa(sv)',
      body: [name, Buffer.alloc(0), 'libvirt', 'vm', l.pid, '', [['Slice', variant('s', 'machine.slice')], ['Delegate', variant('b', true)]]],
    });
    expect(r.body).toEqual([`/org/freedesktop/machine1/machine/${name.replace(/-/g, '_2d')}`]);
    const v = await varlink.proxy(IoSystemdMachine).List({ name });
    expect(v).toMatchObject({ name, class: 'vm', service: 'libvirt', unit: `machine-${name.replace(/-/g, '\\x2d')}.scope` });
    expect(readFileSync(`/proc/${l.pid}/cgroup`, 'utf8')).toContain('machine.slice/machine-');
    await conn.call({ ...M, member: 'TerminateMachine', signature: 's', body: [name] });
    await exited(l, 10_000);
  });

  it('RegisterMachineEx takes the leader from a LeaderPIDFD descriptor', async () => {
    const name = `${tag}-ex`;
    const l = scopeLeader(`${name}.scope`);
    t.leaders.push(l);
    const pidfd = pidfdOpen(l.pid!);
    expect(pidfd).toBeGreaterThan(0);
    try {
      await conn.call({
        ...M, member: 'RegisterMachineEx', signature: 'sa(sv)',
        body: [name, [['Class', variant('s', 'container')], ['Service', variant('s', 'ex')], ['LeaderPIDFD', variant('h', pidfd)]]],
      });
    } finally {
      closeFd(pidfd);
    }
    const v = await varlink.proxy(IoSystemdMachine).List({ name });
    expect(v).toMatchObject({ name, service: 'ex', leader: { pid: l.pid } });
    const bad = await conn.call({ ...M, member: 'RegisterMachineEx', signature: 'sa(sv)', body: [`${name}2`, [['Bogus', variant('s', 'x')]]] }).catch((e) => e);
    expect(bad.type).toBe('org.freedesktop.DBus.Error.InvalidArgs');
  });

  it('OpenMachineRootDirectory hands out the machine root as a directory', async () => {
    const r = await conn.call({ ...M, member: 'OpenMachineRootDirectory', signature: 's', body: ['.host'] });
    const [fd] = r.body as [number];
    try {
      const st = fstatSync(fd);
      expect(st.isDirectory()).toBe(true);
      expect(st.ino).toBe(statSync('/').ino);
    } finally {
      closeFd(fd);
    }
    const e = await conn.call({ ...M, member: 'OpenMachineRootDirectory', signature: 's', body: ['nope'] }).catch((x) => x);
    expect(e.type).toBe('org.freedesktop.machine1.NoSuchMachine');
  });
});
