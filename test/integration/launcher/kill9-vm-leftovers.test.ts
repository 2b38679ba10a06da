/**
 * `berth-spawn --vm` killed with SIGKILL (qemu goes with it): what it leaves (its run directory with its launch
 * record, its marked scope) is removed by the next start of the same VM, and by `berthctl cleanup`. The shipped
 * bundles (dist/bin), a TCG VM from the test cache; one VM at a time, since TCG is slow.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scope } from '../../../src/launcher/cgroup.js';
import { berthSpawnMark, readLaunchRecord } from '../../../src/launcher/launch-record.js';
import { scopeMaker } from '../../../src/domain/scope-mark.js';
import { findGuest, GUEST_INIT, pidAlive, waitFor, writeCpio } from '../vm/guest.js';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const spawnCli = path.join(repo, 'dist/bin/berth-spawn.mjs');
const ctlCli = path.join(repo, 'dist/bin/berthctl.mjs');
const guest = findGuest();
const why = 'skip' in guest ? guest.skip : fs.existsSync(spawnCli) && fs.existsSync(ctlCli) ? undefined : 'dist/bin is missing: run \'npm run build\' first';
if (why) console.warn(`skipping the VM kill -9 leftover test: ${why}`);

let rt = '';
let overlay = '';
const name = 'k9-vm';
beforeAll(() => {
  if (why) return;
  rt = fs.mkdtempSync('/tmp/berth-vmk9-');
  fs.chmodSync(rt, 0o755);
  overlay = path.join(rt, 'overlay.cpio');
  writeCpio(overlay, { init: GUEST_INIT });
});
afterAll(async () => {
  if (!rt) return;
  const scope = Scope.locate(name);
  scope.killAll();
  await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty').catch(() => {});
  scope.remove();
  fs.rmSync(rt, { recursive: true, force: true });
});

function start(): { p: ResultPromise; err: () => string } {
  const files = guest as { kernel: string; initrd: string };
  let err = '';
  const p = execa(process.execPath, [spawnCli, '--vm', `--runtime-dir=${rt}`, '-M', name, '--ram=256M', '--console=read-only', '--kvm=no', '--tpm=no',
    '--register=no', `--linux=${files.kernel}`, `--initrd=${files.initrd}`, `--initrd=${overlay}`, 'quiet'],
  { reject: false, stdin: 'ignore', buffer: false, forceKillAfterDelay: false });
  p.stderr?.on('data', (d: Buffer) => void (err += d.toString()));
  p.stdout?.resume();
  return { p, err: () => err };
}

/** Starts the VM until qemu runs, then kills berth-spawn with SIGKILL; returns its pid once qemu has ended too. */
async function startAndKill9(): Promise<{ pid: number; err: string }> {
  const { p, err } = start();
  await waitFor(() => /qemu pid \d+/.test(err()) || p.exitCode !== null, 60_000, 'qemu to start');
  const qemu = Number(/qemu pid (\d+)/.exec(err())?.[1]);
  expect(pidAlive(qemu), err()).toBe(true);
  p.kill('SIGKILL');
  await p;
  await waitFor(() => !pidAlive(qemu), 5000, 'qemu to end with its launcher');
  return { pid: p.pid!, err: err() };
}

describe.skipIf(!!why)('berth-spawn --vm killed with SIGKILL', () => {
  it('leaves its run directory and marked scope; the next start removes them, then berthctl cleanup does', async () => {
    const runDir = path.join(rt, 'berth/vm', name);
    const scope = Scope.locate(name);
    const first = await startAndKill9();
    expect(readLaunchRecord(runDir)).toMatchObject({ name, kind: 'vm', pid: first.pid });
    await waitFor(() => scope.exists() && scope.pids().length === 0, 5000, 'an empty scope');
    for (const d of scope.paths) expect(scopeMaker(d)).toBe(berthSpawnMark(rt));

    const second = await startAndKill9();
    expect(second.err).toContain(`removing leftover run directory ${runDir} of a berth-spawn that ended (pid ${first.pid})`);
    expect(second.err).toMatch(new RegExp(`removing leftover scope \\S+ of a berth-spawn that ended \\(pid ${first.pid}\\)`));
    expect(readLaunchRecord(runDir)?.pid).toBe(second.pid);
    await waitFor(() => scope.pids().length === 0, 5000, 'the scope to empty');

    const c = await execa(process.execPath, [ctlCli, `--runtime-dir=${rt}`, 'cleanup', name], { reject: false });
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toContain(`removed leftover run directory ${runDir} of a berth-spawn that ended (pid ${second.pid})`);
    expect(c.stdout).toMatch(new RegExp(`removed leftover scope \\S+ of a berth-spawn that ended \\(pid ${second.pid}\\)`));
    expect(fs.existsSync(runDir)).toBe(false);
    expect(scope.exists()).toBe(false);
  }, 180_000);
});
