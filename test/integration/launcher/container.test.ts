/**
 * Real busybox containers through the launcher library: user namespace with a picked range, environment,
 * /dev, read-only /sys and /proc/sys, credentials, READY=1 from PID 1, LISTEN_FDS, the scope, SIGRTMIN+3,
 * exit codes, veth, binds, journal link, registration, and failures that leave nothing behind.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../../../src/launcher/supervisor.js';
import { hashedBase } from '../../../src/launcher/uid-range.js';
import { deriveMac, hostMachineId } from '../../../src/launcher/network.js';
import type { ContainerOptions } from '../../../src/launcher/container/options.js';
import { newUuid } from '../../../src/domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';
import { waitFor } from '../../../src/launcher/teardown.js';
import { cannotRun, INIT, TRAP_READY_IDLE, useScratch, type Tree } from './fixture.js';
import { leftovers } from './leftovers.js';

const why = cannotRun();
if (why) console.warn(`skipping container integration tests: ${why}`);

const scratch = useScratch(why);
const tree = scratch.tree;

function options(t: Tree, name: string, extra: Partial<ContainerOptions> = {}): ContainerOptions {
  return {
    directory: t.root, name, uuid: newUuid(), boot: false, command: INIT, privateUsers: { mode: 'pick' }, binds: [],
    setenv: [], credentials: [], linkJournal: 'no', networkVeth: false, register: 'no', runtimeDir: scratch.rt,
    notifyReady: true, ttys: [], listenFds: [], killSignal: SIGRTMIN_PLUS_3, quiet: true,
    hostJournalDir: path.join(scratch.rt, 'journal'), consoleOutput: new PassThrough(),
    ...extra,
  };
}

const read = (t: Tree, f: string): string => fs.readFileSync(path.join(t.root, 'data', f), 'utf8');

describe.skipIf(!!why)('busybox container', () => {
  it('runs PID 1 in its namespaces with a picked UID range, the interface environment and a private /dev', async () => {
    const t = await tree(`trap 'exit 0' 37
{ echo "pid=$$"; echo "uid=$(id -u)"; echo "hostname=$(hostname)"; } > /data/facts
env > /data/env
cat /proc/self/uid_map > /data/uid_map
ls /dev > /data/dev
if touch /sys/berth-probe 2>/dev/null; then echo sys=rw; else echo sys=ro; fi >> /data/facts
if (echo 1 > /proc/sys/kernel/sysrq) 2>/dev/null; then echo procsys=rw; else echo procsys=ro; fi >> /data/facts
if touch /run/host/probe 2>/dev/null; then echo runhost=rw; else echo runhost=ro; fi >> /data/facts
cat /run/host/credentials/cred1 > /data/cred
readlink /etc/localtime > /data/localtime
cat /run/host/container-manager > /data/manager
touch /data/created-inside
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const name = 'bt-basic';
    const uuid = newUuid();
    const sup = await Supervisor.start(options(t, name, {
      uuid, setenv: [['FOO', 'bar baz']], ttys: ['pts/1'], credentials: [{ id: 'cred1', data: Buffer.from('s3cret\n') }],
    }), { readyTimeoutMs: 10_000 });
    try {
      expect(sup.state).toBe('running');
      const base = hashedBase(name);
      expect(sup.uidBase).toBe(base);
      expect(read(t, 'facts')).toBe(`pid=1\nuid=0\nhostname=${name}\nsys=ro\nprocsys=ro\nrunhost=ro\n`);
      expect(read(t, 'uid_map').trim().split(/\s+/)).toEqual(['0', String(base), '65536']);
      const env = Object.fromEntries(read(t, 'env').trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      expect(env).toMatchObject({
        container: 'berth', container_uuid: uuid, NOTIFY_SOCKET: '/run/host/notify', FOO: 'bar baz',
        CREDENTIALS_DIRECTORY: '/run/host/credentials', container_ttys: 'pts/1',
      });
      const hostOs = fs.readFileSync('/etc/os-release', 'utf8');
      const id = /^ID=(.*)$/m.exec(hostOs)![1]!.replace(/"/g, '');
      expect(env.container_host_id).toBe(id);
      expect(env.LISTEN_FDS).toBeUndefined();
      expect(read(t, 'dev').split('\n')).toEqual(expect.arrayContaining(['console', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'tty', 'urandom', 'zero']));
      expect(read(t, 'cred')).toBe('s3cret\n');
      expect(read(t, 'manager')).toBe('berth\n');
      if (fs.existsSync('/usr/share/zoneinfo/Etc/UTC') && fs.readlinkSync('/etc/localtime').endsWith('Etc/UTC')) {
        expect(read(t, 'localtime').trim()).toBe('../usr/share/zoneinfo/Etc/UTC');
      }
      // Files the container's root creates belong to the shifted UID on the host.
      const st = fs.statSync(path.join(t.root, 'data', 'created-inside'));
      expect([st.uid, st.gid]).toEqual([base, base]);
      expect(fs.statSync(t.root).uid).toBe(base);
      // PID 1 sits in machine.slice/machine-NAME.scope in every hierarchy, and nowhere else.
      expect(sup.scopePaths.length).toBeGreaterThan(0);
      for (const p of sup.scopePaths) {
        expect(p).toMatch(/machine\.slice\/machine-bt\\x2dbasic\.scope$/);
        expect(fs.readFileSync(path.join(p, 'cgroup.procs'), 'utf8')).toContain(String(sup.leader));
      }
      const state = JSON.parse(fs.readFileSync(path.join(sup.runDir!, 'state.json'), 'utf8'));
      expect(state).toMatchObject({ name, state: 'running', leader: sup.leader, uidBase: base, class: 'container' });
      expect(sup.timings.readyMs).toBeLessThan(10_000);
    } finally {
      const info = await sup.stop(5000);
      expect(info).toMatchObject({ code: 0, reason: 'exit' });
    }
    expect(sup.state).toBe('exited');
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });

  it('runs without a user namespace with --private-users=no (container root is the host\'s root)', async () => {
    const t = await tree(`trap 'exit 0' 37
cat /proc/self/uid_map > /data/uid_map
touch /data/created-inside
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const sup = await Supervisor.start(options(t, 'bt-nouserns', { privateUsers: { mode: 'no' } }), { readyTimeoutMs: 10_000 });
    await sup.stop(5000);
    expect(sup.uidBase).toBeUndefined();
    expect(read(t, 'uid_map').trim().split(/\s+/)).toEqual(['0', '0', '4294967295']);
    expect(fs.statSync(path.join(t.root, 'data', 'created-inside')).uid).toBe(0);
    expect(leftovers(scratch.rt, 'bt-nouserns')).toEqual([]);
  });

  it('stops cleanly on SIGRTMIN+3 and reports the time it took', async () => {
    const t = await tree(`${TRAP_READY_IDLE}`);
    const sup = await Supervisor.start(options(t, 'bt-stop'), { readyTimeoutMs: 10_000 });
    const info = await sup.stop(5000);
    expect(info).toEqual({ code: 0, reason: 'exit', pid1Status: 0 });
    expect(sup.timings.stopMs).toBeLessThan(5000); // the trap ran: no SIGKILL escalation
    expect(leftovers(scratch.rt, 'bt-stop')).toEqual([]);
  });

  it('kills the whole scope when PID 1 ignores the stop signal', async () => {
    // No trap: a PID-namespace init without a handler never sees SIGRTMIN+3.
    const t = await tree('/usr/bin/ct-helper notify READY=1\nsleep 1000 & sleep 1000 & while :; do sleep 1; done');
    const sup = await Supervisor.start(options(t, 'bt-kill'), { readyTimeoutMs: 10_000 });
    await waitFor(() => sup.scopePaths.every((p) => fs.readFileSync(path.join(p, 'cgroup.procs'), 'utf8').trim().split('\n').length >= 3), 5000, 'children in the scope');
    const info = await sup.stop(300);
    expect(info.reason).toBe('killed');
    expect(info.code).toBe(1);
    expect(leftovers(scratch.rt, 'bt-kill')).toEqual([]);
  });

  it('maps poweroff to 0 and reboot to 133, like nspawn', async () => {
    // reboot(2) inside a PID namespace ends its init with SIGINT (power off, halt) or SIGHUP (reboot).
    const off = await tree('/usr/bin/ct-helper notify READY=1\nread x < /run/host/container-manager\n/usr/bin/ct-helper poweroff\nsleep 100');
    const a = await Supervisor.start(options(off, 'bt-off'), { readyTimeoutMs: 10_000 });
    expect(await a.wait()).toMatchObject({ code: 0, reason: 'poweroff', pid1Signal: 'SIGINT' });
    const re = await tree('/usr/bin/ct-helper notify READY=1\n/usr/bin/ct-helper reboot\nsleep 100');
    const b = await Supervisor.start(options(re, 'bt-reboot'), { readyTimeoutMs: 10_000 });
    expect(await b.wait()).toMatchObject({ code: 133, reason: 'reboot', pid1Signal: 'SIGHUP' });
    expect(leftovers(scratch.rt, 'bt-off')).toEqual([]);
    expect(leftovers(scratch.rt, 'bt-reboot')).toEqual([]);
  });

  it('hands sockets to PID 1 as fd 3 with LISTEN_FDS, LISTEN_PID=1 and LISTEN_FDNAMES', async () => {
    const t = await tree(`trap 'exit 0' 37
env | grep ^LISTEN_ > /data/listen
/usr/bin/ct-helper serve-once > /data/served 2>&1 &
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    let sup: Supervisor | undefined;
    try {
      sup = await Supervisor.start(options(t, 'bt-listen', { listenFds: [fd], listenFdNames: 'web' }), { readyTimeoutMs: 10_000 });
      server.close(); // only the container accepts from now on
      expect(read(t, 'listen').trim().split('\n').sort()).toEqual(['LISTEN_FDNAMES=web', 'LISTEN_FDS=1', 'LISTEN_PID=1']);
      const reply = await new Promise<string>((resolve, reject) => {
        const c = net.connect(port, '127.0.0.1');
        let buf = '';
        c.on('data', (d) => { buf += d; });
        c.on('end', () => resolve(buf));
        c.on('error', reject);
        c.setTimeout(10_000, () => { c.destroy(); reject(new Error('no reply from the container within 10 s')); });
      });
      expect(reply).toMatch(/^served-by-container pid=\d+ uid=0 listen_fds=1 names=web\n$/);
    } finally {
      server.close();
      if (sup) await sup.stop(5000);
    }
    expect(leftovers(scratch.rt, 'bt-listen')).toEqual([]);
  });

  it('binds host paths read-write and read-only', async () => {
    const t = await tree(`trap 'exit 0' 37
cat /mnt/rw/in > /data/seen-rw
echo from-container > /mnt/rw/out
if echo x > /mnt/ro/out 2>/dev/null; then echo ro-writable; else echo ro-refused; fi > /data/ro
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const rw = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bind-'));
    const ro = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bind-'));
    fs.writeFileSync(path.join(rw, 'in'), 'from-host\n');
    fs.chmodSync(rw, 0o777);
    fs.chmodSync(ro, 0o777);
    const sup = await Supervisor.start(options(t, 'bt-bind', {
      binds: [{ source: rw, target: '/mnt/rw', readOnly: false }, { source: ro, target: '/mnt/ro', readOnly: true }],
    }), { readyTimeoutMs: 10_000 });
    await sup.stop(5000);
    expect(read(t, 'seen-rw')).toBe('from-host\n');
    expect(fs.readFileSync(path.join(rw, 'out'), 'utf8')).toBe('from-container\n');
    expect(read(t, 'ro')).toBe('ro-refused\n');
    expect(fs.existsSync(path.join(ro, 'out'))).toBe(false);
    fs.rmSync(rw, { recursive: true });
    fs.rmSync(ro, { recursive: true });
    expect(leftovers(scratch.rt, 'bt-bind')).toEqual([]);
  });

  it('links the journal directory with --link-journal=guest', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const uuid = newUuid();
    const sup = await Supervisor.start(options(t, 'bt-journal', { uuid, linkJournal: 'guest' }), { readyTimeoutMs: 10_000 });
    const link = path.join(scratch.rt, 'journal', uuid.replace(/-/g, ''));
    expect(fs.readlinkSync(link)).toBe(path.join(fs.realpathSync(t.root), 'var/log/journal', uuid.replace(/-/g, '')));
    expect(fs.statSync(link).uid).toBe(sup.uidBase);
    await sup.stop(5000);
  });

  it('creates host0 and ve-NAME with the MACs nspawn would use', async () => {
    const t = await tree(`trap 'exit 0' 37
cat /sys/class/net/host0/address > /data/mac
ls /sys/class/net > /data/links
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`);
    const name = 'bt-veth';
    const sup = await Supervisor.start(options(t, name, { networkVeth: true }), { readyTimeoutMs: 10_000 });
    try {
      const mid = hostMachineId();
      expect(read(t, 'mac').trim()).toBe(deriveMac(name, 'container', mid));
      expect(read(t, 'links').split('\n')).toEqual(expect.arrayContaining(['host0', 'lo']));
      expect(fs.readFileSync(`/sys/class/net/ve-${name}/address`, 'utf8').trim()).toBe(deriveMac(name, 'host', mid));
    } finally {
      await sup.stop(5000);
    }
    expect(fs.existsSync(`/sys/class/net/ve-${name}`)).toBe(false);
    expect(leftovers(scratch.rt, name)).toEqual([]);
  });
});

describe.skipIf(!!why)('registration', () => {
  it('registers with leader, class, rootDirectory and allocateUnit:false, and unregisters on exit', async () => {
    const calls: { method: string; parameters: Record<string, unknown> }[] = [];
    const sockDir = path.join(scratch.rt, 'systemd', 'machine');
    fs.mkdirSync(sockDir, { recursive: true });
    const server = net.createServer((c) => {
      let buf = Buffer.alloc(0);
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        let i;
        while ((i = buf.indexOf(0)) >= 0) {
          const m = JSON.parse(buf.subarray(0, i).toString());
          buf = buf.subarray(i + 1);
          calls.push(m);
          if (m.method === 'io.systemd.Machine.Register' && m.parameters.name === 'bt-taken') {
            c.write(JSON.stringify({ error: 'io.systemd.Machine.MachineExists', parameters: {} }) + '\0');
          } else c.write(JSON.stringify({ parameters: {} }) + '\0');
        }
      });
    });
    await new Promise<void>((r) => server.listen(path.join(sockDir, 'io.systemd.Machine'), r));
    try {
      const t = await tree(TRAP_READY_IDLE);
      const uuid = newUuid();
      const sup = await Supervisor.start(options(t, 'bt-reg', { uuid, register: 'yes' }), { readyTimeoutMs: 10_000 });
      expect(sup.registered).toBe(true);
      const reg = calls.find((c) => c.method === 'io.systemd.Machine.Register')!;
      expect(reg.parameters).toEqual({
        name: 'bt-reg', id: uuid.replace(/-/g, ''), class: 'container', service: 'berth', leader: sup.leader,
        rootDirectory: fs.realpathSync(t.root), controlAddress: path.join(sup.runDir!, 'io.systemd.MachineInstance'), allocateUnit: false,
      });
      await sup.stop(5000);
      expect(calls.at(-1)).toEqual({ method: 'io.systemd.Machine.Unregister', parameters: { name: 'bt-reg' } });

      // A name the registry already knows: the launch fails and leaves nothing behind.
      const t2 = await tree(TRAP_READY_IDLE);
      await expect(Supervisor.start(options(t2, 'bt-taken', { register: 'yes' }), { readyTimeoutMs: 10_000 })).rejects.toThrow(/MachineExists/);
      expect(leftovers(scratch.rt, 'bt-taken')).toEqual([]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('carries on without a registry with --register=auto, and fails with --register=yes', async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-scratch.rt-'));
    fs.chmodSync(other, 0o755);
    try {
      const t = await tree(TRAP_READY_IDLE);
      const sup = await Supervisor.start(options(t, 'bt-auto', { register: 'auto', runtimeDir: other }), { readyTimeoutMs: 10_000 });
      expect(sup.registered).toBe(false);
      await sup.stop(5000);
      await expect(Supervisor.start(options(t, 'bt-yes', { register: 'yes', runtimeDir: other }), { readyTimeoutMs: 10_000 }))
        .rejects.toThrow(/no machine registry/);
      expect(leftovers(other, 'bt-yes')).toEqual([]);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!!why)('bad input fails fast and leaves nothing behind', () => {
  const within10s = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
    const t0 = Date.now();
    await expect(p).rejects.toThrow(re);
    expect(Date.now() - t0).toBeLessThan(10_000);
  };

  it('a missing directory', async () => {
    const t = await tree(TRAP_READY_IDLE);
    await within10s(Supervisor.start(options(t, 'bt-missing', { directory: '/nonexistent/tree' })), /does not exist/);
    expect(leftovers(scratch.rt, 'bt-missing')).toEqual([]);
  });

  it('an invalid name', async () => {
    const t = await tree(TRAP_READY_IDLE);
    await within10s(Supervisor.start(options(t, 'no good')), /invalid machine name/);
  });

  it('a name already running', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const sup = await Supervisor.start(options(t, 'bt-dup'), { readyTimeoutMs: 10_000 });
    try {
      const t2 = await tree(TRAP_READY_IDLE);
      await within10s(Supervisor.start(options(t2, 'bt-dup')), /already running/);
      expect(sup.state).toBe('running'); // the first one is untouched
      expect(fs.existsSync(path.join(sup.runDir!, 'state.json'))).toBe(true);
    } finally {
      await sup.stop(5000);
    }
    expect(leftovers(scratch.rt, 'bt-dup')).toEqual([]);
  });

  it('a range overlapping a running machine', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const sup = await Supervisor.start(options(t, 'bt-range1'), { readyTimeoutMs: 10_000 });
    try {
      const t2 = await tree(TRAP_READY_IDLE);
      await within10s(Supervisor.start(options(t2, 'bt-range2', { privateUsers: { mode: 'fixed', shift: sup.uidBase! + 0x8000, range: 65536 } })), /overlaps/);
      expect(leftovers(scratch.rt, 'bt-range2')).toEqual([]);
    } finally {
      await sup.stop(5000);
    }
  });

  it('a tree another machine is using', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const sup = await Supervisor.start(options(t, 'bt-tree1'), { readyTimeoutMs: 10_000 });
    try {
      await within10s(Supervisor.start(options(t, 'bt-tree2')), /is in use by machine 'bt-tree1'/);
      expect(leftovers(scratch.rt, 'bt-tree2')).toEqual([]);
      expect(fs.statSync(t.root).uid).toBe(sup.uidBase); // not shifted under the running machine
    } finally {
      await sup.stop(5000);
    }
  });

  it('a PID 1 that exits at once', async () => {
    const t = await tree('exit 3');
    await within10s(Supervisor.start(options(t, 'bt-exit'), { readyTimeoutMs: 10_000 }), /PID 1 exited with status 3 before it was ready/);
    expect(leftovers(scratch.rt, 'bt-exit')).toEqual([]);
  });

  it('a bind target that leads out of the tree through a symlink', async () => {
    const t = await tree(TRAP_READY_IDLE);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-outside-'));
    fs.symlinkSync(outside, path.join(t.root, 'escape'));
    await within10s(Supervisor.start(options(t, 'bt-symlink', { binds: [{ source: '/etc/hostname', target: '/escape/x', readOnly: true }] })), /\/escape in .* is a symlink/);
    expect(fs.readdirSync(outside)).toEqual([]);
    fs.rmSync(outside, { recursive: true });
    expect(leftovers(scratch.rt, 'bt-symlink')).toEqual([]);
  });

  it('a command that does not exist in the tree', async () => {
    const t = await tree(TRAP_READY_IDLE);
    await within10s(Supervisor.start(options(t, 'bt-nocmd', { command: ['/no/such/init'] }), { readyTimeoutMs: 10_000 }), /PID 1 exited with status/);
    expect(leftovers(scratch.rt, 'bt-nocmd')).toEqual([]);
  });
});
