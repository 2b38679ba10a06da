/**
 * A D-Bus connection: messages over a Transport, serials, method calls matched to their replies
 * with timeouts (25 s by default, as sd-bus), signals as events, and incoming method calls handed
 * to one handler (the object server). Knows nothing of the bus driver's methods (see bus.ts).
 *
 * Descriptor ownership: descriptors in a message you send belong to the connection from then on
 * (closed once written; `dupFd` one you want to keep). Descriptors in a reply to `call` belong to
 * the caller. Descriptors in a signal are closed after the 'signal' listeners have run. Descriptors
 * in an incoming method call belong to the call handler.
 */
import { EventEmitter } from 'node:events';
import { DBusError, DBusErrors, DBusProtocolError } from './errors.js';
import { createMessage, encodeMessage, MessageFlags, MessageType, type Message } from './message.js';
import { MessageFramer } from './framer.js';
import { Transport, type ByteStream, type TransportOptions } from './transport.js';
import { StreamTransport } from './stream-transport.js';
import { authenticate } from './auth.js';
import { closeFd } from './unix-socket.js';

export const DEFAULT_CALL_TIMEOUT_MS = 25_000;

export interface ConnectionOptions extends TransportOptions {
  /** A D-Bus address (`unix:path=…`, `unix:abstract=…`). */
  address: string;
  /** The uid to authenticate as (default: the effective uid). */
  uid?: number;
  /**
   * Ask to pass descriptors (default true). Without, the connection reads through the event loop
   * (stream-transport.ts) instead of the poller's thread.
   */
  negotiateFds?: boolean;
  /** Default timeout of method calls in ms (default 25 s). */
  timeoutMs?: number;
  /** Limit on the handshake (default 25 s). */
  authTimeoutMs?: number;
}

export interface CallRequest {
  destination?: string;
  path: string;
  interface?: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** MessageFlags bits (NoAutoStart, AllowInteractiveAuthorization). */
  flags?: number;
  /** Overrides the connection's default timeout for this call. */
  timeoutMs?: number;
}

export type CallHandler = (call: Message) => void;

interface PendingCall {
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Events: 'signal' (message), 'close' (error?: Error). Incoming method calls go to `onCall`
 * (without one they are answered UnknownObject).
 */
export class Connection extends EventEmitter {
  /** The unique name once `Hello` has been answered (see bus.ts). */
  uniqueName = '';
  /** Whether descriptors may be passed on this connection. */
  readonly unixFds: boolean;
  /** Receives incoming method calls (the object server sets it). */
  onCall: CallHandler | null = null;
  private serial = 0;
  private pending = new Map<number, PendingCall>();
  private framer = new MessageFramer();
  private readonly timeoutMs: number;
  private closedError: Error | null = null;

  constructor(
    readonly transport: ByteStream,
    options: { unixFds: boolean; timeoutMs?: number },
  ) {
    super();
    this.unixFds = options.unixFds;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    transport.on('data', (data: Buffer, fds: number[]) => this.onData(data, fds));
    transport.on('close', (err?: Error) => this.onClose(err));
  }

