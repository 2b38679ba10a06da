// systemd-nspawn 252 (Debian's) and 257 registering a busybox container with berthd over D-Bus: with
// --keep-unit (RegisterMachineWithNetwork: nspawn runs in a unit-shaped cgroup it made itself) and without
// (CreateMachineWithNetwork: with no systemd as PID 1 berth makes machine-NAME.scope itself), each in its own
// user namespace (-U). While it runs the container is in `berthctl list`, `ps -o machine` names it (through
// /run/systemd/machines/unit:UNIT) and userdbctl knows its users; after it exits it is gone everywhere,
// scope included, and nspawn printed nothing (no warning about its registration).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { REPO } from '../helpers/generated.js';
import { REFERENCE_SCRIPT, referenceTool } from '../helpers/reference.js';
import { BERTHD, berthdOnBus, madeCgroups, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { detectCgroupLayout, machineScopeDirs } from '../../src/domain/cgroup-paths.js';
import { hostArgv, inHost } from './host-paths.js';

const BUSYBOX = '/var/tmp/berth-cache/busybox/rootfs';
const BERTHCTL = join(REPO, 'dist/bin/berthctl.mjs');
const why =
  process.getuid?.() !== 0 ? 'needs root (namespaces, cgroups)'
  : !existsSync(BERTHD) ? 'not built (npm run build)'
  : !existsSync(BUSYBOX) ? `no busybox tree at ${BUSYBOX} (bash scripts/rootfs.sh busybox)`
  : '';
const layout = detectCgroupLayout();
// No dashes: unit names escape them, and the test compares unit names.
const tag = `ns${process.pid % 100000}`;

/** An emptied cgroup and the ones below it, deepest first. */
function removeCgroupTree(d: string): void {
  if (!existsSync(d)) return;
  for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(d, e.name));
  try {
    rmdirSync(d);
  } catch (e) {
    console.warn(`cannot remove ${d}: ${(e as Error).message}`);
  }
}

async function nspawns(): Promise<{ label: string; argv: string[] | string }[]> {
  const ref = await referenceTool('systemd-nspawn');
  return [
    { label: '252', argv: existsSync('/usr/bin/systemd-nspawn') ? ['/usr/bin/systemd-nspawn'] : 'systemd-nspawn 252 is not installed (apt-get install systemd-container)' },
    { label: '257', argv: typeof ref === 'string' ? ref : ['bash', REFERENCE_SCRIPT, 'run', 'systemd-nspawn'] },
  ];
}
const variants = why ? [] : await nspawns();

describe.skipIf(!!why)('systemd-nspawn registers with berthd over D-Bus', () => {
  let t: BerthdOnBus;
  let dir: string;
  const names: string[] = [];

  beforeAll(async () => {
    t = await berthdOnBus('nspawn');
    dir = mkdtempSync('/var/tmp/berth-nspawn-');
  }, 60_000);
  afterAll(async () => {
    await t?.stop();
    for (const n of names) {
      for (const d of machineScopeDirs(n, layout.hierarchies)) {
        try {
          rmdirSync(d);
        } catch {
          /* removed by berthd, as it should be */
        }
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const v of variants) {
    for (const keepUnit of [true, false]) {
      const label = `systemd-nspawn ${v.label} ${keepUnit ? '--keep-unit (RegisterMachine*)' : 'without --keep-unit (CreateMachine*)'}`;
      it.skipIf(typeof v.argv === 'string')(label, async () => {
        const name = `${tag}x${v.label}${keepUnit ? 'k' : 'c'}`;
        names.push(name);
        const root = join(dir, name);
        cpSync(BUSYBOX, root, { recursive: true, verbatimSymlinks: true });
        const unit = `system.slice/${name}-nspawn.scope`;
        // --keep-unit: nspawn registers the cgroup it runs in, so it starts in a unit-shaped one.
        const cgroups = keepUnit ? layout.hierarchies.map((h) => join(h.root, unit)) : [];
        madeCgroups.push(...cgroups);
        const script = 'for d in "$@"; do [ "$d" = -- ] && break; mkdir -p "$d"; echo $$ >"$d/cgroup.procs"; shift; done; shift; exec "$@"';
        const nspawnArgv = [...(v.argv as string[]), '-q', '-U', '-D', root, '-M', name, ...(keepUnit ? ['--keep-unit'] : []), '/bin/sh', '-c', 'while [ ! -e /stop ]; do sleep 0.1; done'];
        const w = hostArgv(t, ['sh', '-c', script, 'sh', ...cgroups, '--', ...nspawnArgv]);
        const child: ChildProcess = spawn(w.argv[0]!, w.argv.slice(1), { env: { ...w.env, NSSWITCH: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (out += d));
        try {
          const listed = () => inHost(t, ['node', BERTHCTL, 'list', '--no-legend']);
          await waitFor(async () => (await listed()).stdout.includes(name) || child.exitCode !== null, `${name} in berthctl list`, { timeoutMs: 30_000 });
          expect(child.exitCode, out).toBeNull();
          const row = (await listed()).stdout.split('\n').find((r) => r.startsWith(name + ' '));
          expect(row!.split(/\s+/).slice(0, 4)).toEqual([name, 'container', 'systemd-nspawn', 'busybox']);

          const show = await inHost(t, ['machinectl', 'show', '-p', 'Leader', '-p', 'Unit', name]);
          const leader = Number(/^Leader=(\d+)$/m.exec(show.stdout)?.[1]);
          const unitName = /^Unit=(.*)$/m.exec(show.stdout)?.[1];
          expect(unitName).toBe(keepUnit ? `${name}-nspawn.scope` : `machine-${name}.scope`);
          // ps reads /run/systemd/machines/unit:UNIT for the unit of each process's cgroup.
          const ps = await inHost(t, ['ps', '-e', '-o', 'pid=,machine=']);
          const psRow = ps.stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => Number(f[0]) === leader);
          expect(psRow, ps.stdout).toEqual([String(leader), name]);
          // -U: the container's users come from berth's userdb records.
          const user = await inHost(t, ['userdbctl', 'user', `vu-${name}-0`]);
          expect(user.code, user.stderr).toBe(0);
          expect(user.stdout).toMatch(new RegExp(`User name: vu-${name}-0`));

          writeFileSync(join(root, 'stop'), '');
          expect(await exited(child, 30_000)).toBe(0);
          expect(out).toBe('');
          await waitFor(async () => !(await listed()).stdout.includes(name), `${name} to leave the list`);
          expect(existsSync(join(t.runtime, 'systemd/machines', `unit:${unitName}`))).toBe(false);
          expect(existsSync(join(t.runtime, 'systemd/machines', name))).toBe(false);
          // The scope berth made for CreateMachine goes with the machine.
          if (!keepUnit) await waitFor(() => machineScopeDirs(name, layout.hierarchies).every((d) => !existsSync(d)), `machine-${name}.scope to be removed`);
        } finally {
          if (child.exitCode === null) {
            // A failed check: stop the container through berth (killing nspawn would leave it running).
            await inHost(t, ['machinectl', 'terminate', name]);
            await exited(child, 10_000).catch(() => child.kill('SIGKILL'));
          }
          // nspawn made payload/ inside the unit it ran in; cgroups are not private to the test.
          for (const d of cgroups) removeCgroupTree(d);
          rmSync(root, { recursive: true, force: true });
        }
      }, 120_000);
      if (typeof v.argv === 'string') console.warn(`skipping systemd-nspawn ${v.label}: ${v.argv}`);
    }
  }
});
