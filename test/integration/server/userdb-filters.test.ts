// berthd's io.systemd.UserDatabase with 262's filter fields over its real socket: filtered enumerations streamed with `more` across registered machines, the limit, NonMatchingRecordFound, reversed bounds, and plain lookups still served while a big enumeration runs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { VarlinkError } from '../../../src/varlink/errors.js';
import { waitFor } from '../../helpers/wait.js';
import { exited, tearDown } from '../../helpers/processes.js';

const repo = resolve(import.meta.dirname, '../../..');
const BERTHD = join(repo, 'dist/src/server/main.js');
const BERTHCTL = join(repo, 'dist/src/client/berthctl.js');
const why = process.getuid?.() !== 0 ? 'needs root (user namespaces, uid_map)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping userdb filter integration tests: ${why}`);

const tag = `f${process.pid % 100000}`;
const SERVICE = `io.berth.test.${tag}`;
const BASE = 0x5c000000 + (process.pid % 64) * 0x40000;
const children: ChildProcess[] = [];
let runtime = '';
let client: VarlinkClient;

/** A leader in its own user namespace mapping `count` IDs at `base`. */
async function usernsLeader(base: number, count: number): Promise<number> {
  const c = spawn('unshare', ['--user', '--fork', '--kill-child', '--', 'sleep', '3600'], { stdio: 'ignore' });
  children.push(c);
  const pid = await waitFor(() => {
    const r = spawnSync('pgrep', ['-P', String(c.pid)], { encoding: 'utf8' });
    return Number(r.stdout.trim().split('\n')[0]) || 0;
  }, 'the namespaced child');
  writeFileSync(`/proc/${pid}/setgroups`, 'deny');
  writeFileSync(`/proc/${pid}/uid_map`, `0 ${base} ${count}\n`);
  writeFileSync(`/proc/${pid}/gid_map`, `0 ${base} ${count}\n`);
  return pid;
}

