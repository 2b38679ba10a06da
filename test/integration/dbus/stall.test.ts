/**
 * A bus that stops reading must never stall the event loop: a fake broker answers the handshake
 * and Hello, then reads nothing more. We push messages at it while a timer measures the loop's
 * lag; the outgoing queue must stop at its bound (LimitsExceeded) and calls must time out. A bus
 * that never answers the handshake makes connect fail after its timeout, again without stalling.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, createMessage, DBusError, DBusErrors, encodeMessage, MessageFramer, MessageType } from '../../../src/dbus/index.js';
import { tempDir } from '../../helpers/tmp.js';

const dir = tempDir('dbus-stall');
const sockets: Socket[] = [];
let stalling: Server;
let silent: Server;

/** A broker that does the handshake and Hello, then stops reading its socket. */
function stallingBroker(path: string): Promise<Server> {
  const server = createServer((sock) => {
    sockets.push(sock);
    let text = '';
    let framer: MessageFramer | null = null;
    sock.on('data', (d: Buffer) => {
      if (framer) {
        for (const m of framer.push(d)) {
          if (m.member !== 'Hello') continue;
          sock.write(encodeMessage(createMessage({ type: MessageType.MethodReturn, serial: 1, replySerial: m.serial, signature: 's', body: [':1.1'] })).data);
          sock.pause(); // and never read again
        }
        return;
      }
      text += d.toString('latin1');
      let nl: number;
      while ((nl = text.indexOf('\r\n')) >= 0) {
        const line = text.slice(0, nl).replace(/^\0/, '');
        text = text.slice(nl + 2);
        if (line.startsWith('AUTH ')) sock.write(`OK ${'0'.repeat(32)}\r\n`);
        else if (line === 'NEGOTIATE_UNIX_FD') sock.write('AGREE_UNIX_FD\r\n');
        else if (line === 'BEGIN') {
          framer = new MessageFramer();
          const rest = Buffer.from(text, 'latin1');
          text = '';
          if (rest.length) sock.emit('data', rest);
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

beforeAll(async () => {
  stalling = await stallingBroker(join(dir.path, 'stall'));
  silent = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(join(dir.path, 'silent'), () => r()));
});

afterAll(() => {
  sockets.forEach((s) => s.destroy());
  stalling?.close();
  silent?.close();
  dir.remove();
});

/** Runs `work` while a 10 ms interval measures how late the event loop runs it; returns the worst lag. */
async function worstLag(work: () => Promise<void>): Promise<number> {
  let worst = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 10);
    last = now;
  }, 10);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return worst;
}

describe('a bus that stops reading', () => {
  it('keeps the loop responsive and bounds the queue', async () => {
    const limit = 1024 * 1024;
    const conn = await connectBus({ address: `unix:path=${join(dir.path, 'stall')}`, maxQueuedBytes: limit });
    expect(conn.uniqueName).toBe(':1.1');
    const payload = 'x'.repeat(4096);
    let sent = 0;
    let refused: unknown;
    const lag = await worstLag(async () => {
      // Push in batches, yielding between them as a busy server would, until the queue refuses.
      for (let batch = 0; batch < 2000 && !refused; batch++) {
        for (let i = 0; i < 20; i++) {
          try {
            conn.signal('/a', 'org.berth.Flood', 'Data', 's', [payload]);
            sent++;
          } catch (e) {
            refused = e;
            break;
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      // A call as big now cannot even be queued (one queued earlier would time out, not hang).
      await expect(conn.call({ destination: 'x.y', path: '/', member: 'M', signature: 's', body: [payload] })).rejects.toMatchObject({ type: DBusErrors.LimitsExceeded });
      await new Promise((r) => setTimeout(r, 100));
    });
    expect(refused).toBeInstanceOf(DBusError);
    expect((refused as DBusError).type).toBe(DBusErrors.LimitsExceeded);
    expect(conn.transport.queuedBytes).toBeLessThanOrEqual(limit);
    // The kernel took some (its socket buffer), the queue the rest up to its limit; then we stopped.
    expect(sent * 4096).toBeGreaterThan(limit);
    expect(sent * 4096).toBeLessThan(limit + 8 * 1024 * 1024);
    expect(lag).toBeLessThan(50);
    conn.close();
    expect(conn.transport.queuedBytes).toBe(0);
  });

  it('a call to a stalled bus times out without stalling the loop', async () => {
    const conn = await connectBus({ address: `unix:path=${join(dir.path, 'stall')}` });
    let error: unknown;
    const lag = await worstLag(async () => {
      error = await conn.call({ destination: 'x.y', path: '/', member: 'M', timeoutMs: 200 }).catch((e) => e);
    });
    expect((error as DBusError).type).toBe(DBusErrors.NoReply);
    expect(lag).toBeLessThan(50);
    conn.close();
  });

  it('a bus that never answers the handshake fails connect after its timeout', async () => {
    let error: unknown;
    const lag = await worstLag(async () => {
      error = await connectBus({ address: `unix:path=${join(dir.path, 'silent')}`, authTimeoutMs: 300 }).catch((e) => e);
    });
    expect((error as DBusError).type).toBe(DBusErrors.AuthFailed);
    expect(lag).toBeLessThan(50);
  });

  it('a bus that goes away: close event, pending calls fail with Disconnected', async () => {
    const conn = await connectBus({ address: `unix:path=${join(dir.path, 'stall')}` });
    const closed = new Promise((r) => conn.once('close', r));
    const pending = conn.call({ destination: 'x.y', path: '/', member: 'M' }).catch((e) => e);
    sockets.at(-1)!.destroy();
    await closed;
    expect(((await pending) as DBusError).type).toBe(DBusErrors.Disconnected);
    expect(() => conn.signal('/a', 'a.b', 'C')).toThrow(DBusError);
  });

  it('no bus at all: NoServer at once', async () => {
    await expect(connectBus({ address: `unix:path=${join(dir.path, 'none')}` })).rejects.toMatchObject({ type: DBusErrors.NoServer });
  });
});
