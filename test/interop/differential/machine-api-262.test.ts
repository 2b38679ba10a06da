// io.systemd.Machine, differential against the real systemd-machined 262 (Debian sid build, through
// scripts/reference-tools.sh with BERTH_REFERENCE_SUITE=sid): the same raw calls to 262 and to berthd,
// replies compared after normalizing (fixture.ts, compare.ts), for what 262 added or changed: Register's
// controlAddress and deprecated supervisor fields, vmspawn 262's registration, List's supervisor, subgroup,
// controlAddress and UID, Kill's whom (supervisor), the state file lines 262 writes, and the file methods
// (CopyTo, CopyFrom, BindMount, OpenRootDirectory) with their bad input.
//
// machined 262 serves the same /run/systemd/machine socket as 257, so this file runs where no other
// machined does, e.g. in a mount namespace of its own:
//   unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/dbus &&
//     mount -t tmpfs tmpfs /run/dbus && npx vitest run test/interop/differential/machine-api-262.test.ts'
// (it skips, saying so, when a 257 answers there).
//
// Answers that changed from 257 to 262, which berth now gives (observed on 262.1-1):
//   - Kill: `whom` "" and null are invalid (257: all); `whom` is refused before any other parameter,
//     wherever it stands and whatever the machine (257: after the lookup); `supervisor` signals the process
//     that registered the machine, ESRCH once it is gone.
//   - Register: `class` is an enum and refused before the other keys; `controlAddress` is an absolute,
//     normalized socket path (no `unix:` address); `supervisor` takes null, strings and integers and is
//     dropped; `supervisorProcessId` takes a ProcessId-shaped object (pid a string or an integer) or null
//     and is dropped.
//   - List: `supervisor` (the registering process, as a ProcessId), `subgroup` (leader below its unit's
//     cgroup), `controlAddress`, and `UID` last, after the metadata.
//   - State file: UID=0 for root, SUPERVISOR and SUPERVISOR_PIDFDID, VSOCK_CID=4294967295 without a CID,
//     CONTROL_ADDRESS (double-quoted when it holds shell-special characters).
// Differences kept on purpose (each a Deliberate below): Kill whom all and absent (262, without systemd as
// PID 1, fails to KillUnit; berth signals the cgroup itself, as against 257); a machine whose leader ended
// (262 keeps it here, berth drops it, as against 257); NETIF in the state file (262 writes `NETIF=" 1 3"`,
// quoted with a leading blank; berth keeps `NETIF=1 3`, which both versions' readers take); Kill with a bad
// whom and no signal (berth's Varlink layer reports the missing signal first; 262 the whom). Not io.systemd.Machine but the Varlink layer: 262 sends no `parameters` for an error without any
// and adds `origin`/`errnoName` to io.systemd.System; compare.ts compares both sides in 257's form.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { asVarlink257, Comparison, err, invalid, type Step } from './compare.js';
import { Pair, stateFile, useFixture, type Leader } from './fixture.js';
import { waitFor } from '../../helpers/wait.js';

let pair: Pair;
const leaders: Record<string, Leader> = {};
const pids = new Map<number, string>();
let N: Record<string, string> = {};
const ok = { parameters: {} };
const NO_SUCH_MACHINE = err('io.systemd.Machine.NoSuchMachine');
const EIO = 5;
const ENOTCONN = 107;
const ESRCH = 3;
/** 262, like 257, asks the service manager to signal a unit and fails where systemd is not PID 1. */
const noServiceManager = (r: { error?: string; parameters?: { errno?: number } }[]) =>
  r.length === 1 && r[0]!.error === 'io.systemd.System' && [EIO, ENOTCONN].includes(r[0]!.parameters?.errno ?? -1);

