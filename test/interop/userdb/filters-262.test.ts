// userdbctl 262 (systemd sid build) listing a berthd's container users and groups through the filter fields it sends (--fuzzy, --disposition, --uid-min/--uid-max, --uuid), a named record the filters exclude, and an enumeration over berthd's limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cannotRun, startUserdbFixture, type UserdbFixture } from './fixture.js';
import { referenceTool262, type ReferenceTool } from '../../helpers/reference.js';

const skip = cannotRun();
if (skip) console.warn(`userdbctl 262 filter tests skipped: ${skip}`);

let fx: UserdbFixture;
let tool: ReferenceTool | string = 'not started';

beforeAll(async () => {
  if (skip) return;
  tool = await referenceTool262('userdbctl');
  if (typeof tool === 'string') console.warn(`userdbctl 262 filter tests skipped: ${tool}`);
  else fx = await startUserdbFixture();
}, 600_000);

afterAll(async () => {
  await fx?.stop();
});

/** userdbctl 262 asking only berthd's socket: no NSS, no synthesized root/nobody, no multiplexer. */
function userdbctl(...args: string[]) {
  return (tool as ReferenceTool)('-s', fx.service, '-N', '--multiplexer=no', '--no-pager', ...args);
}

/** The records of `--json=short` output, one JSON object a line. */
function records(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const insideIds = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Plain edit distance (the test's own oracle, independent of berth's). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

/** Inside IDs whose user (`vu`/UID) or group (`vg`/GID) record the needle matches: a substring of the name or real name, ignoring case, or (five characters or more) under three edits from one. */
function fuzzyExpected(kind: 'vu' | 'vg', machine: string, needle: string): number[] {
  const n = needle.toLowerCase();
  const label = kind === 'vu' ? 'uid' : 'gid';
  return insideIds(0, 65534).filter((i) =>
    [`${kind}-${machine}-${i}`, `${label} ${i} of container ${machine}`].some((name) => name.toLowerCase().includes(n) || (n.length >= 5 && Math.abs(name.length - n.length) < 3 && distance(name.toLowerCase(), n) < 3)),
  );
}

describe.skipIf(!!skip)('userdbctl 262 with filters against berthd', () => {
  it('user --fuzzy lists the users whose names contain the text', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    // "ud-tNNN-100" is a substring of vu-ud-tNNN-100, -1000..-1009 and -10000..-10099 only (the
    // real names say "UID 100 of Container ud-tNNN", and no other name is within two edits).
    const r = await userdbctl('user', '--fuzzy', `${fx.machine}-100`, '--json=short');
    expect(r.code, r.stderr).toBe(0);
    const got = records(r.stdout);
    const want = insideIds(0, 65534).filter((i) => String(i).startsWith('100'));
    expect(fuzzyExpected('vu', fx.machine, `${fx.machine}-100`)).toEqual(want);
    expect(got.map((x) => x.userName)).toEqual(want.map((i) => `vu-${fx.machine}-${i}`));
    expect(got.find((x) => x.userName === `vu-${fx.machine}-1000`)).toEqual({
      userName: `vu-${fx.machine}-1000`,
      uid: fx.base + 1000,
      gid: 65534,
      realName: `UID 1000 of Container ${fx.machine}`,
      homeDirectory: '/',
      shell: '/usr/sbin/nologin',
      locked: true,
      service: fx.service,
      disposition: 'container',
    });
  }, 60_000);

  it('user --fuzzy matches real names too ("Container NAME"), case-insensitively', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const needle = `UID 6553 OF CONTAINER ${fx.machine.toUpperCase()}`;
    const r = await userdbctl('user', '--fuzzy', needle, '--json=short');
    expect(r.code, r.stderr).toBe(0);
    // A substring of the real names of 6553 and 65530..65534; within two edits of many more ("UID 53 of ...").
    const want = fuzzyExpected('vu', fx.machine, needle);
    expect(want).toEqual(expect.arrayContaining([6553, 65530, 65534, 53, 655]));
    expect(want).not.toContain(1234);
    expect(records(r.stdout).map((x) => x.userName)).toEqual(want.map((i) => `vu-${fx.machine}-${i}`));
  }, 60_000);

  it('user --disposition=container --uid-min --uid-max lists that window', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const window = [`--uid-min=${fx.base + 10}`, `--uid-max=${fx.base + 12}`];
    const r = await userdbctl('user', '--disposition=container', ...window, '--json=short');
    expect(r.code, r.stderr).toBe(0);
    expect(records(r.stdout).map((x) => [x.userName, x.uid])).toEqual(insideIds(10, 12).map((i) => [`vu-${fx.machine}-${i}`, fx.base + i]));
    // The table form counts them.
    const table = await userdbctl('user', '--disposition=container', ...window);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('3 users listed.');
    expect(table.stdout).toContain(`vu-${fx.machine}-11`);
  }, 60_000);

  it('group --disposition=container --uid-min --uid-max and group --fuzzy list the groups', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const r = await userdbctl('group', '--disposition=container', `--uid-min=${fx.base + 65530}`, `--uid-max=${fx.base + 70000}`, '--json=short');
    expect(r.code, r.stderr).toBe(0);
    // Inside GID 65535 is never a record; the range ends at 65535.
    expect(records(r.stdout).map((x) => [x.groupName, x.gid, x.description])).toEqual(
      insideIds(65530, 65534).map((i) => [`vg-${fx.machine}-${i}`, fx.base + i, `GID ${i} of Container ${fx.machine}`]),
    );
    const f = await userdbctl('group', '--fuzzy', `vg-${fx.machine}-4242`, '--json=short');
    expect(f.code, f.stderr).toBe(0);
    // The substring hits (4242, 42420..42429), plus the names within two edits of the needle.
    const want = fuzzyExpected('vg', fx.machine, `vg-${fx.machine}-4242`);
    expect(want).toEqual(expect.arrayContaining([4242, 42420, 424, 4343]));
    expect(want).not.toContain(4);
    expect(records(f.stdout).map((x) => x.groupName)).toEqual(want.map((i) => `vg-${fx.machine}-${i}`));
  }, 60_000);

  it('a named user the filters exclude: "exists but does not match"', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const r = await userdbctl('user', `vu-${fx.machine}-5`, `--uid-min=${fx.base + 10}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('exists but does not match specified filter');
    const ok = await userdbctl('user', `vu-${fx.machine}-5`, `--uid-max=${fx.base + 10}`, '--json=short');
    expect(ok.code, ok.stderr).toBe(0);
    expect(records(ok.stdout).map((x) => x.uid)).toEqual([fx.base + 5]);
    const g = await userdbctl('group', `vg-${fx.machine}-5`, `--uid-max=${fx.base + 4}`);
    expect(g.code).not.toBe(0);
    expect(g.stderr).toContain('exists but does not match specified filter');
  }, 60_000);

  it('user --uuid lists none of berthd\'s records (they carry no UUID)', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const r = await userdbctl('user', '--uuid=0123456789abcdef0123456789abcdef', '--json=short');
    expect(r.code, r.stderr).toBe(0);
    expect(records(r.stdout)).toEqual([]);
  }, 60_000);

  // Last: it registers a second full-range machine, which the other cases do not expect.
  it('an enumeration over the limit fails with the error for an enumeration berthd does not offer', async (ctx) => {
    if (typeof tool === 'string') ctx.skip(tool);
    const late = await fx.registerUnmapped();
    late.writeMaps();
    // Two full ranges: 131070 container users, more than berthd lists at once (65536).
    const r = await userdbctl('user', '--disposition=container', '--json=short');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Operation not supported');
    // Narrowed to one machine's range it lists again.
    const one = await userdbctl('user', '--disposition=container', `--uid-min=${late.base + 65530}`, `--uid-max=${late.base + 70000}`, '--json=short');
    expect(one.code, one.stderr).toBe(0);
    expect(records(one.stdout).map((x) => x.userName)).toEqual([65530, 65531, 65532, 65533, 65534].map((i) => `vu-${late.name}-${i}`));
  }, 60_000);
});
