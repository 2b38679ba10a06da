/**
 * Scenario 5, permissions: every method of every interface berthd serves, called by
 *   root    uid 0
 *   owner   the uid that registered the machine (berth-test, else nobody is not used: see skip)
 *   other   another unprivileged user (nobody)
 *   userns  root inside a container's user namespace (uid_map 0 → 1000000), which the host sees
 *           as uid 1000000; its calls act on its own container, registered by root
 * berthd runs with --allow-user-register. Each cell that changes something gets a fresh target
 * (machine, leader, image), so one allowed call cannot hide the next one's answer. A cell is
 * "denied" when the reply is org.varlink.service.PermissionDenied and "allowed" otherwise (the
 * table shows the actual reply). The expected matrix below is written from the policy in the
 * README and src/server/policy.ts, not computed from it; any difference is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseInterface } from '../../src/varlink/idl/index.js';
import {
  asUser,
  connect,
  cannotRunBerthd,
  cgroupsUsable,
  exited,
  isRoot,
  lookupUser,
  machineSocket,
  removeScopes,
  rmrf,
  startBerthd,
  tempRuntime,
  userdbSocket,
  waitFor,
  within,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';

type Col = 'root' | 'owner' | 'other' | 'userns';
const COLS: Col[] = ['root', 'owner', 'other', 'userns'];
type Verdict = 'A' | 'D';

const NS_BASE = 1_000_000;
const NS_SIZE = 65536;

/** A call made by one column's process. */
interface Req {
  socket: 'machine' | 'userdb';
  method: string;
  parameters: Record<string, unknown>;
  more?: boolean;
}

/** Runs calls on fresh connections, one after another, and prints their first replies as JSON. */
const CALLER = String.raw`
import net from 'node:net';
const [machine, userdb, json] = process.argv.slice(1);
const reqs = JSON.parse(json);
const out = [];
for (const r of reqs) {
  out.push(await new Promise((resolve) => {
    const s = net.connect(r.socket === 'userdb' ? userdb : machine);
    let buf = '';
    const t = setTimeout(() => { s.destroy(); resolve({ error: 'client.Timeout' }); }, 10000);
    s.on('error', (e) => { clearTimeout(t); resolve({ error: 'client.' + e.code }); });
    s.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\0');
      if (i === -1) return;
      clearTimeout(t);
      s.destroy();
      const m = JSON.parse(buf.slice(0, i));
      resolve(m.error ? { error: m.error, parameters: m.parameters ?? {} } : { ok: m.parameters ?? {} });
    });
    s.on('close', () => { clearTimeout(t); resolve({ error: 'client.Closed' }); });
    s.on('connect', () => {
      const msg = { method: r.method, parameters: r.parameters };
      if (r.more) msg.more = true;
      s.write(JSON.stringify(msg) + '\0');
    });
  }));
}
process.stdout.write(JSON.stringify({ uid: process.getuid(), replies: out }) + '\n');
`;

function runAs(prefixArgv: string[], runtime: string, reqs: Req[]): Promise<{ uid: number; replies: { ok?: unknown; error?: string; parameters?: unknown }[] }> {
  const argv = [...prefixArgv, process.execPath, '--input-type=module', '-e', CALLER, machineSocket(runtime), userdbSocket(runtime), JSON.stringify(reqs)];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return within(
    new Promise((resolve, reject) => {
      child.once('exit', (code) => {
        try {
          resolve(JSON.parse(out.trim().split('\n').pop()!));
        } catch {
          reject(new Error(`caller (${prefixArgv.join(' ')}) exited ${code}: ${err.slice(0, 500)}`));
        }
      });
    }),
    120_000,
    'a caller process',
  );
}