const { staticSkip, need } = useFixture(
  'n',
  'io.systemd.Machine (262)',
  {
    setup: async (fx) => {
      const P = fx.prefix;
      N = { a: `${P}-a`, vm: `${P}-vm`, sub: `${P}-sub`, svc: `${P}-svc`, k: `${P}-k`, gone: `${P}-gone`, d: `${P}-d`, nope: `${P}-nope`, cp: `${P}-cp`, cpu: `${P}-cpu` };
      for (const key of ['a', 'vm', 'k', 'gone', 'd', 'cp']) leaders[key] = await fx.plainLeader(N[key]!);
      leaders.cpu = await fx.usernsLeader(N.cpu!, 0x6c0000);
      leaders.sub = await fx.processIn(`machine.slice/machine-${N.sub}.scope/payload`);
      leaders.svc = await fx.processIn(`system.slice/${N.svc}.service/a/b`);
      for (const [k, l] of Object.entries(leaders)) pids.set(l.pid, `<${k}>`);
      pids.set(process.pid, '<this test>');
      pair = await Pair.open(fx, 'machineSocket');
    },
    teardown: () => pair?.close(),
  },
  { suite: 'sid' },
);

const call = (method: string, parameters: object, more = false) => ({ method: `io.systemd.Machine.${method}`, parameters, ...(more ? { more } : {}) });
const raw = (method: string, parameters: string) => `{"method":"io.systemd.Machine.${method}","parameters":${parameters}}`;

/**
 * Registers `name` from a short-lived process of its own (node, one message), which then exits: its
 * supervisor is gone by the time the test asks for it.
 */
async function registerFromChild(socket: string, params: object): Promise<string> {
  const script = `const c=require('net').connect(process.argv[1]);c.on('connect',()=>c.write(process.argv[2]+'\\0'));let b='';c.on('data',d=>{b+=d;if(b.endsWith('\\0')){process.stdout.write(b.slice(0,-1));c.end();}});`;
  const child = spawn(process.execPath, ['-e', script, socket, JSON.stringify(call('Register', params))], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('close', r));
  return out;
}

