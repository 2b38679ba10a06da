// machinectl 262's pause, resume, reboot, poweroff and terminate on berth-spawn containers registered
// with berthd: machinectl looks the machine up over Varlink (io.systemd.Machine.List), finds its
// controlAddress and calls io.systemd.MachineInstance there. Everything runs in a mount namespace of its
// own (tmpfs on /run/systemd, /run/dbus and /run/berth; machinectl 262 wants /run/systemd/system and a
// system bus), with berthd from dist/ on the usual /run/systemd/machine socket and on that bus. varlinkctl 262 checks the
// control socket itself: introspection, Describe, and the IDL file.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/generated.js';
import { REFERENCE_SCRIPT, referenceTool262 } from '../helpers/reference.js';
import { run } from '../helpers/run.js';

const MAIN_JS = join(REPO, 'dist/src/server/main.js');
const SPAWN = join(REPO, 'dist/bin/berth-spawn.mjs');
const IDL = join(REPO, 'interfaces/io.systemd.MachineInstance.varlink');
const ROOTFS = join(process.env.BERTH_CACHE || '/var/tmp/berth-cache', 'busybox/rootfs');

function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces, cgroups)';
  if (!existsSync(MAIN_JS) || !existsSync(SPAWN)) return `run 'npm run build' first (${SPAWN})`;
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) return 'mount namespaces are not available';
  if (spawnSync('sh', ['-c', 'command -v dbus-daemon']).status !== 0) return 'dbus-daemon is missing (apt-get install dbus)';
  if (!existsSync(join(ROOTFS, 'bin/sh'))) return `no busybox tree at ${ROOTFS} (scripts/rootfs.sh busybox)`;
  return undefined;
}

/** Private /run parts, a bus, berthd; `spawn NAME` starts a berth-spawn container (its pid in $S). */
const PROLOGUE = `
set -u
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/dbus /run/berth /run/systemd/system
mount -t tmpfs tmpfs /run/dbus
mount -t tmpfs tmpfs /run/berth
dbus-daemon --system --fork --print-pid >"$WORK/dbus.pid"
node "${MAIN_JS}" --log-level warn --dbus=yes 2>"$WORK/berthd.log" & B=$!
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; sleep 0.5; kill $B 2>/dev/null; wait $B 2>/dev/null; kill $(cat "$WORK/dbus.pid") 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S /run/systemd/machine/io.systemd.Machine ] && break; sleep 0.05; done
R262() { BERTH_REFERENCE_SUITE=sid bash "${REFERENCE_SCRIPT}" run "$@"; }
spawn() {
  cp -a "${ROOTFS}" "$WORK/$1"
  node "${SPAWN}" -q -D "$WORK/$1" -M "$1" --register=yes /bin/sh -c 'trap "echo stopped-cleanly; exit 0" 37; while :; do sleep 1 & wait $!; done' >"$WORK/$1.log" 2>&1 &
  S=$!; PIDS="$PIDS $S"
  for _ in $(seq 200); do [ -S "/run/berth/machines/$1/io.systemd.MachineInstance" ] && R262 machinectl show "$1" >/dev/null 2>&1 && break; sleep 0.05; done
}
ended() { for _ in $(seq 200); do kill -0 $1 2>/dev/null || break; sleep 0.05; done; wait $1; echo "== $2 exit $?"; }
`;

async function inNamespace(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const work = spawnSync('mktemp', ['-d', '/tmp/berth-instance262.XXXXXX']).stdout.toString().trim();
  const r = await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', PROLOGUE + script], {
    timeoutMs: 120_000,
    env: { ...process.env, WORK: work },
  });
  spawnSync('rm', ['-rf', work]);
  return r;
}

const section = (out: string, name: string): string => (out.split(`== ${name}\n`)[1]?.split('\n== ')[0] ?? '').trim();

const why = cannotRun();
if (why) console.warn(`machinectl 262 instance tests skipped: ${why}`);
let toolWhy: string | undefined;

