// `berth-spawn --vm` as users run it: the compiled CLI (built here from the sources under test), a TCG VM,
// SIGTERM for a clean stop, and SIGKILL of the launcher taking qemu with it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { machineScopeUnit as scopeName } from '../../../src/domain/unit-names.js';
import { Scope } from '../../../src/launcher/cgroup.js';
import { findGuest, GUEST_INIT, pidAlive, waitFor, writeCpio } from './guest.js';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const outDir = join(repo, '.cache', 'berth-vm-cli-test-build');
const cli = join(outDir, 'src/client/berth-spawn.js');
const guest = findGuest();
const why = 'skip' in guest ? guest.skip : undefined;
if (why) console.warn(`berth-spawn --vm CLI tests skipped: ${why}`);

let rt: string;
let overlay: string;

beforeAll(async () => {
  if (why) return;
  rt = mkdtempSync(join(tmpdir(), 'berth-vmcli-'));
  chmodSync(rt, 0o755);
  overlay = join(rt, 'overlay.cpio');
  writeCpio(overlay, { init: GUEST_INIT });
  await execa(
    'npx',
    ['tsc', '--outDir', outDir, '--rootDir', repo, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--strict',
      '--skipLibCheck', '--types', 'node', '--sourceMap', 'false', '--declaration', 'false', 'src/client/berth-spawn.ts', 'src/launcher/vm/main.ts'],
    { cwd: repo },
  );
}, 180_000);

afterAll(() => {
  if (rt) rmSync(rt, { recursive: true, force: true });
});

function start(name: string, env: Record<string, string> = {}): { p: ResultPromise; err: () => string } {
  const files = guest as { kernel: string; initrd: string };
  let err = '';
  const p = execa('node', [cli, '--vm', `--runtime-dir=${rt}`, '-M', name, '--ram=256M', '--console=read-only', '--kvm=no', '--tpm=no',
    `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`, 'quiet'], { reject: false, stdin: 'ignore', buffer: false, forceKillAfterDelay: false, env });
  p.stderr?.on('data', (d: Buffer) => void (err += d.toString()));
  p.stdout?.resume();
  return { p, err: () => err };
}


describe.skipIf(why !== undefined)('berth-spawn --vm (compiled CLI)', () => {
  it('tells its own NOTIFY_SOCKET; SIGTERM powers the VM off over QMP; exits 0 with nothing left behind', async () => {
    const name = 'cli-term';
    const { NotifySocket: NotifyReceiver } = await import('../../../src/launcher/notify.js');
    const sock = join(rt, 'outer-notify');
    const outer = new NotifyReceiver(sock);
    const messages: string[] = [];
    outer.on('message', (m: { raw: string }) => void messages.push(m.raw));
    const { p, err } = start(name, { NOTIFY_SOCKET: sock });
    await waitFor(() => messages.some((m) => m.split('\n').includes('READY=1')) || p.exitCode !== null, 60_000, 'READY=1 on our NOTIFY_SOCKET');
    expect(err()).toMatch(/ready after \d+ ms/);
    expect(messages.join('\n')).toMatch(/X_BERTH_LEADER_PID=\d+/);
    expect(messages.join('\n')).toContain('STATUS=VM running. test guest up');
    const pid = Number(/qemu pid (\d+)/.exec(err())?.[1]);
    expect(pidAlive(pid)).toBe(true);
    p.kill('SIGTERM');
    const r = await p;
    expect(r.exitCode, err()).toBe(0);
    expect(err()).toMatch(/SIGTERM: powering off cli-term/);
    expect(err()).toMatch(/machine cli-term ended: exit status 0 after (powerdown|quit)/);
    expect(pidAlive(pid)).toBe(false);
    expect(existsSync(join(rt, 'berth/vm', name))).toBe(false);
    expect(existsSync(join('/sys/fs/cgroup/unified/machine.slice', scopeName(name)))).toBe(false);
    expect(messages.join('\n')).toContain('STOPPING=1');
    await outer.close();
  });

  it('qemu does not outlive a launcher killed with SIGKILL', async () => {
    const name = 'cli-kill';
    const { p, err } = start(name);
    await waitFor(() => /qemu pid \d+/.test(err()) || p.exitCode !== null, 30_000, 'qemu to start');
    const pid = Number(/qemu pid (\d+)/.exec(err())?.[1]);
    expect(pidAlive(pid)).toBe(true);
    p.kill('SIGKILL');
    await p;
    await waitFor(() => !pidAlive(pid), 5000, `qemu ${pid} to end after its launcher died`);
    expect(pidAlive(pid)).toBe(false);
    // a launcher killed outright cannot clean up: the next launch of the name takes the stale scope over
    const scope = Scope.locate(name);
    await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty');
    scope.remove();
  });
});
