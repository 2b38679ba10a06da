/**
 * Scenario dbus-fuzz: fuzzed message bodies for every Manager, Machine and Image method (and the standard
 * interfaces), sent through a real dbus-daemon (system-bus policy plus berth's) to berthd. Batches run
 * alternately as nobody (every method, any name, kept machines included: all it may do is look) and as
 * root (only calls that cannot touch a real process or file: see dbus-fuzz-client.ts). After each batch:
 * berthd is alive, answers a GetMachine probe, and still lists every machine registered before the run
 * (over Varlink and over D-Bus). Error-level log lines (a handler that threw something other than a D-Bus
 * error) count as failures, as do calls left without an answer and raw bodies the bus did not drop.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connectBus, type Connection } from '../../src/dbus/index.js';
import {
  asUser, call, cannotRunBerthd, cgroupsUsable, connect, exited, isRoot, logLines, lookupUser, machineSocket, removeScopes, removeScopesMadeBy,
  REPO, rmrf, sleeper, startBerthd, tempRuntime, within, type ScenarioOptions, type ScenarioResult,
} from './common.js';
import { BUS_NAME, introspectMethods, MANAGER, MANAGER_PATH, startSoakBus, type BusMethod } from './dbus-bus.js';
import type { FuzzCounts, FuzzJob } from './dbus-fuzz-client.js';

const CLIENT = path.join(REPO, 'dist/bench/soak/dbus-fuzz-client.js');

/** Methods root may call with right signatures and random values (everything else only with wrong ones). */
const ROOT_SAFE = [
  'Ping', 'GetMachineId', 'Introspect', 'Get', 'GetAll', 'Set',
  'GetMachine', 'GetImage', 'GetMachineByPID', 'ListMachines', 'ListImages', 'GetMachineAddresses', 'GetMachineSSHInfo',
  'GetMachineOSRelease', 'GetMachineUIDShift', 'GetImageHostname', 'GetImageMachineID', 'GetImageMachineInfo', 'GetImageOSRelease',
  'MapFromMachineUser', 'MapToMachineUser', 'MapFromMachineGroup', 'MapToMachineGroup',
  'CreateMachine', 'CreateMachineWithNetwork', 'CreateMachineEx', 'RegisterMachine', 'RegisterMachineWithNetwork', 'RegisterMachineEx',
  'UnregisterMachine', 'TerminateMachine', 'KillMachine', 'OpenMachinePTY', 'OpenMachineRootDirectory',
];

function runClient(prefix: string[], job: FuzzJob, dir: string, n: number): Promise<FuzzCounts> {
  const file = path.join(dir, `job${n}.json`);
  fs.writeFileSync(file, JSON.stringify(job));
  fs.chmodSync(file, 0o644);
  const argv = [...prefix, process.execPath, CLIENT, file];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return within(
    new Promise<FuzzCounts>((resolve, reject) =>
      child.once('exit', (code) => {
        try {
          resolve(JSON.parse(out.trim().split('\n').pop()!));
        } catch {
          reject(new Error(`fuzz client exited ${code}: ${err.slice(0, 800)}`));
        }
      }),
    ),
    180_000,
    'a fuzz batch',
  ).finally(() => child.kill('SIGKILL'));
}