describe.skipIf(!!why)('machinectl 262 acts through berth-spawn\'s control socket', () => {
  beforeAll(async () => {
    for (const t of ['machinectl', 'varlinkctl']) {
      const tool = await referenceTool262(t);
      if (typeof tool === 'string') toolWhy ??= tool;
    }
    if (toolWhy) console.warn(`machinectl 262 instance tests skipped: ${toolWhy}`);
  }, 900_000);

  it('pause, resume, reboot (refused for a payload that is no init), poweroff and terminate', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const a = `mi262a${process.pid % 10000}`;
    const b = `mi262b${process.pid % 10000}`;
    const ctl = `/run/berth/machines/${a}/io.systemd.MachineInstance`;
    const r = await inNamespace(`
spawn ${a}; A=$S
echo "== list"; R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.List '{"name":"${a}"}' --json=short
echo "== introspect"; R262 varlinkctl introspect ${ctl} io.systemd.MachineInstance
echo "== validate"; R262 varlinkctl validate-idl "${IDL}"; echo "rc=$?"
echo "== pause"; R262 machinectl pause ${a}; echo "rc=$?"
echo "== paused"; R262 varlinkctl call ${ctl} io.systemd.MachineInstance.Describe '{}' --json=short
echo "== resume"; R262 machinectl resume ${a}; echo "rc=$?"
echo "== resumed"; R262 varlinkctl call ${ctl} io.systemd.MachineInstance.Describe '{}' --json=short
echo "== reboot"; R262 machinectl reboot ${a} 2>&1; echo "rc=$?"
echo "== poweroff"; R262 machinectl poweroff ${a}; echo "rc=$?"
ended $A a; cat "$WORK/${a}.log"
spawn ${b}; BB=$S
echo "== terminate"; R262 machinectl terminate ${b}; echo "rc=$?"
ended $BB b
echo "== gone"; R262 machinectl poweroff ${b} 2>&1; echo "rc=$?"
echo "== scopes"; ls -d /sys/fs/cgroup/*/machine.slice/machine-${a}.scope /sys/fs/cgroup/*/machine.slice/machine-${b}.scope 2>/dev/null; echo end
`);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(JSON.parse(section(out, 'list'))).toMatchObject({ name: a, controlAddress: ctl });
    expect(section(out, 'introspect')).toMatch(/method Describe\(\) -> \(\s*#[^\n]*\n\s*running: bool,/);
    expect(section(out, 'introspect')).toContain('method SubscribeEvents(');
    expect(section(out, 'validate')).toContain('rc=0');
    expect(section(out, 'pause')).toBe('rc=0');
    expect(JSON.parse(section(out, 'paused'))).toEqual({ running: false, status: 'paused' });
    expect(section(out, 'resume')).toBe('rc=0');
    expect(JSON.parse(section(out, 'resumed'))).toEqual({ running: true, status: 'running' });
    expect(section(out, 'reboot')).toBe('Machine control call failed: io.systemd.MachineInstance.NotSupported\nrc=1');
    expect(section(out, 'poweroff')).toBe('rc=0');
    // A payload that is no init: PowerOff is berth-spawn's clean stop (SIGRTMIN+3, the trap), exit 0.
    expect(section(out, 'a exit 0')).toContain('stopped-cleanly');
    expect(section(out, 'terminate')).toBe('rc=0');
    expect(out).toMatch(/== b exit 1\n/); // killed, as nspawn exits when its container is killed
    expect(section(out, 'gone')).toBe(`Failed to look up machine '${b}': io.systemd.Machine.NoSuchMachine\nrc=1`);
    expect(section(out, 'scopes')).toBe('end');
  }, 180_000);

  it('without a controlAddress poweroff falls back to D-Bus KillMachine; a dead one fails and touches nothing', async (ctx) => {
    if (toolWhy) ctx.skip(toolWhy);
    const plain = `mi262p${process.pid % 10000}`;
    const dead = `mi262d${process.pid % 10000}`;
    const scopes = [plain, dead].map((n) => `/sys/fs/cgroup/*/machine.slice/machine-${n}.scope`).join(' ');
    const r = await inNamespace(`
( trap 'echo RTMIN+4 >> "$WORK/plain.sig"; exit 0' RTMIN+4; while :; do sleep 0.05; done ) & P=$!
sleep 300 & D=$!
PIDS="$PIDS $P $D"
bash "${REFERENCE_SCRIPT}" scope ${plain} $P
bash "${REFERENCE_SCRIPT}" scope ${dead} $D
R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register '{"name":"${plain}","class":"container","leader":'$P',"allocateUnit":false}' >/dev/null
R262 varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register '{"name":"${dead}","class":"container","leader":'$D',"allocateUnit":false,"controlAddress":"'$WORK'/nobody"}' >/dev/null
# berthd takes org.freedesktop.machine1 after its Varlink sockets serve: wait for the name.
for _ in $(seq 100); do dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.machine1 2>/dev/null | grep -q 'boolean true' && break; sleep 0.05; done
echo "== plain pause"; R262 machinectl pause ${plain} 2>&1; echo "rc=$?"
echo "== plain poweroff"; R262 machinectl poweroff ${plain} 2>&1; echo "rc=$?"
for _ in $(seq 100); do [ -s "$WORK/plain.sig" ] && break; sleep 0.05; done
echo "== plain signal"; cat "$WORK/plain.sig"
echo "== dead poweroff"; R262 machinectl poweroff ${dead} 2>&1; echo "rc=$?"
echo "== dead terminate"; R262 machinectl terminate ${dead} 2>&1; echo "rc=$?"
echo "== dead alive"; kill -0 $D && echo yes
kill $P $D 2>/dev/null; sleep 0.3
for d in ${scopes}; do [ -d "$d" ] && rmdir "$d"; done
echo "== end"
`);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(section(out, 'plain pause')).toBe(`Machine '${plain}' does not expose a varlink control socket.\nrc=1`);
    expect(section(out, 'plain poweroff')).toBe('rc=0');
    expect(section(out, 'plain signal')).toBe('RTMIN+4');
    expect(section(out, 'dead poweroff')).toBe('Failed to connect to machine control socket: No such file or directory\nrc=1');
    expect(section(out, 'dead terminate')).toBe('Failed to connect to machine control socket: No such file or directory\nrc=1');
    expect(section(out, 'dead alive')).toBe('yes');
  }, 180_000);
});
