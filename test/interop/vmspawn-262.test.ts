// A real systemd-vmspawn 262 boot registered with berthd: direct kernel boot of the project's test kernel
// under TCG (--kvm=no; /dev/kvm here does not run guests), the GPT image and initramfs of scripts/vm-image.sh,
// --register=yes. The VM shows in berthctl and machinectl 262, its controlAddress (vmspawn's own
// io.systemd.MachineInstance socket) answers, machinectl 262 poweroff (the guest sees the ACPI power button)
// and terminate act through it, vmspawn ends quietly and berthd drops the machine. The same boot with
// --keep-unit against machined 262 is the reference; without --keep-unit machined 262 cannot start it on this
// host (it needs systemd as PID 1 for the scope), which berthd makes itself.
//
// Each case runs in a mount namespace of its own: tmpfs on /run/systemd and /run/dbus, a dbus-daemon
// (vmspawn opens the system bus even when it registers over Varlink), cgroup2 on /sys/fs/cgroup (vmspawn
// 262 looks up its own unit and fails with ENXIO outside a unit-shaped cgroup, so it runs in
// /system.slice/NAME-vmspawn.service). /run/systemd/system (machinectl refuses to run without it) is made
// only after berthd started, since berthd takes it as "systemd is PID 1" and would ask systemd for scopes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/generated.js';
import { REFERENCE_SCRIPT, referenceTool262 } from '../helpers/reference.js';
import { run } from '../helpers/run.js';

const MAIN_JS = join(REPO, 'dist/src/server/main.js');
const BERTHCTL = join(REPO, 'dist/src/client/berthctl.js');
const IMAGE_SCRIPT = join(REPO, 'scripts/vm-image.sh');
const CACHE = process.env.BERTH_CACHE || '/var/tmp/berth-cache';
const KERNEL = join(CACHE, 'vm/vmlinux');

function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces, cgroups)';
  if (!existsSync(MAIN_JS) || !existsSync(BERTHCTL)) return `run 'npm run build' first (${MAIN_JS})`;
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) return 'mount namespaces are not available';
  for (const [cmd, pkg] of [['dbus-daemon', 'dbus'], ['qemu-system-x86_64', 'qemu-system-x86'], ['ssh-keygen', 'openssh-client']]) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) return `${cmd} is missing (apt-get install ${pkg})`;
  }
  if (!existsSync(join(CACHE, 'vm/.complete'))) return `no VM kernel in ${CACHE}/vm (scripts/rootfs.sh vm)`;
  return undefined;
}

const PROLOGUE = `
set -u
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus /var/tmp/berth-reference-sid/state && mount -t tmpfs tmpfs /run/dbus
mount -t tmpfs tmpfs /var/tmp/berth-reference-sid/state
mount -t cgroup2 cgroup2 /sys/fs/cgroup
dbus-daemon --system --fork --print-pid >"$WORK/dbus.pid"
R262() { BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" run "$@"; }
berthctl() { node "${BERTHCTL}" "$@"; }
PIDS="" CGROUPS=""
cleanup() {
  for p in $PIDS; do kill $p 2>/dev/null; done
  sleep 0.5
  [ -n "\${B:-}" ] && { kill $B 2>/dev/null; wait $B 2>/dev/null; }
  BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" machined stop 2>/dev/null
  kill $(cat "$WORK/dbus.pid") 2>/dev/null
  for c in $CGROUPS; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
}
trap cleanup EXIT
berthd() {
  node "${MAIN_JS}" --log-level warn --dbus=yes 2>"$WORK/berthd.log" & B=$!
  for _ in $(seq 100); do [ -S /run/systemd/machine/io.systemd.Machine ] && break; sleep 0.05; done
}
# vm NAME [OPTION...]: boots vmspawn 262 (pid in $V) and waits until the guest waits for its power button.
vm() {
  local name=$1; shift
  local cg=/sys/fs/cgroup/system.slice/$name-vmspawn.service
  mkdir -p $cg; CGROUPS="$CGROUPS $cg /sys/fs/cgroup/machine.slice/machine-$name.scope"
  # qemu opens the disk writable and locks it: each VM gets its own (sparse) copy of the cached image.
  cp --sparse=always "$IMG/root.raw" "$WORK/$name.raw"
  ( echo $BASHPID >$cg/cgroup.procs
    BERTH_REFERENCE_SUITE=sid exec bash "${REFERENCE_SCRIPT}" run systemd-vmspawn -q --register=yes --kvm=no \\
      --firmware=bios --tpm=no --vsock=no --console=read-only --notify-ready=no \\
      --image="$WORK/$name.raw" --linux="${KERNEL}" --initrd="$IMG/initrd.cpio.gz" -M $name "$@" ) \\
    >"$WORK/$name.out" 2>"$WORK/$name.err" & V=$!; PIDS="$PIDS $V"
  for _ in $(seq 1200); do grep -q BERTH-GUEST-WAITING "$WORK/$name.out" && break; kill -0 $V 2>/dev/null || break; sleep 0.1; done
}
ended() { for _ in $(seq 600); do kill -0 $1 2>/dev/null || break; sleep 0.1; done; wait $1; echo "== $2 exit $?"; }
`;