  /** Connects and authenticates (no Hello: `connectBus` in bus.ts does that for a bus). */
  static async connect(options: ConnectionOptions): Promise<Connection> {
    const t = options.negotiateFds === false ? await StreamTransport.connect(options.address, options) : await Transport.connect(options.address, options);
    const auth = await authenticate(t, { uid: options.uid, negotiateFds: options.negotiateFds, timeoutMs: options.authTimeoutMs });
    return new Connection(t, { unixFds: auth.unixFds, timeoutMs: options.timeoutMs });
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /**
   * Sends a message, giving it the next serial (returned). Throws DBusError when it cannot be queued
   * (LimitsExceeded, Disconnected) or DBusProtocolError when its body does not fit its signature;
   * descriptors in its body are closed either way.
   */
  send(m: Message): number {
    if (this.closedError) throw new DBusError(DBusErrors.Disconnected, 'the connection is closed');
    this.serial = this.serial >= 0xffffffff ? 1 : this.serial + 1;
    m.serial = this.serial;
    let encoded;
    try {
      encoded = encodeMessage(m);
    } catch (e) {
      collectFds(m).forEach(closeFd);
      throw e;
    }
    if (encoded.fds.length && !this.unixFds) {
      encoded.fds.forEach(closeFd);
      throw new DBusError(DBusErrors.NotSupported, 'this connection cannot pass descriptors');
    }
    this.transport.write(encoded.data, encoded.fds, true);
    return m.serial;
  }

  /** Calls a method; resolves with the reply message (its descriptors are yours), rejects with DBusError. */
  call(req: CallRequest): Promise<Message> {
    const m = createMessage({
      type: MessageType.MethodCall, destination: req.destination, path: req.path, interface: req.interface,
      member: req.member, signature: req.signature ?? '', body: req.body ?? [], flags: (req.flags ?? 0) & ~MessageFlags.NoReplyExpected,
    });
    return new Promise((resolve, reject) => {
      let serial: number;
      try {
        serial = this.send(m);
      } catch (e) {
        return reject(e);
      }
      const ms = req.timeoutMs ?? this.timeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new DBusError(DBusErrors.NoReply, `no reply to ${req.interface ?? ''}.${req.member} within ${ms} ms`));
      }, ms);
      this.pending.set(serial, { resolve, reject, timer });
    });
  }

  /** Calls a method without asking for a reply. */
  callNoReply(req: CallRequest): void {
    this.send(createMessage({
      type: MessageType.MethodCall, destination: req.destination, path: req.path, interface: req.interface,
      member: req.member, signature: req.signature ?? '', body: req.body ?? [], flags: (req.flags ?? 0) | MessageFlags.NoReplyExpected,
    }));
  }

  /** Emits a signal (to everyone, or to `destination` only). */
  signal(path: string, iface: string, member: string, signature = '', body: unknown[] = [], destination?: string): void {
    this.send(createMessage({ type: MessageType.Signal, path, interface: iface, member, signature, body, destination }));
  }

  /** Answers a method call (nothing is sent when it asked for no reply; its descriptors are closed). */
  reply(call: Message, signature = '', body: unknown[] = []): void {
    const m = createMessage({ type: MessageType.MethodReturn, replySerial: call.serial, destination: call.sender, signature, body });
    if (call.flags & MessageFlags.NoReplyExpected) return collectFds(m).forEach(closeFd);
    this.send(m);
  }

  /** Answers a method call with an error. */
  replyError(call: Message, errorName: string, message = ''): void {
    if (call.flags & MessageFlags.NoReplyExpected) return;
    this.send(createMessage({ type: MessageType.Error, replySerial: call.serial, destination: call.sender, errorName, signature: 's', body: [message] }));
  }

  /** Closes the connection; pending calls reject with Disconnected. */
  close(): void {
    this.transport.close();
  }

  private onData(data: Buffer, fds: number[]): void {
    let messages: Message[];
    try {
      messages = this.framer.push(data, fds);
    } catch (e) {
      this.framer.drainFds().forEach(closeFd);
      this.transport.close(e instanceof DBusProtocolError ? e : new DBusProtocolError(String(e)));
      return;
    }
    for (const m of messages) this.dispatch(m);
  }

  private dispatch(m: Message): void {
    switch (m.type) {
      case MessageType.MethodReturn:
      case MessageType.Error: {
        const p = this.pending.get(m.replySerial!);
        if (!p) return m.fds.forEach(closeFd);
        this.pending.delete(m.replySerial!);
        clearTimeout(p.timer);
        if (m.type === MessageType.MethodReturn) return p.resolve(m);
        m.fds.forEach(closeFd);
        const text = typeof m.body[0] === 'string' ? m.body[0] : '';
        return p.reject(new DBusError(m.errorName!, text, m.body));
      }
      case MessageType.Signal:
        try {
          this.emit('signal', m);
        } finally {
          m.fds.forEach(closeFd);
        }
        return;
      case MessageType.MethodCall:
        if (this.onCall) return this.onCall(m);
        m.fds.forEach(closeFd);
        this.replyError(m, DBusErrors.UnknownObject, `Unknown object '${m.path}'.`);
    }
  }

  private onClose(err?: Error): void {
    this.closedError = err ?? new Error('closed');
    this.framer.drainFds().forEach(closeFd);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new DBusError(DBusErrors.Disconnected, `connection closed${err ? ': ' + err.message : ''}`));
    }
    this.pending.clear();
    this.emit('close', err);
  }
}

/** The descriptors among a message's `h` values (to close when it cannot be sent). */
function collectFds(m: Message): number[] {
  try {
    return encodeMessage({ ...m, serial: m.serial || 1 }).fds;
  } catch {
    return [];
  }
}
