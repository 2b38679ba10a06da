// io.systemd.UserDatabase, differential (issue 4): the users and groups of a real user-namespaced
// container registered in both the real systemd-machined 257 and berthd (same leader, same name), looked
// up on both userdb sockets with the same raw calls. berthd runs with `--userdb-service
// io.systemd.Machine`, so the records' `service` is the same. Covers lookups by UID/GID and by name,
// memberships, enumeration with and without `more`, and issue 4's bad-input list; every reply must be
// equal except for the filter fields of systemd 258+ (fuzzyNames, dispositionMask, uidMin/uidMax,
// gidMin/gidMax, uuid): machined (257, and 262 too) refuses them with InvalidParameter and leaves the
// client to filter; berth answers them (issue 12), each such call a Deliberate below.
import { describe, expect, it } from 'vitest';
import { Comparison, err, invalid, type Step } from './compare.js';
import { Pair, useFixture, type Leader } from './fixture.js';

let pair: Pair;
const leaders: Record<string, Leader> = {};
let N: Record<string, string> = {};
/** First host UID of the user-namespaced container; a VM and a dotted name get the next ranges. */
const B = 0x48000000 + (process.pid % 1024) * 0x40000;

const { staticSkip, need } = useFixture('u', 'io.systemd.UserDatabase', {
  setup: async (fx) => {
    const P = fx.prefix;
    // `long` makes vu-NAME-UID exactly 31 characters (the longest valid user name) at UID 100, 32 at 1000.
    N = { ns: `${P}-ns`, plain: `${P}-p`, vm: `${P}-vm`, dotted: `${P}.d`, nope: `${P}-nope`, long: `${P}-l`.padEnd(24, 'x') };
    leaders.ns = await fx.usernsLeader(N.ns!, B);
    leaders.plain = await fx.plainLeader(N.plain!);
    leaders.vm = await fx.usernsLeader(N.vm!, B + 0x10000);
    leaders.dotted = await fx.usernsLeader(N.dotted!, B + 0x20000);
    leaders.long = await fx.usernsLeader(N.long!, B + 0x30000);
    const reg = await Pair.open(fx, 'machineSocket');
    try {
      for (const [key, cls] of [['ns', 'container'], ['plain', 'container'], ['vm', 'vm'], ['dotted', 'container'], ['long', 'container']] as const) {
        const { real, berth } = await reg.call(
          JSON.stringify({ method: 'io.systemd.Machine.Register', parameters: { name: N[key], class: cls, leader: leaders[key]!.pid } }),
        );
        if (real[0]!.error || berth[0]!.error) throw new Error(`Register ${N[key]}: 257 ${JSON.stringify(real)}, berth ${JSON.stringify(berth)}`);
      }
    } finally {
      reg.close();
    }
    pair = await Pair.open(fx, 'userdbSocket');
  },
  teardown: () => pair?.close(),
});

const SERVICE = '"service":"io.systemd.Machine"';
/** A call as JSON text; `params` is the inside of the parameters object, written exactly as sent. */
const q = (method: string, params: string, more = false): string =>
  `{"method":"io.systemd.UserDatabase.${method}","parameters":{${params}}${more ? ',"more":true' : ''}}`;
const user = (label: string, params: string, more = false): Step => ({ label, send: q('GetUserRecord', params, more) });
const group = (label: string, params: string, more = false): Step => ({ label, send: q('GetGroupRecord', params, more) });
const member = (label: string, params: string, more = false): Step => ({ label, send: q('GetMemberships', params, more) });

const NON_MATCHING = err('io.systemd.UserDatabase.NonMatchingRecordFound');
type Replies = { parameters?: { record?: { userName?: string; groupName?: string } } }[];
/** The record names of a reply list, in order. */
const recordNames = (x: Replies) => x.map((r) => r.parameters?.record?.userName ?? r.parameters?.record?.groupName);
const names =
  (...want: string[]) =>
  (x: Replies) =>
    JSON.stringify(recordNames(x)) === JSON.stringify(want);
