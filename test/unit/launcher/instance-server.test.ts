/**
 * The io.systemd.MachineInstance server alone, with recorded actions: methods reach their action, errors
 * of an action reach the caller, storage methods are NotSupported, SubscribeEvents filters and ends when
 * the server closes, and only root or berth-spawn's own user may call (the socket is 0600 as well).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InstanceServer, controlSocketPath, type InstanceActions } from '../../../src/launcher/instance-server.js';
import { VarlinkClient } from '../../../src/varlink/client.js';
import { IoSystemdMachineInstance, NotConnected, NotSupported } from '../../../src/generated/io.systemd.MachineInstance.js';
import { tempDir } from '../../helpers/tmp.js';
import { run } from '../../helpers/run.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function serve(actions: Partial<InstanceActions> = {}) {
  const d = tempDir('instance', { world: true });
  const called: string[] = [];
  const rec = (n: string) => async () => void called.push(n);
  const server = await InstanceServer.start(join(d.path, 'io.systemd.MachineInstance'), {
    terminate: rec('terminate'), powerOff: rec('powerOff'), reboot: rec('reboot'), pause: rec('pause'), resume: rec('resume'),
    describe: async () => ({ running: true, status: 'running' }),
    ...actions,
  });
  const client = await VarlinkClient.connect({ kind: 'unix', path: server.socketPath }, { interfaces: [IoSystemdMachineInstance], timeout: 5000 });
  cleanups.push(() => d.remove(), () => server.close(), () => client.close());
  return { server, client, m: client.proxy(IoSystemdMachineInstance), called, dir: d.path };
}

describe('InstanceServer', () => {
  it('calls the action of each method and answers {}', async () => {
    const { m, called } = await serve();
    for (const f of [m.Terminate, m.PowerOff, m.Reboot, m.Pause, m.Resume]) expect(await f()).toEqual({});
    expect(called).toEqual(['terminate', 'powerOff', 'reboot', 'pause', 'resume']);
    expect(await m.Describe()).toEqual({ running: true, status: 'running' });
  });

  it('passes an action\'s error on, and refuses the storage methods', async () => {
    const { m } = await serve({ reboot: async () => { throw new NotSupported(); }, pause: async () => { throw new NotConnected(); } });
    await expect(m.Reboot()).rejects.toBeInstanceOf(NotSupported);
    await expect(m.Pause()).rejects.toBeInstanceOf(NotConnected);
    await expect(m.AddStorage({ fileDescriptorIndex: 0, name: 'a' })).rejects.toBeInstanceOf(NotSupported);
    await expect(m.RemoveStorage({ name: 'a' })).rejects.toBeInstanceOf(NotSupported);
    await expect(m.ReplaceStorage({ fileDescriptorIndex: 0, name: 'a' })).rejects.toBeInstanceOf(NotSupported);
  });

  it('streams the events a filter lets through, and ends the stream when it closes', async () => {
    const { server, m } = await serve();
    const sub = await VarlinkClient.connect({ kind: 'unix', path: server.socketPath }, { timeout: 0 });
    cleanups.push(() => sub.close());
    const got: unknown[] = [];
    const done = (async () => {
      for await (const e of sub.proxy(IoSystemdMachineInstance).SubscribeEvents.more({ filter: ['STOP', 'SHUTDOWN'] })) got.push(e);
    })().catch(() => {}); // the server's close ends the connection
    await m.Describe(); // a round trip later the subscription is in place
    server.publish({ event: 'STOP' });
    server.publish({ event: 'RESUME' });
    server.publish({ event: 'SHUTDOWN', data: { guest: true } });
    await server.close();
    await done;
    expect(got).toEqual([{ event: 'STOP' }, { event: 'SHUTDOWN', data: { guest: true } }]);
    expect(existsSync(server.socketPath)).toBe(false);
  });

  it('is a 0600 socket, and refuses other users even where the mode lets them in', async (ctx) => {
    const { server } = await serve();
    expect(statSync(server.socketPath).mode & 0o777).toBe(0o600);
    if (process.getuid?.() !== 0) ctx.skip('needs root to call as another user');
    if (spawnSync('sh', ['-c', 'command -v setpriv']).status !== 0) ctx.skip('setpriv is missing (util-linux)');
    chmodSync(server.socketPath, 0o666);
    const script = `const s=require('net').connect(${JSON.stringify(server.socketPath)});s.on('error',e=>{console.log(e.code);process.exit(0)});` +
      `s.write(JSON.stringify({method:'io.systemd.MachineInstance.PowerOff',parameters:{}})+'\\0');s.on('data',d=>{console.log(d.toString().replace(/\\0/g,''));s.end()});`;
    // Not spawnSync: the server answering it runs in this process.
    const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { timeoutMs: 10_000 });
    expect(r.stdout.trim(), r.stderr).not.toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual({ error: 'org.varlink.service.PermissionDenied', parameters: {} });
  });

  it('has no socket path for a run directory too long to bind', () => {
    expect(controlSocketPath('/run/berth/machines/web')).toBe('/run/berth/machines/web/io.systemd.MachineInstance');
    expect(controlSocketPath(`/tmp/${'x'.repeat(100)}`)).toBeUndefined();
  });
});
