/**
 * Scenario dbus-permissions: the permission matrix of permissions.ts, over D-Bus. Every method of the
 * Manager, Machine and Image objects (and the standard interfaces), called through a real dbus-daemon with
 * a system bus's policy and berth's, by
 *   root    uid 0
 *   owner   berth-test, which registered the machine (over D-Bus, CreateMachine; --allow-user-register)
 *   other   nobody (65534)
 * each caller a process of its own run with setpriv. Every cell that changes something gets a fresh
 * target. A cell is "denied" when the reply is org.freedesktop.DBus.Error.AccessDenied, "allowed" otherwise.
 * The expected matrix is written from the README's security table (each D-Bus method as its Varlink twin),
 * not computed from the policy code; any difference, and any introspected method without a row, fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connectBus } from '../../src/dbus/index.js';
import {
  asUser, cannotRunBerthd, cgroupsUsable, exited, isRoot, lookupUser, removeScopes, REPO, rmrf, startBerthd, tempRuntime, waitFor, within,
  type ScenarioOptions, type ScenarioResult, type User,
} from './common.js';
import { BUS_NAME, IMAGE, introspectMethods, MACHINE, MANAGER, MANAGER_PATH, startSoakBus } from './dbus-bus.js';
import type { BusCall, CallerOutput } from './dbus-caller.js';

const CALLER = path.join(REPO, 'dist/bench/soak/dbus-caller.js');
type Col = 'root' | 'owner' | 'other';
const COLS: Col[] = ['root', 'owner', 'other'];
type Verdict = 'A' | 'D';
const ALL: Record<Col, Verdict> = { root: 'A', owner: 'A', other: 'A' };
const OWNER: Record<Col, Verdict> = { root: 'A', owner: 'A', other: 'D' };
const ROOT: Record<Col, Verdict> = { root: 'A', owner: 'D', other: 'D' };
const DENIED = new Set(['org.freedesktop.DBus.Error.AccessDenied', 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired']);

interface Row {
  label: string;
  /** iface.member this row covers. */
  covers: string;
  expect: Record<Col, Verdict>;
  req: (col: Col) => Promise<BusCall>;
}

let jobSeq = 0;
function runAs(prefix: string[], address: string, dir: string, calls: BusCall[]): Promise<CallerOutput> {
  const file = path.join(dir, `calls${jobSeq++}.json`);
  fs.writeFileSync(file, JSON.stringify(calls));
  fs.chmodSync(file, 0o644);
  const argv = [...prefix, process.execPath, CALLER, address, file];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return within(
    new Promise<CallerOutput>((resolve, reject) =>
      child.once('exit', (code) => {
        try {
          resolve(JSON.parse(out.trim().split('\n').pop()!));
        } catch {
          reject(new Error(`caller (${prefix.join(' ')}) exited ${code}: ${err.slice(0, 500)}`));
        }
      }),
    ),
    180_000,
    'a D-Bus caller',
  );
}

