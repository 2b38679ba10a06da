// The shipped unit files must pass `systemd-analyze verify` without a single complaint about them.
//
// verify checks that ExecStart= names an executable that exists, and the host normally has no berthd
// installed (and no systemd as PID 1). So the units are verified inside a throw-away root: the host's
// own system units (for sockets.target, sysinit.target, ...), every unit of units/ in /etc/systemd/system and an
// executable stub at the ExecStart= path. `--root` makes systemd-analyze read everything from there.
import { execa } from 'execa';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const unitsDir = join(repo, 'units');
// Every unit file we ship, verified together (they refer to each other).
const unitNames = readdirSync(unitsDir)
  .filter((n) => /\.(socket|service|target|path|timer|mount)$/.test(n))
  .sort();
const hostUnitDir = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((d) =>
  existsSync(join(d, 'sockets.target')),
);
const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
const skipReason = !analyze
  ? 'systemd-analyze is not installed (package systemd)'
  : !hostUnitDir
    ? 'no system unit directory with sockets.target on this host'
    : '';

/** Values of `Key=` in a unit file, in order (no continuation lines: our units have none). */
function values(text: string, key: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && m[1] === key) out.push(m[2] ?? '');
  }
  return out;
}

/** The executable that ExecStart= runs, without systemd's prefix characters (-, @, :, +, !). */
function execPath(serviceText: string): string {
  const exec = values(serviceText, 'ExecStart')[0];
  if (!exec) throw new Error('berthd.service has no ExecStart=');
  const first = exec.split(/\s+/)[0] ?? '';
  return first.replace(/^[-@:+!]+/, '');
}

interface VerifyResult {
  exitCode: number | undefined;
  lines: string[];
}

let root = '';

async function makeRoot(mutate?: (name: string, text: string) => string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-units-'));
  await mkdir(join(dir, 'usr/lib/systemd'), { recursive: true });
  await mkdir(join(dir, 'etc/systemd/system'), { recursive: true });
  // cp -a keeps the alias symlinks of the host's unit tree as they are.
  await execa('cp', ['-a', hostUnitDir as string, join(dir, 'usr/lib/systemd/system')]);
  for (const name of unitNames) {
    const text = await readFile(join(unitsDir, name), 'utf8');
    await writeFile(join(dir, 'etc/systemd/system', name), mutate ? mutate(name, text) : text);
  }
  const service = await readFile(join(unitsDir, 'berthd.service'), 'utf8');
  const stub = join(dir, execPath(service));
  await mkdir(dirname(stub), { recursive: true });
  await writeFile(stub, '#!/bin/sh\nexit 0\n');
  await chmod(stub, 0o755);
  return dir;
}

async function verify(dir: string): Promise<VerifyResult> {
  const r = await execa(analyze as string, ['verify', `--root=${dir}`, ...unitNames], {
    reject: false,
    all: true,
    env: { SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: 'cat' },
  });
  const lines = (r.all ?? '').split('\n').filter((l) => l.trim() !== '');
  return { exitCode: r.exitCode, lines };
}

const aboutOurUnits = (lines: string[]) => lines.filter((l) => /berthd/.test(l));

describe.skipIf(skipReason !== '')(`units/ ${skipReason ? `(skipped: ${skipReason})` : ''}`, () => {
  beforeAll(async () => {
    root = await makeRoot();
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it(`systemd-analyze verify accepts ${unitNames.join(', ')} without warnings`, async () => {
    const r = await verify(root);
    expect(aboutOurUnits(r.lines), r.lines.join('\n')).toEqual([]);
    expect(r.exitCode, r.lines.join('\n')).toBe(0);
  });

  it('the check is not vacuous: a misspelt key in a copy of the socket is reported', async () => {
    const broken = await makeRoot((name, text) =>
      name === 'berthd.socket' ? text.replace(/^SocketMode=/m, 'SocketMod=') : text,
    );
    try {
      const r = await verify(broken);
      expect(aboutOurUnits(r.lines).join('\n')).toMatch(/SocketMod/);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });

  it('the socket unit listens where systemd-machined does and names its descriptors varlink', async () => {
    const text = await readFile(join(unitsDir, 'berthd.socket'), 'utf8');
    expect(values(text, 'ListenStream')).toEqual([
      '/run/systemd/machine/io.systemd.Machine',
      '/run/systemd/machine/io.systemd.MachineImage',
    ]);
    expect(values(text, 'FileDescriptorName')).toEqual(['varlink']);
    expect(values(text, 'SocketMode')).toEqual(['0666']);
  });

  it('the service runs berthd with an idle exit', async () => {
    const text = await readFile(join(unitsDir, 'berthd.service'), 'utf8');
    expect(execPath(text)).toMatch(/\/berthd$/);
    expect(values(text, 'ExecStart')[0]).toMatch(/--idle-exit\s+\d+/);
  });
});
