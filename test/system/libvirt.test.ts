/**
 * libvirt's qemu driver as a client of machined (issues 10 and 11): inside a booted machine with systemd as
 * PID 1 (the libvirt variant of the Debian host tree), libvirtd starts a tiny TCG domain (direct kernel boot
 * of the project's test kernel, no disk, no network, serial console) and registers it over D-Bus
 * (CreateMachineWithNetwork) as qemu-ID-NAME, class vm, service libvirt-qemu; `virsh destroy` ends it
 * (TerminateMachine). First with that machine's own systemd-machined, then with berth installed in its place
 * by the README's command: the same `machinectl list` row, a scope systemd made for berth, and nothing left
 * behind. A host or machine where libvirt cannot run skips, saying exactly what stopped it.
 */
import fs from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootMachine, cannotBoot, checkout, libvirtHostTree, type Booted } from '../../bench/lib/booted-machine.js';

const README_INSTALL = 'node dist/bin/berthctl.mjs install';
const README_UNINSTALL = 'berthctl uninstall';
const vmDir = path.join(process.env.BERTH_CACHE || '/var/tmp/berth-cache', 'vm');
const DOMAIN = 'tiny';

/** The domain: type qemu (TCG), the test kernel and initrd booted directly, a serial console, nothing else. */
const domainXml = `<domain type='qemu'>
  <name>${DOMAIN}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/var/lib/libvirt/images/berth-vmlinuz</kernel>
    <initrd>/var/lib/libvirt/images/berth-initrd.cpio.gz</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'/>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;

let why = cannotBoot() ?? (fs.existsSync(path.join(vmDir, 'vmlinuz')) && fs.existsSync(path.join(vmDir, 'initrd.cpio.gz'))
  ? undefined : `no test kernel/initrd in ${vmDir} (scripts/rootfs.sh vm)`);
let m: Booted | undefined;
let work: string | undefined;
const say = (s: string): void => void process.stderr.write(`libvirt: ${s}\n`);
const indent = (s: string): string => s.trim().split('\n').map((l) => `    ${l}`).join('\n');

async function run(argv: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const t0 = Date.now();
  const r = await m!.inside(argv);
  say(`$ ${argv.join(' ')} -> ${r.exitCode} (${Date.now() - t0} ms)${r.stdout.trim() ? `\n${indent(r.stdout)}` : ''}${r.stderr.trim() ? `\n${indent(r.stderr)}` : ''}`);
  return r;
}
const sh = (line: string) => run(['sh', '-c', line]);
async function until(what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const virsh = (...args: string[]) => run(['virsh', '-q', '-c', 'qemu:///system', ...args]);
/** The machine libvirt registers for the running domain: qemu-ID-NAME. */
const machineName = async (): Promise<string> => `qemu-${(await virsh('domid', DOMAIN)).stdout.trim()}-${DOMAIN}`;
/** machined's scope name for a machine: machine-NAME.scope with '-' escaped as systemd escapes unit names. */
const scopeOf = (name: string): string => `machine-${name.replaceAll('-', '\\x2d')}.scope`;
/** The scope's unit properties, machined's own and those libvirt's CreateMachineWithNetwork asks for (lists sorted: systemd's order is its hash order). */
const scopeProps = async (name: string): Promise<string> =>
  (await run(['systemctl', 'show', '-p', 'Description,Slice,After,Before,Delegate,CollectMode,ActiveState', scopeOf(name)])).stdout
    .split('\n').filter(Boolean).map((l) => /^(After|Before)=/.test(l) ? `${l.split('=')[0]}=${l.slice(l.indexOf('=') + 1).split(' ').sort().join(' ')}` : l)
    .sort().join('\n');
const machinectlRow = async (name: string): Promise<string | undefined> =>
  (await run(['machinectl', 'list', '--no-legend'])).stdout.split('\n').find((l) => l.startsWith(`${name} `))?.trim().replace(/\s+/g, ' ');

/** The words of libvirt's refusal to start the domain, as a reason to skip; undefined when it started. */
async function startOrWhy(): Promise<string | undefined> {
  const r = await virsh('start', DOMAIN);
  if (r.exitCode === 0) return undefined;
  const log = await sh(`tail -n 15 /var/log/libvirt/qemu/${DOMAIN}.log 2>/dev/null; journalctl -b --no-pager -o cat -u libvirtd | tail -n 15`);
  return `libvirt cannot start a qemu domain in the booted machine: ${(r.stderr || r.stdout).trim()} (${log.stdout.trim().split('\n').slice(-3).join(' / ')})`;
}

beforeAll(async () => {
  if (why) return;
  try {
    const tree = await libvirtHostTree();
    work = fs.mkdtempSync('/var/tmp/berth-libvirt-');
    fs.chmodSync(work, 0o755);
    m = await bootMachine(tree, work, `libvirt-${process.pid}`, [`${vmDir}:/srv/vm`]);
    say(`booted ${m.name}: systemd is PID 1 (host PID ${m.leader})`);
  } catch (e) {
    why = `cannot boot a machine with systemd as PID 1 here: ${(e as Error).message}`;
  }
  if (!why) {
    // The images are copied in so libvirt may give them to its qemu user (the bind mount is read-only).
    await sh('cp /srv/vm/vmlinuz /var/lib/libvirt/images/berth-vmlinuz && cp /srv/vm/initrd.cpio.gz /var/lib/libvirt/images/berth-initrd.cpio.gz');
    await m!.inside(['tee', '/root/tiny.xml'], { input: domainXml });
    // On a host whose cgroup controllers are all bound to v1 hierarchies (this CI machine) the machine's
    // cgroup2 tree has none, so libvirt picks its v1 backend and fails making /sys/fs/cgroup/cpu/machine
    // (those v1 mounts are hidden under systemd's cgroup2 mount). With no controllers asked for, libvirt
    // still registers the domain with machined and runs qemu in the scope, without cgroups of its own.
    if (!(await m!.inside(['cat', '/sys/fs/cgroup/cgroup.controllers'])).stdout.trim()) {
      say('no cgroup controllers in the machine\'s cgroup2 tree: qemu.conf cgroup_controllers = [ ]');
      await sh('echo "cgroup_controllers = [ ]" >>/etc/libvirt/qemu.conf');
    }
    // restart: libvirtd may have started at boot, before qemu.conf was changed
    const started = await run(['systemctl', 'restart', 'libvirtd.service']);
    if (started.exitCode !== 0) {
      const j = await sh('journalctl -b --no-pager -o cat -u libvirtd | tail -n 5');
      why = `libvirtd does not start in the booted machine: ${j.stdout.trim().split('\n').join(' / ')}`;
    } else if ((await virsh('define', '/root/tiny.xml')).exitCode !== 0) {
      why = 'virsh define refuses the tiny domain';
    }
  }
  if (why) console.warn(`skipping the libvirt test: ${why}`);
}, 900_000);

afterAll(async () => {
  if (m) await m.inside(['virsh', '-c', 'qemu:///system', 'destroy', DOMAIN]);
  await m?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 120_000);

/** What a destroyed domain could leave behind: its machine, its scope, its state file. */
async function nothingLeft(name: string): Promise<void> {
  await until(`${name} to leave machinectl list`, async () => (await machinectlRow(name)) === undefined);
  await until(`${scopeOf(name)} to go`, async () => !(await m!.inside(['systemctl', 'list-units', '--all', '--no-legend', scopeOf(name)])).stdout.trim());
  expect((await run(['ls', '/run/systemd/machines'])).stdout.split('\n')).not.toContain(name);
  expect((await sh('ps -eo comm | grep -c qemu-system || true')).stdout.trim()).toBe('0');
}

describe('libvirt registers its qemu domain with machined, and with berth in its place', () => {
  let machinedRow: string | undefined;
  let machinedScope = '';

  it('with the machine\'s own systemd-machined: virsh start registers qemu-ID-tiny (vm, libvirt-qemu), virsh destroy removes it', async (ctx) => {
    if (why) ctx.skip(why);
    const no = await startOrWhy();
    if (no) {
      why = no;
      ctx.skip(no);
    }
    const name = await machineName();
    expect(name).toBe('qemu-1-tiny');
    machinedRow = await machinectlRow(name);
    expect(machinedRow).toMatch(new RegExp(`^${name} vm libvirt-qemu `));
    machinedScope = await scopeProps(name);
    expect(machinedScope).toContain('ActiveState=active');
    // libvirt's own scope properties, applied by machined: ordered against libvirtd and the guest shutdown
    expect(machinedScope).toMatch(/^After=.*libvirtd\.service/m);
    expect(machinedScope).toMatch(/^Before=.*virt-guest-shutdown\.target/m);
    expect((await virsh('destroy', DOMAIN)).exitCode).toBe(0);
    await nothingLeft(name);
  }, 180_000);

  it('the README install puts berth in machined\'s place; libvirtd is restarted so it asks the bus afresh', async (ctx) => {
    if (why) ctx.skip(why);
    const r = await run(['sh', '-c', `cd ${checkout} && ${README_INSTALL}`]);
    expect(r.exitCode).toBe(0);
    expect((await run(['systemctl', 'show', '-p', 'LoadState', 'systemd-machined.service'])).stdout.trim()).toBe('LoadState=masked');
    expect((await run(['systemctl', 'restart', 'libvirtd.service'])).exitCode).toBe(0);
  }, 180_000);

  it('with berth: the domain is qemu-ID-tiny in berthctl list and machinectl list (the same row as machined\'s), in a scope systemd made for berth; virsh destroy leaves nothing', async (ctx) => {
    if (why) ctx.skip(why);
    const start = await virsh('start', DOMAIN);
    if (start.exitCode !== 0) await sh(`journalctl -b --no-pager -o cat -u libvirtd -u berthd | tail -n 30; tail -n 10 /var/log/libvirt/qemu/${DOMAIN}.log`);
    expect(start.exitCode).toBe(0);
    const name = await machineName();
    expect(name).toBe('qemu-1-tiny');
    expect((await run(['berthctl', 'list', '--no-legend'])).stdout).toMatch(new RegExp(`^${name}\\s+vm\\s+libvirt-qemu`, 'm'));
    expect(await machinectlRow(name)).toBe(machinedRow);
    // the scope: a transient unit of systemd's in machine.slice, holding qemu, made on berthd's request
    const unit = scopeOf(name);
    const st = await run(['systemctl', 'status', '--no-pager', unit]);
    expect(st.stdout).toContain('Transient: yes');
    expect(st.stdout).toMatch(/qemu-system-x86_64/);
    // the same unit properties as machined's scope: berth's own and libvirt's (After=, Before=) passed on
    expect(await scopeProps(name)).toBe(machinedScope);
    expect(machinedScope).toContain('Slice=machine.slice');
    const qemuPid = Number((await sh('pidof qemu-system-x86_64')).stdout.trim());
    expect((await run(['machinectl', 'show', '-p', 'Leader', '--value', name])).stdout.trim()).toBe(String(qemuPid));
    expect((await run(['cat', `/proc/${qemuPid}/cgroup`])).stdout).toContain(`/machine.slice/${unit}`);
    expect((await run(['journalctl', '-b', '--no-pager', '-o', 'cat', '-u', 'berthd.service'])).stdout).toContain(name);
    // libvirt asks for TerminateMachine only when it made cgroups of its own; either way qemu's end empties the
    // scope, and berth must drop the machine then
    expect((await virsh('destroy', DOMAIN)).exitCode).toBe(0);
    await nothingLeft(name);
    expect((await run(['berthctl', 'list', '--no-legend'])).stdout).not.toContain(name);
  }, 180_000);

  it('uninstall gives machined back, and libvirt registers with it again', async (ctx) => {
    if (why) ctx.skip(why);
    await virsh('destroy', DOMAIN); // should a step before have failed with the domain running
    expect((await run(['sh', '-c', `cd ${checkout} && ${README_UNINSTALL}`])).exitCode).toBe(0);
    expect((await run(['systemctl', 'restart', 'libvirtd.service'])).exitCode).toBe(0);
    expect((await virsh('start', DOMAIN)).exitCode).toBe(0);
    const name = await machineName();
    expect(name).toBe('qemu-1-tiny');
    expect(await machinectlRow(name)).toBe(machinedRow);
    expect((await run(['busctl', 'status', 'org.freedesktop.machine1'])).stdout).toMatch(/^Unit=systemd-machined\.service$/m);
    expect((await virsh('destroy', DOMAIN)).exitCode).toBe(0);
    await nothingLeft(name);
  }, 180_000);
});
