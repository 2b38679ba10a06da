import { describe, expect, it } from 'vitest';
import { UserDb, parseIdMap, type UserDbMachine } from '../../../src/server/userdb/index.js';

const SVC = 'io.systemd.Machine';

function machine(name: string, uid: string, gid = uid, extra: Partial<UserDbMachine> = {}): UserDbMachine {
  return { name, class: 'container', uidMap: parseIdMap(uid), gidMap: parseIdMap(gid), registeredBy: 0, ...extra };
}

describe('UserDb lookups', () => {
  it('uses the configured service name for the check and in the records', () => {
    const db = new UserDb({ service: 'berth-test-1234' });
    db.setMachine(machine('c', '0 1879048192 65536'));
    expect(db.getUserRecord({ uid: 1879048192, service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.BadService' });
    expect(db.getUserRecord({ uid: 1879048192, service: 'berth-test-1234' })).toEqual({
      records: [
        {
          userName: 'vu-c-0',
          uid: 1879048192,
          gid: 65534,
          realName: 'UID 0 of Container c',
          homeDirectory: '/',
          shell: '/usr/sbin/nologin',
          locked: true,
          service: 'berth-test-1234',
          disposition: 'container',
        },
      ],
    });
  });

  it('forgets a removed machine in both directions', () => {
    const db = new UserDb();
    db.setMachine(machine('c', '0 1879048192 65536'));
    expect(db.removeMachine('c')).toBe(true);
    expect(db.removeMachine('c')).toBe(false);
    expect(db.getUserRecord({ uid: 1879048192, service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(db.getUserRecord({ userName: 'vu-c-0', service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    expect(db.ranges()).toEqual([]);
  });

  it('answers by name with the read error when the leader\'s map could not be read, and skips the machine by UID', () => {
    const db = new UserDb();
    db.setMachine({ name: 'gone', class: 'container', uidMap: { errno: 2 }, gidMap: { errno: 3 }, registeredBy: 0 });
    expect(db.getUserRecord({ userName: 'vu-gone-0', service: SVC })).toEqual({ error: 'io.systemd.System', errno: 2 });
    expect(db.getGroupRecord({ groupName: 'vg-gone-0', service: SVC })).toEqual({ error: 'io.systemd.System', errno: 3 });
    expect(db.ranges('gone')).toEqual([]);
  });

  it('picks up a map written after registration when the machine is set again', () => {
    const db = new UserDb();
    db.setMachine(machine('late', '', '', { leader: 1234 }));
    expect(db.unmappedMachines()).toEqual([{ name: 'late', leader: 1234 }]);
    expect(db.getUserRecord({ userName: 'vu-late-0', service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
    db.setMachine(machine('late', '0 1879048192 65536', '0 1879048192 65536', { leader: 1234 }));
    expect(db.unmappedMachines()).toEqual([]);
    expect(db.getUserRecord({ userName: 'vu-late-0', service: SVC })).toMatchObject({ records: [{ uid: 1879048192 }] });
  });

  it('answers from the first-registered machine where ranges overlap (257 uses hash order)', () => {
    const db = new UserDb();
    db.setMachine(machine('o1', '0 1879572480 65536'));
    db.setMachine(machine('o2', '0 1879572480 100'));
    expect(db.getUserRecord({ uid: 1879572480, service: SVC })).toMatchObject({ records: [{ userName: 'vu-o1-0' }] });
    db.removeMachine('o1');
    expect(db.getUserRecord({ uid: 1879572480, service: SVC })).toMatchObject({ records: [{ userName: 'vu-o2-0' }] });
    expect(db.getUserRecord({ uid: 1879572580, service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
  });

  it('skips a VM that overlaps a container', () => {
    const db = new UserDb();
    db.setMachine(machine('v', '0 1879048192 65536', undefined, { class: 'vm' }));
    db.setMachine(machine('c', '0 1879048192 65536'));
    expect(db.getUserRecord({ uid: 1879048200, service: SVC })).toMatchObject({ records: [{ userName: 'vu-c-8' }] });
  });

  it('costs the same per lookup with 1,000 machines and stays correct', () => {
    const db = new UserDb();
    for (let i = 0; i < 1000; i++) db.setMachine(machine(`m${i}`, `0 ${0x70000000 + i * 0x10000} 65536`));
    for (let i = 0; i < 1000; i += 37) {
      const uid = 0x70000000 + i * 0x10000 + 1000;
      expect(db.getUserRecord({ uid, service: SVC })).toMatchObject({ records: [{ userName: `vu-m${i}-1000`, uid }] });
      expect(db.getUserRecord({ userName: `vu-m${i}-1000`, service: SVC })).toMatchObject({ records: [{ uid }] });
      expect(db.getGroupRecord({ gid: uid, service: SVC })).toMatchObject({ records: [{ groupName: `vg-m${i}-1000` }] });
    }
    expect(db.getUserRecord({ uid: 0x70000000 + 1000 * 0x10000, service: SVC })).toEqual({ error: 'io.systemd.UserDatabase.NoRecordFound' });
  });
});

describe("berth's own range questions", () => {
  it('lists ranges with base, size, machine and registrant, in registration order', () => {
    const db = new UserDb();
    db.setMachine(machine('b', '0 1879048192 65536', '0 1879113728 65536', { registeredBy: 1000 }));
    db.setMachine(machine('a', '0 100000 1000\n1000 0 1', '0 200000 10'));
    db.setMachine(machine('nons', '0 0 4294967295'));
    expect(db.ranges()).toEqual([
      { machine: 'b', class: 'container', kind: 'uid', base: 1879048192, size: 65536, inside: 0, registeredBy: 1000 },
      { machine: 'b', class: 'container', kind: 'gid', base: 1879113728, size: 65536, inside: 0, registeredBy: 1000 },
      { machine: 'a', class: 'container', kind: 'uid', base: 100000, size: 1000, inside: 0, registeredBy: 0 },
      { machine: 'a', class: 'container', kind: 'gid', base: 200000, size: 10, inside: 0, registeredBy: 0 },
    ]);
    expect(db.ranges('a').map((r) => r.kind)).toEqual(['uid', 'gid']);
    expect(db.ranges('nons')).toEqual([]);
    expect(db.ranges('absent')).toEqual([]);
  });

  it('tells who owns a host UID or GID, including IDs below 65536', () => {
    const db = new UserDb();
    db.setMachine(machine('a', '0 1879048192 65536\n2000 5000 10', '0 1879048192 65536', { registeredBy: 1000 }));
    db.setMachine(machine('v', '0 1879113728 65536', undefined, { class: 'vm' }));
    expect(db.uidOwner(1879048197)).toEqual([
      {
        machine: 'a',
        class: 'container',
        inside: 5,
        range: { machine: 'a', class: 'container', kind: 'uid', base: 1879048192, size: 65536, inside: 0, registeredBy: 1000 },
      },
    ]);
    expect(db.uidOwner(5003).map((o) => [o.machine, o.inside])).toEqual([['a', 2003]]);
    expect(db.uidOwner(1879113729).map((o) => [o.machine, o.class, o.inside])).toEqual([['v', 'vm', 1]]);
    expect(db.gidOwner(5003)).toEqual([]);
    expect(db.uidOwner(0)).toEqual([]);
  });

  it('reports the existing ranges a new machine overlaps, and none for a clean one', () => {
    const db = new UserDb();
    expect(db.setMachine(machine('first', '0 1879048192 65536'))).toEqual({ overlaps: [] });
    expect(db.setMachine(machine('clean', '0 1879113728 65536'))).toEqual({ overlaps: [] });
    const { overlaps } = db.setMachine(machine('second', '0 1879113000 1000', '0 1879040000 10')); // uid overlaps both, gid neither
    expect(overlaps.map((o) => [o.kind, o.range.base, o.other.machine, o.other.base])).toEqual([
      ['uid', 1879113000, 'first', 1879048192],
      ['uid', 1879113000, 'clean', 1879113728],
    ]);
    // Setting a machine again does not report it against itself.
    expect(db.setMachine(machine('first', '0 1879048192 65536')).overlaps.map((o) => o.other.machine)).toEqual(['second']);
    // A container without its own user namespace (identity map) overlaps nothing.
    expect(db.setMachine(machine('nons', '0 0 4294967295')).overlaps).toEqual([]);
  });
});
