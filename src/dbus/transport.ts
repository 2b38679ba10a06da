/**
 * A stream connection to a D-Bus peer over an AF_UNIX socket that carries descriptors both ways
 * (SCM_RIGHTS), and never blocks the event loop: the socket is non-blocking, waiting for it to be
 * readable or writable happens in the poller (on the thread pool), and what the peer does not take
 * yet waits in a bounded queue. A peer that stops reading fills the queue, and then `write` fails
 * with LimitsExceeded instead of growing memory or stalling anyone.
 */
import { EventEmitter } from 'node:events';
import { DBusError, DBusErrors } from './errors.js';
import { closeFd, connectUnix, POLLERR, POLLHUP, POLLIN, POLLOUT, receiveSome, sendSome, SystemCallError } from './unix-socket.js';
import { poller } from './poller.js';
import { connectFirst, socketAddress } from './address.js';

export interface TransportOptions {
  /** Bytes that may wait unsent before `write` fails with LimitsExceeded (default 16 MiB). */
  maxQueuedBytes?: number;
  /** Bytes read per readiness wake-up before other work gets a turn (default 1 MiB). */
  readBudget?: number;
}

/**
 * What a Connection needs of its byte stream; Transport here, and StreamTransport (stream-transport.ts) for a
 * connection that passes no descriptors. Events: 'data' (data: Buffer, fds: number[]), 'close' (error?),
 * 'drain'.
 */
export interface ByteStream extends EventEmitter {
  readonly isClosed: boolean;
  readonly queuedBytes: number;
  write(data: Buffer, fds?: number[], owned?: boolean): void;
  close(error?: Error): void;
}

interface Pending {
  data: Buffer;
  fds: number[];
  /** Close `fds` once sent (or dropped). */
  owned: boolean;
}

/**
 * Events: 'data' (data: Buffer, fds: number[]) — bytes in order, descriptors owned by the listener;
 * 'close' (error?: Error) — once, when the peer hung up, a system call failed, or close() was called.
 */
export class Transport extends EventEmitter implements ByteStream {
  private queue: Pending[] = [];
  private queued = 0;
  private closed = false;
  /** Whether the poller watches for POLLOUT (only while data waits). */
  private wantsOut = false;
  private readonly maxQueuedBytes: number;
  private readonly readBudget: number;

  constructor(
    readonly fd: number,
    options: TransportOptions = {},
  ) {
    super();
    this.maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    this.readBudget = options.readBudget ?? 1024 * 1024;
    // Reading starts on the next turn, after the owner has attached its 'data' listener.
    queueMicrotask(() => this.rewatch());
  }

  /** Connects to the first address of a D-Bus address list that accepts. */
  static connect(address: string, options: TransportOptions = {}): Promise<Transport> {
    return connectFirst(address, (a) => new Transport(connectUnix(socketAddress(a)), options));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Bytes accepted by write() that the peer has not taken yet. */
  get queuedBytes(): number {
    return this.queued;
  }

  /**
   * Sends `data` with `fds` attached to its first byte. With `owned`, the descriptors are closed once
   * sent or dropped. Throws DBusError LimitsExceeded when the queue is full, Disconnected when closed
   * (closing owned descriptors either way).
   */
  write(data: Buffer, fds: number[] = [], owned = false): void {
    if (this.closed || this.queued + data.length > this.maxQueuedBytes) {
      if (owned) fds.forEach(closeFd);
      if (this.closed) throw new DBusError(DBusErrors.Disconnected, 'the connection is closed');
      throw new DBusError(DBusErrors.LimitsExceeded, `outgoing queue full (${this.queued} bytes waiting for the peer)`);
    }
    this.queue.push({ data, fds, owned });
    this.queued += data.length;
    if (this.queue.length === 1) this.flush();
  }

  /** Closes the connection; queued data is dropped and owned descriptors closed. */
  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue) if (p.owned) p.fds.forEach(closeFd);
    this.queue = [];
    this.queued = 0;
    poller.release(this.fd);
    this.emit('close', error);
  }

  private rewatch(): void {
    if (this.closed) return;
    this.wantsOut = this.queue.length > 0;
    poller.watch(this.fd, POLLIN | (this.wantsOut ? POLLOUT : 0), (r) => this.ready(r));
  }

  private ready(revents: number): void {
    if (revents & POLLOUT) this.flush();
    if (revents & (POLLIN | POLLHUP | POLLERR)) this.read();
  }

  private read(): void {
    let budget = this.readBudget;
    try {
      while (!this.closed && budget > 0) {
        const got = receiveSome(this.fd);
        if (!got) break;
        if (got.data.length === 0) {
          got.fds.forEach(closeFd);
          this.close();
          return;
        }
        budget -= got.data.length;
        this.emit('data', got.data, got.fds);
      }
    } catch (e) {
      this.close(e instanceof Error ? e : new Error(String(e)));
      return;
    }
  }

  private flush(): void {
    try {
      while (!this.closed && this.queue.length) {
        const p = this.queue[0];
        const n = sendSome(this.fd, p.data, p.fds);
        if (n < 0) break;
        // The descriptors went with the first byte; whatever is left goes without them.
        if (p.owned) p.fds.forEach(closeFd);
        p.fds = [];
        this.queued -= n;
        if (n < p.data.length) p.data = p.data.subarray(n);
        else this.queue.shift();
      }
    } catch (e) {
      this.close(e instanceof SystemCallError ? e : new Error(String(e)));
      return;
    }
    if (this.closed) return;
    // Watch for POLLOUT only while something waits (re-arming costs a wake-up of the poll thread).
    const waiting = this.queue.length > 0;
    if (waiting !== this.wantsOut) {
      this.rewatch();
      if (!waiting) this.emit('drain');
    }
  }
}
