// The same D-Bus calls, good and bad, to the real systemd-machined 257 and 262 and to berthd, answers compared
// after normalising pids and times. machined runs inside a private mount namespace (tmpfs over /run/systemd,
// /run/dbus and the reference tools' state dir, so neither the host nor another user of the tools sees it);
// berthd runs on its own private bus. busctl (Debian's) asks both. Against 262 berth answers exactly as 262
// (DIFFERS_262 names each deliberate exception and why); against 257 it answers as 257 except where 262 changed
// the answer, and there it gives 262's (FOLLOWS_262, checked against 262 itself). The image calls act on a pool
// made the same way on both sides in /var/lib/machines, so they run only where that is a tmpfs of this test's
// own; machined gets a fresh tmpfs there in its namespace.
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFERENCE_SCRIPT, referenceTool, type ReferenceSuite } from '../../helpers/reference.js';
import { run } from '../../helpers/run.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from './fixture.js';
import { detectCgroupLayout, machineScopeDirs } from '../../../src/domain/cgroup-paths.js';

/** Why machined of a suite cannot run here ('' when it can). */
async function whyNot(suite: ReferenceSuite): Promise<string> {
  const reference = process.getuid?.() === 0 && existsSync(BERTHD) ? await referenceTool('systemd-machined', { suite }) : 'needs root and a build';
  const why = typeof reference === 'string' ? reference : '';
  if (why) console.warn(`skipping the D-Bus differential test against ${suite}: ${why}`);
  return why;
}
const why257 = await whyNot('trixie');
const why262 = await whyNot('sid');

