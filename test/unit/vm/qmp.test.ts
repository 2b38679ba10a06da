import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QmpError } from '../../../src/launcher/vm/qmp.js';

// A scripted QMP peer on a unix socket: sends the greeting, answers commands through `answer`.
async function peer(answer: (cmd: { execute: string; arguments?: unknown; id?: string }, s: Socket) => void): Promise<{ client: Socket; server: Server; seen: string[]; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-qmp-'));
  const path = join(dir, 'qmp.sock');
  const seen: string[] = [];
  const server = createServer((s) => {
    s.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } }) + '\r\n');
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        seen.push(cmd.execute);
        answer(cmd, s);
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  const client = connect(path);
  return { client, server, seen, dir };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('QmpClient', () => {
  it('negotiates capabilities, matches replies by id across events, and reports errors', async () => {
    const p = await peer((cmd, s) => {
      if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
      else if (cmd.execute === 'system_powerdown') {
        s.write(JSON.stringify({ event: 'POWERDOWN', timestamp: { seconds: 1, microseconds: 2 } }) + '\r\n');
        s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
      } else if (cmd.execute === 'query-status') s.write(JSON.stringify({ return: { status: 'running', running: true }, id: cmd.id }) + '\r\n');
      else s.write(JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${cmd.execute} has not been found` }, id: cmd.id }) + '\r\n');
    });
    cleanups.push(() => (p.server.close(), rmSync(p.dir, { recursive: true, force: true })));
    const q = await QmpClient.connect(p.client);
    cleanups.push(() => q.close());
    expect(p.seen).toEqual(['qmp_capabilities']);
    const ev = q.waitEvent('POWERDOWN', 2000);
    await expect(q.execute('system_powerdown')).resolves.toEqual({});
    await expect(ev).resolves.toMatchObject({ event: 'POWERDOWN' });
    await expect(q.execute('query-status')).resolves.toEqual({ status: 'running', running: true });
    const err = await q.execute('bogus').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).errorClass).toBe('CommandNotFound');
    expect(q.events.map((e) => e.event)).toEqual(['POWERDOWN']);
  });

  it('treats the connection dropping after quit as the end, failing later commands', async () => {
    const p = await peer((cmd, s) => {
      s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
      if (cmd.execute === 'quit') s.destroy();
    });
    cleanups.push(() => (p.server.close(), rmSync(p.dir, { recursive: true, force: true })));
    const q = await QmpClient.connect(p.client);
    await expect(q.execute('quit')).resolves.toEqual({});
    await new Promise<void>((r) => (q.closed ? r() : q.once('close', r)));
    await expect(q.execute('query-status')).rejects.toThrow(/Closed/);
  });

  it('times out a command that is never answered', async () => {
    const p = await peer((cmd, s) => {
      if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
    });
    cleanups.push(() => (p.server.close(), rmSync(p.dir, { recursive: true, force: true })));
    const q = await QmpClient.connect(p.client);
    cleanups.push(() => q.close());
    await expect(q.execute('query-status', undefined, 50)).rejects.toThrow(/no answer within 50 ms/);
  });
});
