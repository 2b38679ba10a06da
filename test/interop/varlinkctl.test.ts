/**
 * The real varlinkctl of systemd 257 against berth: its IDL parser on berth's interface files,
 * and its client against a running berth server (the in-process test server, then berthd), plus
 * abstract `unix:@name` addresses in both directions (varlinkctl → berth's abstract listener;
 * berth's client → varlink-go-certification's abstract listener).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VarlinkClient } from '../../src/varlink/client.js';
import { VarlinkServer } from '../../src/varlink/server.js';
import { serveSystemdService } from '../../src/varlink/systemd-service.js';
import { formatInterface, parseInterface } from '../../src/varlink/idl/index.js';
import { REPO } from '../helpers/generated.js';
import { referenceTool, type ReferenceTool } from '../helpers/reference.js';
import { startTestServer, TEST_SERVER_INFO, type TestServer } from '../helpers/test-server.js';
import { abstractName, tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { exited } from '../helpers/processes.js';

const found = await referenceTool('varlinkctl');
const skip = typeof found === 'string' ? found : undefined;
if (skip) console.warn(`varlinkctl interop tests skipped: ${skip}`);
const varlinkctl = (typeof found === 'string' ? undefined : found) as ReferenceTool;
const suite = describe.skipIf(skip);
const why = skip ? ` (skipped: ${skip})` : '';

const INTERFACES = join(REPO, 'interfaces');

/** varlinkctl --more prints a JSON sequence (RFC 7464: each record starts with 0x1E). */
function records(out: string): unknown[] {
  return out.split(/[\n\x1e]/).filter((l) => l.trim()).map((l) => JSON.parse(l));
}

suite(`varlinkctl validate-idl${why}`, () => {
  const files = readdirSync(INTERFACES).filter((f) => f.endsWith('.varlink')).sort();

  it('there are interface files to check', () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  it.each(files)('%s passes, and its printed form is berth’s canonical form', async (file) => {
    const path = join(INTERFACES, file);
    const r = await varlinkctl('validate-idl', path);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(formatInterface(parseInterface(readFileSync(path, 'utf8'), path)));
  });

  it('refuses a broken file (so the check above can fail)', async () => {
    const d = tempDir('idl');
    try {
      const bad = join(d.path, 'bad.varlink');
      writeFileSync(bad, 'interface org.example.bad\nmethod M(x: [][]int) -> ()\n');
      const r = await varlinkctl('validate-idl', bad);
      expect(r.code).not.toBe(0);
    } finally {
      d.remove();
    }
  });
});

suite(`varlinkctl against berth’s Varlink server${why}`, () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('info', async () => {
    const r = await varlinkctl('info', t.path);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Vendor: berth tests\n/);
    expect(r.stdout).toMatch(/Product: test-server\n/);
    expect(r.stdout).toMatch(/Interfaces: io\.berth\.test\n\s+io\.systemd\n\s+io\.systemd\.service\n\s+org\.varlink\.service\n/);
  });

  it('list-interfaces', async () => {
    const r = await varlinkctl('list-interfaces', t.address);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('io.berth.test\nio.systemd\nio.systemd.service\norg.varlink.service\n');
  });

  it('list-methods', async () => {
    const r = await varlinkctl('list-methods', t.path, 'io.systemd.service');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('io.systemd.service.GetEnvironment\nio.systemd.service.GetLogLevel\nio.systemd.service.Ping\nio.systemd.service.Reload\nio.systemd.service.SetLogLevel\n');
    const all = await varlinkctl('list-methods', t.path);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain('io.berth.test.Echo\n');
    expect(all.stdout).toContain('org.varlink.service.GetInterfaceDescription\n');
  });

  it.each(['io.berth.test', 'io.systemd', 'io.systemd.service', 'org.varlink.service'])('introspect %s: parsed by sd-varlink, printed as served', async (name) => {
    const r = await varlinkctl('introspect', t.path, name);
    expect(r.stderr).not.toContain('Failed to parse');
    expect(r.code).toBe(0);
    const served = await VarlinkClient.connect(t.address);
    try {
      const { description } = await served.callRaw('org.varlink.service.GetInterfaceDescription', { interface: name });
      expect(r.stdout).toBe(description);
    } finally {
      served.close();
    }
  });

  it('call GetInfo', async () => {
    const r = await varlinkctl('call', '--json=short', t.path, 'org.varlink.service.GetInfo', '{}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ...TEST_SERVER_INFO, interfaces: ['io.berth.test', 'io.systemd', 'io.systemd.service', 'org.varlink.service'] });
  });

  it('call with typed parameters (an int as a number)', async () => {
    const r = await varlinkctl('call', '--json=short', t.path, 'io.berth.test.Echo', '{"text":"hi","count":3,"color":"blue","inner":{"n":1}}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ text: 'hi', count: 3, color: 'blue', inner: { n: 1 } });
  });

  it.each([
    ['io.berth.test.Nope', '{}', 'org.varlink.service.MethodNotFound', { method: 'io.berth.test.Nope' }],
    ['io.berth.test.Echo', '{"text":5}', 'org.varlink.service.InvalidParameter', { parameter: 'text' }],
    ['io.berth.test.Fail', '{"reason":"r"}', 'io.berth.test.Failed', { reason: 'r' }],
    ['io.berth.test.Watch', '{"n":1}', 'org.varlink.service.ExpectedMore', {}],
  ])('call %s %s fails with %s (non-zero exit, parameters printed)', async (method, params, error, parameters) => {
    const r = await varlinkctl('call', '--json=short', t.path, method, params);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(error);
    if (Object.keys(parameters).length) expect(JSON.parse(r.stdout)).toEqual(parameters);
  });

  it('call --more streams every reply', async () => {
    const r = await varlinkctl('call', '--more', '--json=short', t.path, 'io.berth.test.Count', '{"n":3}');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('\x1e')).toBe(true);
    expect(records(r.stdout)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const w = await varlinkctl('call', '--more', '--json=short', t.path, 'io.berth.test.Watch', '{"n":2}');
    expect(w.code).toBe(0);
    expect(records(w.stdout)).toEqual([{ i: 0 }, { i: 1 }]);
  });

  it('call --oneway prints nothing and succeeds, and the server ran the call', async () => {
    const level = t.server.logger.level;
    try {
      const r = await varlinkctl('call', '--oneway', t.path, 'io.systemd.service.SetLogLevel', '{"level":7}');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('');
      await waitFor(() => t.server.logger.level === 'debug', 'the oneway SetLogLevel to take effect');
    } finally {
      t.server.logger.level = level;
    }
  });
});

suite(`abstract addresses (unix:@name)${why}`, () => {
  it('varlinkctl reaches berth’s abstract listener, bound with the exact name (no padding)', async () => {
    const name = abstractName('ctl');
    const server = new VarlinkServer({ ...TEST_SERVER_INFO });
    serveSystemdService(server, server.logger);
    await server.listen(`unix:@${name}`);
    try {
      // /proc/net/unix shows the bound name; Node 20's own listen() would pad it with NULs ("@").
      const names = readFileSync('/proc/net/unix', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)[7]).filter(Boolean);
      expect(names).toContain(`@${name}`);
      const r = await varlinkctl('call', '--json=short', `unix:@${name}`, 'org.varlink.service.GetInfo', '{}');
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).product).toBe('test-server');
      const i = await varlinkctl('introspect', `unix:@${name}`, 'io.systemd.service');
      expect(i.code).toBe(0);
      expect(i.stdout).toContain('interface io.systemd.service\n');
    } finally {
      await server.close();
    }
  });
});

