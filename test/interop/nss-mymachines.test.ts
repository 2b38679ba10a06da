// nss-mymachines (Debian's libnss-mymachines 252) against berthd: `getent hosts NAME` asks
// org.freedesktop.machine1 on the system bus for GetMachineAddresses and prints the container's address.
// The container is a leader in a network namespace of its own with one end of a veth pair, whose container
// side has an IPv4 address (IPv6 off there, so the link-local address does not come first); the host's /etc/nsswitch.conf is never changed: the client runs in a mount
// namespace where a copy with `mymachines` in its hosts line is bound over it (host-paths.ts). The same
// lookups against the real machined 257, for the same kind of container, give the same output.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { waitFor } from '../helpers/wait.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/run.js';
import { exited } from '../helpers/processes.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { IoSystemdMachine } from '../../src/generated/io.systemd.Machine.js';
import { inHost, intoUnit, withMachined } from './host-paths.js';

const MODULE = ['/lib/x86_64-linux-gnu/libnss_mymachines.so.2', '/usr/lib/x86_64-linux-gnu/libnss_mymachines.so.2'];
const why =
  process.getuid?.() !== 0 ? 'needs root (network and mount namespaces)'
  : !existsSync(BERTHD) ? 'not built (npm run build)'
  : !MODULE.some(existsSync) ? 'libnss-mymachines is not installed (bash scripts/setup.sh)'
  : '';
const n = process.pid % 10000;
const NAME = `nss${n}`;
const HOST_END = `vb${n}h`;
const ADDRESS = `10.231.${n % 250}.2`;

describe.skipIf(!!why)('nss-mymachines resolves a berth machine', () => {
  let t: BerthdOnBus;
  let dir: string;
  let leader: ChildProcess;

  beforeAll(async () => {
    t = await berthdOnBus('nss');
    dir = mkdtempSync('/var/tmp/berth-nss-');
    leader = spawn('unshare', ['-n', 'sleep', '3600'], { stdio: 'ignore' });
    t.leaders.push(leader);
    // unshare execs sleep in the new namespace: wait until it has one of its own.
    const hostNet = readlinkSync('/proc/self/ns/net');
    const ownNet = () => {
      try {
        return readlinkSync(`/proc/${leader.pid}/ns/net`) !== hostNet;
      } catch {
        return false;
      }
    };
    await waitFor(ownNet, 'the leader to have a network namespace of its own');
    const sh = async (cmd: string) => {
      const r = await run(['sh', '-c', cmd]);
      if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    };
    await sh(`ip link add ${HOST_END} type veth peer name host0 && ip link set host0 netns ${leader.pid} && ip link set ${HOST_END} up`);
    await sh(`nsenter -t ${leader.pid} -n sh -c 'echo 1 >/proc/sys/net/ipv6/conf/host0/disable_ipv6 && ip link set lo up && ip addr add ${ADDRESS}/24 dev host0 && ip link set host0 up'`);
    const ifIndex = Number(readFileSync(`/sys/class/net/${HOST_END}/ifindex`, 'latin1'));
    intoUnit(leader.pid!, `${NAME}.scope`);
    await t.varlink.proxy(IoSystemdMachine).Register({ name: NAME, class: 'container', leader: leader.pid!, service: 'berth-test', ifIndices: [ifIndex] });
    const conf = readFileSync('/etc/nsswitch.conf', 'utf8').replace(/^hosts:.*$/m, 'hosts: files mymachines');
    writeFileSync(join(dir, 'nsswitch.conf'), conf);
  }, 60_000);

  afterAll(async () => {
    await run(['ip', 'link', 'del', HOST_END]).catch(() => undefined);
    leader?.kill('SIGKILL');
    if (leader) await exited(leader).catch(() => undefined);
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('GetMachineAddresses gives the container side of the veth', async () => {
    const r = await inHost(t, ['busctl', '--no-pager', 'call', 'org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager', 'GetMachineAddresses', 's', NAME]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`a(iay) 1 2 4 ${ADDRESS.split('.').join(' ')}`);
  });

  it('getent hosts NAME prints its address; an unknown name is not found', async () => {
    const nsswitch = join(dir, 'nsswitch.conf');
    const r = await inHost(t, ['getent', 'hosts', NAME], { nsswitch });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual([ADDRESS, NAME]);
    const v4 = await inHost(t, ['getent', 'ahostsv4', NAME], { nsswitch });
    expect(v4.stdout.split('\n')[0]!.split(/\s+/).slice(0, 3)).toEqual([ADDRESS, 'STREAM', NAME]);
    const none = await inHost(t, ['getent', 'hosts', `${NAME}x`], { nsswitch });
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    // The real machined 257 answers the module the same way for the same kind of container.
    const machined = await withMachined('trixie', `
unshare -n sleep 3600 & L=$!
while [ "$(readlink /proc/$L/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.05; done
ip link add ${HOST_END}m type veth peer name host0 && ip link set host0 netns $L && ip link set ${HOST_END}m up
nsenter -t $L -n sh -c 'echo 1 >/proc/sys/net/ipv6/conf/host0/disable_ipv6 && ip link set lo up && ip addr add ${ADDRESS}/24 dev host0 && ip link set host0 up'
bash "$REF" scope ${NAME} $L >/dev/null
bash "$REF" run varlinkctl call /run/systemd/machine/io.systemd.Machine io.systemd.Machine.Register "{\\"name\\":\\"${NAME}\\",\\"class\\":\\"container\\",\\"leader\\":$L,\\"service\\":\\"berth-test\\",\\"ifIndices\\":[$(cat /sys/class/net/${HOST_END}m/ifindex)]}" >/dev/null
mount --bind "$NSSWITCH" /etc/nsswitch.conf
echo "=== hosts"; getent hosts ${NAME}; echo "[exit $?]"
echo "=== ahostsv4"; getent ahostsv4 ${NAME}; echo "[exit $?]"
echo "=== unknown"; getent hosts ${NAME}x; echo "[exit $?]"
ip link del ${HOST_END}m; kill $L; wait $L 2>/dev/null
rmdir /sys/fs/cgroup/*/machine.slice/machine-${NAME}.scope /sys/fs/cgroup/unified/machine.slice/machine-${NAME}.scope 2>/dev/null`, { NSSWITCH: nsswitch });
    const ours = [
      `=== hosts\n${r.stdout}[exit ${r.code}]`,
      `=== ahostsv4\n${v4.stdout}[exit ${v4.code}]`,
      `=== unknown\n${none.stdout}[exit ${none.code}]`,
    ].join('\n');
    expect(machined.stdout.trim(), machined.stderr).toBe(ours.trim());

    // Without mymachines in the hosts line the name is unknown: the answer above is the module's.
    const plain = await inHost(t, ['getent', 'hosts', NAME], { nsswitch: '' });
    expect(plain.code).toBe(2);
  });
});
