// `berthctl install` / `uninstall` as a user runs them (the built berthctl), in a temporary root
// (BERTH_INSTALL_ROOT) without systemd: the dry run changes nothing, install says how to start
// berth-activate, a second install changes nothing, uninstall leaves the root as it was, bad usage is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const berthctl = path.resolve(import.meta.dirname, '../../dist/bin/berthctl.mjs');
const why = fs.existsSync(berthctl) ? undefined : 'dist/bin/berthctl.mjs is missing (npm run build)';
let root: string;
const run = (...args: string[]) => execa(process.execPath, [berthctl, ...args], { reject: false, env: { BERTH_INSTALL_ROOT: root } });
const tree = (): string[] => fs.readdirSync(root, { recursive: true }).map(String).sort();

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-install-verb-'));
  for (const d of ['usr/local', 'etc', 'var/lib']) fs.mkdirSync(path.join(root, d), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe.skipIf(!!why)(`berthctl install${why ? ` (${why})` : ''}`, () => {
  it('dry run, install, second install, uninstall, second uninstall', async () => {
    const before = tree();
    const dry = await run('install', '--dry-run');
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain('would write /usr/local/bin/berthd');
    expect(dry.stdout).toContain('/usr/local/bin/berth-activate --runtime-dir /run --idle-exit 60 &');
    expect(tree()).toEqual(before);

    const inst = await run('install');
    expect(inst.exitCode).toBe(0);
    expect(inst.stdout).toContain('systemd is not PID 1 here');
    expect(fs.existsSync(path.join(root, 'var/lib/berth/install.json'))).toBe(true);
    const wrapper = await execa(path.join(root, 'usr/local/bin/berthctl'), ['--version'], { reject: false });
    expect(wrapper.stdout).toMatch(/^berthctl \d/);

    const again = await run('install');
    expect(again.stdout).toContain('already installed');

    expect((await run('uninstall')).exitCode).toBe(0);
    expect(tree()).toEqual(before);
    const none = await run('uninstall');
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('berth is not installed here');
  });

  it('refuses bad usage', async () => {
    expect((await run('install', '--bogus')).exitCode).toBe(2);
    expect((await run('uninstall', '--prefix', '/opt')).exitCode).toBe(2);
  });
});
