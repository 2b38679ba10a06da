/**
 * The clients of a systemd host (issue 11, point 4) against a container registered with berth that itself
 * runs systemd: in the booted Debian machine (bench/lib/booted-machine.ts) berth is installed with the
 * README's command, and systemd-nspawn --boot starts a user-namespaced copy of the same tree there (berth
 * asks systemd for its scope). Then systemctl -M, systemd-run -M, journalctl -M, userdbctl and getent for
 * its users (vu-NAME-0), ps -o machine; and all of it again after `systemctl restart berthd`; berth's own
 * RegisterReplacingDead asking systemd for the scope. Each step prints what it ran. A host that cannot boot
 * the machines skips, saying why.
 */
import fs from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootMachine, cannotBoot, systemdHostTree, type Booted } from '../../bench/lib/booted-machine.js';

const README_INSTALL = 'node dist/bin/berthctl.mjs install';
/** the nested container: its name, and where its copy of the tree lives inside the booted machine */
const NEST = 'nest';
const NEST_ROOT = `/var/lib/machines/${NEST}`;

let why = cannotBoot();
let m: Booted | undefined;
let work: string | undefined;
const say = (s: string): void => void process.stderr.write(`systemd-host-clients: ${s}\n`);
const indent = (s: string): string => s.trim().split('\n').map((l) => `    ${l}`).join('\n');

beforeAll(async () => {
  if (why) return;
  try {
    const tree = await systemdHostTree();
    work = fs.mkdtempSync('/var/tmp/berth-syshost-clients-');
    fs.chmodSync(work, 0o755);
    // the same tree again, read-only, as the image the nested container is copied from
    m = await bootMachine(tree, work, `syshost-cl-${process.pid}`, [`${tree}:/srv/debian`]);
    say(`booted ${m.name}: systemd is PID 1 (host PID ${m.leader})`);
  } catch (e) {
    why = `cannot boot a machine with systemd as PID 1 here: ${(e as Error).message}`;
  }
  if (why) console.warn(`skipping the systemd-host clients test: ${why}`);
}, 900_000);

