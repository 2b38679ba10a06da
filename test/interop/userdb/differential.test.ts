// berthd next to the real systemd-machined 257: the same leaders registered in both, the same
// io.systemd.UserDatabase calls sent to both, the replies compared byte for byte. berthd runs under
// a temporary runtime directory with the userdb service named io.systemd.Machine, as machined's.
// The filter fields of systemd 258+ are the one deliberate difference: 257 refuses them with
// InvalidParameter (the client then filters itself), berth answers them (issue 12).
// Needs root; the reference machined is started through scripts/reference-tools.sh when nothing answers
// on its socket (and stopped again afterwards). Machines are named ud-d<pid>… and removed afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawConnection } from '../../helpers/raw.js';
import { ensureReferenceMachined, type ReferenceMachined } from '../../helpers/reference.js';
import { tempDir } from '../../helpers/tmp.js';
import { tearDown } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { REPO, cannotRun, placeInScope } from './fixture.js';

const REAL_MACHINE = '/run/systemd/machine/io.systemd.Machine';
const REAL_USERDB = '/run/systemd/userdb/io.systemd.Machine';

const skip = cannotRun();
if (skip) console.warn(`userdb differential tests skipped: ${skip}`);
let machined: ReferenceMachined | undefined;
/** Why the reference machined could not be brought up, when it could not. */
let noMachined: string | undefined;

const tag = `d${process.pid % 100000}`;
const BASE = 0x50000000 + (process.pid % 2048) * 0x40000;

interface Shape {
  name: string;
  class: 'container' | 'vm';
  /** Maps to write, or undefined for a leader in the host's user namespace. */
  uidMap?: string;
  gidMap?: string;
}

// Shapes whose answers were probed on 257 by hand first (test/unit/userdb/vectors.test.ts).
const SHAPES: Shape[] = [
  { name: `ud-${tag}a`, class: 'container', uidMap: `0 ${BASE} 65536`, gidMap: `0 ${BASE} 65536` },
  {
    name: `ud-${tag}m`,
    class: 'container',
    uidMap: `0 ${BASE + 0x10000} 1000\n1000 0 1\n1001 ${BASE + 0x20000} 10\n2000 5000 10\n4294967294 ${BASE + 0x20100} 1`,
    gidMap: `0 ${BASE + 0x30000} 500\n500 ${BASE + 0x30200} 5`,
  },
  { name: `ud-${tag}p`, class: 'container' },
  { name: `ud-${tag}v`, class: 'vm', uidMap: `0 ${BASE + 0x40000} 65536`, gidMap: `0 ${BASE + 0x40000} 65536` },
  { name: `ud-${tag}.dot`, class: 'container', uidMap: `0 ${BASE + 0x50000} 65536`, gidMap: `0 ${BASE + 0x50000} 65536` },
  // 26 characters: vu-NAME-9 is 31 characters long, vu-NAME-10 one too many.
  { name: `ud-${tag}${'l'.repeat(23 - tag.length)}`, class: 'container', uidMap: `0 ${BASE + 0x60000} 65536`, gidMap: `0 ${BASE + 0x60000} 65536` },
];

const children: ChildProcess[] = [];
const strays: number[] = [];
const scopes: string[] = [];
const registeredReal: string[] = [];
let berthd: ChildProcess | undefined;
let runtime: { path: string; remove(): void } | undefined;
let real: RawConnection;
let ours: RawConnection;

async function register(socket: string, name: string, cls: string, leader: number): Promise<void> {
  const c = await RawConnection.connect(socket);
  const r = await c.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name, class: cls, leader } });
  c.socket.destroy();
  if (r.error) throw new Error(`Register ${name} at ${socket}: ${JSON.stringify(r)}`);
}

async function startLeader(shape: Shape): Promise<number> {
  if (!shape.uidMap) {
    const p = spawn('sleep', ['infinity'], { stdio: 'ignore' });
    children.push(p);
    return p.pid!;
  }
  const ns = spawn('unshare', ['--user', '--fork', '--pid', '--mount-proc', 'sleep', 'infinity'], { stdio: 'ignore' });
  children.push(ns);
  const leader = await waitFor(() => {
    const kids = readFileSync(`/proc/${ns.pid}/task/${ns.pid}/children`, 'utf8').trim();
    return kids ? Number(kids.split(' ')[0]) : 0;
  }, 'unshare to fork');
  strays.push(leader);
  writeFileSync(`/proc/${ns.pid}/setgroups`, 'deny');
  // One write per map: the kernel takes a map only once.
  writeFileSync(`/proc/${ns.pid}/uid_map`, `${shape.uidMap}\n`);
  writeFileSync(`/proc/${ns.pid}/gid_map`, `${shape.gidMap}\n`);
  return leader;
}