export async function runDbusPermissions(opts: ScenarioOptions): Promise<ScenarioResult> {
  const name = 'dbus-permissions';
  const owner = lookupUser('berth-test');
  const other = lookupUser('nobody');
  let why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (runs callers as other users)');
  if (!why && (!owner || !other)) why = 'needs the users berth-test and nobody';
  if (!why && spawnSync('setpriv', ['--version']).status !== 0) why = 'setpriv (util-linux) is not installed';
  if (!why && spawnSync('dbus-daemon', ['--version']).status !== 0) why = 'dbus-daemon is not installed';
  if (!why && !fs.existsSync(CALLER)) why = `${CALLER} is not built`;
  if (why) return { name, figures: {}, failures: [], skipped: why };

  const prefix = `sdp${process.pid % 100000}`;
  const bus = await startSoakBus();
  const runtime = tempRuntime('dbusperm');
  const images = path.join(runtime, 'images');
  fs.mkdirSync(images);
  const jobs = fs.mkdtempSync('/var/tmp/berth-soak-dbusperm-');
  fs.chmodSync(jobs, 0o755);
  fs.writeFileSync(path.join(runtime, 'cpsrc'), 'soak\n');
  fs.mkdirSync(path.join(runtime, 'bsrc'));
  const b = await startBerthd(runtime, { args: ['--dbus=yes', '--allow-user-register', '--image-dir', images], env: { DBUS_SYSTEM_BUS_ADDRESS: bus.address } });
  const children: ChildProcess[] = [];
  const failures: string[] = [];
  const notes: string[] = [];
  let seq = 0;
  const fresh = () => `${prefix}x${seq++}`;
  const users: Record<Col, User | undefined> = { root: undefined, owner, other };
  const prefixOf = (c: Col) => (users[c] ? asUser(users[c]!) : []);
  try {
    const conn = await connectBus({ address: bus.address });
    await waitFor(async () => (await conn.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameHasOwner', signature: 's', body: [BUS_NAME] })).body[0], 'berthd on the bus', 20_000);

    const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const leader = async (user: User | undefined): Promise<number> => {
      const argv = [...(user ? asUser(user) : []), 'sleep', '100000'];
      const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      children.push(c);
      const uid = user?.uid ?? 0;
      await waitFor(() => {
        try {
          return uidOf(c.pid!) === uid && fs.readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim() === 'sleep';
        } catch {
          return false;
        }
      }, `a leader running as ${uid}`, 10_000);
      return c.pid!;
    };
    const mgr = (member: string, signature: string, body: unknown[]): BusCall => ({ path: MANAGER_PATH, iface: MANAGER, member, signature, body });
    const obj = (m: string, member: string, signature: string, body: unknown[]): BusCall => ({ path: `/org/freedesktop/machine1/machine/${m}`, iface: MACHINE, member, signature, body });
    const img = (i: string, member: string, signature: string, body: unknown[]): BusCall => ({ path: `/org/freedesktop/machine1/image/${i}`, iface: IMAGE, member, signature, body });
    const create = (n: string, pid: number): BusCall => mgr('CreateMachine', 'sayssusa(sv)', [n, { $ay: '' }, 'soak', 'container', pid, '', []]);

    // Machines the owner registers: a shared one to look at, and a fresh one per acting cell.
    const ownerTargets: BusCall[] = [];
    const target = async (): Promise<string> => {
      const m = fresh();
      ownerTargets.push(create(m, await leader(owner)));
      return m;
    };
    const shared = await target();
    const image = (): string => {
      const i = fresh();
      fs.mkdirSync(path.join(images, i));
      return i;
    };
    const sharedImage = image();
    const own = async (c: Col) => leader(users[c]);
    const cp = () => [path.join(runtime, 'cpsrc'), path.join(runtime, `cpdst${seq++}`)];
    const bind = () => [path.join(runtime, 'bsrc'), path.join(runtime, `bdst${seq++}`)];
    const T0 = { $t: '0' };

    const M = (member: string, expect: Record<Col, Verdict>, req: (c: Col) => Promise<BusCall>, label = member): Row => ({ label, covers: `${MANAGER}.${member}`, expect, req });
    const O = (member: string, expect: Record<Col, Verdict>, req: (c: Col) => Promise<BusCall>): Row => ({ label: `Machine.${member}`, covers: `${MACHINE}.${member}`, expect, req });
    const I = (member: string, expect: Record<Col, Verdict>, req: (c: Col) => Promise<BusCall>): Row => ({ label: `Image.${member}`, covers: `${IMAGE}.${member}`, expect, req });
    const rows: Row[] = [
      M('GetMachine', ALL, async () => mgr('GetMachine', 's', [shared])),
      M('GetMachineByPID', ALL, async () => mgr('GetMachineByPID', 'u', [1])),
      M('ListMachines', ALL, async () => mgr('ListMachines', '', [])),
      ...['GetMachineAddresses', 'GetMachineSSHInfo', 'GetMachineOSRelease', 'GetMachineUIDShift'].map((x) => M(x, ALL, async () => mgr(x, 's', [shared]))),
      M('MapFromMachineUser', ALL, async () => mgr('MapFromMachineUser', 'su', [shared, 0])),
      M('MapFromMachineGroup', ALL, async () => mgr('MapFromMachineGroup', 'su', [shared, 0])),
      M('MapToMachineUser', ALL, async () => mgr('MapToMachineUser', 'u', [1000000])),
      M('MapToMachineGroup', ALL, async () => mgr('MapToMachineGroup', 'u', [1000000])),
      M('CreateMachine', ALL, async (c) => create(fresh(), await own(c)), 'CreateMachine (own leader)'),
      M('CreateMachine', OWNER, async () => create(fresh(), await leader(owner)), "CreateMachine (owner's leader)"),
      M('CreateMachineWithNetwork', ALL, async (c) => mgr('CreateMachineWithNetwork', 'sayssusaia(sv)', [fresh(), { $ay: '' }, 'soak', 'container', await own(c), '', [], []])),
      M('CreateMachineEx', ALL, async (c) => mgr('CreateMachineEx', 'sa(sv)a(sv)', [fresh(), [['Class', { $v: ['s', 'container'] }], ['LeaderPID', { $v: ['u', await own(c)] }]], []])),
      // The caller made no unit for these leaders: whatever the answer, it must not be AccessDenied for one's own.
      M('RegisterMachine', ALL, async (c) => mgr('RegisterMachine', 'sayssus', [fresh(), { $ay: '' }, 'soak', 'container', await own(c), ''])),
      M('RegisterMachineWithNetwork', ALL, async (c) => mgr('RegisterMachineWithNetwork', 'sayssusai', [fresh(), { $ay: '' }, 'soak', 'container', await own(c), '', []])),
      M('RegisterMachineEx', ALL, async (c) => mgr('RegisterMachineEx', 'sa(sv)', [fresh(), [['Class', { $v: ['s', 'container'] }], ['LeaderPID', { $v: ['u', await own(c)] }]]])),
      M('UnregisterMachine', OWNER, async () => mgr('UnregisterMachine', 's', [await target()])),
      M('TerminateMachine', OWNER, async () => mgr('TerminateMachine', 's', [await target()])),
      M('KillMachine', OWNER, async () => mgr('KillMachine', 'ssi', [await target(), 'all', 18])),
      M('OpenMachinePTY', OWNER, async () => mgr('OpenMachinePTY', 's', [await target()])),
      M('OpenMachineRootDirectory', OWNER, async () => mgr('OpenMachineRootDirectory', 's', [await target()])),
      M('OpenMachineLogin', ROOT, async () => mgr('OpenMachineLogin', 's', [await target()])),
      M('OpenMachineShell', ROOT, async () => mgr('OpenMachineShell', 'sssasas', [await target(), 'root', '/bin/true', [], []])),
      M('BindMountMachine', ROOT, async () => mgr('BindMountMachine', 'sssbb', [await target(), ...bind(), false, true])),
      M('CopyFromMachine', ROOT, async () => mgr('CopyFromMachine', 'sss', [await target(), ...cp()])),
      M('CopyToMachine', ROOT, async () => mgr('CopyToMachine', 'sss', [await target(), ...cp()])),
      M('CopyFromMachineWithFlags', ROOT, async () => mgr('CopyFromMachineWithFlags', 'ssst', [await target(), ...cp(), T0])),
      M('CopyToMachineWithFlags', ROOT, async () => mgr('CopyToMachineWithFlags', 'ssst', [await target(), ...cp(), T0])),
      M('ListImages', ALL, async () => mgr('ListImages', '', [])),
      ...['GetImage', 'GetImageHostname', 'GetImageMachineID', 'GetImageMachineInfo', 'GetImageOSRelease'].map((x) => M(x, ALL, async () => mgr(x, 's', [sharedImage]))),
      M('RemoveImage', ROOT, async () => mgr('RemoveImage', 's', [image()])),
      M('RenameImage', ROOT, async () => mgr('RenameImage', 'ss', [image(), fresh()])),
      M('CloneImage', ROOT, async () => mgr('CloneImage', 'ssb', [image(), fresh(), false])),
      M('MarkImageReadOnly', ROOT, async () => mgr('MarkImageReadOnly', 'sb', [image(), true])),
      M('SetImageLimit', ROOT, async () => mgr('SetImageLimit', 'st', [image(), { $t: String(1 << 30) }])),
      M('SetPoolLimit', ROOT, async () => mgr('SetPoolLimit', 't', [{ $t: String(1 << 30) }])),
      M('CleanPool', ROOT, async () => mgr('CleanPool', 's', ['hidden'])),
      O('Terminate', OWNER, async () => obj(await target(), 'Terminate', '', [])),
      O('Kill', OWNER, async () => obj(await target(), 'Kill', 'si', ['all', 18])),
      O('OpenPTY', OWNER, async () => obj(await target(), 'OpenPTY', '', [])),
      O('OpenRootDirectory', OWNER, async () => obj(await target(), 'OpenRootDirectory', '', [])),
      O('OpenLogin', ROOT, async () => obj(await target(), 'OpenLogin', '', [])),
      O('OpenShell', ROOT, async () => obj(await target(), 'OpenShell', 'ssasas', ['root', '/bin/true', [], []])),
      O('BindMount', ROOT, async () => obj(await target(), 'BindMount', 'ssbb', [...bind(), false, true])),
      O('CopyFrom', ROOT, async () => obj(await target(), 'CopyFrom', 'ss', cp())),
      O('CopyTo', ROOT, async () => obj(await target(), 'CopyTo', 'ss', cp())),
      O('CopyFromWithFlags', ROOT, async () => obj(await target(), 'CopyFromWithFlags', 'sst', [...cp(), T0])),
      O('CopyToWithFlags', ROOT, async () => obj(await target(), 'CopyToWithFlags', 'sst', [...cp(), T0])),
      ...['GetAddresses', 'GetSSHInfo', 'GetOSRelease', 'GetUIDShift'].map((x) => O(x, ALL, async () => obj(shared, x, '', []))),
      I('Remove', ROOT, async () => img(image(), 'Remove', '', [])),
      I('Rename', ROOT, async () => img(image(), 'Rename', 's', [fresh()])),
      I('Clone', ROOT, async () => img(image(), 'Clone', 'sb', [fresh(), false])),
      I('MarkReadOnly', ROOT, async () => img(image(), 'MarkReadOnly', 'b', [true])),
      I('SetLimit', ROOT, async () => img(image(), 'SetLimit', 't', [{ $t: String(1 << 30) }])),
      ...['GetHostname', 'GetMachineID', 'GetMachineInfo', 'GetOSRelease'].map((x) => I(x, ALL, async () => img(sharedImage, x, '', []))),
      { label: 'Properties.GetAll (Manager)', covers: 'org.freedesktop.DBus.Properties.GetAll', expect: ALL, req: async () => ({ path: MANAGER_PATH, iface: 'org.freedesktop.DBus.Properties', member: 'GetAll', signature: 's', body: [MANAGER] }) },
      { label: 'Properties.Get (Machine)', covers: 'org.freedesktop.DBus.Properties.Get', expect: ALL, req: async () => ({ path: `/org/freedesktop/machine1/machine/${shared}`, iface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [MACHINE, 'Name'] }) },
      { label: 'Properties.Set (read-only)', covers: 'org.freedesktop.DBus.Properties.Set', expect: ALL, req: async () => ({ path: MANAGER_PATH, iface: 'org.freedesktop.DBus.Properties', member: 'Set', signature: 'ssv', body: [MANAGER, 'PoolPath', { $v: ['s', '/x'] }] }) },
      { label: 'Introspectable.Introspect', covers: 'org.freedesktop.DBus.Introspectable.Introspect', expect: ALL, req: async () => ({ path: MANAGER_PATH, iface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect', signature: '', body: [] }) },
      { label: 'Peer.Ping', covers: 'org.freedesktop.DBus.Peer.Ping', expect: ALL, req: async () => ({ path: MANAGER_PATH, iface: 'org.freedesktop.DBus.Peer', member: 'Ping', signature: '', body: [] }) },
      { label: 'Peer.GetMachineId', covers: 'org.freedesktop.DBus.Peer.GetMachineId', expect: ALL, req: async () => ({ path: MANAGER_PATH, iface: 'org.freedesktop.DBus.Peer', member: 'GetMachineId', signature: '', body: [] }) },
    ];

    // Every cell's request (fixtures made on the way), then the owner registers its targets.
    const reqs: Record<Col, BusCall[]> = { root: [], owner: [], other: [] };
    for (const r of rows) for (const c of COLS) reqs[c].push(await r.req(c));
    const ownerReg = await runAs(prefixOf('owner'), bus.address, jobs, ownerTargets);
    const bad = ownerReg.replies.findIndex((r) => !r.ok);
    if (bad !== -1) throw new Error(`the owner could not register over D-Bus: ${JSON.stringify(ownerReg.replies[bad])}`);

    // What berthd serves: every introspected method needs a row.
    const served = new Set<string>();
    for (const p of [MANAGER_PATH, `/org/freedesktop/machine1/machine/${shared}`, `/org/freedesktop/machine1/image/${sharedImage}`]) {
      for (const m of await introspectMethods(conn, p)) served.add(`${m.iface}.${m.name}`);
    }
    const covered = new Set(rows.map((r) => r.covers));
    const uncovered = [...served].filter((m) => !covered.has(m));
    for (const m of uncovered) failures.push(`${m} is served but has no row in the expected D-Bus permission matrix`);

    const results = {} as Record<Col, CallerOutput>;
    for (const c of COLS) results[c] = await runAs(prefixOf(c), bus.address, jobs, reqs[c]);
    const expectedUid: Record<Col, number> = { root: 0, owner: owner!.uid, other: other!.uid };
    for (const c of COLS) if (results[c].uid !== expectedUid[c]) failures.push(`the ${c} caller ran as uid ${results[c].uid}`);

    const short = (r: { ok?: true; error?: string }) => (r.ok ? 'ok' : (r.error ?? '?').replace(/^org\.freedesktop\.(DBus\.Error|machine1)\./, ''));
    const w = 40;
    const table = [`${'method'.padEnd(w)} ${COLS.map((c) => `${c}(${expectedUid[c]})`.padEnd(26)).join(' ')}`];
    let cells = 0;
    let mismatches = 0;
    rows.forEach((row, i) => {
      const parts: string[] = [];
      for (const c of COLS) {
        cells++;
        const reply = results[c].replies[i]!;
        const got: Verdict = reply.error && DENIED.has(reply.error) ? 'D' : 'A';
        const ok = got === row.expect[c];
        if (!ok) {
          mismatches++;
          failures.push(`${row.label} by ${c}: expected ${row.expect[c] === 'A' ? 'allowed' : 'denied'}, got ${short(reply)} ${reply.message ?? ''}`);
        }
        if (reply.error?.startsWith('client.') || reply.error === 'org.freedesktop.DBus.Error.NoReply') failures.push(`${row.label} by ${c}: no answer (${reply.error})`);
        parts.push(`${got}${ok ? ' ' : '!'} ${short(reply)}`.slice(0, 26).padEnd(26));
      }
      table.push(`${row.label.padEnd(w)} ${parts.join(' ')}`);
    });
    // The shared machine is still there: nobody's refused calls lost nothing.
    const still = await conn.call({ destination: BUS_NAME, path: MANAGER_PATH, interface: MANAGER, member: 'GetMachine', signature: 's', body: [shared] }).catch((e) => e as Error);
    if (still instanceof Error) failures.push(`the shared machine ${shared} is gone: ${still.message}`);
    conn.close();
    opts.log('dbus-permissions: A = allowed, D = AccessDenied, ! = differs from the policy');
    for (const l of table) opts.log(l);
    notes.push(...table);
    return { name, figures: { 'served-methods': served.size, rows: rows.length, cells, mismatches, uncovered: uncovered.length }, failures, notes };
  } finally {
    await b.stop();
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => exited(c, 10_000).catch(() => undefined)));
    removeScopes(prefix);
    await bus.stop();
    // A root bind mount may sit below the runtime dir.
    for (const d of fs.readdirSync(runtime).filter((d) => d.startsWith('bdst'))) spawnSync('umount', ['-l', path.join(runtime, d)]);
    rmrf(runtime);
    rmrf(jobs);
  }
}