function register(name: string, leader: number): void {
  const r = spawnSync(process.execPath, [BERTHCTL, '--runtime-dir', runtime, 'register', name, '--leader', String(leader)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`register ${name}: ${r.stderr}`);
}

/** The record names of a filtered GetUserRecord/GetGroupRecord with `more`, or the error's name. */
async function list(method: 'GetUserRecord' | 'GetGroupRecord', params: object, c = client): Promise<string[] | string> {
  const out: string[] = [];
  try {
    for await (const r of c.moreRaw(`io.systemd.UserDatabase.${method}`, { ...params, service: SERVICE })) {
      const rec = r.record as { userName?: string; groupName?: string };
      out.push(rec.userName ?? rec.groupName!);
    }
  } catch (e) {
    if (e instanceof VarlinkError) return e.parameters.parameter ? `${e.error} ${String(e.parameters.parameter)}` : e.error;
    throw e;
  }
  return out;
}

async function one(method: 'GetUserRecord' | 'GetGroupRecord', params: object): Promise<string> {
  try {
    const r = await client.callRaw(`io.systemd.UserDatabase.${method}`, { ...params, service: SERVICE });
    const rec = r.record as { userName?: string; groupName?: string };
    return rec.userName ?? rec.groupName!;
  } catch (e) {
    if (e instanceof VarlinkError) return e.error;
    throw e;
  }
}

const range = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}-${from + i}`);

beforeAll(async () => {
  if (why) return;
  runtime = join(mkdtempSync(join('/var/tmp', 'berth-userdb-filters-')), 'run');
  const d = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', SERVICE, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(d);
  const socket = join(runtime, 'systemd/userdb', SERVICE);
  await waitFor(() => existsSync(socket) && existsSync(join(runtime, 'systemd/machine/io.systemd.Machine')), 'berthd to listen', { timeoutMs: 30_000 });
  // web1 and web2 have full 16-bit ranges, db a small one.
  register(`${tag}web1`, await usernsLeader(BASE, 65536));
  register(`${tag}web2`, await usernsLeader(BASE + 0x10000, 65536));
  register(`${tag}db`, await usernsLeader(BASE + 0x20000, 20));
  client = await VarlinkClient.connect(`unix:${socket}`);
}, 60_000);

afterAll(async () => {
  client?.close();
  const daemon = children.find((c) => c.spawnargs.includes(BERTHD));
  const leaders = children.filter((c) => c !== daemon);
  for (const c of leaders) c.kill('SIGKILL');
  await Promise.all(leaders.map((c) => exited(c, 5000).catch(() => undefined)));
  const scopes: string[] = [];
  for (const h of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd']) {
    const slice = join(h, 'machine.slice');
    if (existsSync(slice)) for (const e of readdirSync(slice)) if (e.startsWith(`machine-${tag}`)) scopes.push(join(slice, e));
  }
  await tearDown({ ...(daemon ? { daemon } : {}), cgroups: scopes });
  if (runtime) rmSync(resolve(runtime, '..'), { recursive: true, force: true });
}, 60_000);

describe.skipIf(!!why)('io.systemd.UserDatabase filters against berthd', () => {
  it('lists an ID window across machines, in registration order', async () => {
    expect(await list('GetUserRecord', { uidMin: BASE + 65533, uidMax: BASE + 0x10001, dispositionMask: ['container'] })).toEqual([
      `vu-${tag}web1-65533`,
      `vu-${tag}web1-65534`,
      `vu-${tag}web2-0`,
      `vu-${tag}web2-1`,
    ]);
    expect(await list('GetGroupRecord', { gidMin: BASE + 0x20000 + 18 })).toEqual([`vg-${tag}db-18`, `vg-${tag}db-19`]);
  });

  it('lists fuzzy matches (names and real names, any case)', async () => {
    expect(await list('GetUserRecord', { fuzzyNames: [`${tag}DB`] })).toEqual(range(`vu-${tag}db`, 0, 19));
    // "GID 17 of Container …" is in every machine's description: the GID window keeps db's.
    expect(await list('GetGroupRecord', { fuzzyNames: ['gid 17 OF'], gidMin: BASE + 0x20000 })).toEqual([`vg-${tag}db-17`]);
    // Long needles also match names within two edits: GID 1..19 of db are that close to "GID 7 of …".
    expect(await list('GetGroupRecord', { fuzzyNames: [`GID 7 of Container ${tag}db`] })).toEqual(range(`vg-${tag}db`, 0, 19));
    // One machine's whole range is within the limit (inside 65535 is never a record).
    const web1 = await list('GetUserRecord', { fuzzyNames: [`${tag}web1`] });
    expect(web1).toHaveLength(65535);
    expect((web1 as string[]).at(-1)).toBe(`vu-${tag}web1-65534`);
  }, 60_000);

  it('refuses an enumeration over the limit, and one without any filter, with EnumerationNotSupported', async () => {
    // web1 + web2 + db: 131090 records, over 65536.
    expect(await list('GetUserRecord', { fuzzyNames: [tag] })).toBe('io.systemd.UserDatabase.EnumerationNotSupported');
    expect(await list('GetGroupRecord', { dispositionMask: ['container'] })).toBe('io.systemd.UserDatabase.EnumerationNotSupported');
    expect(await list('GetUserRecord', {})).toBe('io.systemd.UserDatabase.EnumerationNotSupported');
  }, 60_000);

  it('answers NoRecordFound for an empty result and NonMatchingRecordFound for a named record outside the filters', async () => {
    expect(await list('GetUserRecord', { fuzzyNames: ['no-such-thing'] })).toBe('io.systemd.UserDatabase.NoRecordFound');
    expect(await list('GetUserRecord', { dispositionMask: ['regular'] })).toBe('io.systemd.UserDatabase.NoRecordFound');
    expect(await one('GetUserRecord', { userName: `vu-${tag}db-5`, uidMin: BASE + 0x20000 + 6 })).toBe('io.systemd.UserDatabase.NonMatchingRecordFound');
    expect(await one('GetGroupRecord', { gid: BASE + 0x20000 + 5, uuid: '0123456789abcdef0123456789abcdef' })).toBe('io.systemd.UserDatabase.NonMatchingRecordFound');
    expect(await one('GetUserRecord', { uid: BASE + 0x20000 + 5, fuzzyNames: ['db'] })).toBe(`vu-${tag}db-5`);
  });

  it('refuses bad filters with InvalidParameter', async () => {
    expect(await list('GetUserRecord', { uidMin: BASE + 10, uidMax: BASE + 5 })).toBe('org.varlink.service.InvalidParameter uidMin');
    expect(await list('GetGroupRecord', { gidMax: BASE + 5, gidMin: BASE + 10 })).toBe('org.varlink.service.InvalidParameter gidMax');
    expect(await list('GetUserRecord', { dispositionMask: ['containers'] })).toBe('org.varlink.service.InvalidParameter dispositionMask');
    expect(await list('GetUserRecord', { uuid: 'not-a-uuid' })).toBe('org.varlink.service.InvalidParameter uuid');
    expect(await list('GetGroupRecord', { uidMin: 1 })).toBe('org.varlink.service.InvalidParameter uidMin');
  });

  it('serves plain lookups on other connections while a full-range enumeration streams', async () => {
    const other = await VarlinkClient.connect(`unix:${join(runtime, 'systemd/userdb', SERVICE)}`);
    try {
      const big = list('GetGroupRecord', { fuzzyNames: [`${tag}web2`] }, other);
      const lookups = await Promise.all(Array.from({ length: 20 }, (_, i) => one('GetUserRecord', { uid: BASE + 0x20000 + (i % 20) })));
      expect(lookups).toEqual(range(`vu-${tag}db`, 0, 19));
      expect(await big).toHaveLength(65535);
    } finally {
      other.close();
    }
  }, 60_000);
});