beforeAll(async () => {
  if (skip) return;
  const m = await ensureReferenceMachined();
  if (typeof m === 'string') {
    noMachined = m;
    console.warn(`userdb differential tests skipped: systemd-machined 257 cannot run here: ${m}`);
    return;
  }
  machined = m;
  runtime = tempDir('userdb-diff');
  berthd = spawn(process.execPath, [join(REPO, 'dist/src/server/main.js'), '--runtime-dir', runtime.path, '--log-level', 'warn'], { stdio: 'ignore' });
  const ourUserdb = join(runtime.path, 'systemd/userdb/io.systemd.Machine');
  const ourMachine = join(runtime.path, 'systemd/machine/io.systemd.Machine');
  await waitFor(() => existsSync(ourUserdb) && existsSync(ourMachine), 'berthd to bind its sockets');
  for (const shape of SHAPES) {
    const leader = await startLeader(shape);
    scopes.push(...placeInScope(shape.name, leader));
    await register(REAL_MACHINE, shape.name, shape.class, leader);
    registeredReal.push(shape.name);
    await register(ourMachine, shape.name, shape.class, leader);
  }
  real = await RawConnection.connect(REAL_USERDB);
  ours = await RawConnection.connect(ourUserdb);
}, 900_000);

afterAll(async () => {
  real?.socket.destroy();
  ours?.socket.destroy();
  for (const name of registeredReal) {
    const c = await RawConnection.connect(REAL_MACHINE).catch(() => undefined);
    await c?.roundTrip({ method: 'io.systemd.Machine.Unregister', parameters: { name } }).catch(() => undefined);
    c?.socket.destroy();
  }
  await tearDown({ strays, children, ...(berthd ? { daemon: berthd } : {}), cgroups: scopes });
  runtime?.remove();
  await machined?.release();
}, 120_000);

/** [method, parameters as JSON text]; the same text goes to both daemons. */
function sequences(): [string, string][] {
  const S = '"service":"io.systemd.Machine"';
  const [a, m, p, v, dot, long] = SHAPES.map((s) => s.name) as [string, string, string, string, string, string];
  const u = (q: string) => ['GetUserRecord', `{${q}}`] as [string, string];
  const g = (q: string) => ['GetGroupRecord', `{${q}}`] as [string, string];
  return [
    // records by host ID, around the edges of each range
    ...[0, 1, 999, 65534, 65535, 65536].map((i) => u(`"uid":${BASE + i},${S}`)),
    ...[0, 65534, 65535, 65536].map((i) => g(`"gid":${BASE + i},${S}`)),
    ...[0x10000, 0x10000 + 999, 0x10000 + 1000, 0x20000, 0x20009, 0x2000a, 0x20100].map((i) => u(`"uid":${BASE + i},${S}`)),
    ...[0x30000, 0x301f4, 0x30200, 0x30204, 0x30205].map((i) => g(`"gid":${BASE + i},${S}`)),
    u(`"uid":5000,${S}`),
    u(`"uid":${BASE + 0x40000},${S}`),
    u(`"uid":${BASE + 0x50000},${S}`),
    g(`"gid":${BASE + 0x50000},${S}`),
    ...[0x60000, 0x60009, 0x6000a].map((i) => u(`"uid":${BASE + i},${S}`)),
    // records by name
    ...['0', '1', '65534', '65535', '65536', '00', '01', '+1', '-1', '', 'x', '4294967295'].map((i) => u(`"userName":"vu-${a}-${i}",${S}`)),
    ...['0', '999', '1000', '1001', '1010', '1011', '2000', '2009', '2010', '1500', '4294967294'].map((i) => u(`"userName":"vu-${m}-${i}",${S}`)),
    ...['0', '504', '505'].map((i) => g(`"groupName":"vg-${m}-${i}",${S}`)),
    ...['0', '1000', '70000', '4294967294', '65535'].map((i) => u(`"userName":"vu-${p}-${i}",${S}`)),
    g(`"groupName":"vg-${p}-0",${S}`),
    u(`"userName":"vu-${v}-0",${S}`),
    u(`"userName":"vu-${dot}-0",${S}`),
    u(`"userName":"vu-${long}-9",${S}`),
    u(`"userName":"vu-${long}-10",${S}`),
    g(`"groupName":"vu-${a}-0",${S}`),
    u(`"userName":"vg-${a}-0",${S}`),
    u(`"userName":"VU-${a}-0",${S}`),
    u(`"userName":"vu--0",${S}`),
    u(`"userName":"${'a'.repeat(300)}",${S}`),
    u(`"userName":"vu-${a}-${'9'.repeat(300)}",${S}`),
    u(`"userName":"ü",${S}`),
    u(`"userName":"vu-${a}-0 ",${S}`),
    u(`"userName":"123",${S}`),
    // both keys
    u(`"uid":${BASE},"userName":"vu-${a}-0",${S}`),
    u(`"uid":${BASE},"userName":"vu-${a}-1",${S}`),
    u(`"uid":${BASE + 65535},"userName":"x",${S}`),
    u(`"userName":"vu-${a}-0","uid":${BASE + 1},${S}`),
    g(`"gid":${BASE},"groupName":"vg-${a}-1",${S}`),
    // bad values, services, enumeration
    u(`"uid":-1,${S}`),
    u(`"uid":9007199254740992,${S}`),
    u(`"uid":1.5,${S}`),
    u(`"uid":${BASE}.0,${S}`),
    u(`"uid":"${BASE}",${S}`),
    u(`"uid":"abc",${S}`),
    u(`"uid":65535,${S}`),
    u(`"uid":4294967295,${S}`),
    u(`"uid":null,${S}`),
    u(`"uid":true,${S}`),
    u(`"uid":"abc","service":5`),
    u(`"uid":-1,"foo":1,${S}`),
    u(`"userName":"","uid":-1,${S}`),
    // (Filter fields, which 257 refuses and berth answers, are compared in the next test.)
    u(`"uid":${BASE}`),
    u(`"uid":${BASE},"service":"io.systemd.Multiplexer"`),
    u(`${S}`),
    g(`${S}`),
    ['GetMemberships', `{${S}}`],
    ['GetMemberships', `{"userName":"vu-${a}-0",${S}}`],
    ['GetMemberships', `{"service":"nope"}`],
    ['GetMemberships', `{"userName":"",${S}}`],
  ];
}

