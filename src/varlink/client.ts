/**
 * The Varlink client: one connection, calls pipelined, replies matched to calls in order.
 *
 *   const client = await VarlinkClient.connect('unix:/run/systemd/machine/io.systemd.Machine');
 *   const m = client.proxy(IoSystemdMachine);
 *   await m.Register({ name: 'web', class: 'container', leader: pid });
 *   for await (const machine of m.List.more({})) console.log(machine.name);
 *
 * Sending follows the canonical encoding (false flags and empty parameters are left out);
 * receiving is lenient (parameters absent, null or {}; `continues` absent or false). A call that
 * times out closes the connection, because a late reply would otherwise be taken for the answer
 * to the next call; sd-varlink's default timeout of 45 s applies unless another is given.
 */
import type { Socket } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { connectAddress, type Address } from './address.js';
import { InvalidUtf8Error, MessageReader, MessageTooLargeError, DEFAULT_MAX_MESSAGE_SIZE, frame } from './wire.js';
import { DisconnectedError, ProtocolError, TimedOutError, VarlinkError } from './errors.js';
import type { InterfaceDescriptor, MethodMap } from './interface.js';

export const DEFAULT_TIMEOUT_MS = 45_000;

export interface CallOptions {
  /** Milliseconds; 0 or Infinity waits forever. */
  timeout?: number;
}

export interface ClientOptions extends CallOptions {
  maxMessageSize?: number;
  /** Interfaces whose error classes replies should be raised as. */
  interfaces?: InterfaceDescriptor<any>[];
}

interface Pending {
  more: boolean;
  onReply(parameters: Record<string, unknown>, continues: boolean): void;
  onError(err: Error): void;
  timer?: NodeJS.Timeout;
}

type ErrorFactory = new (parameters?: any) => VarlinkError;

export class VarlinkClient {
  private readonly reader: MessageReader;
  private readonly pending: Pending[] = [];
  private readonly errorClasses = new Map<string, ErrorFactory>();
  private closedWith?: Error;
  private readonly defaultTimeout: number;

