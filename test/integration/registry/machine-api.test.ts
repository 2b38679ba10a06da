// io.systemd.Machine over a real socket: berth's registry behind berth's Varlink server, in a temp runtime dir.
// The real systemd-machined 257 (/run/systemd/machine/io.systemd.Machine, started through the reference
// tools when nothing answers there) gets the same calls, and the replies are compared.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { ensureReferenceMachined, type ReferenceMachined } from '../../helpers/reference.js';
import { VarlinkServer } from '../../../src/varlink/server.js';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachine } from '../../../src/generated/io.systemd.Machine.js';
import { machineApi } from '../../../src/server/machine-api.js';
import { Registry } from '../../../src/server/registry/registry.js';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../../src/domain/unit-names.js';
import { Policy } from '../../../src/server/policy.js';
import { UserDb } from '../../../src/server/userdb/userdb.js';
import type { BerthContext } from '../../../src/server/context.js';
import { followRegistry } from '../../../src/server/userdb-sync.js';

const layout = detectCgroupLayout();
const skipReason = process.getuid?.() !== 0 ? 'needs root (cgroups)' : !layout.primary ? 'no cgroup hierarchy' : undefined;
if (skipReason) console.warn(`machine-api integration tests skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

const REAL = '/run/systemd/machine/io.systemd.Machine';
const tag = `rg-api${process.pid}`;
let runtime: string;
let registry: Registry;
let server: VarlinkServer;
let client: VarlinkClient;
const children: ChildProcess[] = [];

function sleeper() {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(c);
  return c as ChildProcess & { pid: number };
}

async function reply(c: VarlinkClient, method: string, params: object): Promise<unknown> {
  try {
    return { ok: await c.callRaw(`io.systemd.Machine.${method}`, params) };
  } catch (e) {
    const err = e as { error?: string; parameters?: Record<string, unknown> };
    return { error: err.error, parameters: err.parameters ?? {} };
  }
}

let machined: ReferenceMachined | string = 'not started';

/** A connection to the real machined 257; skips the test, saying why, when it cannot run here. */
async function realMachined(ctx: TestContext): Promise<VarlinkClient> {
  if (typeof machined === 'string') {
    console.warn(`skipped: systemd-machined 257 cannot run here: ${machined}`);
    ctx.skip(machined);
  }
  return VarlinkClient.connect(`unix:${REAL}`);
}

suite('io.systemd.Machine over Varlink', () => {
  beforeAll(async () => {
    runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-api-'));
    registry = new Registry({ runtimeDir: runtime, cgroups: layout });
    const logger = pino({ level: 'silent' });
    const ctx = {
      registry,
      userdb: new UserDb({ service: 'io.systemd.Machine' }),
      policy: new Policy(),
      logger,
      options: {} as BerthContext['options'],
      warnings: new Map(),
    } as unknown as BerthContext;
    followRegistry(ctx);
    server = new VarlinkServer({ vendor: 'berth', product: 'berthd', version: 'test', url: 'x', logger });
    server.implement(IoSystemdMachine, machineApi(ctx));
    const sock = path.join(runtime, 'io.systemd.Machine');
    await server.listen(`unix:${sock}`);
    client = await VarlinkClient.connect(`unix:${sock}`);
    machined = await ensureReferenceMachined();
  }, 900_000);

  afterAll(async () => {
    client?.close();
    await server?.close();
    registry?.close();
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    for (const h of layout.hierarchies) {
      const slice = path.join(h.root, MACHINE_SLICE);
      for (const d of fs.existsSync(slice) ? fs.readdirSync(slice) : []) {
        if (d.startsWith(machineScopeUnit(tag).replace(/\.scope$/, ''))) fs.rmdirSync(path.join(slice, d));
      }
    }
    if (runtime) fs.rmSync(runtime, { recursive: true, force: true });
    if (typeof machined !== 'string') await machined.release();
  }, 120_000);

  it('registers, lists with machined key order, and forgets a machine whose leader exits', async () => {
    const c = sleeper();
    const name = `${tag}-a`;
    expect(
      await reply(client, 'Register', {
        name, class: 'container', leader: c.pid, allocateUnit: true, service: 'svc', rootDirectory: '/tmp',
        id: '0123456789ABCDEF0123456789ABCDEF', vSockCid: 5, sshAddress: 'vsock/5', sshPrivateKeyPath: '/tmp/key', ifIndices: [1, 2],
      }),
    ).toEqual({ ok: {} });
    const r = (await reply(client, 'List', { name })) as { ok: Record<string, unknown> };
    expect(Object.keys(r.ok)).toEqual([
      'name', 'id', 'class', 'service', 'rootDirectory', 'unit', 'leader', 'supervisor', 'timestamp', 'vSockCid', 'sshAddress', 'sshPrivateKeyPath', 'UID',
    ]);
    expect(r.ok).toMatchObject({ name, id: '0123456789abcdef0123456789abcdef', unit: machineScopeUnit(name), leader: { pid: c.pid } });
    expect(await reply(client, 'List', { pid: { pid: c.pid } })).toMatchObject({ ok: { name } });

    const all: Record<string, unknown>[] = [];
    for await (const m of client.moreRaw('io.systemd.Machine.List', {})) all.push(m);
    expect(all.map((m) => m.name)).toEqual(['.host', name]);
    expect(all[0]).toMatchObject({ class: 'host', rootDirectory: '/', unit: '-.slice', leader: { pid: 1 } });
    expect(await reply(client, 'List', {})).toEqual({ error: 'org.varlink.service.ExpectedMore', parameters: {} });

    expect(await reply(client, 'Register', { name, class: 'container', leader: c.pid })).toEqual({
      error: 'io.systemd.Machine.MachineExists', parameters: {},
    });
    expect(await reply(client, 'Register', { name: `${tag}-b`, class: 'container', leader: c.pid })).toEqual({
      error: 'io.systemd.System', parameters: { errno: 17 },
    });
    expect(await reply(client, 'Kill', { name, signal: 28, whom: 'leader' })).toEqual({ ok: {} });
    expect(await reply(client, 'Terminate', { name: '.host' })).toEqual({ error: 'io.systemd.System', parameters: { errno: 95 } });

    const gone = new Promise((res) => registry.once('event', res));
    c.kill('SIGKILL');
    await gone;
    expect(await reply(client, 'List', { name })).toEqual({ error: 'io.systemd.Machine.NoSuchMachine', parameters: {} });
    expect(fs.existsSync(path.join(runtime, 'systemd/machines', name))).toBe(false);
  });

  it('of 1,000 parallel Register calls for one name exactly one succeeds, the rest get MachineExists', async () => {
    const leader = sleeper();
    const name = `${tag}-race`;
    const clients = await Promise.all(Array.from({ length: 10 }, () => VarlinkClient.connect(`unix:${path.join(runtime, 'io.systemd.Machine')}`)));
    try {
      const replies = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => reply(clients[i % 10]!, 'Register', { name, class: 'container', leader: leader.pid, allocateUnit: true })),
      );
      expect(replies.filter((r) => (r as { ok?: unknown }).ok)).toHaveLength(1);
      expect(replies.filter((r) => (r as { error?: string }).error === 'io.systemd.Machine.MachineExists')).toHaveLength(999);
    } finally {
      for (const c of clients) c.close();
    }
    expect(await reply(client, 'Unregister', { name })).toEqual({ ok: {} });
    expect(await reply(client, 'Unregister', { name })).toEqual({ error: 'io.systemd.Machine.NoSuchMachine', parameters: {} });
  });

  it('reports the UID shift of a user-namespaced container and maps IDs both ways', async () => {
    const c = spawn('unshare', ['--user', 'sleep', '600'], { stdio: 'ignore' }) as ChildProcess & { pid: number };
    children.push(c);
    const ours = fs.readlinkSync('/proc/self/ns/user');
    const deadline = Date.now() + 5000;
    while (fs.readlinkSync(`/proc/${c.pid}/ns/user`) === ours) {
      if (Date.now() > deadline) throw new Error('unshare did not create a user namespace');
      await new Promise((r) => setImmediate(r));
    }
    fs.writeFileSync(`/proc/${c.pid}/uid_map`, '0 1000000 65536\n');
    fs.writeFileSync(`/proc/${c.pid}/gid_map`, '0 1000000 65536\n');
    const name = `${tag}-ns`;
    expect(await reply(client, 'Register', { name, class: 'container', leader: c.pid, allocateUnit: true })).toEqual({ ok: {} });
    const listed = (await reply(client, 'List', { name, acquireMetadata: 'graceful' })) as { ok: Record<string, unknown> };
    expect(listed.ok.UIDShift).toBe(1000000);
    expect(listed.ok.addresses).toBeUndefined(); // shares the host's network: left out gracefully
    expect(Array.isArray(listed.ok.OSRelease)).toBe(true);
    expect(await reply(client, 'List', { name, acquireMetadata: 'yes' })).toEqual({ error: 'io.systemd.Machine.NoPrivateNetworking', parameters: {} });
    expect(await reply(client, 'MapFrom', { name, uid: 5, gid: 6 })).toEqual({ ok: { uid: 1000005, gid: 1000006 } });
    expect(await reply(client, 'MapFrom', { name, uid: 70000 })).toEqual({ error: 'io.systemd.Machine.NoSuchUser', parameters: {} });
    expect(await reply(client, 'MapFrom', { name: '.host', uid: 5 })).toEqual({ error: 'io.systemd.Machine.NotSupported', parameters: {} });
    expect(await reply(client, 'MapTo', { uid: 1000005, gid: 1000006 })).toEqual({ ok: { uid: 5, gid: 6, machineName: name } });
    expect(await reply(client, 'MapTo', { uid: 1000 })).toEqual({ error: 'io.systemd.Machine.UserInHostRange', parameters: {} });
    expect(await reply(client, 'MapTo', { gid: 2000000 })).toEqual({ error: 'io.systemd.Machine.NoSuchGroup', parameters: {} });
    expect(await reply(client, 'MapTo', {})).toEqual({ error: 'io.systemd.Machine.NoSuchMachine', parameters: {} });
    expect(await reply(client, 'Unregister', { name })).toEqual({ ok: {} });
  });

  // Bad calls: each answered as machined 257 answers it, nothing left behind.
  const bad: [string, string, Record<string, unknown>, unknown][] = [
    ['name with /', 'Register', { name: 'rg/x', class: 'container', leader: 0 }, { parameter: 'name' }],
    ['name ..', 'Register', { name: '..', class: 'container' }, { parameter: 'name' }],
    ['300-char name', 'Register', { name: 'a'.repeat(300), class: 'container' }, { parameter: 'name' }],
    ['empty name', 'Register', { name: '', class: 'container' }, { parameter: 'name' }],
    ['name with space', 'Register', { name: 'a b', class: 'container' }, { parameter: 'name' }],
    ['non-ASCII name', 'Register', { name: 'rgé', class: 'container' }, { parameter: 'name' }],
    ['.host', 'Register', { name: '.host', class: 'container', leader: 4000000 }, { parameter: 'name' }],
    ['bad id', 'Register', { name: 'rg-x', id: 'xyz', class: 'container', leader: 1 }, { parameter: 'id' }],
    ['leader 0', 'Register', { name: 'rg-x', class: 'container', leader: 0 }, { parameter: 'leader' }],
    ['leader 1', 'Register', { name: 'rg-x', class: 'container', leader: 1 }, { parameter: 'leader' }],
    ['leader -1', 'Register', { name: 'rg-x', class: 'container', leader: -1 }, { parameter: 'leader' }],
    ['leader 2^53', 'Register', { name: 'rg-x', class: 'container', leader: 2 ** 53 }, { parameter: 'leader' }],
    ['leader gone', 'Register', { name: 'rg-x', class: 'container', leader: 4000000 }, { parameter: 'leader' }],
    ['class foo', 'Register', { name: 'rg-x', class: 'foo', leader: 4000000 }, { parameter: 'class' }],
    ['class host', 'Register', { name: 'rg-x', class: 'host', leader: 4000000 }, { parameter: 'leader' }],
    ['ifIndices 100k', 'Register', { name: 'rg-x', class: 'container', ifIndices: Array.from({ length: 100_000 }, (_, i) => i + 1), leader: 0 }, { parameter: 'leader' }],
    ['vSockCid 2', 'Register', { name: 'rg-x', class: 'container', vSockCid: 2, leader: 0 }, { parameter: 'vSockCid' }],
    ['rootDirectory relative', 'Register', { name: 'rg-x', class: 'container', rootDirectory: 'x', leader: 0 }, { parameter: 'rootDirectory' }],
    ['Kill no signal', 'Kill', { name: 'rg-nope' }, { parameter: 'signal' }],
    ['Kill whom, unknown machine', 'Kill', { name: 'rg-nope', signal: 10, whom: 'supervisor' }, 'io.systemd.Machine.NoSuchMachine'],
    ['Kill whom', 'Kill', { name: '.host', signal: 10, whom: 'foo' }, { parameter: 'whom' }],
    // 262 (which berth follows) refuses a bad whom before anything else; 257 checked signal first.
    ['Kill whom first', 'Kill', { name: 'rg-nope', whom: 'foo', signal: 0 }, { parameter: 'whom' }],
    ['Terminate caller', 'Terminate', { pid: { pid: 0 } }, 'io.systemd.Machine.NoSuchMachine'],
    ['List bad metadata', 'List', { name: '.host', acquireMetadata: 'bogus' }, { parameter: 'acquireMetadata' }],
    ['Kill unknown', 'Kill', { name: 'rg-nope', signal: 10 }, 'io.systemd.Machine.NoSuchMachine'],
    ['Unregister nothing', 'Unregister', {}, 'io.systemd.Machine.NoSuchMachine'],
    ['Unregister bad name', 'Unregister', { name: 'a b' }, { parameter: 'name' }],
    ['List pid 1', 'List', { pid: { pid: 1 } }, 'io.systemd.Machine.NoSuchMachine'],
    ['List pid negative', 'List', { pid: { pid: -1 } }, { parameter: 'pid' }],
  ];
  /** Entries where machined 262 answers differently from 257; berth follows 262 (machine-api-262.test.ts). */
  const CHANGED_IN_262 = new Set(['Kill whom first']);
  it.each(bad)('%s', async (_label, method, params, expected) => {
    const before = fs.readdirSync(path.join(runtime, 'systemd/machines'));
    const r = (await reply(client, method, params)) as { error?: string; parameters?: unknown };
    if (typeof expected === 'string') expect(r).toEqual({ error: expected, parameters: {} });
    else expect(r).toEqual({ error: 'org.varlink.service.InvalidParameter', parameters: expected });
    expect(fs.readdirSync(path.join(runtime, 'systemd/machines'))).toEqual(before);
  });

  it('resolves a machine\'s files inside the machine: symlinks to host files lead nowhere', async () => {
    // A leader chrooted into a tree whose /dev/ptmx and /etc/os-release are symlinks to host files.
    // Opened naively through /proc/PID/root, an absolute target (or enough `..`) resolves in the
    // host's tree, and berthd, as root, would open, hand out or read a host file.
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-escape-'));
    const secret = path.join(os.tmpdir(), `berth-secret-${process.pid}`);
    fs.writeFileSync(secret, 'SECRET=host-only\n', { mode: 0o600 });
    for (const d of ['bin', 'dev', 'etc']) fs.mkdirSync(path.join(tree, d));
    fs.copyFileSync('/bin/busybox', path.join(tree, 'bin/busybox'));
    fs.chmodSync(path.join(tree, 'bin/busybox'), 0o755);
    fs.writeFileSync(path.join(tree, 'bait'), 'not a terminal\n', { mode: 0o600 });
    fs.symlinkSync(secret, path.join(tree, 'dev/ptmx'));
    fs.symlinkSync(`../../../../../../../..${secret}`, path.join(tree, 'etc/os-release'));
    const c = spawn('chroot', [tree, '/bin/busybox', 'sleep', '600'], { stdio: 'ignore' });
    children.push(c);
    const name = `${tag}-escape`;
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.readlinkSync(`/proc/${c.pid}/root`)).toBe(tree);
      expect(await reply(client, 'Register', { name, class: 'container', leader: c.pid, allocateUnit: true })).toEqual({ ok: {} });
      // Inside the machine there is no such file: ENOENT, as for a machine without /dev/ptmx.
      expect(await reply(client, 'Open', { name, mode: 'tty' })).toEqual({ error: 'io.systemd.System', parameters: { errno: 2 } });
      // A /dev/ptmx that is a regular file of the machine is refused as no terminal device.
      fs.rmSync(path.join(tree, 'dev/ptmx'));
      fs.symlinkSync('../bait', path.join(tree, 'dev/ptmx'));
      expect(await reply(client, 'Open', { name, mode: 'tty' })).toEqual({ error: 'io.systemd.System', parameters: { errno: 19 } });
      // os-release through `..` past the machine's root: not found, and the host's file never shows.
      const listed = (await reply(client, 'List', { name, acquireMetadata: 'graceful' })) as { ok?: Record<string, unknown> };
      expect(listed.ok?.name).toBe(name);
      expect(JSON.stringify(listed)).not.toContain('host-only');
      expect(listed.ok?.OSRelease).toBeUndefined();
      for (const f of [secret, path.join(tree, 'bait')]) expect(fs.statSync(f).uid).toBe(0);
      expect(fs.readFileSync(secret, 'utf8')).toBe('SECRET=host-only\n');
    } finally {
      c.kill('SIGKILL');
      await reply(client, 'Unregister', { name });
      fs.rmSync(tree, { recursive: true, force: true });
      fs.rmSync(secret, { force: true });
    }
  });

  it('registers, lists and writes state as the running systemd-machined 257 does', async (ctx) => {
    const real = await realMachined(ctx);
    const name = `${tag}-diff`;
    const unit = `${name}.scope`;
    const c = sleeper();
    const dirs = layout.hierarchies.map((h) => path.join(h.root, unit));
    for (const d of dirs) {
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'cgroup.procs'), `${c.pid}\n`);
    }
    const params = {
      name, class: 'container', leader: c.pid, service: 'a b"c\\é', rootDirectory: '/tmp/x y', ifIndices: [3, 1],
      id: '0123456789ABCDEF0123456789ABCDEF', vSockCid: 9, sshAddress: 'vsock/9', sshPrivateKeyPath: '/k',
    };
    try {
      expect(await reply(real, 'Register', params)).toEqual({ ok: {} });
      expect(await reply(client, 'Register', params)).toEqual({ ok: {} });
      const norm = (r: unknown) => JSON.stringify(r).replace(/"(realtime|monotonic)":\d+/g, '"$1":0');
      // berth's entries as 257 has them: without the supervisor and UID that 262 added.
      const as257 = (r: unknown) => {
        const o = r as { ok?: Record<string, unknown> };
        if (!o.ok) return r;
        const { supervisor: _s, UID: _u, ...rest } = o.ok;
        return { ok: rest };
      };
      for (const q of [{ name }, { name, acquireMetadata: 'graceful' }, { pid: { pid: c.pid } }]) {
        expect(norm(as257(await reply(client, 'List', q)))).toBe(norm(await reply(real, 'List', q)));
      }
      // The same file, but for the newer keys berth also writes (machined ignores them when reading).
      const strip = (t: string) =>
        t.split('\n').filter((l) => !/^(UID=0$|(LEADER_PIDFDID|SUPERVISOR|SUPERVISOR_PIDFDID|VSOCK_CID|SSH_ADDRESS|SSH_PRIVATE_KEY_PATH)=)/.test(l))
          .join('\n').replace(/^(REALTIME|MONOTONIC)=\d+$/gm, '$1=0');
      const ours = fs.readFileSync(path.join(runtime, 'systemd/machines', name), 'utf8');
      const theirs = fs.readFileSync(`/run/systemd/machines/${name}`, 'utf8');
      expect(strip(ours)).toBe(strip(theirs));
      expect(fs.readlinkSync(path.join(runtime, 'systemd/machines', `unit:${unit}`))).toBe(fs.readlinkSync(`/run/systemd/machines/unit:${unit}`));
    } finally {
      await reply(real, 'Unregister', { name });
      await reply(client, 'Unregister', { name });
      real.close();
      c.kill('SIGKILL');
      await new Promise((r) => c.once('exit', r));
      for (const d of dirs) fs.rmdirSync(d);
    }
  });

  it('answers bad calls exactly as the running systemd-machined 257 does', async (ctx) => {
    const real = await realMachined(ctx);
    try {
      for (const [label, method, params] of bad) {
        if (CHANGED_IN_262.has(label)) continue;
        const theirs = await reply(real, method, params);
        const ours = await reply(client, method, params);
        expect({ label, reply: ours }).toEqual({ label, reply: theirs });
      }
    } finally {
      real.close();
    }
  });
});
