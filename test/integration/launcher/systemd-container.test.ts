/**
 * A real systemd (Debian 12's 252) as PID 1: boots to READY=1, takes its machine ID from container_uuid,
 * halts on SIGRTMIN+3 (ends by SIGINT, exit code 0), and its own sub-cgroups go with the scope.
 * The tree comes from `scripts/rootfs.sh debian` (a debootstrapped minbase with systemd); it is copied,
 * because the launcher shifts the copy's ownership onto its UID range.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor } from '../../../src/launcher/supervisor.js';
import { newUuid } from '../../../src/domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';
import { cannotRun } from './fixture.js';
import { leftovers } from './leftovers.js';

const cache = process.env.BERTH_CACHE || '/var/tmp/berth-cache';
const source = path.join(cache, 'debian', 'rootfs');
const why = cannotRun() ?? (fs.existsSync(path.join(cache, 'debian', '.complete')) ? undefined : `no Debian tree at ${source} (build it with scripts/rootfs.sh debian)`);
if (why) console.warn(`skipping the systemd container test: ${why}`);

let work: string;
let root: string;
let rt: string;

beforeAll(async () => {
  if (why) return;
  work = fs.mkdtempSync(path.join('/var/tmp', 'berth-sd-'));
  fs.chmodSync(work, 0o755);
  root = path.join(work, 'debian');
  await execa('cp', ['-a', '--reflink=auto', source, root]);
  rt = path.join(work, 'run');
  fs.mkdirSync(rt, { mode: 0o755 });
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!!why)('systemd container', () => {
  it('boots to READY=1, uses container_uuid as machine ID, and halts cleanly', async () => {
    const uuid = newUuid();
    const console = new PassThrough();
    let output = '';
    console.on('data', (d) => { output += d; });
    const sup = await Supervisor.start({
      directory: root, name: 'sd-boot', uuid, boot: true, command: [], privateUsers: { mode: 'pick' }, binds: [],
      setenv: [], credentials: [], linkJournal: 'no', networkVeth: false, register: 'no', runtimeDir: rt,
      notifyReady: true, ttys: [], listenFds: [], killSignal: SIGRTMIN_PLUS_3, quiet: true,
      hostJournalDir: path.join(work, 'journal'), consoleOutput: console,
    }, { readyTimeoutMs: 30_000 });
    let scopes: string[] = [];
    try {
      process.stderr.write(`systemd container: READY after ${sup.timings.readyMs!.toFixed(0)} ms\n`);
      const id = await execa('nsenter', ['-t', String(sup.leader), '-m', 'cat', '/etc/machine-id']);
      expect(id.stdout.trim()).toBe(uuid.replace(/-/g, ''));
      const state = await execa('nsenter', ['-t', String(sup.leader), '-a', 'systemctl', 'is-system-running'], { reject: false });
      expect(['running', 'degraded', 'starting']).toContain(state.stdout.trim());
      // systemd made its own cgroups inside the delegated scope.
      scopes = sup.scopePaths;
      const unified = scopes.find((p) => p.includes('/unified/') || !p.includes('/systemd/'))!;
      expect(fs.existsSync(path.join(unified, 'init.scope'))).toBe(true);
      expect(output).toContain('Reached target');
    } finally {
      const info = await sup.stop(10_000);
      process.stderr.write(`systemd container: stopped in ${sup.timings.stopMs!.toFixed(0)} ms\n`);
      expect(info).toMatchObject({ code: 0, reason: 'poweroff' });
    }
    for (const p of scopes) expect(fs.existsSync(p)).toBe(false);
    expect(leftovers(rt, 'sd-boot')).toEqual([]);
    // The tree now belongs to the container's range.
    expect(fs.statSync(path.join(root, 'etc')).uid).toBe(sup.uidBase);
  });
});
