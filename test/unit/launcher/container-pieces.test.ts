import { describe, expect, it } from 'vitest';
import { unitNameEscape as escapeUnitName, machineScopeUnit as scopeName } from '../../../src/domain/unit-names.js';
import { buildEnvironment, parseOsRelease, parseSetenv } from '../../../src/launcher/container/environment.js';
import { fstabPath, stage0DevFstab, stage0Fstab, stage1Fstab, type TreeLayout } from '../../../src/launcher/container/fstab.js';
import { parseCredentials, parseNotify } from '../../../src/launcher/notify.js';
import { exitInfoFrom, EXIT_REBOOT, fromContainer } from '../../../src/launcher/supervisor.js';
import { defaultMachineName as nameFromDirectory, isValidMachineName as validMachineName } from '../../../src/domain/machine-name.js';
import { parseMachineUuid as normalizeUuid } from '../../../src/domain/id128.js';
import { cunescapeBytes as unescapeC } from '../../../src/domain/c-escape.js';
import { elfInterpreter } from '../../../src/launcher/container/stage1.js';

describe('scope names', () => {
  it('escapes like systemd unit names', () => {
    expect(scopeName('foo')).toBe('machine-foo.scope');
    expect(scopeName('rg-q2')).toBe('machine-rg\\x2dq2.scope');
    expect(escapeUnitName('a.b_c:d')).toBe('a.b_c:d');
    expect(escapeUnitName('.x')).toBe('\\x2ex');
    expect(escapeUnitName('ü')).toBe('\\xc3\\xbc');
  });
});

describe('environment of PID 1', () => {
  const osr = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nNAME="Debian"\n');
  it('carries exactly the CONTAINER_INTERFACE variables', () => {
    expect(buildEnvironment({
      uuid: '6c0e3c5e-6f53-4a2b-9a44-0d5b0c7f1a11', hostOsRelease: osr, notifySocket: '/run/host/notify',
      credentialsDirectory: '/run/host/credentials', listenFds: 2, listenFdNames: 'a:b', ttys: ['pts/1', 'pts/2'],
      term: 'xterm', setenv: [['FOO', 'bar'], ['PATH', '/bin']],
    })).toEqual({
      PATH: '/bin', container: 'berth', container_uuid: '6c0e3c5e-6f53-4a2b-9a44-0d5b0c7f1a11', TERM: 'xterm',
      container_host_id: 'debian', container_host_version_id: '12', NOTIFY_SOCKET: '/run/host/notify',
      CREDENTIALS_DIRECTORY: '/run/host/credentials', LISTEN_FDS: '2', LISTEN_PID: '1', LISTEN_FDNAMES: 'a:b',
      container_ttys: 'pts/1 pts/2', FOO: 'bar',
    });
  });
  it('leaves out what was not asked for', () => {
    const env = buildEnvironment({ uuid: 'u', hostOsRelease: {} });
    expect(Object.keys(env).sort()).toEqual(['PATH', 'container', 'container_uuid']);
  });
  it('parses --setenv', () => {
    expect(parseSetenv('A=b=c')).toEqual(['A', 'b=c']);
    expect(parseSetenv('HOME', { HOME: '/x' })).toEqual(['HOME', '/x']);
    expect(() => parseSetenv('1A=x')).toThrow(/invalid/);
    expect(() => parseSetenv('NOPE', {})).toThrow(/not set/);
  });
});

describe('fstabs', () => {
  const l: TreeLayout = { runRoot: '/run/berth/machines/a b/root', tree: '/srv/t', hostDir: '/run/berth/machines/a b/host', owner: { uid: 524288, gid: 524288 }, console: '/dev/pts/3', ownNetwork: false, cgroup2: true };
  it('escapes paths', () => {
    expect(fstabPath('/a b\\c')).toBe('/a\\040b\\134c');
  });
  it('stage 0: tree, /run, read-only /run/host, /tmp, /dev owned by the container root', () => {
    const t = stage0Fstab(l).split('\n');
    expect(t[0]).toBe('/srv/t /run/berth/machines/a\\040b/root none rbind 0 0');
    expect(t[1]).toContain('tmpfs /run/berth/machines/a\\040b/root/run tmpfs mode=755,nosuid,nodev,uid=524288,gid=524288');
    expect(t[2]).toBe('/run/berth/machines/a\\040b/host /run/berth/machines/a\\040b/root/run/host none bind,ro,nosuid,nodev,noexec,X-mount.mkdir 0 0');
    expect(stage0DevFstab(l)).toContain('devpts /run/berth/machines/a\\040b/root/dev/pts devpts newinstance,ptmxmode=0666,mode=620,gid=524293');
    expect(stage0DevFstab(l)).toContain('/dev/pts/3 /run/berth/machines/a\\040b/root/dev/console none bind 0 0');
  });
  it('stage 1: /proc, read-only /proc/sys, read-only /sys (bound without a network namespace, own sysfs with one)', () => {
    expect(stage1Fstab(l)).toContain('/proc/sys none bind,ro,nosuid,nodev,noexec 0 0');
    expect(stage1Fstab(l)).toContain('/sys /run/berth/machines/a\\040b/root/sys none rbind,ro,');
    expect(stage1Fstab({ ...l, ownNetwork: true })).toContain('sysfs /run/berth/machines/a\\040b/root/sys sysfs ro,');
    expect(stage1Fstab(l)).toContain('cgroup2 /run/berth/machines/a\\040b/root/sys/fs/cgroup cgroup2 nosuid,nodev,noexec 0 0');
    expect(stage1Fstab({ ...l, cgroup2: false })).not.toContain('cgroup2');
  });
});

