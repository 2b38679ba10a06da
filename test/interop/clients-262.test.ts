// systemd 262's own clients registering with berthd: systemd-nspawn 262 with --keep-unit, and the
// Register call systemd-vmspawn 262 makes. Each runs in a mount namespace of its own (a tmpfs on
// /run/systemd and /run/dbus, cgroup2 on /sys/fs/cgroup for nspawn 262, which refuses the host's hybrid
// layout), with a berthd from dist/ serving the usual /run/systemd/machine socket there, so nothing of the
// host's /run changes. nspawn 262 opens the system bus even with --keep-unit, so the namespace gets a
// dbus-daemon of its own.
//
// Here vmspawn 262's exact Register call (keys and order as measured) is replayed through varlinkctl 262;
// test/interop/vmspawn-262.test.ts boots a real vmspawn 262 (direct kernel boot of scripts/vm-image.sh's GPT
// image under TCG) against berthd and against machined 262.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/generated.js';
import { REFERENCE_SCRIPT, referenceTool262 } from '../helpers/reference.js';
import { run } from '../helpers/run.js';

const MAIN_JS = join(REPO, 'dist/src/server/main.js');
const BERTHCTL = join(REPO, 'dist/src/client/berthctl.js');
const ROOTFS = join(process.env.BERTH_CACHE || '/var/tmp/berth-cache', 'busybox/rootfs');

function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces, cgroups)';
  if (!existsSync(MAIN_JS) || !existsSync(BERTHCTL)) return `run 'npm run build' first (${MAIN_JS})`;
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) return 'mount namespaces are not available';
  if (spawnSync('sh', ['-c', 'command -v dbus-daemon']).status !== 0) return 'dbus-daemon is missing (apt-get install dbus)';
  return undefined;
}

/**
 * The shell prologue of every case: private /run/systemd and /run/dbus, a bus, berthd on /run; `$1` is
 * this test's tag. The epilogue (trap) stops what it started, by pid.
 */
const PROLOGUE = `
set -u
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus
# berthd reads the cgroup layout when it starts: mount cgroup2 first when the case needs it.
if [ "$CGROUP2" = 1 ]; then mount -t cgroup2 cgroup2 /sys/fs/cgroup; fi
dbus-daemon --system --fork --print-pid >"$WORK/dbus.pid"
node "${MAIN_JS}" --log-level warn 2>"$WORK/berthd.log" & B=$!
trap 'kill $B 2>/dev/null; wait $B 2>/dev/null; kill $(cat "$WORK/dbus.pid") 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S /run/systemd/machine/io.systemd.Machine ] && break; sleep 0.05; done
R262() { BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" run "$@"; }
berthctl() { node "${BERTHCTL}" "$@"; }
`;

async function inNamespace(script: string, { cgroup2 = false } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const work = spawnSync('mktemp', ['-d', '/tmp/berth-clients262.XXXXXX']).stdout.toString().trim();
  const r = await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', PROLOGUE + script], {
    timeoutMs: 120_000,
    env: { ...process.env, WORK: work, CGROUP2: cgroup2 ? '1' : '0' },
  });
  spawnSync('rm', ['-rf', work]);
  return r;
}

const why = cannotRun();
let toolWhy: string | undefined;

