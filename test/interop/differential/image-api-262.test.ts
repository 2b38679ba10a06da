// io.systemd.MachineImage, differential against the real systemd-machined 262: the same calls, good and bad,
// through varlinkctl 262 to machined 262 and to berthd, each on the same fresh pool in /var/lib/machines,
// answers compared after masking times and the origin/errnoName that 262's Varlink layer adds to
// io.systemd.System (compare.ts's rule). machined runs in a mount namespace of its own (tmpfs over /run/systemd,
// /run/dbus, /var/lib/machines and its state dir); berthd runs on a private bus with its own runtime dir and
// the test's /var/lib/machines, so this file runs only where that is a private tmpfs (npm test gives it one: scripts/test-namespace.sh).
//
// Answers of 262 berth gives (observed on 262.1-1): hidden images are read-only and refuse to change that
// (EROFS); a new name `.host` is busy (EBUSY); SetPoolLimit takes a decimal string, refuses a negative or
// fractional limit (InvalidParameter), refuses an unprivileged caller, and answers NotSupported where the
// pool is not btrfs; CleanPool asks for `more` before it looks at `mode`, streams `{name, usageExclusive?}`
// per removed image and ends in NoSuchImage when nothing was removed.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFERENCE_SCRIPT, referenceTool } from '../../helpers/reference.js';
import { run } from '../../helpers/run.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../../integration/dbus-api/fixture.js';

const privatePool = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === '/var/lib/machines' && l.includes(' - tmpfs '));
const reference = process.getuid?.() === 0 ? await referenceTool('systemd-machined', { suite: 'sid' }) : 'needs root';
const why =
  typeof reference === 'string' ? reference
  : !existsSync(BERTHD) ? 'not built (npm run build)'
  : !privatePool ? '/var/lib/machines is not a private tmpfs: npm test runs the tests with one (scripts/test-namespace.sh)'
  : '';
if (why) console.warn(`skipping the MachineImage differential against 262: ${why}`);

const SETUP = `
cd /var/lib/machines && find . -mindepth 1 -maxdepth 1 -exec chattr -i {} + 2>/dev/null; find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p alpha/etc beta .hid dir.raw
echo alphahost >alpha/etc/hostname
echo 0123456789abcdef0123456789abcdef >alpha/etc/machine-id
printf 'ID=test\\nNAME="Test OS"\\n' >alpha/etc/os-release
printf 'PRETTY_HOSTNAME=Alpha\\n' >alpha/etc/machine-info
truncate -s 1M disk.raw
cd /
`;

/** One call per line: [more|user] METHOD PARAMETERS. */
const CALLS = [
  'more List {}',
  'List {}',
  'List {"name":"alpha"}',
  'List {"name":"disk"}',
  'List {"name":".hid"}',
  'List {"name":".host"}',
  'List {"name":"dir.raw"}',
  'List {"name":"dir"}',
  'List {"name":"a/b"}',
  'List {"name":"nope"}',
  'List {"name":"alpha","acquireMetadata":"yes"}',
  'List {"name":"beta","acquireMetadata":"graceful"}',
  'Update {"name":"alpha","limit":1000000}',
  'Update {"name":"alpha","newName":"beta"}',
  'Update {"name":"alpha","newName":"a/b"}',
  'Update {"name":"alpha","newName":".host"}',
  'Update {"name":".hid","readOnly":false}',
  'Update {"name":"nope","readOnly":true}',
  'Update {"name":"alpha","readOnly":true}',
  'List {"name":"alpha"}',
  'Update {"name":"alpha","newName":"gamma"}',
  'List {"name":"gamma"}',
  'Update {"name":"gamma","readOnly":false}',
  'Clone {"name":"gamma","newName":"delta","readOnly":true}',
  'List {"name":"delta","acquireMetadata":"yes"}',
  'Remove {"name":"delta"}',
  'Clone {"name":"gamma","newName":"beta"}',
  'Clone {"name":"nope","newName":"x"}',
  'Clone {"name":"gamma","newName":".host"}',
  'Clone {"name":"gamma","newName":"a/b"}',
  'Update {"name":"disk","readOnly":true}',
  'List {"name":"disk"}',
  'Update {"name":"disk","newName":"disk2"}',
  'List {"name":"disk2"}',
  'Remove {"name":".host"}',
  'Remove {"name":"nope"}',
  'Remove {"name":"a/b"}',
  'SetPoolLimit {"limit":1000000}',
  'SetPoolLimit {"limit":-1}',
  'SetPoolLimit {"limit":"12"}',
  'SetPoolLimit {"limit":1.5}',
  'SetPoolLimit {}',
  'CleanPool {"mode":"hidden"}',
  'more CleanPool {"mode":"bogus"}',
  'more CleanPool {}',
  'user List {"name":"gamma"}',
  'user SetPoolLimit {"limit":12}',
  'user Remove {"name":"gamma"}',
  'user more CleanPool {"mode":"all"}',
  'more CleanPool {"mode":"hidden"}',
  'more CleanPool {"mode":"all"}',
  'more CleanPool {"mode":"all"}',
  'more List {}',
];

