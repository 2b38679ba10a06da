// Images served by berthd on both bindings from one core: the Manager's image methods and the Image objects
// on a private system-like bus (Debian's busctl asks), io.systemd.MachineImage over Varlink, each seeing what
// the other changed; machined 262's errors for unknown images, taken and invalid names, the host image, the
// pool limit (no quota here: NotSupported) and a caller who may look but not act.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachineImage } from '../../../src/generated/io.systemd.MachineImage.js';
import { isImmutable, setImmutable } from '../../../src/server/image-flags.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { waitFor } from '../../helpers/wait.js';
import { BERTHD, busctl, startBerthd, startSystemBus, type SystemBus } from './fixture.js';

const why = process.getuid?.() !== 0 ? 'needs root (bus policy, immutable flag)' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping the image API tests: ${why}`);

const M = ['org.freedesktop.machine1', '/org/freedesktop/machine1', 'org.freedesktop.machine1.Manager'];
const IMG = 'org.freedesktop.machine1.Image';
const TEST_UID = 999; // berth-test

describe.skipIf(!!why)('images on D-Bus and Varlink', () => {
  let bus: SystemBus;
  let daemon: ChildProcess;
  let runtime: string;
  let pool: string;
  let varlink: VarlinkClient;

  const call = (...args: string[]) => busctl(bus, ['call', ...M, ...args]);
  const json = async (args: string[], asUid?: number) => {
    const r = await busctl(bus, ['--json=short', ...args], asUid);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout).data;
  };
  const img = () => varlink.proxy(IoSystemdMachineImage);
  const varlinkError = async (p: Promise<unknown>) => p.then(() => 'ok', (e: { error?: string; parameters?: unknown }) => ({ error: e.error, parameters: e.parameters }));

  beforeAll(async () => {
    pool = mkdtempSync('/var/tmp/berth-imgpool-');
    mkdirSync(join(pool, 'alpha/etc'), { recursive: true });
    writeFileSync(join(pool, 'alpha/etc/hostname'), 'alphahost\n');
    writeFileSync(join(pool, 'alpha/etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
    writeFileSync(join(pool, 'alpha/etc/os-release'), 'ID=test\nNAME="Test OS"\n');
    mkdirSync(join(pool, 'beta'));
    mkdirSync(join(pool, '.hid'));
    writeFileSync(join(pool, 'disk.raw'), '');
    truncateSync(join(pool, 'disk.raw'), 1 << 20);
    bus = await startSystemBus();
    runtime = mkdtempSync('/var/tmp/berth-imgapi-');
    daemon = await startBerthd(runtime, bus, ['--image-dir', pool]);
    varlink = await VarlinkClient.connect(`unix:${join(runtime, 'systemd/machine/io.systemd.MachineImage')}`);
  }, 60_000);

  afterAll(async () => {
    varlink?.close();
    await tearDown({ daemon });
    await bus?.stop();
    for (const d of ['alpha', 'beta', 'gamma', 'delta']) if (existsSync(join(pool, d)) && isImmutable(join(pool, d))) setImmutable(join(pool, d), false);
    rmSync(pool, { recursive: true, force: true });
    rmSync(runtime, { recursive: true, force: true });
  });

  it('lists images and serves Image objects with machined properties', async () => {
    const list = (await json(['call', ...M, 'ListImages']))[0] as unknown[][];
    const byName = Object.fromEntries(list.map((e) => [e[0], e]));
    expect(Object.keys(byName).sort()).toEqual(['.hid', '.host', 'alpha', 'beta', 'disk']);
    expect(byName['.host']).toEqual(['.host', 'directory', true, 0, 0, 18446744073709552000, '/org/freedesktop/machine1/image/_2ehost']);
    expect(byName.disk!.slice(0, 3)).toEqual(['disk', 'raw', false]);
    expect(byName.alpha![4]).toBe(0); // no modification time for a directory
    expect((await call('GetImage', 's', 'alpha')).stdout).toBe('o "/org/freedesktop/machine1/image/alpha"\n');
    expect((await call('GetImage', 's', '.host')).stdout).toBe('o "/org/freedesktop/machine1/image/_2ehost"\n');
    const props = await busctl(bus, ['get-property', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/disk', IMG, 'Name', 'Path', 'Type', 'ReadOnly', 'Limit', 'LimitExclusive']);
    expect(props.stdout).toBe(`s "disk"\ns "${join(pool, 'disk.raw')}"\ns "raw"\nb false\nt 1048576\nt 1048576\n`);
    const dir = await busctl(bus, ['get-property', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/alpha', IMG, 'Usage', 'Limit', 'ModificationTimestamp']);
    expect(dir.stdout).toBe('t 18446744073709551615\nt 18446744073709551615\nt 0\n');
    const tree = await busctl(bus, ['tree', 'org.freedesktop.machine1']);
    expect(tree.stdout).toContain('/org/freedesktop/machine1/image/_2ehid');
  });

  it('reads metadata through the Manager and the Image object', async () => {
    expect((await call('GetImageHostname', 's', 'alpha')).stdout).toBe('s "alphahost"\n');
    expect((await call('GetImageHostname', 's', 'beta')).stdout).toBe('s ""\n');
    expect((await call('GetImageMachineID', 's', 'alpha')).stdout).toBe('ay 16 1 35 69 103 137 171 205 239 1 35 69 103 137 171 205 239\n');
    expect((await call('GetImageMachineID', 's', 'beta')).stdout).toBe('ay 0\n');
    expect((await call('GetImageOSRelease', 's', 'alpha')).stdout).toBe('a{ss} 2 "ID" "test" "NAME" "Test OS"\n');
    expect((await call('GetImageMachineInfo', 's', 'alpha')).stdout).toBe('a{ss} 0\n');
    const viaObject = await busctl(bus, ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/alpha', IMG, 'GetHostname']);
    expect(viaObject.stdout).toBe('s "alphahost"\n');
  });

  it('answers bad input with machined errors', async () => {
    expect((await call('GetImage', 's', 'nope')).stderr).toBe("Call failed: No image 'nope' known\n");
    expect((await call('GetImage', 's', 'a/b')).stderr).toBe("Call failed: No image 'a/b' known\n");
    expect((await call('GetImageHostname', 's', 'a/b')).stderr).toBe("Call failed: Image name 'a/b' is invalid.\n");
    expect((await call('RenameImage', 'ss', 'alpha', 'beta')).stderr).toBe('Call failed: Failed to rename image: File exists\n');
    expect((await call('RenameImage', 'ss', 'alpha', 'a/b')).stderr).toBe("Call failed: Image name 'a/b' is invalid.\n");
    expect((await call('RenameImage', 'ss', '.host', 'x')).stderr).toBe('Call failed: Failed to rename image: Read-only file system\n');
    expect((await call('CloneImage', 'ssb', 'alpha', 'beta', 'false')).stderr).toBe('Call failed: File exists\n');
    expect((await call('RemoveImage', 's', '.host')).stderr).toBe('Call failed: Read-only file system\n');
    expect((await call('MarkImageReadOnly', 'sb', '.host', 'true')).stderr).toBe('Call failed: Read-only file system\n');
    expect((await call('SetImageLimit', 'st', 'alpha', '1000000')).stderr).toBe('Call failed: Operation not supported\n');
    expect((await call('SetPoolLimit', 't', '1000000')).stderr).toBe('Call failed: Quota is only supported on btrfs.\n');
    expect((await call('CleanPool', 's', 'bogus')).stderr).toBe("Call failed: Unknown mode 'bogus'.\n");
    const gone = await busctl(bus, ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/nope', IMG, 'GetHostname']);
    expect(gone.stderr).toBe("Call failed: Unknown object '/org/freedesktop/machine1/image/nope'.\n");
    expect(await varlinkError(img().SetPoolLimit({ limit: 1000 }))).toEqual({ error: 'io.systemd.MachineImage.NotSupported', parameters: {} });
    expect(await varlinkError(img().SetPoolLimit({ limit: -1 }))).toEqual({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter: 'limit' } });
    expect(await varlinkError(img().Update({ name: 'alpha', newName: 'beta' }))).toMatchObject({ error: 'io.systemd.System', parameters: { errno: 17 } });
    expect(await varlinkError(img().Update({ name: '.host', readOnly: true }))).toMatchObject({ error: 'io.systemd.System', parameters: { errno: 30 } });
  });

  it('lets an unprivileged caller look but not act', async () => {
    expect((await json(['call', ...M, 'GetImage', 's', 'alpha'], TEST_UID))[0]).toBe('/org/freedesktop/machine1/image/alpha');
    const r = await busctl(bus, ['call', ...M, 'RemoveImage', 's', 'alpha'], TEST_UID);
    expect(r.stderr).toMatch(/Access denied|Interactive authentication required/);
    expect(existsSync(join(pool, 'alpha'))).toBe(true);
  });

  it('renames, clones, marks read-only and removes through either binding, one store', async () => {
    expect((await call('MarkImageReadOnly', 'sb', 'alpha', 'true')).code).toBe(0);
    expect(isImmutable(join(pool, 'alpha'))).toBe(true);
    expect((await img().List({ name: 'alpha' })).readOnly).toBe(true);
    // A read-only image can still be renamed, keeping its mark, as with machined.
    expect((await call('RenameImage', 'ss', 'alpha', 'gamma')).code).toBe(0);
    expect(isImmutable(join(pool, 'gamma'))).toBe(true);
    expect(await varlinkError(img().List({ name: 'alpha' }))).toEqual({ error: 'io.systemd.MachineImage.NoSuchImage', parameters: {} });
    await img().Update({ name: 'gamma', readOnly: false });
    expect((await busctl(bus, ['get-property', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/gamma', IMG, 'ReadOnly'])).stdout).toBe('b false\n');
    const clone = await busctl(bus, ['call', 'org.freedesktop.machine1', '/org/freedesktop/machine1/image/gamma', IMG, 'Clone', 'sb', 'delta', 'true']);
    expect(clone.code).toBe(0);
    expect(existsSync(join(pool, 'delta/etc/hostname'))).toBe(true);
    expect((await img().List({ name: 'delta' })).readOnly).toBe(true);
    // Removing a read-only image works (machined lifts the mark).
    await img().Remove({ name: 'delta' });
    expect(existsSync(join(pool, 'delta'))).toBe(false);
    expect((await call('MarkImageReadOnly', 'sb', 'disk', 'true')).code).toBe(0);
    expect(statSync(join(pool, 'disk.raw')).mode & 0o222).toBe(0);
    expect((await call('RemoveImage', 's', 'disk')).code).toBe(0);
    expect(existsSync(join(pool, 'disk.raw'))).toBe(false);
  });

  it('answers other calls while a clone copies', async () => {
    // A tree big enough that copying it takes far longer than a lookup.
    const big = join(pool, 'big');
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(big, `d${d}`), { recursive: true });
      for (let f = 0; f < 250; f++) writeFileSync(join(big, `d${d}`, `f${f}`), 'x');
    }
    const order: string[] = [];
    const clone = img().Clone({ name: 'big', newName: 'big2' }).then(() => order.push('clone'));
    const other = await VarlinkClient.connect(`unix:${join(runtime, 'systemd/machine/io.systemd.MachineImage')}`);
    try {
      await other.proxy(IoSystemdMachineImage).List({ name: 'beta' }).then(() => order.push('list'));
      expect((await call('GetImage', 's', 'beta')).code).toBe(0);
      order.push('dbus');
    } finally {
      other.close();
    }
    await clone;
    expect(order).toEqual(['list', 'dbus', 'clone']);
    expect(existsSync(join(pool, 'big2/d39/f249'))).toBe(true);
    await img().Remove({ name: 'big2' });
    await img().Remove({ name: 'big' });
  }, 120_000);

  it('cleans the pool: hidden images over Varlink as a stream, the rest over D-Bus', async () => {
    const stream: unknown[] = [];
    for await (const r of img().CleanPool.more({ mode: 'hidden' })) stream.push(r);
    expect(stream).toEqual([{ name: '.hid' }]);
    expect(await varlinkError(img().CleanPool({ mode: 'hidden' }))).toEqual({ error: 'org.varlink.service.ExpectedMore', parameters: {} });
    expect(await varlinkError((async () => { for await (const _ of img().CleanPool.more({ mode: 'hidden' })) void _; })())).toEqual({ error: 'io.systemd.MachineImage.NoSuchImage', parameters: {} });
    // A lock held on the lock file beside an image (as nspawn holds it) marks it in use: cleaning leaves it.
    const lock = join(pool, '.#gamma.lck');
    writeFileSync(lock, '');
    // flock and its sleep share the lock: both are stopped, as a process group.
    const holder = spawn('flock', [lock, 'sleep', '60'], { stdio: 'ignore', detached: true });
    await waitFor(() => readFileSync('/proc/locks', 'utf8').includes(`:${statSync(lock).ino} `), 'flock to hold the lock');
    const cleaned = (await json(['call', ...M, 'CleanPool', 's', 'all']))[0] as unknown[][];
    expect(cleaned.map((e) => e[0])).toEqual(['beta']);
    expect(existsSync(join(pool, 'gamma'))).toBe(true);
    process.kill(-holder.pid!, 'SIGKILL');
    await exited(holder, 5000);
    await waitFor(() => !readFileSync('/proc/locks', 'utf8').includes(`:${statSync(lock).ino} `), 'the lock to go');
    // The file alone, with nobody holding it, is stale.
    expect((await call('CleanPool', 's', 'all')).stdout).toBe('a(st) 1 "gamma" 18446744073709551615\n');
    expect((await call('CleanPool', 's', 'all')).stdout).toBe('a(st) 0\n');
    const left = (await json(['call', ...M, 'ListImages']))[0] as unknown[][];
    expect(left.map((e) => e[0])).toEqual(['.host']);
  });
});