describe.skipIf(!!skip)('berthd and systemd-machined 257 answer io.systemd.UserDatabase alike', () => {
  it('gives byte-identical replies to the same calls', async (ctx) => {
    if (noMachined) ctx.skip(noMachined);
    const diffs: string[] = [];
    let records = 0;
    for (const [method, params] of sequences()) {
      const text = `{"method":"io.systemd.UserDatabase.${method}","parameters":${params}}\0`;
      real.send(text);
      ours.send(text);
      const [want, got] = await Promise.all([real.nextText(), ours.nextText()]);
      if (want.startsWith('{"parameters":{"record"')) records++;
      if (want !== got) diffs.push(`${method} ${params.slice(0, 120)}\n   257: ${want}\n berth: ${got}`);
    }
    expect(diffs.join('\n')).toBe('');
    // The comparison covers real records, not only errors.
    expect(records).toBeGreaterThanOrEqual(30);
  });
});

/** All replies to one call (with `more`: until one without `continues`). */
async function replies(c: RawConnection, text: string): Promise<Record<string, unknown>[]> {
  c.send(text);
  const out: Record<string, unknown>[] = [];
  for (;;) {
    const r = JSON.parse(await c.nextText()) as Record<string, unknown>;
    out.push(r);
    if (r.continues !== true) return out;
  }
}

describe.skipIf(!!skip)('the filter fields: 257 refuses them, berth answers them', () => {
  it('lists what the filters select where 257 names the first filter field as invalid', async (ctx) => {
    if (noMachined) ctx.skip(noMachined);
    const S = '"service":"io.systemd.Machine"';
    const [a, m, , , , long] = SHAPES.map((s) => s.name) as string[];
    const cases: [method: string, params: string, refused: string, berth: string[]][] = [
      // One map line at a time, in map order: 0..999 of m, then 1001..1010, the line into host IDs
      // below 65536 is skipped, then inside 4294967294.
      ['GetUserRecord', `"uidMin":${BASE + 0x10000 + 998},"uidMax":${BASE + 0x20100},${S}`, 'uidMin', [998, 999, ...Array.from({ length: 10 }, (_, i) => 1001 + i), 4294967294].map((i) => `vu-${m}-${i}`)],
      ['GetGroupRecord', `"gidMax":${BASE + 1},"dispositionMask":["container"],${S}`, 'gidMax', [`vg-${a}-0`, `vg-${a}-1`]],
      // vu-LONG-9 is the last user name short enough; fuzzy text from the middle of the name.
      ['GetUserRecord', `"fuzzyNames":["${long!.slice(3, 12).toUpperCase()}"],${S}`, 'fuzzyNames', Array.from({ length: 10 }, (_, i) => `vu-${long}-${i}`)],
      ['GetUserRecord', `"uid":${BASE + 5},"uidMax":${BASE + 4},${S}`, 'uidMax', ['NonMatchingRecordFound']],
      ['GetUserRecord', `"userName":"vu-${a}-5","uuid":"0123456789abcdef0123456789abcdef",${S}`, 'uuid', ['NonMatchingRecordFound']],
      ['GetUserRecord', `"userName":"vu-${a}-5","uidMin":${BASE + 5},${S}`, 'uidMin', [`vu-${a}-5`]],
    ];
    const diffs: string[] = [];
    for (const [method, params, refused, want] of cases) {
      const text = `{"method":"io.systemd.UserDatabase.${method}","parameters":{${params}},"more":true}\0`;
      const [theirs, mine] = await Promise.all([replies(real, text), replies(ours, text)]);
      const expectedReal = [{ error: 'org.varlink.service.InvalidParameter', parameters: { parameter: refused } }];
      if (JSON.stringify(theirs) !== JSON.stringify(expectedReal)) diffs.push(`${params}: 257 answered ${JSON.stringify(theirs)}`);
      const got = mine.map((r) => {
        const rec = (r.parameters as { record?: { userName?: string; groupName?: string } } | undefined)?.record;
        return rec ? (rec.userName ?? rec.groupName) : String(r.error).replace('io.systemd.UserDatabase.', '');
      });
      if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push(`${params}: berth listed ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
    expect(diffs.join('\n')).toBe('');
  });
});
