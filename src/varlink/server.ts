/**
 * The Varlink server: binds interfaces to handlers, listens on sockets, dispatches calls.
 *
 *   const server = new VarlinkServer({ vendor, product, version, url, logger });
 *   server.implement(IoSystemdMachine, { Register, Unregister, ... });   // every method, typed
 *   await server.listen('unix:/run/systemd/machine/io.systemd.Machine');
 *
 * Before a handler runs, the call is checked against the method's IDL with the validator the
 * generator precompiled; a mismatch is answered `org.varlink.service.InvalidParameter` naming
 * the top-level field, as sd-varlink does. `org.varlink.service` is always served.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, mkdirSync, unlinkSync, lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { createServer, Socket, type Server } from 'node:net';
import pino, { type Logger } from 'pino';
import type { InterfaceDescriptor, MethodDescriptor, MethodMap } from './interface.js';
import { Unbound, type Call, type Handler, type Handlers } from './call.js';
import {
  ExpectedMoreError,
  InterfaceNotFoundError,
  InvalidParameterError,
  MethodNotFoundError,
  SystemError,
} from './errors.js';
import { DropConnection, ServerConnection, type Dispatcher } from './server-connection.js';
import type { IncomingCall } from './call-parser.js';
import { parseAddress } from './address.js';
import { isListeningSocket, listenAbstract, peerCredentials, socketFd, type PeerCredentials } from './peer.js';
import { DEFAULT_MAX_MESSAGE_SIZE } from './wire.js';
import { OrgVarlinkService } from './builtin/generated/org.varlink.service.js';
import { parameterName } from './parameter-name.js';
import { DEFAULT_OFFLOAD_ABOVE, ParseOffload } from './offload.js';

export { parameterName };

export interface ServerOptions {
  vendor: string;
  product: string;
  version: string;
  url: string;
  logger?: Logger;
  /** Largest accepted message (default 16 MiB, as sd-varlink). */
  maxMessageSize?: number;
  /** Connections beyond this are closed at once (default 4096, as sd-varlink). */
  maxConnections?: number;
  /** Connections per peer uid (default 1024, as sd-varlink with uid accounting); root is exempt. */
  maxConnectionsPerUid?: number;
  /**
   * A worker module that calls `serveParseWorker()` with the implemented interfaces (parse-worker.ts).
   * Messages of `offloadAbove` bytes or more are then parsed and validated there, off the event
   * loop. Without it every message is parsed on the event loop. Servers of one process may share a
   * ParseOffload, and with it one worker.
   */
  parseWorker?: URL | string | ParseOffload;
  /** Size from which messages go to the parse worker (default 32 KiB). */
  offloadAbove?: number;
}

export interface ImplementOptions<M extends MethodMap> {
  /** Methods that accept `upgrade: true` (others drop a connection that asks). */
  upgradable?: (keyof M & string)[];
}

interface BoundMethod {
  descriptor: MethodDescriptor;
  handler: Handler<any, any> | typeof Unbound;
  upgradable: boolean;
}

export interface ListenOptions {
  /** File mode of a socket in the file system (default 0o666, as machined). */
  mode?: number;
}

/** Events: 'connection' (count), 'idle' (no connection left). */
export class VarlinkServer extends EventEmitter implements Dispatcher {
  readonly logger: Logger;
  readonly maxMessageSize: number;
  readonly offload?: ParseOffload;
  readonly offloadAbove: number;
  private readonly maxConnections: number;
  private readonly maxPerUid: number;
  private readonly interfaces = new Map<string, InterfaceDescriptor>();
  private readonly methods = new Map<string, BoundMethod>();
  private readonly servers: Server[] = [];
  private readonly connections = new Set<ServerConnection>();
  private readonly perUid = new Map<number, number>();
  /** The one connection whose uid is not counted yet (see accept). */
  private uncounted?: ServerConnection;
  private readonly ownedPaths: string[] = [];
  /** GetInfo's reply, built once per set of interfaces. */
  private info?: { vendor: string; product: string; version: string; url: string; interfaces: string[] };

  constructor(options: ServerOptions) {
    super();
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.maxConnections = options.maxConnections ?? 4096;
    this.maxPerUid = options.maxConnectionsPerUid ?? 1024;
    const w = options.parseWorker;
    if (w) this.offload = w instanceof ParseOffload ? w : new ParseOffload(w, this.logger);
    this.offloadAbove = options.offloadAbove ?? DEFAULT_OFFLOAD_ABOVE;
    this.implement(OrgVarlinkService, {
      GetInfo: () =>
        (this.info ??= {
          vendor: options.vendor,
          product: options.product,
          version: options.version,
          url: options.url,
          interfaces: [...this.interfaces.keys()].sort(byteOrder),
        }),
      GetInterfaceDescription: ({ interface: name }) => {
        const iface = this.interfaces.get(name);
        if (!iface) throw new InterfaceNotFoundError(name);
        return { description: iface.description };
      },
    });
  }

  /** Serves an interface. Every method needs a handler (or `Unbound`). */
  implement<M extends MethodMap>(iface: InterfaceDescriptor<M>, handlers: Handlers<M>, options: ImplementOptions<M> = {}): this {
    if (this.interfaces.has(iface.name)) throw new Error(`interface ${iface.name} is already implemented`);
    this.interfaces.set(iface.name, iface as unknown as InterfaceDescriptor);
    this.info = undefined;
    const upgradable = new Set<string>(options.upgradable ?? []);
    for (const name of Object.keys(iface.methods)) {
      const handler = (handlers as Record<string, Handler<any, any> | typeof Unbound>)[name];
      if (handler === undefined) throw new Error(`no handler for ${iface.name}.${name}`);
      this.methods.set(`${iface.name}.${name}`, {
        descriptor: (iface.methods as Record<string, MethodDescriptor>)[name]!,
        handler,
        upgradable: upgradable.has(name),
      });
    }
    return this;
  }

