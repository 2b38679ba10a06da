import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NotifySocket as NotifyReceiver, sdNotify, type NotifyMessage } from '../../../src/launcher/notify.js';

describe('NotifyReceiver', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });
  const sock = (): string => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-notify-')); dirs.push(d); return path.join(d, 'notify'); };

  it('receives datagrams with the sender\'s credentials', async () => {
    const p = sock();
    const r = new NotifyReceiver(p);
    const got = new Promise<NotifyMessage>((res) => r.on('message', res));
    expect(sdNotify('READY=1\nSTATUS=up', p)).toBe(true);
    const m = await got;
    expect(m.fields.get('READY')).toBe('1');
    expect(m.fields.get('STATUS')).toBe('up');
    expect(m.pid).toBe(process.pid);
    expect(m.uid).toBe(process.getuid!());
    await r.close();
    expect(fs.existsSync(p)).toBe(false);
  });

  it('keeps messages that arrive before anyone listens', async () => {
    const p = sock();
    const r = new NotifyReceiver(p);
    sdNotify('READY=1', p);
    sdNotify('STATUS=second', p);
    // Wait (with a deadline) until both datagrams have been read off the socket, with no listener attached.
    const deadline = Date.now() + 5000;
    while ((r as unknown as { backlog: unknown[] }).backlog.length < 2) {
      if (Date.now() > deadline) throw new Error('datagrams not read within 5 s');
      await new Promise((res) => setImmediate(res));
    }
    const seen: string[] = [];
    await new Promise<void>((res) => r.on('message', (m) => { seen.push(m.raw); if (seen.length === 2) res(); }));
    expect(seen).toEqual(['READY=1', 'STATUS=second']);
    await r.close();
  });

  it('closes promptly while a receive is pending', async () => {
    const r = new NotifyReceiver(sock());
    const t0 = Date.now();
    await r.close();
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('sends nothing without a NOTIFY_SOCKET', () => {
    expect(sdNotify('READY=1', undefined)).toBe(false);
  });
});
