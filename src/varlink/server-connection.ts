/**
 * One accepted connection on the server side.
 *
 * Calls are handled strictly one after another, in the order they arrived; later calls wait in
 * a queue while a handler is still working or a stream is still sending. Replies produced while
 * handling one chunk of input are written together. A protocol violation (not JSON, not an
 * object, an unknown header key, a non-boolean flag, two flags at once, an oversized message)
 * closes this connection and nothing else.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { MessageReader, MessageTooLargeError, encodeError, encodeReply } from './wire.js';
import { VarlinkError, SystemError } from './errors.js';
import { Replies, type Call } from './call.js';
import { closeFds, peerHungUp, sendWithFds, socketFd, type PeerCredentials } from './peer.js';
import { parseCallBytes, type IncomingCall } from './call-parser.js';
import type { Offloaded, ParseOffload } from './offload.js';

/** What the connection needs from its server. */
export interface Dispatcher {
  /** Validates and runs a call; returns what the handler returned, or throws a VarlinkError. */
  dispatch(call: IncomingCall, context: Call): unknown;
  readonly logger: Logger;
  readonly maxMessageSize: number;
  /** Where large messages are parsed, if anywhere but here (offload.ts). */
  readonly offload?: ParseOffload;
  readonly offloadAbove: number;
}

/** Thrown by a dispatcher to close the connection without replying (as sd-varlink does). */
export class DropConnection extends Error {}

const QUEUE_HIGH_WATER = 256;

/** What a handler sees of its call; one small object per call, methods on the prototype. */
class CallContext implements Call {
  constructor(
    private readonly conn: ServerConnection,
    private readonly call: IncomingCall,
  ) {}
  get method(): string {
    return this.call.method;
  }
  get more(): boolean {
    return this.call.more;
  }
  get oneway(): boolean {
    return this.call.oneway;
  }
  get upgrade(): boolean {
    return this.call.upgrade;
  }
  get peer(): PeerCredentials {
    return this.conn.peer;
  }
  get log(): Logger {
    return this.conn.log.child({ method: this.call.method });
  }
  get signal(): AbortSignal {
    return this.conn.abortSignal;
  }
  onUpgrade(h: (socket: Socket, rest: Buffer) => void): void {
    if (!this.call.upgrade) throw new Error('onUpgrade() on a call made without upgrade');
    this.conn.setUpgradeHandler(h);
  }
  pushFd(fd: number): number {
    return this.conn.pushFd(fd);
  }
}

export class ServerConnection {
  private readonly reader: MessageReader;
  private readonly queue: IncomingCall[] = [];
  private out: string[] = [];
  private busy = false;
  private closed = false;
  private paused = false;
  private upgrading = false;
  private peerDone = false;
  /** A large message is being parsed in the worker; nothing after it is read until it is back. */
  private parsing = false;
  private readonly abort = new AbortController();
  private logger?: Logger;
  private upgradeHandler?: (socket: Socket, rest: Buffer) => void;
  /** Descriptors the running call attached to its reply (pushFd). */
  private fds: number[] = [];
  private peerValue?: PeerCredentials;
  private readonly readPeer?: () => PeerCredentials;
  /** Whether the server counted this connection against its peer's uid. */
  counted = false;

  constructor(
    readonly socket: Socket,
    peer: PeerCredentials | (() => PeerCredentials),
    private readonly server: Dispatcher,
    private readonly onClose: (c: ServerConnection) => void,
  ) {
    if (typeof peer === 'function') this.readPeer = peer;
    else this.peerValue = peer;
    this.reader = new MessageReader(server.maxMessageSize);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('end', () => {
      // The peer finished sending. If it only shut down its sending side, answer what is queued,
      // then close; if it went away entirely, abort what is running and drop the connection.
      this.peerDone = true;
      if ((!this.busy && !this.parsing && this.queue.length === 0) || peerHungUp(socketFd(socket))) this.close();
    });
  }

  /** SO_PEERCRED of the peer, read when first needed. */
  get peer(): PeerCredentials {
    return (this.peerValue ??= this.readPeer!());
  }

  get log(): Logger {
    this.logger ??= this.server.logger.child({ peer: { uid: this.peer.uid, pid: this.peer.pid } });
    return this.logger;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropFds();
    this.queue.length = 0;
    this.abort.abort();
    this.socket.destroy();
    this.onClose(this);
  }

