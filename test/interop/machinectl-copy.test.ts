// The real machinectl copy-to, copy-from and bind against berthd over D-Bus: Debian's 252 and the reference
// 257 and 262, each on a container-shaped machine (a busybox root in a mount namespace of its own) and on a
// user-namespaced one; and journalctl -M reading a machine's journal directory through
// OpenMachineRootDirectory. Each client runs in a private mount namespace whose system bus socket is
// berthd's private bus (as machinectl.test.ts does); the messages are the ones machinectl printed against
// machined 262 for the same steps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, type RunResult } from '../helpers/run.js';
import { referenceTool, REFERENCE_SCRIPT } from '../helpers/reference.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { BUSYBOX, busyboxRoot, containerLeader } from '../integration/dbus-api/container-leader.js';

const why = process.getuid?.() !== 0 ? 'needs root (mount namespaces, cgroups)' : !fs.existsSync(BERTHD) ? 'not built (npm run build)' : !BUSYBOX ? 'no busybox' : '';
if (why) console.warn(`skipping machinectl copy tests: ${why}`);

const tag = `mcp${process.pid % 100000}`;
const SHIFT = 0x5b0000;

type Variant = { label: string; argv: string[] | string; env: NodeJS.ProcessEnv };

async function clients(tool: string): Promise<Variant[]> {
  const out: Variant[] = [];
  if (tool === 'machinectl') out.push({ label: '252', argv: fs.existsSync('/usr/bin/machinectl') ? ['/usr/bin/machinectl'] : 'machinectl 252 is not installed (apt-get install systemd-container)', env: {} });
  for (const suite of ['trixie', 'sid'] as const) {
    const label = suite === 'sid' ? '262' : '257';
    const ref = await referenceTool(tool, { suite });
    const env: NodeJS.ProcessEnv = { BERTH_REFERENCE_SUITE: suite };
    out.push({ label, argv: typeof ref === 'string' ? ref : ['bash', REFERENCE_SCRIPT, 'run', tool], env });
  }
  return out;
}

describe.skipIf(!!why)('machinectl copy-to, copy-from and bind against berthd', async () => {
  let t: BerthdOnBus;
  let scratch: string;
  const variants = why ? [] : await clients('machinectl');
  const journalctls = why ? [] : (await clients('journalctl')).filter((v) => v.label !== '252');
  const roots: Record<string, string> = {};

  beforeAll(async () => {
    t = await berthdOnBus('mccopy');
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-mccopy-'));
    fs.chmodSync(scratch, 0o755);
    fs.mkdirSync(path.join(scratch, 'host/d'), { recursive: true });
    fs.writeFileSync(path.join(scratch, 'host/f'), 'hostfile\n');
    fs.writeFileSync(path.join(scratch, 'host/d/a'), 'a\n');
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  /** A machine NAME with its own busybox root (and with `shift`, a user namespace). */
  async function machine(name: string, shift?: number): Promise<string> {
    const root = busyboxRoot(path.join(scratch, name));
    const l = await containerLeader(root, `machine-${name}.scope`, shift);
    t.leaders.push(l);
    await t.varlink.callRaw('io.systemd.Machine.Register', { name, class: 'container', leader: l.pid, service: 'test' });
    roots[name] = root;
    return root;
  }

  /** A client in a private mount namespace whose /run/dbus/system_bus_socket is berthd's bus. */
  function client(v: Variant, ...args: string[]): Promise<RunResult> {
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run/systemd 2>/dev/null || { mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }',
      'mkdir -p /run/systemd/system',
      'mkdir -p /run/dbus && mount -t tmpfs tmpfs /run/dbus',
      'touch /run/dbus/system_bus_socket',
      'mount --bind "$BUS_SOCKET" /run/dbus/system_bus_socket',
      'exec "$@"',
    ].join('\n');
    const env = { ...process.env, ...v.env, BUS_SOCKET: t.bus.socketPath };
    delete env.DBUS_SYSTEM_BUS_ADDRESS;
    return run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...(v.argv as string[]), ...args], { env, timeoutMs: 60_000 });
  }

  const host = (p: string) => path.join(scratch, 'host', p);

  for (const v of variants) {
    it.skipIf(typeof v.argv === 'string')(`machinectl ${v.label}: copy-to, copy-from, bind`, async () => {
      const name = `${tag}-${v.label}`;
      const root = await machine(name);
      const ok = async (...args: string[]) => {
        const r = await client(v, ...args);
        expect(r.stderr, args.join(' ')).toBe('');
        expect(r.code).toBe(0);
      };
      const fails = async (message: string, ...args: string[]) => {
        const r = await client(v, ...args);
        expect(r.code, args.join(' ')).not.toBe(0);
        expect(r.stderr.trim()).toBe(message);
      };
      await ok('copy-to', name, host('f'), '/tmp/f');
      expect(fs.readFileSync(path.join(root, 'tmp/f'), 'utf8')).toBe('hostfile\n');
      await fails('Failed to copy: File exists', 'copy-to', name, host('f'), '/tmp/f');
      fs.writeFileSync(path.join(root, 'tmp/f'), 'changed\n');
      await ok('copy-to', '--force', name, host('f'), '/tmp/f');
      expect(fs.readFileSync(path.join(root, 'tmp/f'), 'utf8')).toBe('hostfile\n');
      await ok('copy-to', name, host('d'), '/tmp/d');
      expect(fs.readFileSync(path.join(root, 'tmp/d/a'), 'utf8')).toBe('a\n');
      const back = path.join(scratch, `back-${v.label}`);
      await ok('copy-from', name, '/etc/hostname', back);
      expect(fs.readFileSync(back, 'utf8')).toBe('inside\n');
      await fails('Failed to copy: No such file or directory', 'copy-from', name, '/nope', path.join(scratch, 'nope'));
      await ok('bind', '--mkdir', '--read-only', name, host('d'), '/mnt/d');
      expect(fs.readFileSync(`/proc/${t.leaders.at(-1)!.pid}/root/mnt/d/a`, 'utf8')).toBe('a\n');
      expect(fs.readFileSync(`/proc/${t.leaders.at(-1)!.pid}/mountinfo`, 'utf8')).toMatch(/ \/mnt\/d ro[, ]/);
      await fails(`Failed to bind mount: Failed to mount ${host('d')} on /nodir in machine's namespace: No such file or directory`, 'bind', name, host('d'), '/nodir');
      const us = `${tag}-${v.label}u`;
      await machine(us, SHIFT + Number(v.label) * 0x10000);
      await fails("Failed to bind mount: Can't bind mount on container with user namespacing applied.", 'bind', us, host('d'), '/mnt');
      await ok('copy-to', us, host('f'), '/tmp/f');
      expect(fs.statSync(path.join(roots[us]!, 'tmp/f')).uid).toBe(SHIFT + Number(v.label) * 0x10000);
    });
  }

  for (const v of journalctls) {
    it.skipIf(typeof v.argv === 'string')(`journalctl ${v.label} -M opens the machine's root through OpenMachineRootDirectory`, async () => {
      const name = `${tag}-j${v.label}`;
      const root = await machine(name);
      fs.mkdirSync(path.join(root, 'var/log/journal'), { recursive: true });
      const r = await client(v, '-M', name, '--no-pager', '-q');
      // An empty journal directory inside the machine: nothing to show, and no failure to reach the machine.
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const bad = await client(v, '-M', 'nope', '--no-pager', '-q');
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("No machine 'nope' known");
    });
  }
});
