/** Reading what the host shows of berth-spawn's parts: held locks, mounts below a directory, launch records. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockHeld, mountsBelow } from '../../../src/launcher/host-traces.js';
import { berthSpawnMark, launcherAlive, LaunchRecord, readLaunchRecord, vethAlias } from '../../../src/launcher/launch-record.js';
import { tryLock } from '../../../src/domain/libc.js';
import { readStartTime } from '../../../src/domain/process.js';

describe('lockHeld', () => {
  it('sees a flock some process holds, and none once it is released, without taking it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-locks-'));
    const f = path.join(dir, 'x.lock');
    fs.writeFileSync(f, '');
    expect(lockHeld(f)).toBe(false);
    const fd = fs.openSync(f, 'r+');
    expect(tryLock(fd)).toBe(true);
    expect(lockHeld(f)).toBe(true);
    fs.closeSync(fd);
    expect(lockHeld(f)).toBe(false);
    expect(lockHeld(path.join(dir, 'missing'))).toBe(false);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('mountsBelow', () => {
  const info = [
    '22 1 0:21 / /run rw - tmpfs tmpfs rw',
    '90 22 0:40 / /run/berth/machines/a/root rw - ext4 /dev/x rw',
    '91 90 0:41 / /run/berth/machines/a/root/proc rw - proc proc rw',
    '92 22 0:42 / /run/berth/machines/ab rw - tmpfs tmpfs rw',
    '93 22 0:43 / /run/berth/machines/a/with\\040space rw - tmpfs tmpfs rw',
  ].join('\n');
  it('lists mount points at or below a directory, each before those it is mounted below, unescaped; not a sibling sharing its prefix', () => {
    const m = mountsBelow('/run/berth/machines/a', info);
    expect([...m].sort()).toEqual(['/run/berth/machines/a/root', '/run/berth/machines/a/root/proc', '/run/berth/machines/a/with space']);
    expect(m.indexOf('/run/berth/machines/a/root/proc')).toBeLessThan(m.indexOf('/run/berth/machines/a/root'));
  });
});

describe('launch records', () => {
  it('name this process by pid, start time and boot; a record of another start time is of a process that ended', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rec-'));
    const r = LaunchRecord.create(dir, 'web', 'container');
    r.note({ veth: 've-web' });
    const read = readLaunchRecord(dir)!;
    expect(read).toMatchObject({ name: 'web', kind: 'container', pid: process.pid, starttime: readStartTime(process.pid), veth: 've-web' });
    expect(launcherAlive(read)).toBe(true);
    expect(launcherAlive({ ...read, starttime: read.starttime + 1 })).toBe(false);
    expect(launcherAlive({ ...read, bootId: '0'.repeat(32) })).toBe(false);
    expect(readLaunchRecord(path.join(dir, 'none'))).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });

  it('marks are per runtime directory and distinct from berthd\'s', () => {
    expect(berthSpawnMark('/run/')).toBe('berth-spawn /run');
    expect(vethAlias('/tmp/rt', 'web')).toBe('berth-spawn /tmp/rt web');
  });
});