/** Holds a new user namespace that maps 0…65535 to NS_BASE…; processes join it with nsenter. */
async function userNamespaceHolder(): Promise<ChildProcess & { pid: number }> {
  const child = spawn('unshare', ['--user', '--', 'sleep', '100000'], { stdio: 'ignore' }) as ChildProcess & { pid: number };
  const selfNs = fs.readlinkSync('/proc/self/ns/user');
  await waitFor(() => {
    try {
      return fs.readlinkSync(`/proc/${child.pid}/ns/user`) !== selfNs;
    } catch {
      return false;
    }
  }, 'the user namespace', 10_000);
  fs.writeFileSync(`/proc/${child.pid}/uid_map`, `0 ${NS_BASE} ${NS_SIZE}\n`);
  fs.writeFileSync(`/proc/${child.pid}/gid_map`, `0 ${NS_BASE} ${NS_SIZE}\n`);
  return child;
}

interface Row {
  label: string;
  expect: Record<Col, Verdict>;
  /** Builds the request of one column's cell (may create fixtures). */
  req: (col: Col) => Promise<Req>;
}

const ALL: Record<Col, Verdict> = { root: 'A', owner: 'A', other: 'A', userns: 'A' };
const OWNER: Record<Col, Verdict> = { root: 'A', owner: 'A', other: 'D', userns: 'D' };
const ROOT: Record<Col, Verdict> = { root: 'A', owner: 'D', other: 'D', userns: 'D' };

