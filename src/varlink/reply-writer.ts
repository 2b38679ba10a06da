/**
 * The reply side of one server connection: turns what a handler returned (a value, a stream, an
 * error) into encoded messages, collects them so the replies to one chunk of input go out in one
 * write, and sends replies that carry file descriptors (SCM_RIGHTS) past Node's stream.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { EncodedError, encodeError, encodeReply } from './wire.js';
import { SystemError, VarlinkError } from './errors.js';
import { Replies } from './call.js';
import { closeFds, sendWithFds, socketFd } from './peer.js';
import type { IncomingCall } from './call-parser.js';
import { sendStream } from './reply-stream.js';

/** What the writer needs of its connection. */
export interface ReplyConnection {
  readonly socket: Socket;
  readonly closed: boolean;
  readonly log: Logger;
  close(): void;
}

export class ReplyWriter {
  private out: string[] = [];
  /** Descriptors the running call attached to its reply (pushFd). */
  private fds: number[] = [];

  /** `onFail` runs whenever a call fails (the connection forgets a pending upgrade then). */
  constructor(
    private readonly conn: ReplyConnection,
    private readonly onFail: () => void,
  ) {}

  get closed(): boolean {
    return this.conn.closed;
  }

  /** Messages encoded and not yet written. */
  get pending(): number {
    return this.out.length;
  }

  /** Whether the socket's buffer is full and writing should wait for `drained()`. */
  get mustWait(): boolean {
    return this.conn.socket.writableNeedDrain;
  }

  /** Queues one encoded message. */
  push(text: string): void {
    this.out.push(text);
  }

  /** Writes what was queued, in one write. */
  flush(): void {
    if (this.out.length === 0 || this.conn.closed) return;
    const data = this.out.length === 1 ? this.out[0]! : this.out.join('');
    this.out = [];
    this.conn.socket.write(data);
  }

  /** Resolves once the socket drained, or closed. */
  drained(): Promise<void> {
    const socket = this.conn.socket;
    return new Promise((resolve) => {
      if (this.conn.closed) return resolve();
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
  }

  close(): void {
    this.conn.close();
  }

  pushFd(fd: number): number {
    this.fds.push(fd);
    return this.fds.length - 1;
  }

  dropFds(): void {
    closeFds(this.fds.splice(0));
  }

  /** Answers a call with what its handler returned. Returns a promise only when that takes a while. */
  complete(call: IncomingCall, value: unknown): Promise<void> | undefined {
    if (value instanceof Replies) {
      // Descriptors go with single replies only.
      this.dropFds();
      return sendStream(this, call, value);
    }
    if (value instanceof EncodedError) {
      this.onFail();
      this.dropFds();
      if (!call.oneway) this.out.push(value.text);
      return undefined;
    }
    if (call.oneway) {
      this.dropFds();
      return undefined;
    }
    let text: string;
    try {
      text = encodeReply(value as object, false);
    } catch (err) {
      // A reply that cannot be serialised (too deep, a cycle, a BigInt) is the handler's fault.
      this.fail(call, err);
      return undefined;
    }
    if (this.fds.length > 0) return this.sendFds(call, text);
    this.out.push(text);
    return undefined;
  }

  /** Answers a call with an error: a VarlinkError as it is, anything else as io.systemd.System. */
  fail(call: IncomingCall, err: unknown): void {
    this.onFail();
    this.dropFds();
    if (call.oneway) return;
    if (err instanceof VarlinkError) {
      this.out.push(encodeError(err.error, err.parameters));
      return;
    }
    this.conn.log.error({ err, method: call.method }, 'method handler failed');
    const errno = typeof (err as { errno?: unknown })?.errno === 'number' ? Math.abs((err as { errno: number }).errno) : 5;
    const e = new SystemError(errno);
    this.out.push(encodeError(e.error, e.parameters));
  }

  /**
   * Sends a reply with descriptors attached. Everything written before it must be out first, since
   * the descriptors travel with the first byte of this reply; then it goes out through sendmsg,
   * past Node's stream, and our copies of the descriptors are closed.
   */
  private async sendFds(call: IncomingCall, text: string): Promise<void> {
    const fds = this.fds.splice(0);
    const socket = this.conn.socket;
    try {
      const earlier = this.out.length ? this.out.join('') : '';
      this.out = [];
      await new Promise<void>((resolve) => socket.write(earlier, () => resolve()));
      if (this.conn.closed) return;
      const data = Buffer.from(text);
      const sent = await sendWithFds(socketFd(socket), data, fds);
      if (sent < data.length && !this.conn.closed) socket.write(data.subarray(sent));
    } catch (err) {
      this.conn.log.warn({ err, method: call.method }, 'cannot send a reply with file descriptors; closing the connection');
      this.conn.close();
    } finally {
      closeFds(fds);
    }
  }
}