describe.skipIf(!!staticSkip)('io.systemd.Machine: 262 and berth answer alike', () => {
  it('registers with 262\'s fields, as vmspawn 262 does, and lists supervisor, subgroup, controlAddress and UID', async (ctx) => {
    const f = need(ctx);
    const L = leaders;
    const c = new Comparison(f, pair, pids);
    await c.steps([
      {
        label: 'Register with every parameter, 262\'s included',
        send: call('Register', {
          name: N.a, id: '0123456789abcdef0123456789abcdef', service: 'berth-differential', class: 'container', leader: L.a!.pid,
          leaderProcessId: { pid: L.a!.pid }, supervisor: 12345, supervisorProcessId: { pid: 1 }, rootDirectory: '/tmp', ifIndices: [1, 3],
          vSockCid: 42, sshAddress: 'vsock/42', sshPrivateKeyPath: '/etc/ssh/id_test', controlAddress: '/run/berth-test/a.sock',
          allocateUnit: false, allowInteractiveAuthentication: false,
        }),
      },
      {
        // systemd-vmspawn 262's call (measured: these keys, this order), its unit already made by the caller.
        label: 'Register as systemd-vmspawn 262 does',
        send: call('Register', {
          name: N.vm, service: 'systemd-vmspawn', class: 'vm', rootDirectory: '/var/lib/machines/x', sshPrivateKeyPath: '/run/vmspawn/key',
          controlAddress: '/run/systemd/vmspawn/x/control', leaderProcessId: { pid: L.vm!.pid }, allocateUnit: false,
        }),
      },
      { label: 'Register a leader in a sub-cgroup of its scope', send: call('Register', { name: N.sub, class: 'container', leader: L.sub!.pid }) },
      { label: 'Register a leader two levels below a service', send: call('Register', { name: N.svc, class: 'container', leader: L.svc!.pid }) },
      { label: 'Register k', send: call('Register', { name: N.k, class: 'container', leader: L.k!.pid }) },
      ...[N.a, N.vm, N.sub, N.svc, '.host'].map((name) => ({ label: `List ${name}`, send: call('List', { name }) })),
      { label: 'List by pid, in the sub-cgroup', send: call('List', { pid: { pid: L.sub!.pid } }) },
      { label: 'List a, acquireMetadata graceful (UID after the metadata)', send: call('List', { name: N.a, acquireMetadata: 'graceful' }) },
      { label: 'List .host, acquireMetadata graceful', send: call('List', { name: '.host', acquireMetadata: 'graceful' }) },
      { label: 'List vm, acquireMetadata yes', send: call('List', { name: N.vm, acquireMetadata: 'yes' }) },
      { label: 'List unknown', send: call('List', { name: N.nope }) },
    ]);
    // The streamed List: our entries (and .host) as both stream them.
    const ours = new Set([...Object.values(N), '.host']);
    const text = JSON.stringify(call('List', {}, true));
    const [r, b] = await Promise.all([Pair.replies(pair.real, text), Pair.replies(pair.berth, text)]);
    const pick = (rs: typeof r) => rs.map((x) => x.parameters!).filter((p) => ours.has(p.name as string)).sort((x, y) => String(x.name).localeCompare(String(y.name)));
    c.values('List --more: our machines and .host', pick(r), pick(b));

    for (const name of [N.a, N.vm, N.sub, N.svc, N.k] as string[]) {
      const theirs = stateFile(f.real.stateDir, name);
      c.values(`state file of ${name}`, theirs, stateFile(f.berth.stateDir, name), {
        why: '262 writes NETIF quoted with a leading blank (NETIF=" 1 3"); berth writes NETIF=1 3, which both read',
        berth: (x: unknown[]) => JSON.stringify(x[0]) === JSON.stringify(theirs.map((l) => l.replace(/^NETIF=" (.*)"$/, 'NETIF=$1'))),
        real: () => true,
      });
    }
    expect(c.report()).toBe('');
    expect(c.outcomes.length).toBeGreaterThan(15);
  });

  it('answers bad 262 fields as 262 does and leaves nothing behind', async (ctx) => {
    const f = need(ctx);
    const d = leaders.d!.pid;
    const reg = (label: string, params: Record<string, unknown>): Step => ({
      label,
      send: call('Register', { name: N.d, class: 'container', leader: d, ...params }),
      leavesNothing: true,
    });
    const c = new Comparison(f, pair, pids);
    const long = (n: number) => 'a'.repeat(n);
    await c.steps([
      ...['foo', '', 'unix:rel', 'unix:/run/x.sock', 'unix:@abstract', 'exec:/bin/true', 'tcp:1.2.3.4:5', 'a/b', './a', '/a/../b', '/a/./b', '/a//b', `/${long(300)}`, `/${'a/'.repeat(2100)}`, 5, null].map((a) =>
        reg(`controlAddress ${JSON.stringify(a).slice(0, 40)}`, { controlAddress: a, leader: 0 }),
      ),
      ...['/abs', '/a/', '/', '/a"b', '/a b', '/a\nb', '/é', `/${long(255)}`].map((a) => reg(`controlAddress ${JSON.stringify(a).slice(0, 40)} is fine (leader 0 fails)`, { controlAddress: a, leader: 0 })),
      ...[true, {}, [], 1.5, 'abc', '', null, -1, 0, '0x10'].map((v) => reg(`supervisor ${JSON.stringify(v)} (leader 0)`, { supervisor: v, leader: 0 })),
      { label: 'supervisor 9.0 (leader 0)', send: raw('Register', `{"name":"${N.d}","class":"container","supervisor":9.0,"leader":0}`), leavesNothing: true },
      { label: 'supervisor 2^64 (leader 0)', send: raw('Register', `{"name":"${N.d}","class":"container","supervisor":18446744073709551616,"leader":0}`), leavesNothing: true },
      ...[{}, { pid: null }, { pid: 1.5 }, { pid: true }, { pid: 2, foo: 1 }, { pidfdId: 5 }, 'x', [], 5, null, { pid: -1 }, { pid: 'abc' }, { pid: 2, pidfdId: 'x' }, { pid: 2, bootId: 'xyz' }, { pid: 4000000 }].map((v) =>
        reg(`supervisorProcessId ${JSON.stringify(v)} (leader 0)`, { supervisorProcessId: v, leader: 0 }),
      ),
      reg('class host', { class: 'host' }),
      reg('class host, bad controlAddress', { class: 'host', controlAddress: 'x' }),
      { label: 'bad controlAddress, then class foo: class first', send: raw('Register', `{"name":"${N.d}","controlAddress":"x","class":"foo","leader":${d}}`), leavesNothing: true },
      reg('class host, leader 0', { class: 'host', leader: 0 }),
    ]);
    expect(c.report()).toBe('');
    expect(c.outcomes.length).toBeGreaterThan(40);
  });

  it('kills as 262 does: whom first, supervisor is the registering process', async (ctx) => {
    const f = need(ctx);
    const k = N.k!;
    const kill = (label: string, params: object): Step => ({ label, send: call('Kill', params) });
    const c = new Comparison(f, pair, pids);
    await c.steps([
      kill('Kill leader SIGWINCH', { name: k, whom: 'leader', signal: 28 }),
      // This test registered k, so it is the supervisor in both; SIGWINCH does nothing to it.
      kill('Kill supervisor SIGWINCH', { name: k, whom: 'supervisor', signal: 28 }),
      { ...kill('Kill all', { name: k, whom: 'all', signal: 28 }), deliberate: { why: 'no systemd as PID 1: 262 fails to KillUnit, berth signals the cgroup', berth: ok, real: noServiceManager } },
      { ...kill('Kill, whom absent', { name: k, signal: 28 }), deliberate: { why: 'as whom all', berth: ok, real: noServiceManager } },
      ...['', null, 5, 'bogus', 'Leader', 'LEADER', 'leader ', 'Supervisor'].map((whom) => kill(`Kill whom ${JSON.stringify(whom)}`, { name: k, whom, signal: 28 })),
      kill('Kill unknown machine, bad whom', { name: N.nope, whom: 'bogus', signal: 28 }),
      kill('Kill unknown machine, whom supervisor', { name: N.nope, whom: 'supervisor', signal: 28 }),
      kill('Kill bad pid, bad whom', { pid: { pid: -1 }, whom: 'bogus', signal: 28 }),
      kill('Kill bad whom, bad pid', { whom: 'bogus', pid: { pid: -1 }, signal: 28 }),
      kill('Kill bad signal, bad whom', { signal: 0, whom: 'bogus' }),
      {
        ...kill('Kill bad whom, no signal', { whom: 'bogus' }),
        deliberate: {
          why: 'left as it is: berth\'s Varlink layer refuses a missing required parameter before the method sees any other; 262 names the bad whom',
          berth: invalid('signal'),
          real: invalid('whom'),
        },
      },
      kill('Kill bad name, bad whom', { name: 'a b', whom: 'bogus', signal: 10 }),
      kill('Kill whom leader, no signal', { whom: 'leader' }),
      kill('Kill bad name, whom leader, no signal', { name: 'a b', whom: 'leader' }),
      kill('Kill .host whom supervisor', { name: '.host', whom: 'supervisor', signal: 28 }),
      kill('Kill .host whom leader', { name: '.host', whom: 'leader', signal: 28 }),
      kill('Kill .host', { name: '.host', signal: 28 }),
      { label: 'k survived', send: call('List', { name: k }) },
    ]);
    // A supervisor that has gone: registered from a process that exits at once.
    const params = { name: N.gone, class: 'container', leader: leaders.gone!.pid };
    const [theirs, ours] = await Promise.all([registerFromChild(f.real.machineSocket, params), registerFromChild(f.berth.machineSocket, params)]);
    c.values('Register from a process that then exits', asVarlink257([JSON.parse(theirs)]), asVarlink257([JSON.parse(ours)]));
    await c.steps([
      kill('Kill the gone supervisor', { name: N.gone, whom: 'supervisor', signal: 28 }),
      kill('Kill the leader of that machine', { name: N.gone, whom: 'leader', signal: 28 }),
    ]);
    const gone = c.outcomes.at(-2)!;
    expect(gone.berth).toEqual([err('io.systemd.System', { errno: ESRCH })]);
    expect(c.report()).toBe('');
    expect(existsSync(`/proc/${leaders.k!.pid}`)).toBe(true);
  });

  it('describes io.systemd.Machine as 262 does, BindMount, CopyFrom, CopyTo and OpenRootDirectory included', async (ctx) => {
    const f = need(ctx);
    const describe = JSON.stringify({ method: 'org.varlink.service.GetInterfaceDescription', parameters: { interface: 'io.systemd.Machine' } });
    const [r, b] = await Promise.all([Pair.replies(pair.real, describe), Pair.replies(pair.berth, describe)]);
    const text = (rs: typeof r) =>
      String(rs[0]!.parameters?.description ?? '')
        .split('\n')
        .filter((l) => !/^\s*#/.test(l))
        .join('\n');
    // 262 declares its errors in another order: blocks are compared sorted.
    const notYet = (t: string) =>
      t
        .replace(/\n{3,}/g, '\n\n')
        .split('\n\n')
        .map((block) => block.trim())
        .sort();
    const c = new Comparison(f, pair, pids);
    c.values('io.systemd.Machine, blocks without comments', notYet(text(r)), notYet(text(b)));
    expect(c.report()).toBe('');
  });

  it('copies, bind mounts and opens the root directory as 262 does, good calls and bad', async (ctx) => {
    const f = need(ctx);
    // Both daemons act on the same host files at once, so the good copies replace what is there (idempotent).
    const dir = mkdtempSync('/tmp/berth-diffcp-');
    writeFileSync(`${dir}/f`, 'f\n');
    writeFileSync(`${dir}/exists`, 'old\n');
    const cp = N.cp!;
    const c = new Comparison(f, pair, pids);
    const badPath = (field: 'source' | 'destination') => ['/../x', 'rel', '/a/./b', '/a//b', ''].map((p) => ({
      label: `CopyTo ${field} ${JSON.stringify(p)}`,
      send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/x`, [field]: p }),
      leavesNothing: true,
    }));
    try {
      await c.steps([
        { label: 'Register cp', send: call('Register', { name: cp, class: 'container', leader: leaders.cp!.pid }) },
        { label: 'Register cpu (user-namespaced)', send: call('Register', { name: N.cpu, class: 'container', leader: leaders.cpu!.pid }) },
        { label: 'CopyTo onto an existing file with replace', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/exists`, replace: true }) },
        { label: 'CopyTo onto an existing file', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/exists` }) },
        { label: 'CopyTo by pid, replace', send: call('CopyTo', { pid: { pid: leaders.cp!.pid }, source: `${dir}/f`, destination: `${dir}/exists`, replace: true }) },
        { label: 'CopyTo a missing source', send: call('CopyTo', { name: cp, source: `${dir}/nope`, destination: `${dir}/x` }) },
        { label: 'CopyTo into a missing directory', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/nodir/x` }) },
        { label: 'CopyTo /', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: '/' }) },
        { label: 'CopyTo without destination (the source itself, which exists)', send: call('CopyTo', { name: cp, source: `${dir}/f` }) },
        ...badPath('source'),
        ...badPath('destination'),
        { label: 'CopyTo destination null', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: null }) },
        { label: 'CopyTo without source', send: call('CopyTo', { name: cp, destination: `${dir}/x` }) },
        { label: 'CopyTo replace "yes"', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/x`, replace: 'yes' }) },
        { label: 'CopyTo unknown key', send: call('CopyTo', { name: cp, source: `${dir}/f`, destination: `${dir}/x`, bogus: 1 }) },
        { label: 'CopyTo unknown machine', send: call('CopyTo', { name: N.nope, source: `${dir}/f`, destination: `${dir}/x` }) },
        { label: 'CopyTo without a machine', send: call('CopyTo', { source: `${dir}/f`, destination: `${dir}/x` }) },
        { label: 'CopyTo .host', send: call('CopyTo', { name: '.host', source: `${dir}/f`, destination: `${dir}/x` }) },
        { label: 'CopyFrom onto an existing file with replace', send: call('CopyFrom', { name: cp, source: `${dir}/f`, destination: `${dir}/exists`, replace: true }) },
        { label: 'CopyFrom onto an existing file', send: call('CopyFrom', { name: cp, source: `${dir}/f`, destination: `${dir}/exists` }) },
        { label: 'CopyFrom a missing source', send: call('CopyFrom', { name: cp, source: '/nonexistent-berth', destination: `${dir}/x` }) },
        { label: 'CopyFrom source with ..', send: call('CopyFrom', { name: cp, source: '/../etc/hostname', destination: `${dir}/x` }) },
        { label: 'CopyTo a user-namespaced machine, missing source', send: call('CopyTo', { name: N.cpu, source: `${dir}/nope`, destination: '/tmp/x' }) },
        { label: 'BindMount into a machine without its own mount namespace', send: call('BindMount', { name: cp, source: dir, destination: '/mnt' }) },
        { label: 'BindMount a missing source into it', send: call('BindMount', { name: cp, source: `${dir}/nope`, destination: '/mnt' }) },
        { label: 'BindMount into a user-namespaced machine', send: call('BindMount', { name: N.cpu, source: dir, destination: '/mnt', mkdir: true }) },
        { label: 'BindMount relative source', send: call('BindMount', { name: cp, source: 'rel', destination: '/mnt' }) },
        { label: 'BindMount destination with ..', send: call('BindMount', { name: cp, source: dir, destination: '/../mnt' }) },
        { label: 'BindMount readOnly "x"', send: call('BindMount', { name: cp, source: dir, readOnly: 'x' }) },
        { label: 'BindMount mkdir 1', send: call('BindMount', { name: cp, source: dir, mkdir: 1 }) },
        { label: 'BindMount unknown machine', send: call('BindMount', { name: N.nope, source: dir }) },
        { label: 'BindMount .host', send: call('BindMount', { name: '.host', source: dir }) },
        { label: 'BindMount without source', send: call('BindMount', { name: cp }) },
        { label: 'OpenRootDirectory', send: call('OpenRootDirectory', { name: cp }) },
        { label: 'OpenRootDirectory .host', send: call('OpenRootDirectory', { name: '.host' }) },
        { label: 'OpenRootDirectory unknown', send: call('OpenRootDirectory', { name: N.nope }) },
        { label: 'OpenRootDirectory unknown key', send: call('OpenRootDirectory', { name: cp, bogus: 1 }) },
      ]);
      const seen = (label: string) => c.outcomes.find((o) => o.label === label)?.berth;
      expect(seen('CopyTo /')).toEqual([err('io.systemd.System', { errno: 99 })]);
      expect(seen('CopyTo onto an existing file')).toEqual([err('io.systemd.System', { errno: 17 })]);
      expect(seen('BindMount into a machine without its own mount namespace')).toEqual([err('io.systemd.System', { errno: 22 })]);
      expect(seen('OpenRootDirectory')).toEqual([{ parameters: { fileDescriptor: 0 } }]);
      expect(readFileSync(`${dir}/exists`, 'utf8')).toBe('f\n');
      expect(existsSync(`${dir}/x`)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(c.report()).toBe('');
    expect(c.outcomes.length).toBeGreaterThan(35);
  });

  it('unregisters, and forgets a machine whose leader ended', async (ctx) => {
    const f = need(ctx);
    const c = new Comparison(f, pair, pids);
    await c.steps([
      { label: 'Unregister a', send: call('Unregister', { name: N.a }) },
      { label: 'Unregister vm by pid', send: call('Unregister', { pid: { pid: leaders.vm!.pid } }) },
      { label: 'Unregister unknown', send: call('Unregister', { name: N.nope }) },
    ]);
    await f.killLeader(leaders.gone!);
    await waitFor(async () => (await Pair.replies(pair.berth, JSON.stringify(call('List', { name: N.gone }))))[0]!.error, 'berth to drop the machine', { timeoutMs: 1500 });
    await c.steps([
      {
        label: 'List the machine whose leader ended',
        send: call('List', { name: N.gone }),
        deliberate: {
          why: 'without systemd as PID 1, 262 (as 257) keeps a machine whose leader ended (its GC waits for a unit stop); berth drops it',
          berth: NO_SUCH_MACHINE,
          real: (r: { parameters?: { name?: string } }[]) => r.length === 1 && r[0]!.parameters?.name === N.gone,
        },
      },
      // What systemd-nspawn 262 sends when its container has ended.
      { label: 'Unregister it', send: call('Unregister', { name: N.gone }), deliberate: { why: 'berth dropped it already', berth: NO_SUCH_MACHINE, real: ok } },
    ]);
    for (const name of [N.a!, N.vm!, N.gone!]) expect(f.ourStateFiles(f.berth).filter((x) => x === name)).toEqual([]);
    expect(c.report()).toBe('');
  });
});