const LOOP = `
V() { BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} run varlinkctl "$@"; }
n=0
while IFS= read -r line; do
  n=$((n+1))
  echo "=== $n $line"
  set -- $line
  pre=()
  if [[ $1 == user ]]; then pre=(setpriv --reuid=berth-test --regid=berth-test --clear-groups); shift; fi
  more=()
  if [[ $1 == more ]]; then more=(--more); shift; fi
  method=$1; shift
  "\${pre[@]}" env BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} run varlinkctl call "\${more[@]}" "$SOCKET" "io.systemd.MachineImage.$method" "$*" 2>&1 || echo "[exit $?]"
done <"$CALLS"
`;

describe.skipIf(!!why)('io.systemd.MachineImage: berthd and systemd-machined 262', () => {
  let t: BerthdOnBus;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/berth-imgdiff-');
    writeFileSync(join(dir, 'calls'), CALLS.join('\n') + '\n');
    writeFileSync(join(dir, 'loop.sh'), LOOP);
    writeFileSync(join(dir, 'setup.sh'), SETUP);
    t = await berthdOnBus('imgdiff');
    // The unprivileged caller must reach the sockets, as it reaches machined's under /run.
    chmodSync(t.runtime, 0o755);
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Per call: times masked, 262's extra errno fields dropped, streamed lines sorted (machined streams in hash order). */
  function normalise(out: string): Map<string, string> {
    const calls = new Map<string, string>();
    for (const block of out.split(/^=== /m).slice(1)) {
      const nl = block.indexOf('\n');
      const lines = block
        .slice(nl + 1)
        .replace(/\b1\d{15}\b/g, 'TIME')
        .replace(/"origin":"linux",/g, '')
        .replace(/,"errnoName":"[A-Z0-9]+"/g, '')
        .split('\n');
      calls.set(block.slice(0, nl), lines.sort().join('\n'));
    }
    return calls;
  }

  it('answers every image call as machined 262 does', async () => {
    const machined = `
set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus
mount -t tmpfs tmpfs /var/lib/machines
mkdir -p /var/tmp/berth-reference-sid/state && mount -t tmpfs tmpfs /var/tmp/berth-reference-sid/state
bash ${join(dir, 'setup.sh')}
BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} machined start >/dev/null 2>&1
SOCKET=/run/systemd/machine/io.systemd.MachineImage CALLS=${join(dir, 'calls')} bash ${join(dir, 'loop.sh')} || true
BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} machined stop >/dev/null 2>&1 || true
`;
    const theirs = normalise((await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', machined], { timeoutMs: 240_000 })).stdout);
    const berth = `bash ${join(dir, 'setup.sh')}\nSOCKET=${join(t.runtime, 'systemd/machine/io.systemd.MachineImage')} CALLS=${join(dir, 'calls')} bash ${join(dir, 'loop.sh')}`;
    const ours = normalise((await run(['bash', '-c', berth], { timeoutMs: 240_000 })).stdout);
    if (process.env.BERTH_DEBUG_DIFF) console.log([...theirs].map(([c, a]) => `${c}\n  machined: ${a}\n  berthd:   ${ours.get(c)}`).join('\n'));
    expect(theirs.size).toBe(CALLS.length);
    // Both sides really answered.
    const answer = (call: string) => theirs.get(`${CALLS.indexOf(call) + 1} ${call}`);
    expect(answer('List {"name":"alpha"}')).toContain('"name":"alpha"');
    expect(answer('SetPoolLimit {"limit":1000000}')).toContain('io.systemd.MachineImage.NotSupported');
    expect(answer('more CleanPool {"mode":"hidden"}')).toContain('{"name":".hid"}');
    const differ = [...theirs].filter(([call, answer]) => ours.get(call) !== answer).map(([call, answer]) => ({ call, machined: answer, berthd: ours.get(call) }));
    expect(differ).toEqual([]);
  }, 300_000);
});
