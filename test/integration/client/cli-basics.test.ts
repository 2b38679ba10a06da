// berthctl and berth-spawn as a user first meets them: --version prints the version of src/domain/version.ts
// (berth-spawn's in both modes), and berthctl without a berthd says that berthd is not running and how to start
// it, with machinectl's exit status 1, not a bare "connect ENOENT".
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/generated.js';
import { VERSION } from '../../../src/domain/version.js';

const BERTHCTL = join(REPO, 'dist/bin/berthctl.mjs');
const SPAWN = join(REPO, 'dist/bin/berth-spawn.mjs');
const node = (...args: string[]) => spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
const dir = mkdtempSync('/tmp/berth-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--version', () => {
  it('berthctl prints its version', () => {
    const r = node(BERTHCTL, '--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`berthctl ${VERSION}\n`);
  });
  it.each([[['--version']], [['--vm', '--version']], [['-D', '/nonexistent', '--version']]])('berth-spawn %j prints its version, not the help', (args) => {
    const r = node(SPAWN, ...args);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(`berth-spawn ${VERSION}\n`);
  });
});

describe('berthctl without berthd', () => {
  it('says berthd is not running and how to start it, exit 1', () => {
    for (const verb of [['list'], ['status', 'x'], ['start', 'x'], ['shell', 'x']]) {
      const r = node(BERTHCTL, '--runtime-dir', join(dir, 'none'), ...verb);
      expect(r.status, `${verb}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/^berthd is not running \(no socket at .*\/systemd\/machine\/io\.systemd\.Machine\)/);
      expect(r.stderr).toContain('systemctl start berthd.socket');
      expect(r.stderr).toContain('berth-activate');
    }
  });

  it('tells a socket nobody listens on apart', async () => {
    const runtime = join(dir, 'stale');
    mkdirSync(join(runtime, 'systemd/machine'), { recursive: true });
    const path = join(runtime, 'systemd/machine/io.systemd.Machine');
    // A socket file left behind by a berthd that was killed: a child binds it and dies by SIGKILL.
    const child = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(child.signal).toBe('SIGKILL');
    const r = node(BERTHCTL, '--runtime-dir', runtime, 'list');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^berthd is not running \(nothing listens on /);
  });
});