export async function runPermissions(opts: ScenarioOptions): Promise<ScenarioResult> {
  const name = 'permissions';
  const owner = lookupUser('berth-test');
  const other = lookupUser('nobody');
  let why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (runs callers as other users and in a user namespace)');
  if (!why && (!owner || !other)) why = 'needs the users berth-test and nobody';
  if (!why && spawnSync('setpriv', ['--version']).status !== 0) why = 'setpriv (util-linux) is not installed';
  if (!why && spawnSync('unshare', ['--user', 'true']).status !== 0) why = 'cannot create user namespaces here';
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const prefix = `spm${process.pid}`;
  const runtime = tempRuntime('perm');
  const images = path.join(runtime, 'images');
  fs.mkdirSync(images);
  const b = await startBerthd(runtime, { logLevel: 'warn', args: ['--allow-user-register', '--image-dir', images] });
  const children: ChildProcess[] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  let seq = 0;
  const fresh = () => `${prefix}x${seq++}`;
  try {
    const holder = await userNamespaceHolder();
    children.push(holder);
    // nsenter --user also makes the process root inside (uid 0 → NS_BASE on the host).
    const nsenter = ['nsenter', '--target', String(holder.pid), '--user', '--'];
    const prefixOf: Record<Col, string[]> = { root: [], owner: asUser(owner!), other: asUser(other!), userns: nsenter };
    const spawnLeader = (col: Col | 'ownerLeader'): ChildProcess & { pid: number } => {
      const pre = col === 'ownerLeader' || col === 'owner' ? asUser(owner!) : col === 'other' ? asUser(other!) : col === 'userns' ? nsenter : [];
      const argv = [...pre, 'sleep', '100000'];
      const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' }) as ChildProcess & { pid: number };
      children.push(c);
      return c;
    };
    const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const waitUid = (c: ChildProcess & { pid: number }, uid: number) =>
      waitFor(() => {
        try {
          return uidOf(c.pid) === uid && fs.readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim() === 'sleep';
        } catch {
          return false;
        }
      }, `leader ${c.pid} to run as ${uid}`, 10_000);

    // The container itself (its leader is root inside the namespace), registered by root.
    const ns = `${prefix}ns`;
    const nsLeader = spawnLeader('userns');
    await waitUid(nsLeader, NS_BASE);
    const rootReg = await runAs([], runtime, [{ socket: 'machine', method: 'io.systemd.Machine.Register', parameters: { name: ns, class: 'container', leader: nsLeader.pid, allocateUnit: true } }]);
    if (!('ok' in rootReg.replies[0]!)) throw new Error(`cannot register the userns container: ${JSON.stringify(rootReg.replies[0])}`);

    // Targets: for root/owner/other a machine the owner registered; for userns one in its own namespace that root registered.
    const ownerTargets: { name: string; pid: number }[] = [];
    const target = async (col: Col): Promise<string> => {
      const m = fresh();
      if (col === 'userns') {
        const l = spawnLeader('userns');
        await waitUid(l, NS_BASE);
        const r = await runAs([], runtime, [{ socket: 'machine', method: 'io.systemd.Machine.Register', parameters: { name: m, class: 'container', leader: l.pid, allocateUnit: true } }]);
        if (!('ok' in r.replies[0]!)) throw new Error(`cannot register ${m}: ${JSON.stringify(r.replies[0])}`);
      } else {
        const l = spawnLeader('ownerLeader');
        await waitUid(l, owner!.uid);
        ownerTargets.push({ name: m, pid: l.pid });
      }
      return m;
    };
    const image = (): string => {
      const m = fresh();
      fs.mkdirSync(path.join(images, m));
      return m;
    };
    const ownersLeader = async () => {
      const l = spawnLeader('ownerLeader');
      await waitUid(l, owner!.uid);
      return l.pid;
    };
    const ownLeader = async (col: Col) => {
      const l = spawnLeader(col);
      await waitUid(l, col === 'root' ? 0 : col === 'owner' ? owner!.uid : col === 'other' ? other!.uid : NS_BASE);
      return l.pid;
    };
    const M = (method: string, parameters: Record<string, unknown>, more = false): Req => ({ socket: 'machine', method, parameters, ...(more ? { more } : {}) });
    const U = (method: string, parameters: Record<string, unknown>): Req => ({ socket: 'userdb', method, parameters });
    const anyName = (col: Col) => (col === 'userns' ? ns : ns);

    const rows: Row[] = [
      { label: "Machine.Register (owner's leader)", expect: OWNER, req: async () => M('io.systemd.Machine.Register', { name: fresh(), class: 'container', leader: await ownersLeader(), allocateUnit: true }) },
      { label: 'Machine.Register (own leader)', expect: ALL, req: async (c) => M('io.systemd.Machine.Register', { name: fresh(), class: 'container', leader: await ownLeader(c), allocateUnit: true }) },
      { label: 'Machine.Unregister', expect: OWNER, req: async (c) => M('io.systemd.Machine.Unregister', { name: await target(c) }) },
      { label: 'Machine.Terminate', expect: OWNER, req: async (c) => M('io.systemd.Machine.Terminate', { name: await target(c) }) },
      { label: 'Machine.Kill', expect: OWNER, req: async (c) => M('io.systemd.Machine.Kill', { name: await target(c), whom: 'leader', signal: 18 }) },
      { label: 'Machine.Open', expect: OWNER, req: async (c) => M('io.systemd.Machine.Open', { name: await target(c), mode: 'tty' }) },
      { label: 'Machine.Open (shell)', expect: ROOT, req: async (c) => M('io.systemd.Machine.Open', { name: await target(c), mode: 'shell', path: '/bin/true' }) },
      { label: 'Machine.Open (login)', expect: ROOT, req: async (c) => M('io.systemd.Machine.Open', { name: await target(c), mode: 'login' }) },
      { label: 'Machine.List (name)', expect: ALL, req: async (c) => M('io.systemd.Machine.List', { name: anyName(c) }) },
      { label: 'Machine.List (more)', expect: ALL, req: async () => M('io.systemd.Machine.List', {}, true) },
      { label: 'Machine.MapFrom', expect: ALL, req: async () => M('io.systemd.Machine.MapFrom', { name: ns, uid: 0 }) },
      { label: 'Machine.MapTo', expect: ALL, req: async () => M('io.systemd.Machine.MapTo', { uid: NS_BASE }) },
      { label: 'MachineImage.List', expect: ALL, req: async () => M('io.systemd.MachineImage.List', {}, true) },
      { label: 'MachineImage.Update', expect: ROOT, req: async () => M('io.systemd.MachineImage.Update', { name: image(), newName: fresh() }) },
      { label: 'MachineImage.Clone', expect: ROOT, req: async () => M('io.systemd.MachineImage.Clone', { name: image(), newName: fresh() }) },
      { label: 'MachineImage.Remove', expect: ROOT, req: async () => M('io.systemd.MachineImage.Remove', { name: image() }) },
      // No quota here: root gets NotSupported, the others PermissionDenied before that.
      { label: 'MachineImage.SetPoolLimit', expect: ROOT, req: async () => M('io.systemd.MachineImage.SetPoolLimit', { limit: 1 << 30 }) },
      // Only hidden images, so that the other rows' images stay.
      { label: 'MachineImage.CleanPool', expect: ROOT, req: async () => M('io.systemd.MachineImage.CleanPool', { mode: 'hidden' }, true) },
      { label: 'berth.Watch', expect: ALL, req: async () => M('io.berth.Machine.Watch', {}, true) },
      { label: "berth.RegisterReplacingDead (owner's leader)", expect: OWNER, req: async () => M('io.berth.Machine.RegisterReplacingDead', { name: fresh(), class: 'container', leader: await ownersLeader(), allocateUnit: true }) },
      { label: 'berth.RegisterReplacingDead (own leader)', expect: ALL, req: async (c) => M('io.berth.Machine.RegisterReplacingDead', { name: fresh(), class: 'container', leader: await ownLeader(c), allocateUnit: true }) },
      { label: 'berth.Describe', expect: ALL, req: async () => M('io.berth.Machine.Describe', { name: ns }) },
      { label: 'berth.ListRanges', expect: ALL, req: async () => M('io.berth.Machine.ListRanges', {}) },
      { label: 'berth.UidOwner', expect: ALL, req: async () => M('io.berth.Machine.UidOwner', { uid: NS_BASE }) },
      { label: 'service.Ping', expect: ALL, req: async () => M('io.systemd.service.Ping', {}) },
      { label: 'service.Reload', expect: ALL, req: async () => M('io.systemd.service.Reload', {}) },
      { label: 'service.SetLogLevel', expect: ROOT, req: async () => M('io.systemd.service.SetLogLevel', { level: 4 }) },
      { label: 'service.GetEnvironment', expect: ROOT, req: async () => M('io.systemd.service.GetEnvironment', {}) },
      { label: 'service.GetLogLevel', expect: ROOT, req: async () => M('io.systemd.service.GetLogLevel', {}) },
      { label: 'varlink.GetInfo', expect: ALL, req: async () => M('org.varlink.service.GetInfo', {}) },
      { label: 'varlink.GetInterfaceDescription', expect: ALL, req: async () => M('org.varlink.service.GetInterfaceDescription', { interface: 'io.systemd.Machine' }) },
      { label: 'UserDatabase.GetUserRecord', expect: ALL, req: async () => U('io.systemd.UserDatabase.GetUserRecord', { uid: NS_BASE, service: 'io.systemd.Machine' }) },
      { label: 'UserDatabase.GetGroupRecord', expect: ALL, req: async () => U('io.systemd.UserDatabase.GetGroupRecord', { gid: NS_BASE, service: 'io.systemd.Machine' }) },
      { label: 'UserDatabase.GetMemberships', expect: ALL, req: async () => U('io.systemd.UserDatabase.GetMemberships', { service: 'io.systemd.Machine' }) },
      { label: 'varlink.GetInfo (userdb socket)', expect: ALL, req: async () => U('org.varlink.service.GetInfo', {}) },
    ];
    // What berthd serves, so that every method of every interface is covered by a row.
    const served = new Set<string>();
    for (const sock of [machineSocket(runtime), userdbSocket(runtime)]) {
      const c = await connect(sock);
      const info = await c.callRaw('org.varlink.service.GetInfo', {});
      for (const iname of info.interfaces as string[]) {
        const d = await c.callRaw('org.varlink.service.GetInterfaceDescription', { interface: iname });
        for (const m of parseInterface(d.description as string).members) if (m.kind === 'method') served.add(`${iname}.${m.name}`);
      }
      c.close();
    }
    if (served.has('io.berth.Launcher.Start')) {
      // Machines launched from NAME.berth configurations: only root may start or stop them.
      rows.push(
        { label: 'Launcher.Start', expect: ROOT, req: async () => M('io.berth.Launcher.Start', { name: fresh() }) },
        { label: 'Launcher.Stop', expect: ROOT, req: async () => M('io.berth.Launcher.Stop', { name: fresh() }) },
        { label: 'Launcher.Poweroff', expect: ROOT, req: async () => M('io.berth.Launcher.Poweroff', { name: fresh() }) },
        { label: 'Launcher.Reboot', expect: ROOT, req: async () => M('io.berth.Launcher.Reboot', { name: fresh() }) },
        { label: 'Launcher.ListConfigured', expect: ALL, req: async () => M('io.berth.Launcher.ListConfigured', {}) },
      );
    }


    // Build every column's requests (fixtures included), then let the owner register its targets.
    const reqs: Record<Col, Req[]> = { root: [], owner: [], other: [], userns: [] };
    for (const r of rows) for (const c of COLS) reqs[c].push(await r.req(c));
    const called = new Set(reqs.root.map((r) => r.method));
    const uncovered = [...served].filter((m) => !called.has(m));
    for (const m of uncovered) failures.push(`${m} is served but has no row in the expected permission matrix`);
    const ownerReg = await runAs(
      prefixOf.owner,
      runtime,
      ownerTargets.map((t) => M('io.systemd.Machine.Register', { name: t.name, class: 'container', leader: t.pid, allocateUnit: true })),
    );
    const bad = ownerReg.replies.findIndex((r) => !('ok' in r));
    if (bad !== -1) throw new Error(`the owner could not register ${ownerTargets[bad]!.name}: ${JSON.stringify(ownerReg.replies[bad])}`);

    const results = {} as Record<Col, { uid: number; replies: { ok?: unknown; error?: string }[] }>;
    for (const c of COLS) results[c] = await runAs(prefixOf[c], runtime, reqs[c]);
    // Host uids, as berthd sees them through SO_PEERCRED.
    const expectedUid: Record<Col, number> = { root: 0, owner: owner!.uid, other: other!.uid, userns: NS_BASE };
    // Each caller's own view of its uid (the userns caller is root inside its namespace).
    const innerUid: Record<Col, number> = { ...expectedUid, userns: 0 };
    for (const c of COLS) if (results[c].uid !== innerUid[c]) failures.push(`the ${c} caller ran as uid ${results[c].uid}, expected ${innerUid[c]}`);

    // Table.
    const short = (r: { ok?: unknown; error?: string }) => ('ok' in r ? 'ok' : (r.error ?? '?').replace(/^(org\.varlink\.service|io\.systemd\.Machine|io\.systemd|io\.berth\.Machine|io\.systemd\.UserDatabase|io\.systemd\.MachineImage)\./, ''));
    const w = 46;
    const table = [`${'method'.padEnd(w)} ${COLS.map((c) => `${c}(${expectedUid[c]})`.padEnd(24)).join(' ')}`];
    let cells = 0;
    let mismatches = 0;
    rows.forEach((row, i) => {
      const parts: string[] = [];
      for (const c of COLS) {
        cells++;
        const reply = results[c].replies[i]!;
        const got: Verdict = reply.error === 'org.varlink.service.PermissionDenied' ? 'D' : 'A';
        const ok = got === row.expect[c];
        if (!ok) {
          mismatches++;
          failures.push(`${row.label} by ${c}: expected ${row.expect[c] === 'A' ? 'allowed' : 'denied'}, got ${short(reply)}`);
        }
        if (reply.error?.startsWith('client.')) failures.push(`${row.label} by ${c}: no answer (${reply.error})`);
        parts.push(`${got}${ok ? ' ' : '!'} ${short(reply)}`.slice(0, 24).padEnd(24));
      }
      table.push(`${row.label.padEnd(w)} ${parts.join(' ')}`);
    });
    opts.log('permissions: A = allowed, D = PermissionDenied, ! = differs from the policy');
    for (const l of table) opts.log(l);
    notes.push(...table);
    return { name, figures: { 'served-methods': served.size, rows: rows.length, cells, mismatches, uncovered: uncovered.length }, failures, notes };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => exited(c, 10_000).catch(() => undefined)));
    await b.stop();
    removeScopes(prefix);
    rmrf(runtime);
  }
}