afterAll(async () => {
  await m?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 120_000);

async function sh(line: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const t0 = Date.now();
  const r = await m!.sh(line);
  say(`$ ${line} -> ${r.exitCode} (${Date.now() - t0} ms)${r.stdout.trim() ? `\n${indent(r.stdout)}` : ''}${r.stderr.trim() ? `\n${indent(r.stderr)}` : ''}`);
  return r;
}
async function until(what: string, cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const quiet = (line: string) => m!.sh(line);

describe('the clients of a systemd host, into a booted container registered with berth', () => {
  let leader = 0;

  it('berth is installed and systemd-nspawn --boot -U of a Debian tree registers with it; its systemd comes up', async (ctx) => {
    if (why) ctx.skip(why);
    expect((await sh(README_INSTALL)).exitCode).toBe(0);
    expect((await sh(`mkdir -p /var/lib/machines && cp -a /srv/debian ${NEST_ROOT} && echo copied`)).stdout).toContain('copied');
    // A user namespace gets a proc of its own only where no proc mount is partly covered (the kernel's
    // "too revealing" rule), and the booted machine's /proc/sys is a read-only overmount as in any nspawn
    // container. So nspawn runs in a private mount namespace without that overmount; the container is still
    // one of the booted machine's, registered with berth like any other.
    const start = await sh(`(unshare -m --propagation slave sh -c 'umount /proc/sys && exec systemd-nspawn -q -D ${NEST_ROOT} -M ${NEST} ` +
      `--private-users=pick --private-users-ownership=chown --boot' </dev/null >/tmp/${NEST}.log 2>&1 &) ; echo started`);
    expect(start.stdout).toContain('started');
    try {
      await until(`${NEST} to be registered with berth`, async () => new RegExp(`^${NEST}\\s+container`, 'm').test((await quiet('berthctl list --no-legend')).stdout));
      await until(`${NEST}'s systemd to finish booting`, async () => /^(running|degraded)$/m.test((await quiet(`systemctl -M ${NEST} is-system-running`)).stdout));
    } catch (e) {
      const log = (await quiet(`tail -n 15 /tmp/${NEST}.log`)).stdout;
      throw new Error(`${(e as Error).message}; nspawn's console:\n${log}`);
    }
    leader = Number((await sh(`machinectl show -p Leader --value ${NEST}`)).stdout.trim());
    expect(leader).toBeGreaterThan(1);
    // systemd made the scope (nspawn without --keep-unit: berth asked PID 1 for it)
    expect((await sh(`systemctl show -p Slice,Transient machine-${NEST}.scope`)).stdout.split('\n').filter(Boolean).sort())
      .toEqual(['Slice=machine.slice', 'Transient=yes']);
    // with the properties nspawn asked for (CreateMachine's scope_properties): SIGRTMIN+3 stops its systemd cleanly
    expect((await sh(`systemctl show -p KillSignal --value machine-${NEST}.scope`)).stdout.trim()).toBe('37');
  }, 180_000);

  const clients = (when: string) => async (ctx: { skip(reason: string): never }) => {
    if (why) ctx.skip(why);
    if (!leader) ctx.skip(`${NEST} did not boot (see the first step)`);
    say(`--- the clients, ${when}`);
    expect((await sh(`systemctl -M ${NEST} is-system-running`)).stdout.trim()).toMatch(/^(running|degraded)$/);
    expect((await sh(`systemctl -M ${NEST} list-units --no-legend --plain -t service --state=running`)).stdout).toMatch(/^dbus\.service\s+loaded active running/m);
    const marker = `berth-marker-${when.replace(/\W+/g, '-')}-${Date.now()}`;
    const run = await sh(`systemd-run -M ${NEST} --wait -p StandardOutput=journal sh -c 'echo ${marker}'`);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toContain('Finished with result: success');
    // the line the unit logged, read from the container's journal by the host's journalctl
    await until('the marker in the journal', async () => (await quiet(`journalctl -M ${NEST} --no-pager -o cat --grep ${marker}`)).stdout.includes(marker), 15_000);
    expect((await sh(`journalctl -M ${NEST} --no-pager -o cat --grep ${marker}`)).stdout).toContain(marker);
    // its root, as the host sees it: vu-NAME-0 at the UID the container's PID 1 runs as on the host
    const hostUid = Number(/^Uid:\s+(\d+)/m.exec((await quiet(`cat /proc/${leader}/status`)).stdout)?.[1]);
    expect(hostUid).toBeGreaterThan(65535);
    const u = await sh(`userdbctl user vu-${NEST}-0`);
    expect(u.exitCode).toBe(0);
    expect(u.stdout).toMatch(new RegExp(`UID: ${hostUid}\\b`));
    expect(u.stdout).toMatch(/Disposition: container/);
    expect((await sh(`getent passwd vu-${NEST}-0`)).stdout).toMatch(new RegExp(`^vu-${NEST}-0:x:${hostUid}:`, 'm'));
    expect((await sh(`getent passwd ${hostUid}`)).stdout).toMatch(new RegExp(`^vu-${NEST}-0:`, 'm'));
    expect((await sh(`ps -o machine= -p ${leader}`)).stdout.trim()).toBe(NEST);
  };

  it('systemctl -M, systemd-run -M --wait, journalctl -M, userdbctl and getent for vu-NAME-0, ps -o machine', clients('first'), 120_000);

  it('the same after systemctl restart berthd', async (ctx) => {
    if (why) ctx.skip(why);
    if (!leader) ctx.skip(`${NEST} did not boot (see the first step)`);
    expect((await sh('systemctl restart berthd')).exitCode).toBe(0);
    expect((await sh('berthctl list --no-legend')).stdout).toMatch(new RegExp(`^${NEST}\\s+container`, 'm'));
    await clients('after systemctl restart berthd')(ctx);
  }, 120_000);

  it('RegisterReplacingDead (berth\'s own call) gets its scope from systemd as Register does, and replaces a machine whose leader died', async (ctx) => {
    if (why) ctx.skip(why);
    const call = (params: object): string =>
      `node -e 'const c = require("net").connect("/run/systemd/machine/io.systemd.Machine"); ` +
      `c.write(JSON.stringify({ method: "io.berth.Machine.RegisterReplacingDead", parameters: ${JSON.stringify(params)} }) + "\\0"); ` +
      `c.on("data", (d) => { process.stdout.write(d.toString().replace(/\\0$/, "") + "\\n"); c.end(); })'`;
    const leaderIn = async (): Promise<number> => Number((await quiet('sleep 100000 >/dev/null 2>&1 & echo $!')).stdout.trim());
    const a = await leaderIn();
    const b = await leaderIn();
    try {
      expect(JSON.parse((await sh(call({ name: 'rep', class: 'container', leader: a, allocateUnit: true }))).stdout)).toEqual({ parameters: { replaced: false } });
      expect((await sh('systemctl show -p Slice,Transient machine-rep.scope')).stdout.split('\n').filter(Boolean).sort()).toEqual(['Slice=machine.slice', 'Transient=yes']);
      expect((await sh(`cat /proc/${a}/cgroup`)).stdout).toMatch(/:\/machine\.slice\/machine-rep\.scope$/m);
      // the leader dies and the same name is registered again at once (berthd may or may not have seen the exit)
      const again = await sh(`kill -9 ${a}; ${call({ name: 'rep', class: 'container', leader: b, allocateUnit: true })}`);
      expect(JSON.parse(again.stdout)).toMatchObject({ parameters: { replaced: expect.any(Boolean) } });
      expect((await sh(`cat /proc/${b}/cgroup`)).stdout).toMatch(/:\/machine\.slice\/machine-rep\.scope$/m);
      expect((await sh('berthctl list --no-legend')).stdout).toMatch(/^rep\s+container/m);
      expect((await sh('machinectl show -p Leader --value rep')).stdout.trim()).toBe(String(b));
      // machinectl terminate: systemd stops the scope (StopUnit), which ends the leader; berth drops the machine
      expect((await sh('machinectl terminate rep')).exitCode).toBe(0);
      await until('rep to go', async () => !/^rep\s/m.test((await quiet('berthctl list --no-legend')).stdout));
      await until('machine-rep.scope to stop', async () => (await quiet('systemctl is-active machine-rep.scope')).stdout.trim() !== 'active');
      await until(`its leader ${b} to end`, async () => (await quiet(`kill -0 ${b}`)).exitCode !== 0);
    } finally {
      await quiet(`kill -9 ${a} ${b}`);
    }
  }, 60_000);

  it('machinectl poweroff sends the container\'s init SIGRTMIN+4 (KillMachine to the leader): it powers off cleanly and berth drops it', async (ctx) => {
    if (why) ctx.skip(why);
    if (!leader) ctx.skip(`${NEST} did not boot (see the first step)`);
    expect((await sh(`machinectl poweroff ${NEST}`)).exitCode).toBe(0);
    await until(`${NEST} to go`, async () => !new RegExp(`^${NEST}\\s`, 'm').test((await quiet('berthctl list --no-legend')).stdout));
    await until('machine-nest.scope to go', async () => (await quiet(`systemctl is-active machine-${NEST}.scope`)).stdout.trim() !== 'active');
    expect((await sh(`tail -n 3 /tmp/${NEST}.log`)).stdout).toMatch(/^Powering off\.$/m);
  }, 120_000);
});