const one = (name: string) => names(name);
/** A call with filter fields: berth answers `berth`, machined refuses the first filter field, `field`. */
function filtered(label: string, step: Step, berth: unknown, field: string): Step {
  return { ...step, label, deliberate: { why: 'berth answers the filter fields that machined refuses', berth, real: invalid(field) } };
}

describe.skipIf(!!staticSkip)('io.systemd.UserDatabase: 257 and berth answer alike', () => {
  it('resolves users and groups of a user-namespaced container by number and by name', async (ctx) => {
    const f = need(ctx);
    const ns = N.ns!;
    const c = new Comparison(f, pair);
    await c.steps([
      ...[0, 1, 1000, 65534].map((i) => user(`user by uid, inside ${i}`, `"uid":${B + i},${SERVICE}`)),
      user('user by uid, inside 65535 (not a valid UID inside)', `"uid":${B + 65535},${SERVICE}`),
      user('user by uid just past the range', `"uid":${B + 65536},${SERVICE}`),
      user('user by uid just before the range', `"uid":${B - 1},${SERVICE}`),
      user('user by uid in the host range', `"uid":1000,${SERVICE}`),
      ...[0, 1000, 65534, 65535].map((i) => user(`user by name, inside ${i}`, `"userName":"vu-${ns}-${i}",${SERVICE}`)),
      ...[0, 5, 65534].map((i) => group(`group by gid, inside ${i}`, `"gid":${B + i},${SERVICE}`)),
      ...[0, 5, 65534].map((i) => group(`group by name, inside ${i}`, `"groupName":"vg-${ns}-${i}",${SERVICE}`)),
      user('user by uid and matching name', `"uid":${B + 7},"userName":"vu-${ns}-7",${SERVICE}`),
      user('user by uid and a name that does not match', `"uid":${B + 7},"userName":"vu-${ns}-8",${SERVICE}`),
      user('user by name, then a uid that does not match', `"userName":"vu-${ns}-8","uid":${B + 7},${SERVICE}`),
      group('group by gid and a name that does not match', `"gid":${B + 7},"groupName":"vg-${ns}-8",${SERVICE}`),
      user('user by uid with more: one reply', `"uid":${B},${SERVICE}`, true),
      group('group by name with more: one reply', `"groupName":"vg-${ns}-3",${SERVICE}`, true),
      // A container without a user namespace: names resolve to the identity-mapped host UID (257's quirk).
      user('user of a container without a user namespace, 0', `"userName":"vu-${N.plain}-0",${SERVICE}`),
      user('user of a container without a user namespace, 70000', `"userName":"vu-${N.plain}-70000",${SERVICE}`),
      group('group of a container without a user namespace', `"groupName":"vg-${N.plain}-5",${SERVICE}`),
      // VMs never have users; a machine name with a dot never makes a valid user name.
      user('user by uid in a VM\'s range', `"uid":${B + 0x10000},${SERVICE}`),
      user('user of a VM by name', `"userName":"vu-${N.vm}-0",${SERVICE}`),
      user('user by uid of a dotted machine', `"uid":${B + 0x20000},${SERVICE}`),
      user('user of a dotted machine by name', `"userName":"vu-${N.dotted}-0",${SERVICE}`),
      user('user of an unknown machine', `"userName":"vu-${N.nope}-0",${SERVICE}`),
      // The longest valid user name is 31 characters.
      ...[0, 100, 1000].flatMap((i) => [
        user(`long machine name, user by uid, inside ${i}`, `"uid":${B + 0x30000 + i},${SERVICE}`),
        user(`long machine name, user by name, inside ${i}`, `"userName":"vu-${N.long}-${i}",${SERVICE}`),
        group(`long machine name, group by gid, inside ${i}`, `"gid":${B + 0x30000 + i},${SERVICE}`),
      ]),
      // Memberships: none are modelled.
      member('memberships, nothing given', SERVICE),
      member('memberships, nothing given, more', SERVICE, true),
      member('memberships of a user', `"userName":"vu-${ns}-0",${SERVICE}`),
      member('memberships of a group', `"groupName":"vg-${ns}-0",${SERVICE}`),
      member('memberships of a user and group, more', `"userName":"vu-${ns}-0","groupName":"vg-${ns}-0",${SERVICE}`, true),
      member('memberships, bad service', `"service":"nope"`),
      member('memberships, no service', ''),
      member('memberships, invalid user name', `"userName":"a:b",${SERVICE}`),
      // Enumeration.
      user('enumerate users', SERVICE),
      user('enumerate users, more', SERVICE, true),
      group('enumerate groups', SERVICE),
      group('enumerate groups, more', SERVICE, true),
    ]);
    expect(c.report()).toBe('');
    // The records really were found (not two equal misses).
    expect(JSON.stringify(c.outcomes.find((o) => o.label === 'user by uid, inside 1000')?.berth)).toContain(`"userName":"vu-${ns}-1000"`);
    expect(JSON.stringify(c.outcomes.find((o) => o.label === 'group by name, inside 5')?.berth)).toContain(`"gid":${B + 5}`);
    expect(`vu-${N.long}-100`).toHaveLength(31);
    expect(JSON.stringify(c.outcomes.find((o) => o.label === 'long machine name, user by uid, inside 100')?.berth)).toContain(`"userName":"vu-${N.long}-100"`);
  });

  it('answers issue 4\'s bad input as 257 does and keeps serving', async (ctx) => {
    const f = need(ctx);
    const ns = N.ns!;
    const c = new Comparison(f, pair);
    await c.steps([
      user('service missing', `"uid":${B}`),
      user('service wrong', `"uid":${B},"service":"io.systemd.Multiplexer"`),
      user('service empty', `"uid":${B},"service":""`),
      user('service a number', `"uid":${B},"service":5`),
      user('service null', `"uid":${B},"service":null`),
      group('group, service wrong', `"gid":${B},"service":"x"`),
      user('uid negative', `"uid":-1,${SERVICE}`),
      user('uid 2^53', `"uid":9007199254740992,${SERVICE}`),
      user('uid fractional', `"uid":1.5,${SERVICE}`),
      user('uid integral with a fraction part', `"uid":${B}.0,${SERVICE}`),
      user('uid a string', `"uid":"abc",${SERVICE}`),
      user('uid a numeric string', `"uid":"${B}",${SERVICE}`),
      user('uid an empty string', `"uid":"",${SERVICE}`),
      user('uid 65535', `"uid":65535,${SERVICE}`),
      user('uid 4294967295', `"uid":4294967295,${SERVICE}`),
      user('uid 4294967296', `"uid":4294967296,${SERVICE}`),
      user('uid null', `"uid":null,${SERVICE}`),
      user('uid a string, service wrong', `"uid":"abc","service":5`),
      group('gid negative', `"gid":-1,${SERVICE}`),
      group('gid 65535', `"gid":65535,${SERVICE}`),
      user('userName of 300 characters', `"userName":"${'a'.repeat(300)}",${SERVICE}`),
      user('userName of 300 characters, vu- form', `"userName":"vu-${ns}-${'1'.repeat(290)}",${SERVICE}`),
      user('userName unicode', `"userName":"ü",${SERVICE}`),
      user('userName unicode in vu- form', `"userName":"vü-${ns}-0",${SERVICE}`),
      user('userName vu--0', `"userName":"vu--0",${SERVICE}`),
      user('userName vu-x-00', `"userName":"vu-x-00",${SERVICE}`),
      user('userName vu-x-+1', `"userName":"vu-x-+1",${SERVICE}`),
      user('userName vu-x-65536', `"userName":"vu-x-65536",${SERVICE}`),
      user('userName vu-MACHINE-00', `"userName":"vu-${ns}-00",${SERVICE}`),
      user('userName vu-MACHINE-+1', `"userName":"vu-${ns}-+1",${SERVICE}`),
      user('userName vu-MACHINE-65536', `"userName":"vu-${ns}-65536",${SERVICE}`),
      user('userName vu-MACHINE--1', `"userName":"vu-${ns}--1",${SERVICE}`),
      user('userName vu-MACHINE-0x10', `"userName":"vu-${ns}-0x10",${SERVICE}`),
      user('userName naming a machine without a user namespace', `"userName":"vu-${N.plain}-1000",${SERVICE}`),
      user('userName with a trailing space', `"userName":"vu-${ns}-1 ",${SERVICE}`),
      user('userName all digits', `"userName":"123",${SERVICE}`),
      user('userName empty', `"userName":"",${SERVICE}`),
      user('userName null', `"userName":null,${SERVICE}`),
      user('userName with a colon', `"userName":"vu:${ns}-0",${SERVICE}`),
      group('groupName vg--0', `"groupName":"vg--0",${SERVICE}`),
      group('groupName of 300 characters', `"groupName":"${'g'.repeat(300)}",${SERVICE}`),
      group('groupName a user name', `"groupName":"vu-${ns}-0",${SERVICE}`),
      user('userName a group name', `"userName":"vg-${ns}-0",${SERVICE}`),
      user('uid and userName not matching', `"uid":${B + 1},"userName":"vu-${ns}-2",${SERVICE}`),
      user('uid and userName of another machine', `"uid":${B + 1},"userName":"vu-${N.plain}-1",${SERVICE}`),
      user('uid and an invalid userName', `"uid":${B + 1},"userName":"a:b",${SERVICE}`),
      // The filter fields: berth answers them, machined refuses them (see the header).
      filtered('filter field fuzzyNames', user('', `"uid":${B},${SERVICE},"fuzzyNames":["VU-"]`), one(`vu-${ns}-0`), 'fuzzyNames'),
      filtered('fuzzyNames excluding the record', user('', `"uid":${B},${SERVICE},"fuzzyNames":["nothing-like-it"]`), [NON_MATCHING], 'fuzzyNames'),
      filtered('uuid excluding the record', user('', `"uid":${B},"uuid":"0123456789abcdef0123456789abcdef",${SERVICE}`), [NON_MATCHING], 'uuid'),
      filtered('filter field uidMin', user('', `"uidMin":${B + 1},"uidMax":${B + 3},${SERVICE}`, true), names(`vu-${ns}-1`, `vu-${ns}-2`, `vu-${ns}-3`), 'uidMin'),
      filtered('filtered enumeration of groups', group('', `"gidMin":${B + 65533},"dispositionMask":["container"],"gidMax":${B + 65536},${SERVICE}`, true), names(`vg-${ns}-65533`, `vg-${ns}-65534`), 'gidMin'),
      // ns (65535 records) and long (1000) are more than berth's limit of 65536 per enumeration.
      filtered('filter field dispositionMask, more than the limit', group('', `"dispositionMask":["container"],${SERVICE}`, true), [err('io.systemd.UserDatabase.EnumerationNotSupported')], 'dispositionMask'),
      // Both refuse reversed bounds naming the first one, machined for any bound, berth for the reversal.
      group('reversed gid bounds', `"gidMin":${B + 10},"gidMax":${B + 5},${SERVICE}`),
      user('unknown key', `"foo":1,${SERVICE}`),
      user('bad uid, then unknown key', `"uid":-1,"foo":1,${SERVICE}`),
      // Still serving.
      user('a good lookup after all that', `"uid":${B + 3},${SERVICE}`),
    ]);
    expect(c.report()).toBe('');
    // Every filter call was answered by berth and refused by machined (not equal by chance).
    expect(c.deliberateSeen.filter((d) => d.includes('filter fields'))).toHaveLength(6);
    expect(JSON.stringify(c.outcomes.at(-1)?.berth)).toContain(`"userName":"vu-${ns}-3"`);
  });
});
