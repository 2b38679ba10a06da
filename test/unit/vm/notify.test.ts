import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestNotifyListener as NotifyReceiver, parseNotifyLines } from '../../../src/launcher/vm/guest-notify.js';

describe('notify lines', () => {
  it('splits assignments and ignores noise', () => {
    expect(parseNotifyLines('READY=1\r\nSTATUS=a=b\n\ngarbage\nEXIT_STATUS=3')).toEqual([['READY', '1'], ['STATUS', 'a=b'], ['EXIT_STATUS', '3']]);
  });

  it('a guest writing over the virtio-serial socket makes the receiver ready, in pieces too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-notify-'));
    const r = new NotifyReceiver(join(dir, 'notify.sock'));
    try {
      await r.listen();
      const ready = r.waitReady();
      const c = connect(r.path);
      c.write('STATUS=booting\nREA');
      c.write('DY=1\nEXIT_STATUS=259\n');
      await ready;
      expect(r.state).toMatchObject({ ready: true, status: 'booting', exitStatus: 3 });
      c.destroy();
    } finally {
      r.close();
      expect(existsSync(join(dir, 'notify.sock'))).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
