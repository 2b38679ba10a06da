/**
 * One accepted connection on the server side: reading and framing its input, keeping its calls
 * in order, and its life (back-pressure, close, hand-over after an upgrade).
 *
 * Calls are handled strictly one after another, in the order they arrived; later calls wait in
 * a queue while a handler is still working or a stream is still sending. Replies produced while
 * handling one chunk of input are written together (reply-writer.ts). A protocol violation (not
 * JSON, not an object, an unknown header key, a non-boolean flag, two flags at once, an oversized
 * message) closes this connection and nothing else.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { MessageReader, MessageTooLargeError } from './wire.js';
import type { Call } from './call.js';
import { peerHungUp, socketFd, type PeerCredentials } from './peer.js';
import { parseCallBytes, type IncomingCall } from './call-parser.js';
import type { Offloaded, ParseOffload } from './offload.js';
import { CallContext, type CallConnection } from './call-context.js';
import { ReplyWriter } from './reply-writer.js';

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

export class ServerConnection implements CallConnection {
  private readonly reader: MessageReader;
  private readonly queue: IncomingCall[] = [];
  private readonly replies = new ReplyWriter(this, () => (this.upgradeHandler = undefined));
  private busy = false;
  private isClosed = false;
  private paused = false;
  private upgrading = false;
  private peerDone = false;
  /** A large message is being parsed in the worker; nothing after it is read until it is back. */
  private parsing = false;
  private readonly abort = new AbortController();
  private logger?: Logger;
  private upgradeHandler?: (socket: Socket, rest: Buffer) => void;
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

  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.replies.dropFds();
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
    this.replies.flush();
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
      this.replies.fail(call, err);
      return undefined;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => this.replies.complete(call, value),
        (err) => this.replies.fail(call, err),
      );
    }
    return this.replies.complete(call, result);
  }

  /** Used by CallContext.pushFd. */
  pushFd(fd: number): number {
    return this.replies.pushFd(fd);
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
    this.isClosed = true;
    this.onClose(this);
    handler(this.socket, rest);
  }
}
