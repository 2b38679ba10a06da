// berthctl -H [USER@]HOST[:PORT]: the verb runs on HOST over ssh (src/client/remote.ts), against a private sshd
// on 127.0.0.1 (a high port, a host key and an authorized key made for this run, stopped afterwards) and a berthd
// of this run. The remote berthctl is this build's (BERTH_REMOTE_BERTHCTL), the ssh client gets its own config
// (BERTH_SSH="ssh -F FILE"), so nothing of the host's ssh setup is used or changed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/generated.js';
import { waitFor } from '../../helpers/wait.js';
import { exited, tearDown } from '../../helpers/processes.js';
import { RawConnection } from '../../helpers/raw.js';

const SSHD = '/usr/sbin/sshd';
const BERTHD = join(REPO, 'dist/src/server/main.js');
const BERTHCTL = join(REPO, 'dist/bin/berthctl.mjs');
const why =
  process.getuid?.() !== 0 ? 'needs root (sshd logs in as root)'
  : !existsSync(SSHD) ? `no ${SSHD} (scripts/setup.sh installs openssh-server)`
  : spawnSync('sh', ['-c', 'command -v ssh && command -v ssh-keygen']).status !== 0 ? 'no ssh client (openssh-client)'
  : !existsSync(BERTHD) ? 'not built (npm run build)' : '';
if (why) console.warn(`berthctl -H tests skipped: ${why}`);

const tag = `rh${process.pid % 100000}`;
const dir = mkdtempSync('/tmp/berth-remote-');
const runtime = join(dir, 'run');
const children: ChildProcess[] = [];
let port = 0;
let env: NodeJS.ProcessEnv = {};

const portOpen = (p: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(p, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

function berthctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BERTHCTL, ...args], { encoding: 'utf8', timeout: 60_000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  if (why) return;
  const key = (name: string) => spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)]).status;
  expect(key('host_key')).toBe(0);
  expect(key('client_key')).toBe(0);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  // sshd refuses to start without its privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 20 && !port; attempt++) {
    const p = 20000 + ((process.pid * 7 + attempt * 131) % 30000);
    if (await portOpen(p)) continue;
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${p}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'LogLevel ERROR',
      ].join('\n') + '\n',
    );
    const d = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(d);
    let err = '';
    d.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await waitFor(async () => d.exitCode !== null || (await portOpen(p)), 'sshd to listen', { timeoutMs: 10_000 });
    if (d.exitCode !== null) throw new Error(`sshd exited: ${err}`);
    port = p;
  }
  writeFileSync(
    join(dir, 'ssh_config'),
    [
      'Host berth-test', '  HostName 127.0.0.1', `  Port ${port}`, '  User root', 'Host *', `  IdentityFile ${join(dir, 'client_key')}`,
      '  IdentitiesOnly yes', '  UserKnownHostsFile /dev/null', '  StrictHostKeyChecking no', '  LogLevel ERROR', '  BatchMode yes',
    ].join('\n') + '\n',
  );
  env = { ...process.env, BERTH_SSH: `ssh -F ${join(dir, 'ssh_config')}`, BERTH_REMOTE_BERTHCTL: `${process.execPath} ${BERTHCTL}` };
  const b = spawn(process.execPath, [BERTHD, '--runtime-dir', runtime, '--userdb-service', `io.berth.test.${tag}`, '--log-level', 'warn', '--dbus', 'no'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(b);
  await waitFor(() => existsSync(join(runtime, 'systemd/machine/io.systemd.Machine')), 'berthd to listen', { timeoutMs: 30_000 });
  const leader = spawn('sleep', ['3600'], { stdio: 'ignore' });
  children.push(leader);
  const c = await RawConnection.connect(join(runtime, 'systemd/machine/io.systemd.Machine'));
  const r = await c.roundTrip({ method: 'io.systemd.Machine.Register', parameters: { name: `${tag}-web`, class: 'container', leader: leader.pid, allocateUnit: true } });
  c.destroy();
  expect(r.error, JSON.stringify(r)).toBeUndefined();
}, 120_000);

afterAll(async () => {
  const daemons = children.filter((c) => c.spawnargs.includes(BERTHD));
  const others = children.filter((c) => !daemons.includes(c));
  for (const c of others) c.kill('SIGKILL');
  await Promise.all(others.map((c) => exited(c, 5000).catch(() => undefined)));
  const scopes: string[] = [];
  for (const h of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd']) {
    const slice = join(h, 'machine.slice');
    if (existsSync(slice)) for (const e of readdirSync(slice)) if (e.startsWith(`machine-${tag}`)) scopes.push(join(slice, e));
  }
  await tearDown({ children: daemons, cgroups: scopes });
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(!!why)('berthctl -H HOST', () => {
  it('lists the remote machines, with the remote exit status', () => {
    const r = berthctl('-H', 'berth-test', '--runtime-dir', runtime, 'list', '--no-legend');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${tag}-web\\s+container`, 'm'));
    const miss = berthctl('--host=berth-test', '--runtime-dir', runtime, 'status', `${tag}-nope`);
    expect(miss.status).toBe(4);
    expect(miss.stderr).toContain(`${tag}-nope`);
  });

  it('passes arguments through the remote shell unchanged', () => {
    const socket = `unix:${join(runtime, 'systemd/machine/io.systemd.Machine')}`;
    const r = berthctl('-H', 'berth-test', 'varlink', 'call', socket, 'io.systemd.Machine.List', `{"name": "${tag}-web"}`, '--json=short');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: `${tag}-web`, class: 'container' });
  });

  it('takes USER@HOST:PORT', () => {
    // Not the ssh_config alias: user, address and port from the -H value itself.
    const r = berthctl('-H', `root@127.0.0.1:${port}`, '--runtime-dir', runtime, 'list', '--no-legend');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${tag}-web`);
  });

  it('says when the host cannot be reached', () => {
    const r = berthctl('-H', 'root@127.0.0.1:1', 'list');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Failed to reach root@127.0.0.1:1 over ssh');
  });
});