async function inNamespace(script: string, image: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const work = spawnSync('mktemp', ['-d', '/tmp/berth-vmspawn262.XXXXXX']).stdout.toString().trim();
  const r = await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', PROLOGUE + script], {
    timeoutMs: 280_000,
    env: { ...process.env, WORK: work, IMG: image },
  });
  spawnSync('rm', ['-rf', work]);
  return r;
}

/** The lines after "== NAME" up to the next "== " line (which may follow at once when a section is empty). */
function section(out: string, name: string): string {
  const rest = out.split(`== ${name}\n`)[1] ?? '';
  const end = rest.search(/^== /m);
  return (end < 0 ? rest : rest.slice(0, end)).trim();
}

/**
 * vmspawn's stderr without the one line it prints even with -q when qemu took the disk (an info message,
 * the same against machined 262): what is left would be a warning or an error.
 */
const quietStderr = (err: string): string[] => err.split('\n').filter((l) => l && !/^Block device '[^']+' attached$/.test(l));

const why = cannotRun();
if (why) console.warn(`systemd-vmspawn 262 tests skipped: ${why}`);
let toolWhy: string | undefined;
let image = '';

describe.skipIf(!!why)('systemd-vmspawn 262 boots a VM registered with berthd', () => {
  beforeAll(async () => {
    for (const t of ['systemd-vmspawn', 'machinectl', 'varlinkctl']) {
      const tool = await referenceTool262(t);
      if (typeof tool === 'string') toolWhy ??= tool;
    }
    const built = await run(['bash', IMAGE_SCRIPT], { timeoutMs: 600_000 });
    if (built.code !== 0) toolWhy ??= `scripts/vm-image.sh failed: ${built.stderr.trim().split('\n').pop()}`;
    else image = built.stdout.trim();
    if (toolWhy) console.warn(`systemd-vmspawn 262 tests skipped: ${toolWhy}`);
  }, 900_000);

  it('lists it, answers on its controlAddress, powers off through it; vmspawn ends quietly', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const name = `vs262p${process.pid % 10000}`;
    const r = await inNamespace(`
berthd
vm ${name}
mkdir -p /run/systemd/system
echo "== berthctl"; berthctl list
echo "== machinectl"; R262 machinectl list --no-pager --no-legend
echo "== record"; R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.List '{"name":"${name}"}' --json=short
echo "== vmspawn pid $V"
CTL=$(berthctl show ${name} | sed -n 's/^ControlAddress=//p')
echo "== describe"; R262 varlinkctl call "$CTL" io.systemd.MachineInstance.Describe '{}' --json=short
echo "== poweroff"; R262 machinectl poweroff ${name}; echo "rc $?"
ended $V vmspawn
echo "== guest"; grep BERTH-GUEST "$WORK/${name}.out"
echo "== stderr"; cat "$WORK/${name}.err"
echo "== after"; berthctl list; R262 machinectl list --no-pager --no-legend
echo "== berthd log"; cat "$WORK/berthd.log"
`, image);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    if (!section(out, 'berthctl').includes(name)) console.warn(out);
    expect(section(out, 'berthctl')).toMatch(new RegExp(`^${name}\\s+vm\\s+systemd-vmspawn\\b`, 'm'));
    expect(section(out, 'machinectl')).toMatch(new RegExp(`^${name}\\s+vm\\s+systemd-vmspawn\\b`, 'm'));
    const rec = JSON.parse(section(out, 'record')) as Record<string, unknown>;
    const vmspawnPid = Number(/== vmspawn pid (\d+)/.exec(out)?.[1]);
    // vmspawn 262 is the supervisor (the caller); the leader is its qemu, in the scope berthd made.
    expect(rec).toMatchObject({
      name, class: 'vm', service: 'systemd-vmspawn', unit: `machine-${name}.scope`,
      controlAddress: `/run/systemd/vmspawn/${name}/control`, sshPrivateKeyPath: expect.stringContaining(`/run/systemd/vmspawn/${name}/`),
    });
    expect((rec.supervisor as { pid: number }).pid).toBeGreaterThan(0);
    expect((rec.leader as { pid: number }).pid).not.toBe(vmspawnPid);
    expect(JSON.parse(section(out, 'describe'))).toMatchObject({ running: true });
    expect(section(out, 'poweroff')).toBe('rc 0');
    expect(out).toMatch(/== vmspawn exit 0/);
    // The guest powered off because it saw the power button (qemu's system_powerdown), not by a kill.
    expect(section(out, 'guest')).toContain('BERTH-GUEST-POWER-BUTTON');
    expect(quietStderr(section(out, 'stderr'))).toEqual([]);
    expect(section(out, 'after')).not.toContain(name);
    expect(section(out, 'berthd log')).toBe('');
  }, 300_000);
  it('machinectl 262 terminate ends it through the control socket', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const name = `vs262t${process.pid % 10000}`;
    const r = await inNamespace(`
berthd
vm ${name}
mkdir -p /run/systemd/system
echo "== listed"; berthctl list
echo "== terminate"; R262 machinectl terminate ${name}; echo "rc $?"
ended $V vmspawn
echo "== guest"; grep BERTH-GUEST "$WORK/${name}.out"
echo "== stderr"; cat "$WORK/${name}.err"
echo "== after"; berthctl list
`, image);
    expect(r.code, r.stderr).toBe(0);
    expect(section(r.stdout, 'listed')).toContain(name);
    expect(section(r.stdout, 'terminate')).toBe('rc 0');
    expect(r.stdout).toMatch(/== vmspawn exit 0/);
    // Terminate stops qemu: the guest never saw a power button.
    expect(section(r.stdout, 'guest')).toContain('BERTH-GUEST-WAITING');
    expect(section(r.stdout, 'guest')).not.toContain('BERTH-GUEST-POWER-BUTTON');
    expect(quietStderr(section(r.stdout, 'stderr'))).toEqual([]);
    expect(section(r.stdout, 'after')).not.toContain(name);
  }, 300_000);

  it('with --keep-unit, berthd and machined 262 keep the same record and both power it off', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const name = `vs262k${process.pid % 10000}`;
    // The same boot twice: first against berthd, then (berthd stopped) against machined 262.
    const once = (tag: string) => `
vm ${name} --keep-unit
mkdir -p /run/systemd/system
echo "== ${tag} record"; R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.List '{"name":"${name}"}' --json=short
echo "== ${tag} machinectl"; R262 machinectl list --no-pager --no-legend
echo "== ${tag} poweroff"; R262 machinectl poweroff ${name}; echo "rc $?"
ended $V ${tag}-vmspawn
echo "== ${tag} guest"; grep BERTH-GUEST "$WORK/${name}.out"
echo "== ${tag} stderr"; cat "$WORK/${name}.err"
echo "== ${tag} after"; R262 machinectl list --no-pager --no-legend
rmdir /run/systemd/system
`;
    const r = await inNamespace(`
berthd
${once('berth')}
kill $B; wait $B; B=
BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" machined start 2>"$WORK/machined-start.log" || { cat "$WORK/machined-start.log"; exit 1; }
${once('machined')}
`, image);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const out = r.stdout;
    const records = ['berth', 'machined'].map((t) => JSON.parse(section(out, `${t} record`)) as Record<string, unknown>);
    for (const [i, rec] of records.entries()) {
      const tag = i === 0 ? 'berth' : 'machined';
      // --keep-unit: the unit is the one vmspawn runs in, not a machine scope.
      expect(rec, tag).toMatchObject({
        name, class: 'vm', service: 'systemd-vmspawn', unit: `${name}-vmspawn.service`, UID: 0,
        controlAddress: `/run/systemd/vmspawn/${name}/control`, sshPrivateKeyPath: `/run/systemd/vmspawn/${name}/ed25519`,
      });
      expect(section(out, `${tag} machinectl`), tag).toMatch(new RegExp(`^${name}\\s+vm\\s+systemd-vmspawn\\b`, 'm'));
      expect(section(out, `${tag} poweroff`), tag).toBe('rc 0');
      expect(out, tag).toMatch(new RegExp(`== ${tag}-vmspawn exit 0`));
      expect(section(out, `${tag} guest`), tag).toContain('BERTH-GUEST-POWER-BUTTON');
      expect(quietStderr(section(out, `${tag} stderr`)), tag).toEqual([]);
      expect(section(out, `${tag} after`), tag).not.toContain(name);
    }
    // The same fields, and the same leader/supervisor shape (pid, pidfdId, bootId).
    expect(Object.keys(records[0]!).sort()).toEqual(Object.keys(records[1]!).sort());
    for (const k of ['leader', 'supervisor']) {
      expect(Object.keys(records[0]![k] as object).sort(), k).toEqual(Object.keys(records[1]![k] as object).sort());
    }
  }, 300_000);
  it('without --keep-unit machined 262 cannot start it here (no systemd to make the scope); berthd makes the scope', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const name = `vs262a${process.pid % 10000}`;
    // Measured: machined 262 asks systemd over the bus for machine-NAME.scope; dbus-daemon cannot start
    // org.freedesktop.systemd1 on a host where systemd is not PID 1, machined answers EIO, vmspawn gives up.
    const r = await inNamespace(`
BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" machined start 2>"$WORK/machined-start.log" || { cat "$WORK/machined-start.log"; exit 1; }
vm ${name}
ended $V vmspawn
echo "== stderr"; cat "$WORK/${name}.err"
`, image);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/== vmspawn exit 1/);
    expect(section(r.stdout, 'stderr')).toContain('Failed to register machine in system context: Input/output error');
  }, 300_000);
});
