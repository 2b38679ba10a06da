// `berthctl varlink …` behaves like varlinkctl: the same output for the same server, and exit codes.
// Where the reference varlinkctl 257 can run, outputs are compared with it byte for byte.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/wait.js';
import { referenceTool, type ReferenceTool } from '../../helpers/reference.js';

const repo = resolve(import.meta.dirname, '../../..');
const BERTHD = join(repo, 'dist/src/server/main.js');
const BERTHCTL = join(repo, 'dist/src/client/berthctl.js');
const why = process.getuid?.() !== 0 ? 'needs root' : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`skipping berthctl varlink tests: ${why}`);

function ctl(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BERTHCTL, 'varlink', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!!why)('berthctl varlink', () => {
  let dir = '';
  let sock = '';
  let daemon: ChildProcess | undefined;
  let varlinkctl: ReferenceTool | string = 'not looked up';

  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/berthctl-vl-');
    chmodSync(dir, 0o755);
    daemon = spawn(process.execPath, [BERTHD, '--runtime-dir', join(dir, 'run'), '--userdb-service', `io.berth.test.vl${process.pid}`, '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    sock = join(dir, 'run/systemd/machine/io.systemd.Machine');
    await waitFor(() => existsSync(sock), 'berthd to listen', { timeoutMs: 30_000 });
    varlinkctl = await referenceTool('varlinkctl');
    if (typeof varlinkctl === 'string') console.warn(`not comparing with varlinkctl 257: ${varlinkctl}`);
  }, 600_000);

  afterAll(() => {
    daemon?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('info, list-interfaces, list-methods and introspect print what varlinkctl prints', async () => {
    const info = ctl('info', sock);
    expect(info.status).toBe(0);
    expect(info.stdout).toMatch(/^ {4}Vendor: berth\n {3}Product: berthd\n/);
    expect(info.stdout).toMatch(/^Interfaces: io\.berth\.Launcher\n {12}io\.berth\.Machine\n/m);
    const ifaces = ctl('list-interfaces', sock).stdout.trim().split('\n');
    expect(ifaces).toContain('io.systemd.Machine');
    expect(ctl('list-methods', sock, 'io.systemd.MachineImage').stdout).toBe(
      'io.systemd.MachineImage.CleanPool\nio.systemd.MachineImage.Clone\nio.systemd.MachineImage.List\nio.systemd.MachineImage.Remove\nio.systemd.MachineImage.SetPoolLimit\nio.systemd.MachineImage.Update\n',
    );
    const intro = ctl('introspect', sock, 'io.systemd.Machine');
    expect(intro.stdout).toMatch(/^# The machine registry/);
    expect(intro.stdout).toContain("# [Supports 'more' flag]\nmethod List(");
    if (typeof varlinkctl !== 'string') {
      for (const args of [['info', sock], ['list-interfaces', sock], ['list-methods', sock], ['introspect', sock, 'io.systemd.Machine', 'io.berth.Machine']]) {
        const theirs = await varlinkctl(...args);
        expect({ args, out: ctl(...args).stdout }).toEqual({ args, out: theirs.stdout });
      }
    }
  }, 60_000);

  it('call prints the reply (JSON short or pretty), fails with exit 1 on an error, streams with --more and sends --oneway', async () => {
    expect(JSON.parse(ctl('call', sock, 'io.systemd.Machine.List', '{"name":".host"}').stdout)).toMatchObject({ name: '.host', class: 'host' });
    const pretty = ctl('call', '--json=pretty', sock, 'io.systemd.service.Ping', '{}');
    expect(pretty).toMatchObject({ status: 0, stdout: '{}\n' });
    const fail = ctl('call', sock, 'io.systemd.Machine.List', '{"name":"nope"}');
    expect(fail.status).toBe(1);
    expect(fail.stderr).toBe('Method call io.systemd.Machine.List() failed: io.systemd.Machine.NoSuchMachine\n');
    expect(ctl('call', '--graceful=io.systemd.Machine.NoSuchMachine', sock, 'io.systemd.Machine.List', '{"name":"nope"}').status).toBe(0);
    const more = ctl('call', '--more', sock, 'io.systemd.Machine.List', '{}');
    expect(more.status).toBe(0);
    expect(more.stdout.startsWith('\x1e{"name":".host"')).toBe(true);
    const coll = ctl('call', '--collect', sock, 'io.systemd.MachineImage.List', '{}');
    expect(JSON.parse(coll.stdout)[0]).toMatchObject({ name: '.host', path: '/' });
    expect(ctl('call', '--oneway', sock, 'org.varlink.service.GetInfo', '{}')).toMatchObject({ status: 0, stdout: '' });
    expect(ctl('call', sock, 'nodot', '{}').status).toBe(1);
    expect(ctl('call', sock, 'io.systemd.Machine.List', 'not json').status).toBe(1);
    expect(ctl('call', `${sock}.nope`, 'org.varlink.service.GetInfo', '{}').stderr).toMatch(/Failed to connect/);
    if (typeof varlinkctl !== 'string') {
      const theirs = await varlinkctl('call', sock, 'io.systemd.Machine.List', '{"name":"nope"}');
      expect(theirs.code).toBe(fail.status);
      expect(theirs.stdout).toBe(fail.stdout);
    }
  }, 60_000);

  it('validate-idl prints the canonical form or the position of the error', () => {
    const good = join(dir, 'good.varlink');
    writeFileSync(good, 'interface a.b\nmethod  M ( x : int ) -> ()\n');
    expect(ctl('validate-idl', good)).toMatchObject({ status: 0, stdout: 'interface a.b\n\nmethod M(\n\tx: int\n) -> ()\n' });
    const bad = join(dir, 'bad.varlink');
    writeFileSync(bad, 'interface a.b\nmethod M(x: int,) -> ()\n');
    const r = ctl('validate-idl', bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad\.varlink:2:\d+: /);
  });
});
