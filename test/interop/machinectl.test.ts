// machinectl, the real client of org.freedesktop.machine1, against berthd: Debian's 252 (systemd-container)
// and the reference 257 list, show, show -p --value and terminate a machine berthd holds. machinectl only
// runs where /run/systemd/system exists and talks to /run/dbus/system_bus_socket, so each run happens in a
// private mount namespace with tmpfs over /run/systemd and /run/dbus and berthd's private bus socket
// bound there; the host's /run is untouched.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { run, type RunResult } from '../helpers/run.js';
import { referenceTool, REFERENCE_SCRIPT } from '../helpers/reference.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (mount namespaces, cgroups)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping machinectl tests: ${why}`);

const tag = `mc${process.pid % 100000}`;

/** The environment without a bus address: machinectl must find the bus where a host has it. */
function withoutBusAddress(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DBUS_SYSTEM_BUS_ADDRESS;
  return env;
}

/** The machinectl variants to test: Debian's own (252) and the reference 257. */
async function clients(): Promise<{ label: string; argv: string[] | string }[]> {
  const out: { label: string; argv: string[] | string }[] = [];
  out.push({ label: '252', argv: existsSync('/usr/bin/machinectl') ? ['/usr/bin/machinectl'] : 'machinectl 252 is not installed (apt-get install systemd-container)' });
  const ref = await referenceTool('machinectl');
  out.push({ label: '257', argv: typeof ref === 'string' ? ref : ['bash', REFERENCE_SCRIPT, 'run', 'machinectl'] });
  return out;
}

describe.skipIf(!!why)('machinectl against berthd', async () => {
  let t: BerthdOnBus;
  const variants = why ? [] : await clients();

  beforeAll(async () => {
    t = await berthdOnBus('machinectl');
  }, 60_000);

  afterAll(() => t?.stop());

  /** machinectl in a private mount namespace whose /run/dbus/system_bus_socket is berthd's bus. */
  function machinectl(argv: string[], ...args: string[]): Promise<RunResult> {
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run/systemd 2>/dev/null || { mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }',
      'mkdir -p /run/systemd/system',
      'mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus',
      'touch /run/dbus/system_bus_socket',
      `mount --bind "$BUS_SOCKET" /run/dbus/system_bus_socket`,
      'exec "$@"',
    ].join('\n');
    return run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...argv, '--no-pager', ...args], {
      env: { ...withoutBusAddress(), BUS_SOCKET: t.bus.socketPath },
      timeoutMs: 60_000,
    });
  }

  const register = (name: string) => t.register(name, { service: 'berth-test', rootDirectory: '/' });

  for (const v of variants) {
    it.skipIf(typeof v.argv === 'string')(`machinectl ${v.label}: list, show, show -p --value, terminate`, async () => {
      if (typeof v.argv === 'string') return;
      const name = `${tag}-${v.label}`;
      const l = await register(name);

      const list = await machinectl(v.argv, 'list');
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      const row = list.stdout.split('\n').find((r) => r.startsWith(name + ' '));
      expect(row, list.stdout).toBeDefined();
      expect(row!.split(/\s+/).slice(0, 3)).toEqual([name, 'container', 'berth-test']);
      expect(list.stdout).toMatch(/1 machines listed\./);

      const show = await machinectl(v.argv, 'show', name);
      expect(show.code).toBe(0);
      for (const line of [`Name=${name}`, 'Service=berth-test', `Unit=${name}.scope`, `Leader=${l.pid}`, 'Class=container', 'RootDirectory=/', 'State=running']) {
        expect(show.stdout.split('\n')).toContain(line);
      }

      const leader = await machinectl(v.argv, 'show', '-p', 'Leader', '--value', name);
      expect(leader.stdout).toBe(`${l.pid}\n`);

      const term = await machinectl(v.argv, 'terminate', name);
      expect(term.stderr).toBe('');
      expect(term.code).toBe(0);
      await exited(l, 10_000);
      await waitFor(async () => !(await machinectl(v.argv as string[], 'list')).stdout.includes(name), 'the machine to leave the list');
    });
    if (typeof v.argv === 'string') console.warn(`skipping machinectl ${v.label}: ${v.argv}`);
  }
});