describe.skipIf(!!why)('systemd 262 clients register with berthd', () => {
  beforeAll(async () => {
    for (const t of ['systemd-nspawn', 'varlinkctl']) {
      const tool = await referenceTool262(t);
      if (typeof tool === 'string') toolWhy ??= tool;
    }
    if (toolWhy) console.warn(`systemd 262 client tests skipped: ${toolWhy}`);
  }, 900_000);

  it('systemd-nspawn 262 --keep-unit registers, berthctl lists it with its supervisor and subgroup', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    if (!existsSync(join(ROOTFS, 'bin/sh'))) ctx.skip(`no busybox tree at ${ROOTFS} (scripts/rootfs.sh busybox)`);
    const name = `c262n${process.pid % 100000}`;
    const r = await inNamespace(
      `
mkdir -p /sys/fs/cgroup/system.slice/${name}.scope
( echo $BASHPID >/sys/fs/cgroup/system.slice/${name}.scope/cgroup.procs
  BERTH_REFERENCE_SUITE=sid exec bash "${REFERENCE_SCRIPT}" run systemd-nspawn --keep-unit --register=yes -M ${name} -D "${ROOTFS}" --pipe /bin/sh -c 'sleep 3' ) \\
  >"$WORK/nspawn.log" 2>&1 & N=$!
for _ in $(seq 100); do berthctl list 2>/dev/null | grep -q ${name} && break; sleep 0.05; done
echo "== list"; berthctl list
echo "== show"; berthctl show ${name}
echo "== nspawn pid $N"
wait $N; echo "== nspawn exit $?"
cat "$WORK/nspawn.log"
# nspawn leaves the scope's sub-cgroups (payload, supervisor) behind, empty.
find /sys/fs/cgroup/system.slice/${name}.scope -depth -type d -exec rmdir {} + 2>/dev/null
true
`,
      { cgroup2: true },
    );
    expect(r.code, r.stderr).toBe(0);
    const list = r.stdout.split('== list')[1]!.split('== show')[0]!;
    if (!list.includes(name)) console.warn(r.stdout);
    expect(list).toMatch(new RegExp(`^${name}\\s+container\\s+systemd-nspawn\\s+busybox`, 'm'));
    const show = r.stdout.split('== show')[1]!;
    const prop = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(show)?.[1];
    expect(prop('Unit')).toBe(`${name}.scope`);
    // nspawn puts its payload below its own cgroup; it is the supervisor (the caller of Register).
    expect(prop('Subgroup')).toBe('payload');
    const nspawnPid = /== nspawn pid (\d+)/.exec(r.stdout)?.[1];
    expect(prop('Supervisor')).toBe(nspawnPid);
    expect(prop('RootDirectory')).toBe(ROOTFS);
    expect(r.stdout).toMatch(/== nspawn exit 0/);
  });

  it('takes systemd-vmspawn 262\'s Register call and lists its controlAddress', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const name = `c262v${process.pid % 100000}`;
    // vmspawn 262's keys in its order (measured); allocateUnit because it runs without --keep-unit.
    const params = JSON.stringify({
      name, service: 'systemd-vmspawn', class: 'vm', rootDirectory: '/var/lib/machines/x', sshPrivateKeyPath: '/run/vmspawn/x/key',
      controlAddress: `/run/systemd/vmspawn/${name}/io.systemd.MachineInstance`, leaderProcessId: { pid: 0 }, allocateUnit: true,
    });
    const r = await inNamespace(`
sleep 100 & L=$!
P='${params}'
P=\${P/\\"pid\\":0/\\"pid\\":$L}
echo "== register"; R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register "$P"
echo "== list"; R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.List '{"name":"${name}"}' --json=short
echo "== show"; berthctl show ${name}
echo "== status"; berthctl status ${name}
kill $L
for _ in $(seq 100); do berthctl show ${name} >/dev/null 2>&1 || break; sleep 0.05; done
rmdir /sys/fs/cgroup/machine.slice/machine-${name}.scope /sys/fs/cgroup/unified/machine.slice/machine-${name}.scope /sys/fs/cgroup/systemd/machine.slice/machine-${name}.scope 2>/dev/null
true
`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('== register')[1]!.split('== list')[0]!.trim()).toBe('{}');
    const listed = JSON.parse(r.stdout.split('== list')[1]!.split('== show')[0]!.trim()) as Record<string, unknown>;
    expect(listed).toMatchObject({
      name, class: 'vm', service: 'systemd-vmspawn', rootDirectory: '/var/lib/machines/x', unit: `machine-${name}.scope`,
      sshPrivateKeyPath: '/run/vmspawn/x/key', controlAddress: `/run/systemd/vmspawn/${name}/io.systemd.MachineInstance`, UID: 0,
    });
    expect(listed.supervisor).toMatchObject({ pid: expect.any(Number) });
    expect(r.stdout).toContain(`ControlAddress=/run/systemd/vmspawn/${name}/io.systemd.MachineInstance`);
    expect(r.stdout).toMatch(/Control: \/run\/systemd\/vmspawn\//);
  });
});