describe('notify messages', () => {
  it('parses fields', () => {
    const m = parseNotify('READY=1\nSTATUS=Up and running\nX_SYSTEMD_UNIT_ACTIVE=basic.target');
    expect(m.get('READY')).toBe('1');
    expect(m.get('STATUS')).toBe('Up and running');
  });
  it('reads SCM_CREDENTIALS from control data', () => {
    const c = Buffer.alloc(32);
    c.writeBigUInt64LE(28n, 0); c.writeInt32LE(1, 8); c.writeInt32LE(2, 12);
    c.writeInt32LE(4242, 16); c.writeUInt32LE(524288, 20); c.writeUInt32LE(524289, 24);
    expect(parseCredentials(c)).toEqual({ pid: 4242, uid: 524288, gid: 524289 });
    expect(parseCredentials(Buffer.alloc(0))).toEqual({ pid: 0, uid: 0, gid: 0 });
  });
});

describe('who may speak for the container', () => {
  const msg = (pid: number, uid: number) => ({ pid, uid, gid: uid, fields: new Map(), raw: '' });
  const lease = { base: 524288, range: 65536, release: () => {} };
  it('accepts PID 1, and processes with the container\'s UIDs when it has its own range', () => {
    expect(fromContainer(msg(100, 0), { leader: 100 })).toBe(true);
    expect(fromContainer(msg(101, 524288), { leader: 100, lease })).toBe(true);
    expect(fromContainer(msg(101, 524288 + 65535), { leader: 100, lease })).toBe(true);
    expect(fromContainer(msg(101, 524288 + 65536), { leader: 100, lease })).toBe(false);
    expect(fromContainer(msg(101, 0), { leader: 100, lease })).toBe(false);
    expect(fromContainer(msg(101, 0), { leader: 100 })).toBe(false);
    expect(fromContainer(msg(0, 524288), { leader: 100, lease })).toBe(false);
  });
});

describe('exit codes like nspawn', () => {
  it('maps how PID 1 ended', () => {
    expect(exitInfoFrom(undefined, 'SIGINT', false)).toMatchObject({ code: 0, reason: 'poweroff' });
    expect(exitInfoFrom(undefined, 'SIGHUP', false)).toMatchObject({ code: EXIT_REBOOT, reason: 'reboot' });
    expect(EXIT_REBOOT).toBe(133);
    expect(exitInfoFrom(7, undefined, false)).toMatchObject({ code: 7, reason: 'exit' });
    expect(exitInfoFrom(undefined, 'SIGKILL', true)).toMatchObject({ code: 1, reason: 'killed' });
    expect(exitInfoFrom(0, undefined, true)).toMatchObject({ code: 1, reason: 'killed' });
    expect(exitInfoFrom(undefined, 'SIGSEGV', false)).toMatchObject({ code: 1, reason: 'signal' });
  });
});

describe('names, UUIDs, escapes', () => {
  it('accepts hostnames only', () => {
    expect(validMachineName('ct-1.example')).toBe(true);
    for (const bad of ['', 'a b', '-x', 'x..y', '.x', 'a/b', 'x'.repeat(65)]) expect(validMachineName(bad)).toBe(false);
    // nspawn drops what a host name cannot hold (it used to become '-' here).
    expect(nameFromDirectory('/var/lib/machines/deb 12/')).toBe('deb12');
  });
  it('normalizes UUIDs', () => {
    expect(normalizeUuid('0F4E9C2A3B1D4E5F8A6B7C8D9E0F1A2B')).toBe('0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b');
    expect(() => normalizeUuid('xyz')).toThrow(/invalid UUID/);
  });
  it('unescapes credential values', () => {
    expect(unescapeC('a\\nb\\x41\\\\')).toEqual(Buffer.from('a\nbA\\'));
    expect(() => unescapeC('\\q')).toThrow(/escape/);
  });
  it('reads the ELF interpreter of the host umount', () => {
    const interp = elfInterpreter('/usr/bin/umount');
    expect(interp === undefined || interp.startsWith('/')).toBe(true);
  });
});