const goCert = spawnSync('sh', ['-c', 'command -v varlink-go-certification'], { encoding: 'utf8' }).stdout.trim();
const noGo = goCert ? undefined : 'varlink-go-certification is not installed (Debian package varlink-go)';
describe.skipIf(noGo)(`berth’s client against an abstract listener of another implementation${noGo ? ` (skipped: ${noGo})` : ''}`, () => {
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill();
      await exited(child).catch(() => undefined);
    }
  });

  it('connects to varlink-go-certification on unix:@name and calls it', async () => {
    const name = abstractName('go');
    child = spawn(goCert, ['-varlink', `unix:@${name}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    const client = await waitFor(async () => {
      try {
        return await VarlinkClient.connect(`unix:@${name}`);
      } catch {
        return undefined;
      }
    }, 'varlink-go-certification to listen on its abstract socket');
    try {
      const info = await client.callRaw('org.varlink.service.GetInfo');
      expect(info.interfaces).toContain('org.varlink.certification');
      const start = await client.callRaw('org.varlink.certification.Start');
      expect(typeof start.client_id).toBe('string');
    } finally {
      client.close();
    }
  });
});

// berthd itself, when it runs: every interface it serves must be readable by sd-varlink.
const BERTHD = join(REPO, 'dist/src/server/main.js');
function berthdProblem(): string | undefined {
  if (skip) return skip;
  if (!existsSync(BERTHD)) return `${BERTHD} is not built`;
  const r = spawnSync(process.execPath, [BERTHD, '--version'], { encoding: 'utf8', timeout: 20_000 });
  return r.status === 0 ? undefined : `berthd does not start yet: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
}
const noBerthd = berthdProblem();
describe.skipIf(noBerthd)(`varlinkctl against berthd${noBerthd ? ` (skipped: ${noBerthd})` : ''}`, () => {
  let daemon: ChildProcess;
  let dir: { path: string; remove(): void };
  const machine = () => join(dir.path, 'systemd/machine/io.systemd.Machine');
  const userdb = () => join(dir.path, 'systemd/userdb/io.systemd.Machine');

  beforeAll(async () => {
    dir = tempDir('berthd');
    daemon = spawn(process.execPath, [BERTHD, '--runtime-dir', dir.path, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitFor(() => existsSync(machine()) && existsSync(userdb()), 'berthd to create its sockets', { timeoutMs: 30_000 });
  });
  afterAll(async () => {
    daemon?.kill('SIGTERM');
    if (daemon) await exited(daemon, 15_000).catch(() => daemon.kill('SIGKILL'));
    dir?.remove();
  });

  it('introspects every interface of every socket with no "Failed to parse"', async () => {
    let checked = 0;
    for (const socket of [machine(), userdb()]) {
      const list = await varlinkctl('list-interfaces', socket);
      expect(list.code).toBe(0);
      for (const name of list.stdout.trim().split('\n')) {
        const r = await varlinkctl('introspect', socket, name);
        expect({ name, code: r.code, failed: r.stderr.includes('Failed to parse') }).toEqual({ name, code: 0, failed: false });
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(6);
  });

  it('call GetInfo and an error case', async () => {
    const r = await varlinkctl('call', '--json=short', machine(), 'org.varlink.service.GetInfo', '{}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).interfaces).toContain('io.systemd.Machine');
    const e = await varlinkctl('call', machine(), 'io.systemd.Machine.Unregister', '{"name":"no-such-machine-berth-test"}');
    expect(e.code).not.toBe(0);
    expect(e.stderr).toContain('io.systemd.Machine.NoSuchMachine');
  });

  it('call --more on List', async () => {
    const r = await varlinkctl('call', '--more', '--json=short', machine(), 'io.systemd.Machine.List', '{}');
    expect(r.code).toBe(0);
    const names = records(r.stdout).map((m) => (m as { name: string }).name);
    expect(names).toContain('.host');
  });
});