  private protocolError(reason: string): void {
    this.log.debug({ reason }, 'closing connection after protocol violation');
    this.close();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.upgrading) return;
    this.reader.push(chunk);
    this.readQueued();
    this.pump();
  }

  /**
   * Moves complete messages from the reader into the call queue (not past an upgrade call, and not
   * past a large message that is out in the parse worker).
   */
  private readQueued(): void {
    while (!this.upgrading && !this.closed && !this.parsing) {
      let bytes: Buffer | undefined;
      try {
        bytes = this.reader.nextBytes();
      } catch (err) {
        if (err instanceof MessageTooLargeError) {
          this.pump();
          return this.protocolError(err.message);
        }
        throw err;
      }
      if (bytes === undefined) return;
      const offload = this.server.offload;
      if (offload && bytes.length >= this.server.offloadAbove) {
        this.parsing = true;
        this.applyBackpressure();
        const local = bytes;
        offload.parse(local).then(
          (r) => this.parsed(r, local),
          (err) => {
            this.log.error({ err }, 'parse worker failed');
            this.close();
          },
        );
        return;
      }
      if (!this.enqueue(this.parseHere(bytes))) return;
    }
  }

  /** The event loop's own parse: a call, or a reason to drop the connection. */
  private parseHere(bytes: Buffer): IncomingCall | string {
    const parsed = parseCallBytes(bytes);
    return typeof parsed === 'string' ? parsed : parsed.call;
  }

  /** Queues a parsed call; returns false when the connection was dropped instead. */
  private enqueue(call: IncomingCall | string): boolean {
    if (typeof call === 'string') {
      // Answer what came before the bad message, then drop the connection.
      this.pump();
      this.protocolError(call);
      return false;
    }
    this.queue.push(call);
    // Bytes after an upgrade call belong to the next protocol: stop reading messages.
    if (call.upgrade) this.upgrading = true;
    return true;
  }

  /** A large message is back from the parse worker. */
  private parsed(r: Offloaded, bytes: Buffer): void {
    this.parsing = false;
    if (this.closed) return;
    const call = 'call' in r ? r.call : 'drop' in r ? r.drop : this.parseHere(bytes);
    if (!this.enqueue(call)) return;
    this.readQueued();
    this.pump();
  }

  private onDrain(): void {
    if (this.paused && !this.busy) this.pump();
  }

  /** Runs queued calls until one needs to wait, then writes the collected replies. */
  private pump(): void {
    while (!this.busy && !this.closed && this.queue.length > 0) {
      if (this.socket.writableNeedDrain) break;
      const call = this.queue.shift()!;
      const pending = this.run(call);
      if (pending) {
        this.busy = true;
        pending.then(
          () => {
            this.busy = false;
            if (this.afterCall(call)) this.pump();
          },
          (err) => {
            this.log.error({ err }, 'connection handler failed');
            this.close();
          },
        );
        break;
      }
      if (!this.afterCall(call)) return;
    }
    this.flush();
    this.applyBackpressure();
    if (!this.busy && !this.parsing && this.queue.length === 0 && this.peerDone && !this.closed) this.close();
  }

  /** Finishes an upgrade call; returns false when the connection left Varlink. */
  private afterCall(call: IncomingCall): boolean {
    if (!call.upgrade) return true;
    this.flush();
    if (this.upgradeHandler) {
      this.handOver();
      return false;
    }
    // The upgrade was refused with an error: the connection keeps speaking Varlink.
    this.upgrading = false;
    this.readQueued();
    return true;
  }

  private applyBackpressure(): void {
    const shouldPause = this.queue.length > QUEUE_HIGH_WATER || this.socket.writableNeedDrain || this.parsing;
    if (shouldPause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!shouldPause && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private flush(): void {
    if (this.out.length === 0 || this.closed) return;
    const data = this.out.length === 1 ? this.out[0]! : this.out.join('');
    this.out = [];
    this.socket.write(data);
  }

  private context(call: IncomingCall): Call {
    return new CallContext(this, call);
  }

  /** Used by CallContext.onUpgrade. */
  setUpgradeHandler(h: (socket: Socket, rest: Buffer) => void): void {
    this.upgradeHandler = h;
  }

  get abortSignal(): AbortSignal {
    return this.abort.signal;
  }

  /** Handles one call. Returns a promise only when the call could not be completed at once. */
  private run(call: IncomingCall): Promise<void> | undefined {
    let result: unknown;
    try {
      result = this.server.dispatch(call, this.context(call));
    } catch (err) {
      if (err instanceof DropConnection) {
        this.protocolError(err.message);
        return undefined;
      }
      this.fail(call, err);
      return undefined;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => this.complete(call, value),
        (err) => this.fail(call, err),
      );
    }
    return this.complete(call, result);
  }

  private complete(call: IncomingCall, value: unknown): Promise<void> | undefined {
    if (value instanceof Replies) {
      // Descriptors go with single replies only.
      this.dropFds();
      return this.stream(call, value);
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

  /** Used by CallContext.pushFd. */
  pushFd(fd: number): number {
    this.fds.push(fd);
    return this.fds.length - 1;
  }

  private dropFds(): void {
    closeFds(this.fds.splice(0));
  }

  /**
   * Sends a reply with descriptors attached. Everything written before it must be out first, since
   * the descriptors travel with the first byte of this reply; then it goes out through sendmsg,
   * past Node's stream, and our copies of the descriptors are closed.
   */
  private async sendFds(call: IncomingCall, text: string): Promise<void> {
    const fds = this.fds.splice(0);
    try {
      const earlier = this.out.length ? this.out.join('') : '';
      this.out = [];
      await new Promise<void>((resolve) => this.socket.write(earlier, () => resolve()));
      if (this.closed) return;
      const data = Buffer.from(text);
      const sent = await sendWithFds(socketFd(this.socket), data, fds);
      if (sent < data.length && !this.closed) this.socket.write(data.subarray(sent));
    } catch (err) {
      this.log.warn({ err, method: call.method }, 'cannot send a reply with file descriptors; closing the connection');
      this.close();
    } finally {
      closeFds(fds);
    }
  }

  private fail(call: IncomingCall, err: unknown): void {
    this.upgradeHandler = undefined;
    this.dropFds();
    if (call.oneway) return;
    if (err instanceof VarlinkError) {
      this.out.push(encodeError(err.error, err.parameters));
      return;
    }
    this.log.error({ err, method: call.method }, 'method handler failed');
    const errno = typeof (err as { errno?: unknown })?.errno === 'number' ? Math.abs((err as { errno: number }).errno) : 5;
    const e = new SystemError(errno);
    this.out.push(encodeError(e.error, e.parameters));
  }

  /**
   * Sends a stream, holding each reply back until the next one (or the end) is known, so the
   * last reply goes out without `continues`. Waits for the socket to drain when the peer reads
   * slowly, so an unread stream cannot grow memory without bound.
   */
  private async stream(call: IncomingCall, replies: Replies<unknown>): Promise<void> {
    if (replies.live && call.more) return this.streamLive(call, replies);
    let held: unknown;
    let have = false;
    try {
      for await (const item of replies.source as AsyncIterable<unknown>) {
        if (this.closed) return;
        if (!call.more) {
          // Without `more` only one reply may be sent.
          held = item;
          have = true;
          break;
        }
        if (have && !call.oneway) {
          this.out.push(encodeReply(held as object, true));
          if (this.out.length >= 64 || this.socket.writableNeedDrain) {
            this.flush();
            if (this.socket.writableNeedDrain) await this.drained();
          }
        }
        held = item;
        have = true;
      }
    } catch (err) {
      // Replies produced before the failure still go out (with continues), then the error.
      if (have && call.more && !call.oneway) this.out.push(encodeReply(held as object, true));
      this.fail(call, err);
      return;
    }
    if (call.oneway) return;
    if (have) this.out.push(encodeReply(held as object, false));
    else if (replies.empty) this.fail(call, replies.empty());
    else this.out.push(encodeReply({}, false));
  }

  /** Sends each reply of a subscription at once; closes the connection when it ends. */
  private async streamLive(call: IncomingCall, replies: Replies<unknown>): Promise<void> {
    try {
      for await (const item of replies.source as AsyncIterable<unknown>) {
        if (this.closed) return;
        if (call.oneway) continue;
        this.out.push(encodeReply(item as object, true));
        this.flush();
        if (this.socket.writableNeedDrain) await this.drained();
      }
    } catch (err) {
      this.fail(call, err);
      this.flush();
    }
    this.close();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private handOver(): void {
    const handler = this.upgradeHandler!;
    this.upgradeHandler = undefined;
    const rest = this.reader.takeRest();
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('drain');
    this.socket.removeAllListeners('end');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    this.closed = true;
    this.onClose(this);
    handler(this.socket, rest);
  }
}
