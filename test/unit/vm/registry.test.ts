import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNoRegistry, machineSocketPath, registerParameters, varlinkCall, VarlinkCallError } from '../../../src/launcher/vm/registry.js';

describe('registration', () => {
  it('Register carries class vm, the leader, vsock/ssh when present, and allocateUnit false', () => {
    expect(registerParameters({ name: 'vm1', id: 'ab'.repeat(16), service: 'berth-spawn', leader: 42 })).toEqual({
      name: 'vm1', id: 'ab'.repeat(16), service: 'berth-spawn', class: 'vm', leader: 42, allocateUnit: false,
    });
    expect(registerParameters({ name: 'vm1', id: 'x', service: 's', leader: 1, vSockCid: 7, sshAddress: 'vsock/7', sshPrivateKeyPath: '/k', rootDirectory: '/r' })).toMatchObject({
      vSockCid: 7, sshAddress: 'vsock/7', sshPrivateKeyPath: '/k', rootDirectory: '/r',
    });
    expect(machineSocketPath('/run')).toBe('/run/systemd/machine/io.systemd.Machine');
  });

  it('speaks NUL-framed Varlink and turns error replies into VarlinkCallError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-reg-'));
    const path = join(dir, 'sock');
    const got: unknown[] = [];
    const server = createServer((c) => {
      c.on('data', (d) => {
        const msg = JSON.parse(d.toString().replace(/\0$/, '')) as { method: string };
        got.push(msg);
        c.write(JSON.stringify(msg.method.endsWith('Register') ? { parameters: {} } : { error: 'io.systemd.Machine.NoSuchMachine', parameters: {} }) + '\0');
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await expect(varlinkCall(path, 'io.systemd.Machine.Register', { name: 'a' })).resolves.toEqual({});
      const e = await varlinkCall(path, 'io.systemd.Machine.Unregister', { name: 'a' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(VarlinkCallError);
      expect((e as VarlinkCallError).error).toBe('io.systemd.Machine.NoSuchMachine');
      expect(got).toEqual([{ method: 'io.systemd.Machine.Register', parameters: { name: 'a' } }, { method: 'io.systemd.Machine.Unregister', parameters: { name: 'a' } }]);
      const missing = await varlinkCall(join(dir, 'none'), 'x.y', {}).catch((x: unknown) => x);
      expect(isNoRegistry(missing)).toBe(true);
      expect(isNoRegistry(e)).toBe(false);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