const NAME = `df${process.pid % 100000}`;
const M = 'org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager';
const P = `org.freedesktop.machine1 /org/freedesktop/machine1/machine/${NAME}`;
/** One busctl call per line; @LEADER@ is each side's leader. */
const CALLS = [
  `call --json=short ${M} ListMachines`,
  `call ${M} GetMachine s ${NAME}`,
  `call ${M} GetMachine s nope`,
  `call ${M} GetMachine s a/b`,
  `call ${M} GetMachine u 5`,
  `call ${M} GetMachineByPID u 1`,
  `call ${M} GetMachineByPID u @LEADER@`,
  `call ${M} TerminateMachine s nope`,
  `call ${M} KillMachine ssi ${NAME} bogus 15`,
  `call ${M} KillMachine ssi ${NAME} all 999`,
  `call ${M} GetMachineAddresses s ${NAME}`,
  `call ${M} GetMachineUIDShift s ${NAME}`,
  `call ${M} GetMachineUIDShift s .host`,
  `call ${M} GetMachineSSHInfo s ${NAME}`,
  `call ${M} MapToMachineUser u 5`,
  `call ${M} MapToMachineUser u 700000`,
  `call ${M} MapFromMachineUser su ${NAME} 0`,
  `call ${M} RegisterMachine sayssus ${NAME} 0 test container @LEADER@ /`,
  `call ${M} RegisterMachine sayssus a_b 0 test container @LEADER@ /`,
  `call ${M} RegisterMachine sayssus x2 0 test foo @LEADER@ /`,
  `call ${M} RegisterMachine sayssus x2 0 test container @LEADER@ rel`,
  `call ${M} Nope`,
  `get-property ${P} org.freedesktop.machine1.Machine Name Service Unit Class RootDirectory NetworkInterfaces VSockCID SSHAddress State`,
  `get-property ${P} org.freedesktop.machine1.Machine Nope`,
  `get-property org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager PoolPath PoolUsage PoolLimit`,
  `call org.freedesktop.machine1 /org/freedesktop/machine1/machine/nope org.freedesktop.machine1.Machine Terminate`,
  // As an unprivileged user (berth-test): looking is allowed, acting is not.
  `~call ${M} GetMachine s ${NAME}`,
  `~call ${M} TerminateMachine s ${NAME}`,
  `~call ${M} KillMachine ssi ${NAME} all 0`,
  `~call ${M} OpenMachinePTY s ${NAME}`,
  `~call ${M} OpenMachineShell sssasas ${NAME} root /bin/sh 0 0`,
  `~call ${M} RegisterMachine sayssus x3 0 test container @LEADER@ /`,
  `~call ${M} UnregisterMachine s ${NAME}`,
  // dbus-send prints the error names too.
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.GetMachine string:nope`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.GetMachine uint32:5`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.GetMachineByPID uint32:1`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.RegisterMachine string:${NAME} array:byte: string:t string:container uint32:@LEADER@ string:/`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.GetMachineAddresses string:${NAME}`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.GetMachineSSHInfo string:${NAME}`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.MapToMachineUser uint32:5`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.MapToMachineUser uint32:700000`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.KillMachine string:${NAME} string:bogus int32:9`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1/machine/nope org.freedesktop.machine1.Machine.Terminate`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.Nope`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.DBus.Properties.Get string:org.freedesktop.machine1.Manager string:Nope`,
  `call ${P} org.freedesktop.machine1.Machine Kill si bogus 9`,
  // Bad calls: wrong signatures, unknown objects, interfaces and properties, a read-only property, a name
  // already taken, a leader that does not exist, and the Machine object's methods as another user.
  `call ${M} ListMachines s x`,
  `call ${M} RegisterMachine sayssu x4 0 test container 1`,
  `call ${M} CreateMachine sayssus x4 0 test container @LEADER@ /`,
  `call ${P} org.freedesktop.machine1.Machine Kill ss all 9`,
  `call ${P} org.freedesktop.machine1.Machine Terminate s now`,
  `call org.freedesktop.machine1 /org/freedesktop/machine1/nope org.freedesktop.machine1.Manager ListMachines`,
  `call org.freedesktop.machine1 /org/freedesktop/machine1 org.example.Nope Foo`,
  `get-property org.freedesktop.machine1 /org/freedesktop/machine1 org.example.Nope Foo`,
  `set-property org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager PoolPath s /x`,
  `call ${M} CreateMachine sayssusa(sv) ${NAME} 0 test container @LEADER@ / 0`,
  `call ${M} RegisterMachine sayssus x5 0 test container 4194303 /`,
  `call ${M} CreateMachine sayssusa(sv) x5 0 test container 4194303 / 0`,
  `~call ${P} org.freedesktop.machine1.Machine Terminate`,
  `~call ${P} org.freedesktop.machine1.Machine Kill si all 18`,
  `~call ${M} OpenMachineRootDirectory s ${NAME}`,
  `~call ${M} OpenMachineLogin s ${NAME}`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.ListMachines string:x`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.DBus.Properties.GetAll string:org.example.Nope`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1/nope org.freedesktop.machine1.Manager.ListMachines`,
  // Copies and bind mounts (berth's own files: a machine in the host's namespaces, so nothing is written).
  `call ${M} CopyToMachine sss ${NAME} /nonexistent-berth /tmp/x`,
  `call ${M} CopyToMachine sss ${NAME} /etc/hostname /nonexistent-berth/x`,
  `call ${M} CopyToMachine sss ${NAME} /etc/hostname /etc`,
  `call ${M} CopyFromMachine sss ${NAME} /nonexistent-berth /tmp/x`,
  `call ${M} CopyFromMachine sss ${NAME} /etc/hostname /`,
  `call ${M} CopyToMachine sss ${NAME} rel /tmp/x`,
  `call ${M} CopyToMachine sss ${NAME} /etc/hostname rel`,
  `call ${M} CopyToMachineWithFlags ssst ${NAME} /etc/hostname /tmp/x 2`,
  `call ${M} CopyToMachine sss nope /etc/hostname /tmp/x`,
  `call ${M} CopyToMachine sss .host /etc/hostname /tmp/x`,
  `call ${M} BindMountMachine sssbb ${NAME} /etc /mnt false false`,
  `call ${M} BindMountMachine sssbb ${NAME} rel /mnt false false`,
  `call ${M} BindMountMachine sssbb .host /etc /mnt false false`,
  `call ${P} org.freedesktop.machine1.Machine CopyTo ss /nonexistent-berth /tmp/x`,
  `call org.freedesktop.machine1 /org/freedesktop/machine1/machine/nope org.freedesktop.machine1.Machine CopyTo ss /etc/hostname /tmp/x`,
  `~call ${M} CopyToMachine sss ${NAME} /etc/hostname /tmp/x`,
  `~call ${M} BindMountMachine sssbb ${NAME} /etc /mnt false false`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.CopyToMachine string:${NAME} string:/nonexistent-berth string:/tmp/x`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager.BindMountMachine string:${NAME} string:/etc string:/mnt boolean:false boolean:false`,
];

/**
 * Calls whose answer changed from 257 to 262; berth gives 262's (measured against machined 262: paths must
 * be "absolute and normalized", and a path without a file name fails before the copy, naming the machine).
 */
const FOLLOWS_262: Record<string, string> = {
  [`call ${M} CopyFromMachine sss ${NAME} /etc/hostname /`]: `Call failed: Failed to copy from/to machine '${NAME}': Cannot assign requested address\n[exit 1]\n`,
  [`call ${M} CopyToMachine sss ${NAME} rel /tmp/x`]: 'Call failed: Source path must be absolute and normalized.\n[exit 1]\n',
  [`call ${M} CopyToMachine sss ${NAME} /etc/hostname rel`]: 'Call failed: Destination path must be absolute and normalized.\n[exit 1]\n',
};
const I = 'org.freedesktop.machine1 /org/freedesktop/machine1/image';
const IMG = 'org.freedesktop.machine1.Image';
const PROPS = 'Name Path Type ReadOnly Usage Limit UsageExclusive LimitExclusive';
const DS = '! --dest=org.freedesktop.machine1 /org/freedesktop/machine1 org.freedesktop.machine1.Manager';
/** The same pool on both sides (run as root in /var/lib/machines, a tmpfs of its own). */
const IMAGE_SETUP = `
cd /var/lib/machines && find . -mindepth 1 -maxdepth 1 -exec chattr -i {} + 2>/dev/null; find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p alpha/etc beta .hid
echo alphahost >alpha/etc/hostname
echo 0123456789abcdef0123456789abcdef >alpha/etc/machine-id
printf 'ID=test\\nNAME="Test OS"\\n' >alpha/etc/os-release
truncate -s 1M disk.raw
cd /
`;
/** Image calls, good and bad, in an order whose effects both sides share. */
const IMAGE_CALLS = [
  `call --json=short ${M} ListImages`,
  ...['alpha', 'nope', 'a/b', '.host'].map((n) => `call ${M} GetImage s ${n}`),
  ...['alpha', 'beta', 'a/b', 'nope'].map((n) => `call ${M} GetImageHostname s ${n}`),
  `call ${M} GetImageMachineID s alpha`,
  `call ${M} GetImageMachineID s beta`,
  `call ${M} GetImageOSRelease s alpha`,
  `call ${M} GetImageMachineInfo s alpha`,
  `get-property ${I}/alpha ${IMG} ${PROPS}`,
  `get-property ${I}/disk ${IMG} ${PROPS}`,
  `get-property ${I}/nope ${IMG} Name`,
  `call ${I}/nope ${IMG} GetHostname`,
  `call ${M} SetPoolLimit t 1000000`,
  `call ${M} SetImageLimit st alpha 1000000`,
  `call ${M} SetImageLimit st .host 1000000`,
  `call ${M} MarkImageReadOnly sb .host true`,
  `call ${M} MarkImageReadOnly sb nope true`,
  `call ${M} RenameImage ss alpha beta`,
  `call ${M} RenameImage ss alpha a/b`,
  `call ${M} RenameImage ss .host x`,
  `call ${M} RenameImage ss nope x`,
  `call ${M} CloneImage ssb alpha beta false`,
  `call ${M} CloneImage ssb nope x false`,
  `call ${M} RemoveImage s .host`,
  `call ${M} RemoveImage s a/b`,
  `call ${M} RemoveImage s nope`,
  `call ${M} CleanPool s bogus`,
  `~call ${M} GetImage s alpha`,
  `~call ${M} RemoveImage s alpha`,
  `call ${M} MarkImageReadOnly sb alpha true`,
  `get-property ${I}/alpha ${IMG} ReadOnly`,
  `call ${M} RenameImage ss alpha gamma`,
  `get-property ${I}/gamma ${IMG} ReadOnly`,
  `call ${I}/gamma ${IMG} MarkReadOnly b false`,
  `call ${I}/gamma ${IMG} Clone sb delta true`,
  `get-property ${I}/delta ${IMG} ReadOnly`,
  `call ${I}/delta ${IMG} Remove`,
  `call ${I}/gamma ${IMG} Rename s alpha`,
  `call ${M} MarkImageReadOnly sb disk true`,
  `get-property ${I}/disk ${IMG} ReadOnly`,
  `call --json=short ${M} CleanPool s hidden`,
  `${DS}.GetImage string:nope`,
  `${DS}.GetImageHostname string:a/b`,
  `${DS}.SetPoolLimit uint64:1000`,
  `${DS}.SetImageLimit string:alpha uint64:1000`,
  `${DS}.RenameImage string:alpha string:beta`,
  `${DS}.RemoveImage string:.host`,
  `${DS}.CleanPool string:bogus`,
  `! --dest=org.freedesktop.machine1 /org/freedesktop/machine1/image/nope org.freedesktop.machine1.Image.GetHostname`,
  `call --json=short ${M} CleanPool s all`,
  // What is left (the same call as the first, told apart by a timeout that changes nothing).
  `call --timeout=30 --json=short ${M} ListImages`,
];

/** /var/lib/machines is a tmpfs of this mount namespace (scripts/test-namespace.sh, as npm test runs), so the image calls touch nothing real. */
const privatePool = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === '/var/lib/machines' && l.includes(' - tmpfs '));

/** Runs every call with `busctl ARGS`, printing a header, the output and the exit status of each. */
const LOOP = `
while IFS= read -r line; do
  echo "=== $line"
  line=\${line//@LEADER@/$LEADER}
  if [[ $line == '~'* ]]; then
    setpriv --reuid=berth-test --regid=berth-test --clear-groups busctl --no-pager $BUSCTL_ARGS \${line:1} 2>&1 || echo "[exit $?]"
  elif [[ $line == '!'* ]]; then
    dbus-send $DBUS_SEND_ARGS --print-reply \${line:1} 2>&1 || echo "[exit $?]"
  else
    busctl --no-pager $BUSCTL_ARGS $line 2>&1 || echo "[exit $?]"
  fi
done <"$CALLS"
`;

/**
 * Calls where berth deliberately answers otherwise than machined 262, each with the reason (the answer both
 * give is then not compared; every other call must be the same byte for byte after normalising). None today:
 * the one deliberate difference, AccessDenied where machined asks for polkit's interactive authentication,
 * is normalised in `normalise` so that those calls are still compared (berth must refuse them).
 */
const DIFFERS_262: Record<string, string> = {};

/** The reference tools' state folder of a suite (reference-tools.sh: a folder of its own per suite but trixie's). */
const stateDir = (suite: ReferenceSuite): string => (suite === 'trixie' ? '/var/tmp/berth-reference/state' : `/var/tmp/berth-reference-${suite}/state`);

const SUITES: { suite: ReferenceSuite; version: string; why: string }[] = [
  { suite: 'trixie', version: '257', why: why257 },
  { suite: 'sid', version: '262', why: why262 },
];

for (const { suite, version, why } of SUITES) describe.skipIf(!!why)(`D-Bus differential: berthd and systemd-machined ${version}`, () => {
  const is262 = version === '262';
  /** The environment reference-tools.sh runs in for this suite (its own folder unless trixie). */
  const env: NodeJS.ProcessEnv = { ...process.env, BERTH_REFERENCE_SUITE: suite };
  if (suite !== 'trixie') delete env.BERTH_REFERENCE_ROOT;

  let t: BerthdOnBus;
  let leader: ChildProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/berth-dbusdiff-');
    writeFileSync(join(dir, 'calls'), CALLS.join('\n') + '\n');
    writeFileSync(join(dir, 'image-calls'), IMAGE_CALLS.join('\n') + '\n');
    writeFileSync(join(dir, 'loop.sh'), LOOP);
    t = await berthdOnBus('dbusdiff');
    leader = await t.register(NAME, { rootDirectory: '/', service: 'test' }, `machine-${NAME}.scope`);
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    // The reference tools' `scope` put machined's leader into machine.slice/machine-NAME.scope: cgroups are
    // not private to the mount namespace, so the emptied scope stays on the host unless removed here.
    for (const d of machineScopeDirs(NAME, detectCgroupLayout().hierarchies)) {
      try {
        rmdirSync(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') console.warn(`cannot remove ${d}: ${(e as Error).message}`);
      }
    }
  });

  async function againstMachined(calls = 'calls', setup = ''): Promise<string> {
    const script = `
set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/dbus
mkdir -p ${stateDir(suite)} && mount -t tmpfs tmpfs ${stateDir(suite)}
mkdir -p /run/systemd/system
mkdir -p /var/lib/machines && mount -t tmpfs tmpfs /var/lib/machines
${setup}
bash ${REFERENCE_SCRIPT} machined start >/dev/null 2>&1
sleep 3600 & L=$!
bash ${REFERENCE_SCRIPT} scope ${NAME} $L >/dev/null
bash ${REFERENCE_SCRIPT} run varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register "{\\"name\\":\\"${NAME}\\",\\"class\\":\\"container\\",\\"leader\\":$L,\\"rootDirectory\\":\\"/\\",\\"service\\":\\"test\\"}" >/dev/null
LEADER=$L BUSCTL_ARGS= DBUS_SEND_ARGS=--system CALLS=${join(dir, calls)} bash ${join(dir, 'loop.sh')} || true
kill $L
wait $L 2>/dev/null || true
bash ${REFERENCE_SCRIPT} machined stop >/dev/null 2>&1 || true
`;
    const r = await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', script], { timeoutMs: 120_000, env });
    return r.stdout;
  }

  async function againstBerthd(calls = 'calls', setup = ''): Promise<string> {
    const r = await run(['bash', '-c', `${setup}\nbash ${join(dir, 'loop.sh')}`], {
      env: { ...process.env, LEADER: String(leader.pid), BUSCTL_ARGS: `--address=${t.bus.address}`, DBUS_SEND_ARGS: `--bus=${t.bus.address}`, CALLS: join(dir, calls) },
      timeoutMs: 120_000,
    });
    return r.stdout;
  }

  /** Per call: pids and times replaced, list entries sorted (machined lists in hash order). */
  function normalise(out: string): Map<string, string> {
    const calls = new Map<string, string>();
    for (const block of out.split(/^=== /m).slice(1)) {
      const nl = block.indexOf('\n');
      let text = block.slice(nl + 1);
      text = text.replace(/"data":\[\[(.*)\]\]/, (_m, inner: string) => `"data":[[${inner.split('],[').map((e) => e.replace(/^\[|\]$/g, '')).sort().join('],[')}]]`);
      // busctl 252 allows interactive authorization; machined, finding no polkit, then answers "Interactive
      // authentication required" (257) or "Access denied as the requested operation requires interactive
      // authentication. …" (262) to an unprivileged caller. berth has no polkit and never will ask: it refuses
      // with a plain AccessDenied, the one deliberate difference from both versions.
      text = text.replace('Interactive authentication required.', 'Access denied');
      text = text.replace(/Access denied as the requested operation requires interactive authentication\.[^\n]*/, 'Access denied');
      text = text.replace(/\bPID \d+\b/g, 'PID N').replace(/\bu \d{3,}\b/g, 'u N');
      // Image creation times (µs since the epoch) differ between the two pools.
      text = text.replace(/\b1\d{15}\b/g, 'TIME');
      // 262 reports the host's and the hidden images read-only, 257 writable; berth follows 262.
      text = text.replace(/"(\.host|\.hid)","directory",true/g, '"$1","directory",false');
      calls.set(block.slice(0, nl), text);
    }
    return calls;
  }

  /** Every call with both answers, for BERTH_DEBUG_DIFF=1 runs. */
  function debugDump(theirs: Map<string, string>, ours: Map<string, string>): string {
    return [...theirs].filter(([c, a]) => process.env.BERTH_DEBUG_DIFF === 'all' || ours.get(c) !== a).map(([c, a]) => `${c}\n  machined ${version}: ${a}  berthd:   ${ours.get(c)}`).join('\n');
  }

  it(`answers every call as machined ${version} does`, async () => {
    const theirs = normalise(await againstMachined());
    const ours = normalise(await againstBerthd());
    expect(theirs.size).toBe(CALLS.length);
    // Both sides really answered (not two empty outputs).
    expect(theirs.get(`call ${M} GetMachine s nope`)).toContain("No machine 'nope' known");
    expect(theirs.get(`call --json=short ${M} ListMachines`)).toContain(`"${NAME}","container","test"`);
    expect(theirs.get(`~call ${M} GetMachine s ${NAME}`)).toContain('o "/org/freedesktop/machine1/machine/');
    expect(theirs.get(`~call ${M} TerminateMachine s ${NAME}`)).toContain('Access denied');
    if (process.env.BERTH_DEBUG_DIFF) console.log(debugDump(theirs, ours));
    for (const [call, answer] of Object.entries(FOLLOWS_262)) {
      expect(ours.get(call), call).toBe(answer);
      // What berth follows is really 262's answer (and, against 257, really a change).
      if (is262) expect(theirs.get(call), call).toBe(answer);
      else expect(theirs.get(call), call).not.toBe(answer);
    }
    const exempt = is262 ? DIFFERS_262 : FOLLOWS_262;
    for (const call of Object.keys(DIFFERS_262)) expect(CALLS, call).toContain(call);
    const differ = [...theirs].filter(([call, answer]) => ours.get(call) !== answer && !(call in exempt)).map(([call, answer]) => ({ call, machined: answer, berthd: ours.get(call) }));
    expect(differ).toEqual([]);
  }, 180_000);

  it(`answers every image call as machined ${version} does`, async (ctx) => {
    if (!privatePool) ctx.skip('/var/lib/machines is not a private tmpfs: npm test runs the tests with one (scripts/test-namespace.sh)');
    const theirs = normalise(await againstMachined('image-calls', IMAGE_SETUP));
    const ours = normalise(await againstBerthd('image-calls', IMAGE_SETUP));
    expect(theirs.size).toBe(IMAGE_CALLS.length);
    expect(theirs.get(`call ${M} GetImageHostname s alpha`)).toBe('s "alphahost"\n');
    expect(theirs.get(`call ${M} RenameImage ss alpha beta`)).toContain('File exists');
    expect(theirs.get(`call --json=short ${M} CleanPool s all`)).toContain('"alpha"');
    if (process.env.BERTH_DEBUG_DIFF) console.log(debugDump(theirs, ours));
    const differ = [...theirs].filter(([call, answer]) => ours.get(call) !== answer && !(is262 && call in DIFFERS_262)).map(([call, answer]) => ({ call, machined: answer, berthd: ours.get(call) }));
    expect(differ).toEqual([]);
  }, 180_000);
});
