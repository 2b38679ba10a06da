/**
 * The byte stream of a D-Bus connection that passes no descriptors, through a libuv pipe (net.Socket):
 * readiness comes from the event loop itself rather than from the poller's thread (transport.ts), so a call
 * and its reply cost no hand-over between threads. berthd's connection to PID 1 for machine scopes is one:
 * StartTransientUnit, StopUnit and JobRemoved carry no descriptors, and each Register through systemd waits
 * on that connection twice. Same events and the same bound on queued bytes as Transport.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DBusError, DBusErrors } from './errors.js';
import { connectFirst } from './address.js';
import type { ByteStream, TransportOptions } from './transport.js';
import { closeFd } from './unix-socket.js';

export class StreamTransport extends EventEmitter implements ByteStream {
  private closed = false;
  private readonly maxQueuedBytes: number;

  private constructor(
    private readonly socket: net.Socket,
    options: TransportOptions,
  ) {
    super();
    this.maxQueuedBytes = options.maxQueuedBytes ?? 16 * 1024 * 1024;
    socket.on('data', (chunk: Buffer) => this.emit('data', chunk, []));
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (e) => this.close(e));
    socket.on('end', () => this.close());
    socket.on('close', () => this.close());
  }

  /** Connects to the first address of a D-Bus address list that accepts. */
  static connect(address: string, options: TransportOptions = {}): Promise<StreamTransport> {
    return connectFirst(address, async (a) => {
      const socket = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ path: a.kind === 'path' ? a.path : `\0${a.name}` });
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
      return new StreamTransport(socket, options);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /** As Transport.write; descriptors cannot go over this stream (the handshake did not offer them). */
  write(data: Buffer, fds: number[] = [], owned = false): void {
    if (owned) fds.forEach(closeFd);
    if (this.closed) throw new DBusError(DBusErrors.Disconnected, 'the connection is closed');
    if (fds.length) throw new DBusError(DBusErrors.Failed, 'this connection passes no descriptors');
    if (this.socket.writableLength + data.length > this.maxQueuedBytes) {
      throw new DBusError(DBusErrors.LimitsExceeded, `outgoing queue full (${this.socket.writableLength} bytes waiting for the peer)`);
    }
    this.socket.write(data);
  }

  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.emit('close', error);
  }
}
