/**
 * A raw Varlink peer for tests: writes bytes exactly as given and reads NUL-framed replies, so
 * malformed input can be sent and the server's exact answer (or closing) observed. It does not use
 * berth's client, so client bugs cannot hide server bugs.
 */
import { Socket, connect } from 'node:net';
import { within } from './wait.js';

export type Reply = { parameters?: Record<string, unknown>; continues?: boolean; error?: string };

export class ConnectionClosed extends Error {
  constructor(readonly pendingBytes: number) {
    super(`connection closed by the peer${pendingBytes ? ` (${pendingBytes} bytes of an unterminated message)` : ''}`);
    this.name = 'ConnectionClosed';
  }
}

export class RawConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly messages: string[] = [];
  private waiter?: () => void;
  private isClosed = false;
  /** Resolves when the peer (or we) closed the connection. */
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      for (let nul = this.buffer.indexOf(0); nul !== -1; nul = this.buffer.indexOf(0)) {
        this.messages.push(this.buffer.toString('utf8', 0, nul));
        this.buffer = this.buffer.subarray(nul + 1);
      }
      this.wake();
    });
    // EPIPE/ECONNRESET after the server dropped us are expected in these tests.
    socket.on('error', () => {});
    socket.on('close', () => {
      this.isClosed = true;
      this.wake();
    });
  }

  static connect(path: string, timeoutMs = 5000): Promise<RawConnection> {
    const socket = connect({ path });
    return within(
      new Promise<RawConnection>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(new RawConnection(socket));
        });
      }),
      timeoutMs,
      `connect to ${path}`,
    );
  }

  /** Wraps an already connected socket (for example one made from a raw fd). */
  static fromSocket(socket: Socket): RawConnection {
    return new RawConnection(socket);
  }

  get open(): boolean {
    return !this.isClosed;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Writes bytes as they are (no terminator added). Writes to a closed socket are dropped. */
  send(data: string | Buffer): void {
    if (this.isClosed || this.socket.destroyed) return;
    this.socket.write(data);
  }

  /** Writes one message: the object as JSON plus the terminating NUL. */
  call(message: object): void {
    this.send(JSON.stringify(message) + '\0');
  }

  /** Next message as text; rejects with ConnectionClosed if the peer closes first. */
  async nextText(timeoutMs = 5000): Promise<string> {
    const wait = async (): Promise<string> => {
      for (;;) {
        const m = this.messages.shift();
        if (m !== undefined) return m;
        if (this.isClosed) throw new ConnectionClosed(this.buffer.length);
        await new Promise<void>((r) => (this.waiter = r));
      }
    };
    return within(wait(), timeoutMs, 'a reply');
  }

  /** Next message, parsed. */
  async next(timeoutMs = 5000): Promise<Reply> {
    return JSON.parse(await this.nextText(timeoutMs)) as Reply;
  }

  /** Sends a call and returns its (single) reply. */
  async roundTrip(message: object, timeoutMs = 5000): Promise<Reply> {
    this.call(message);
    return this.next(timeoutMs);
  }

  /**
   * Waits for the peer to close the connection and returns the messages that arrived before
   * it did (rejects at the deadline if it stays open).
   */
  async waitClosed(timeoutMs = 5000): Promise<string[]> {
    await within(this.closed, timeoutMs, 'the server to close the connection');
    return this.messages.splice(0);
  }

  /** Messages received and not yet read. */
  get unread(): number {
    return this.messages.length;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