  private constructor(
    readonly socket: Socket,
    readonly child: ChildProcess | undefined,
    options: ClientOptions,
  ) {
    this.reader = new MessageReader(options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE);
    this.defaultTimeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    for (const iface of options.interfaces ?? []) this.learnErrors(iface);
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.shutdown(err));
    socket.on('close', () => this.shutdown(new DisconnectedError()));
  }

  static async connect(address: string | Address, options: ClientOptions = {}): Promise<VarlinkClient> {
    const { socket, child } = await connectAddress(address);
    return new VarlinkClient(socket, child, options);
  }

  /** Wraps a socket that is already connected. */
  static fromSocket(socket: Socket, options: ClientOptions = {}): VarlinkClient {
    return new VarlinkClient(socket, undefined, options);
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Number of calls sent and not yet completely answered. */
  get inFlight(): number {
    return this.pending.length;
  }

  close(): void {
    this.shutdown(new DisconnectedError());
    this.child?.kill();
  }

  private learnErrors(iface: InterfaceDescriptor<any>): void {
    for (const [short, cls] of Object.entries(iface.errors)) this.errorClasses.set(`${iface.name}.${short}`, cls);
  }

  private shutdown(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.socket.destroy();
    const waiting = this.pending.splice(0);
    for (const p of waiting) {
      if (p.timer) clearTimeout(p.timer);
      p.onError(err);
    }
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    for (;;) {
      let text: string | undefined;
      try {
        text = this.reader.next();
      } catch (err) {
        if (err instanceof MessageTooLargeError || err instanceof InvalidUtf8Error) return this.shutdown(new ProtocolError(err.message));
        throw err;
      }
      if (text === undefined) return;
      this.onMessage(text);
      if (this.closedWith) return;
    }
  }

  private onMessage(text: string): void {
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      return this.shutdown(new ProtocolError('reply is not valid JSON'));
    }
    if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) {
      return this.shutdown(new ProtocolError('reply is not a JSON object'));
    }
    const r = reply as { parameters?: unknown; continues?: unknown; error?: unknown };
    const head = this.pending[0];
    if (!head) return this.shutdown(new ProtocolError('reply without a call'));
    const parameters = (r.parameters ?? {}) as Record<string, unknown>;
    if (typeof parameters !== 'object' || Array.isArray(parameters)) {
      return this.shutdown(new ProtocolError('reply parameters are not an object'));
    }
    if (r.error !== undefined) {
      if (typeof r.error !== 'string') return this.shutdown(new ProtocolError('error name is not a string'));
      this.finish();
      head.onError(this.makeError(r.error, parameters));
      return;
    }
    const continues = r.continues === true;
    if (continues && !head.more) return this.shutdown(new ProtocolError("'continues' on a call made without 'more'"));
    if (!continues) this.finish();
    head.onReply(parameters, continues);
  }

  private finish(): void {
    const p = this.pending.shift();
    if (p?.timer) clearTimeout(p.timer);
  }

  private makeError(name: string, parameters: Record<string, unknown>): VarlinkError {
    const cls = this.errorClasses.get(name);
    if (cls) {
      const e = new cls(parameters);
      // Classes of parameterless errors ignore their argument; keep what the server sent.
      if (Object.keys(e.parameters).length === 0 && Object.keys(parameters).length) {
        (e as { parameters: Record<string, unknown> }).parameters = parameters;
      }
      return e;
    }
    return new VarlinkError(name, parameters);
  }

  private send(message: Record<string, unknown>): void {
    if (this.closedWith) throw this.closedWith;
    this.socket.write(frame(message));
  }

  private enqueue(p: Pending, timeout: number | undefined): void {
    const ms = timeout ?? this.defaultTimeout;
    if (ms > 0 && Number.isFinite(ms)) {
      p.timer = setTimeout(() => {
        // A late reply would be matched to the wrong call: give up on the connection.
        const err = new TimedOutError();
        p.onError(err);
        p.onError = () => {};
        this.shutdown(new DisconnectedError());
      }, ms);
      p.timer.unref?.();
    }
    this.pending.push(p);
  }

  private static message(method: string, parameters: object | undefined, flag?: 'more' | 'oneway' | 'upgrade') {
    const m: Record<string, unknown> = { method };
    if (parameters && Object.keys(parameters).length > 0) m.parameters = parameters;
    if (flag) m[flag] = true;
    return m;
  }

  /** Calls a method by its fully qualified name and resolves with the reply's parameters. */
  callRaw(method: string, parameters?: object, options: CallOptions = {}): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      this.send(VarlinkClient.message(method, parameters));
      this.enqueue({ more: false, onReply: (p) => resolve(p), onError: reject }, options.timeout);
    });
  }

  /** Sends a call that gets no reply. */
  onewayRaw(method: string, parameters?: object): void {
    this.send(VarlinkClient.message(method, parameters, 'oneway'));
  }

  /**
   * Calls with `more` and yields each reply. Leaving the loop early closes the connection, since
   * Varlink has no way to cancel a stream.
   */
  moreRaw(method: string, parameters?: object, options: CallOptions = {}): AsyncIterableIterator<Record<string, unknown>> {
    const queue: Record<string, unknown>[] = [];
    let done = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let sent = false;
    const start = () => {
      if (sent) return;
      sent = true;
      this.send(VarlinkClient.message(method, parameters, 'more'));
      this.enqueue(
        {
          more: true,
          onReply: (p, continues) => {
            queue.push(p);
            if (!continues) done = true;
            notify();
          },
          onError: (err) => {
            failure = err;
            done = true;
            notify();
          },
        },
        options.timeout,
      );
    };
    const client = this;
    const iterator: AsyncIterableIterator<Record<string, unknown>> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next() {
        start();
        for (;;) {
          if (queue.length) return { value: queue.shift()!, done: false };
          if (failure) {
            const f = failure;
            failure = undefined;
            throw f;
          }
          if (done) return { value: undefined, done: true };
          await new Promise<void>((r) => (wake = r));
        }
      },
      async return() {
        if (!done) client.close();
        done = true;
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }

  /** Typed calls for one interface: `proxy.Method(params)`, `proxy.Method.more(params)`, `proxy.Method.oneway(params)`. */
  proxy<M extends MethodMap>(iface: InterfaceDescriptor<M>): Proxy<M> {
    this.learnErrors(iface);
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(iface.methods)) {
      const full = `${iface.name}.${name}`;
      const fn = (p?: object, o?: CallOptions) => this.callRaw(full, p, o);
      fn.more = (p?: object, o?: CallOptions) => this.moreRaw(full, p, o);
      fn.oneway = (p?: object) => this.onewayRaw(full, p);
      out[name] = fn;
    }
    return out as Proxy<M>;
  }
}

type Params<P> = {} extends P ? [parameters?: P, options?: CallOptions] : [parameters: P, options?: CallOptions];

export interface ProxyMethod<P, R> {
  (...args: Params<P>): Promise<R>;
  more(...args: Params<P>): AsyncIterableIterator<R>;
  oneway(parameters?: P): void;
}

export type Proxy<M extends MethodMap> = {
  [K in keyof M]: ProxyMethod<M[K]['parameters'], M[K]['result']>;
};