export async function runDbusFuzz(opts: ScenarioOptions & { seed?: number }): Promise<ScenarioResult> {
  const name = 'dbus-fuzz';
  const nobody = lookupUser('nobody');
  let why = cannotRunBerthd() ?? (isRoot() ? cgroupsUsable() : 'needs root (a system-like bus, scopes, a caller as nobody)');
  if (!why && spawnSync('dbus-daemon', ['--version']).status !== 0) why = 'dbus-daemon is not installed';
  if (!why && !nobody) why = 'needs the user nobody';
  if (!why && spawnSync('setpriv', ['--version']).status !== 0) why = 'setpriv (util-linux) is not installed';
  if (!why && !fs.existsSync(CLIENT)) why = `${CLIENT} is not built`;
  if (why) return { name, figures: {}, failures: [], skipped: why };

  const seed = opts.seed ?? Date.now() % 1_000_000;
  const prefix = `sdf${process.pid % 100000}`;
  const batches = opts.short ? 10 : 60;
  const perBatch = opts.short ? 800 : 2000;
  const failures: string[] = [];
  const notes: string[] = [`seed ${seed} (repeat with --seed ${seed})`];
  const bus = await startSoakBus();
  const runtime = tempRuntime('dbusfuzz');
  const images = path.join(runtime, 'images');
  fs.mkdirSync(images);
  fs.mkdirSync(path.join(images, `${prefix}img`));
  const jobs = fs.mkdtempSync('/var/tmp/berth-soak-dbusjobs-');
  fs.chmodSync(jobs, 0o755);
  const sleepers = Array.from({ length: 24 }, () => sleeper());
  const b = await startBerthd(runtime, { args: ['--dbus=yes', '--image-dir', images], env: { DBUS_SYSTEM_BUS_ADDRESS: bus.address }, keepBytes: 1 << 20 });
  let conn: Connection | undefined;
  const totals: Record<string, number> = {};
  let calls = 0;
  let noReply = 0;
  let rawSent = 0;
  let rawDropped = 0;
  let rawPartial = 0;
  try {
    conn = await connectBus({ address: bus.address });
    await within((async () => {
      for (;;) {
        const r = await conn!.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameHasOwner', signature: 's', body: [BUS_NAME] });
        if (r.body[0]) return;
        await new Promise((res) => setTimeout(res, 50));
      }
    })(), 20_000, 'berthd to own org.freedesktop.machine1');

    // Kept machines: two over Varlink, one over D-Bus (berth makes all three scopes).
    const kept = [`${prefix}k0`, `${prefix}k1`, `${prefix}k2`];
    const v = await connect(machineSocket(runtime));
    for (const [i, k] of kept.slice(0, 2).entries()) {
      const r = await call(v, 'io.systemd.Machine.Register', { name: k, class: 'container', leader: sleepers[i]!.pid, allocateUnit: true });
      if (!('ok' in r)) throw new Error(`cannot register ${k}: ${JSON.stringify(r)}`);
    }
    await conn.call({ destination: BUS_NAME, path: MANAGER_PATH, interface: MANAGER, member: 'CreateMachine', signature: 'sayssusa(sv)', body: [kept[2]!, Buffer.alloc(0), 'soak', 'container', sleepers[2]!.pid, '', []] });
    const rootSleepers = sleepers.slice(3).map((s) => s.pid);
    const rootNames = Array.from({ length: 6 }, (_, i) => `${prefix}r${i}`);

    const machinePath = `/org/freedesktop/machine1/machine/${kept[0]!}`;
    const targets: { path: string; methods: BusMethod[] }[] = [];
    for (const p of [MANAGER_PATH, machinePath, `/org/freedesktop/machine1/image/${prefix}img`]) targets.push({ path: p, methods: await introspectMethods(conn, p) });
    const methodCount = targets.reduce((n, t) => n + t.methods.length, 0);
    if (!targets[0]!.methods.some((m) => m.name === 'CreateMachineEx')) failures.push('the Manager introspection lacks CreateMachineEx');

    const probe = async (after: string) => {
      if (b.child.exitCode !== null || b.child.signalCode !== null) throw new Error(`berthd exited ${after}: ${b.stderr().slice(-2000)}`);
      const r = await conn!.call({ destination: BUS_NAME, path: MANAGER_PATH, interface: MANAGER, member: 'GetMachine', signature: 's', body: [kept[0]!], timeoutMs: 10_000 }).catch((e) => e as Error);
      if (r instanceof Error) failures.push(`GetMachine probe ${after}: ${r.message}`);
      const list = await conn!.call({ destination: BUS_NAME, path: MANAGER_PATH, interface: MANAGER, member: 'ListMachines', timeoutMs: 10_000 });
      const listed = new Set((list.body[0] as string[][]).map((m) => m[0]));
      for (const k of kept) if (!listed.has(k)) failures.push(`${k} was lost ${after}`);
    };

    for (let i = 0; i < batches; i++) {
      const asNobody = i % 2 === 0;
      const job: FuzzJob = {
        address: bus.address,
        socketPath: path.join(bus.dir, 'system_bus_socket'),
        seed: seed * 1000 + i,
        count: perBatch,
        targets,
        names: asNobody ? [...kept, '.host', `${prefix}img`, ...rootNames] : [...rootNames, `${prefix}img`, 'nope'],
        ...(asNobody ? {} : { safe: targets.flatMap((t) => t.methods.filter((m) => ROOT_SAFE.includes(m.name)).map((m) => `${m.iface}.${m.name}`)), rootNames, sleepers: rootSleepers }),
      };
      // Root batches act only through Manager methods (their names are checked); Machine/Image objects are nobody's.
      if (!asNobody) job.targets = targets.filter((t) => t.path === MANAGER_PATH);
      const c = await runClient(asNobody ? asUser(nobody!) : [], job, jobs, i);
      if (c.uid !== (asNobody ? nobody!.uid : 0)) failures.push(`batch ${i} ran as uid ${c.uid}`);
      calls += c.calls;
      noReply += c.noReply;
      rawSent += c.raw;
      rawDropped += c.rawDropped;
      rawPartial += c.rawPartial;
      for (const [k, n] of Object.entries(c.replies)) totals[k] = (totals[k] ?? 0) + n;
      for (const [k, ex] of Object.entries(c.examples)) if (!notes.some((n) => n.startsWith(`${k}:`))) notes.push(`${k}: e.g. ${ex}`);
      if (c.noReply) failures.push(`batch ${i} (${asNobody ? 'nobody' : 'root'}): ${c.noReply} calls got no answer`);
      if (c.rawDropped !== c.raw) failures.push(`batch ${i}: the bus kept ${c.raw - c.rawDropped} senders of an invalid body`);
      if (c.replies['org.freedesktop.DBus.Error.Failed']) notes.push(`batch ${i}: generic Failed replies, e.g. ${c.examples['org.freedesktop.DBus.Error.Failed']}`);
      await probe(`after batch ${i}`);
      opts.log(`dbus-fuzz: batch ${i + 1}/${batches} as ${asNobody ? 'nobody' : 'root'}: ${c.calls} calls, ${c.raw + c.rawPartial} raw`);
    }
    v.close();
    const errors = logLines(b.stderr()).filter((l) => Number(l.level) >= 50);
    for (const e of errors.slice(0, 10)) failures.push(`berthd logged an error: ${JSON.stringify(e).slice(0, 400)}`);
    return {
      name,
      figures: { methods: methodCount, calls, 'raw-invalid': rawSent, 'raw-dropped': rawDropped, 'raw-partial': rawPartial, 'no-reply': noReply, 'error-logs': errors.length, ok: totals.ok ?? 0, 'invalid-args': totals['org.freedesktop.DBus.Error.InvalidArgs'] ?? 0, denied: totals['org.freedesktop.DBus.Error.AccessDenied'] ?? 0 },
      failures,
      notes: [...notes, `replies: ${JSON.stringify(totals)}`],
    };
  } finally {
    conn?.close();
    await b.stop();
    for (const s of sleepers) s.kill('SIGKILL');
    await Promise.all(sleepers.map((s) => exited(s, 5000).catch(() => undefined)));
    removeScopes(prefix);
    // Root's fuzzed calls may have made machines under any name (CreateMachine 'self'): their scopes too.
    removeScopesMadeBy(runtime);
    await bus.stop();
    rmrf(runtime);
    rmrf(jobs);
  }
}