  /** Lists an interface that has no methods (only errors or types) in GetInfo and introspection. */
  describe(iface: InterfaceDescriptor): this {
    this.interfaces.set(iface.name, iface);
    this.info = undefined;
    return this;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  dispatch(call: IncomingCall, context: Call): unknown {
    const bound = this.methods.get(call.method);
    if (!bound || bound.handler === Unbound) throw new MethodNotFoundError(call.method);
    if (call.upgrade && !bound.upgradable) throw new DropConnection(`${call.method} does not support upgrade`);
    const d = bound.descriptor;
    if (d.more === 'requires' && !call.more) throw new ExpectedMoreError();
    if (call.duplicate !== undefined) {
      // As sd-varlink: its own built-in methods fail with ENOTUNIQ, service methods name the field.
      if (call.method.startsWith('org.varlink.service.')) throw new SystemError(76);
      throw new InvalidParameterError(call.duplicate);
    }
    // A message the parse worker examined arrives with its verdict, and its text instead of parameters.
    const off = call.offloaded;
    let checked = false;
    if (off) {
      call.offloaded = undefined;
      if ('invalid' in off) throw new InvalidParameterError(off.invalid);
      call.parameters = ((JSON.parse(off.text) as { parameters?: Record<string, unknown> | null }).parameters ?? {}) as Record<string, unknown>;
      checked = off.checked;
    }
    if (!checked && call.memo?.validFor !== d.validate) {
      if (!d.validate(call.parameters)) throw new InvalidParameterError(parameterName(d.validate.errors));
      if (call.memo) call.memo.validFor = d.validate;
    }
    d.coerce?.(call.parameters);
    return bound.handler(call.parameters, context);
  }

  /** Listens on an address (`unix:/path`, `unix:@name`, or a bare path). */
  async listen(address: string, options: ListenOptions = {}): Promise<void> {
    const a = parseAddress(address);
    if (a.kind === 'exec') throw new Error('cannot listen on an exec: address');
    const server = this.newServer();
    if (a.kind === 'abstract') {
      const fd = listenAbstract(a.name);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      });
      return;
    }
    mkdirSync(dirname(a.path), { recursive: true, mode: 0o755 });
    removeStaleSocket(a.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: a.path, backlog: 4096 }, () => resolve());
    });
    chmodSync(a.path, options.mode ?? 0o666);
    this.ownedPaths.push(a.path);
  }

  /**
   * Takes over a socket passed by an activator: a listening socket is served, a connected one
   * (as `exec:` and socket pairs hand over) becomes a connection.
   */
  async listenFd(fd: number): Promise<void> {
    if (isListeningSocket(fd)) {
      const server = this.newServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      });
    } else {
      this.accept(new Socket({ fd, readable: true, writable: true, allowHalfOpen: true }));
    }
  }

  /**
   * Serves an already connected socket (for example one end of a socket pair).
   *
   * Connections are counted per peer uid (root is exempt from the limit). Reading the peer's
   * credentials loads libc bindings, so the first connection of an idle server (the client that
   * socket-activated it) has them read only when needed; it is counted when a second one arrives.
   */
  accept(socket: Socket, peer?: PeerCredentials): void {
    const total = this.connections.size;
    if (total >= this.maxConnections) return this.refuse(socket, peer?.uid ?? -1, total, 0);
    let creds = peer;
    if (total > 0) {
      creds ??= peerCredentials(socketFd(socket));
      if (this.uncounted) {
        this.count(this.uncounted.peer.uid);
        this.uncounted.counted = true;
        this.uncounted = undefined;
      }
      const mine = this.perUid.get(creds.uid) ?? 0;
      if (creds.uid !== 0 && mine >= this.maxPerUid) return this.refuse(socket, creds.uid, total, mine);
    }
    const conn = new ServerConnection(socket, creds ?? (() => peerCredentials(socketFd(socket))), this, (c) => this.forget(c));
    if (creds) {
      this.count(creds.uid);
      conn.counted = true;
    } else {
      this.uncounted = conn;
    }
    this.connections.add(conn);
    this.emit('connection', this.connections.size);
  }

  private refuse(socket: Socket, uid: number, total: number, mine: number): void {
    this.logger.warn({ uid, total, mine }, 'connection limit reached, refusing connection');
    socket.destroy();
  }

  private count(uid: number): void {
    this.perUid.set(uid, (this.perUid.get(uid) ?? 0) + 1);
  }

  private forget(c: ServerConnection): void {
    if (!this.connections.delete(c)) return;
    if (this.uncounted === c) this.uncounted = undefined;
    if (c.counted) {
      const n = (this.perUid.get(c.peer.uid) ?? 1) - 1;
      if (n <= 0) this.perUid.delete(c.peer.uid);
      else this.perUid.set(c.peer.uid, n);
    }
    if (this.connections.size === 0) this.emit('idle');
  }

  private newServer(): Server {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    server.on('error', (err) => this.logger.error({ err }, 'listening socket failed'));
    this.servers.push(server);
    return server;
  }

  /** Stops listening, closes every connection and removes the sockets it created. */
  async close(): Promise<void> {
    const closing = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const c of [...this.connections]) c.close();
    this.offload?.close();
    await Promise.all(closing);
    for (const p of this.ownedPaths) {
      try {
        unlinkSync(p);
      } catch {
        // already gone
      }
    }
  }
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}
