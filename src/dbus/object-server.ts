/**
 * The object server: objects exported at paths on a connection, either one by one or as a subtree
 * served by one set of interfaces (e.g. every `/org/freedesktop/machine1/machine/NAME`), and the
 * dispatch of incoming method calls to them: lookup of object, interface and method with the
 * standard errors sd-bus answers (UnknownObject, UnknownInterface, UnknownMethod, InvalidArgs
 * for a body of the wrong signature, which never reaches the handler), the built-in Peer,
 * Introspectable and Properties interfaces, and signals including PropertiesChanged.
 *
 *   const server = new ObjectServer(conn);
 *   server.addObject('/org/freedesktop/machine1', [Manager]);
 *   server.addSubtree('/org/freedesktop/machine1/machine', { interfaces: [Machine], exists, children });
 */
import { readFileSync } from 'node:fs';
import type { Connection } from './connection.js';
import { DBusError, DBusErrors, StandardErrors } from './errors.js';
import type { Credentials } from './bus.js';
import { SenderCredentials } from './sender-credentials.js';
import type { Message } from './message.js';
import { closeFd } from './unix-socket.js';
import { isObjectPath } from './names.js';
import type { CallContext, InterfaceSpec } from './interface.js';
import { introspectXml } from './introspect.js';
import { PROPERTIES, handleProperties, propertiesChangedBody } from './properties.js';

export interface SubtreeSpec {
  interfaces: InterfaceSpec[];
  /** Whether an object exists at `path` (under the prefix); the call context tells who asks. */
  exists: (path: string, ctx: CallContext) => boolean | Promise<boolean>;
  /** The paths of the objects in the subtree now, for introspection. */
  children: (ctx: CallContext) => string[] | Promise<string[]>;
}

export interface ObjectServerOptions {
  /** Told about handler failures that are not DBusError (answered org.freedesktop.DBus.Error.Failed). */
  onError?: (error: unknown, ctx: CallContext) => void;
  /** Maps a non-DBusError thrown by a handler to the error to answer (default: Failed with its message). */
  mapError?: (error: unknown) => DBusError;
}

const PEER = 'org.freedesktop.DBus.Peer';
const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';

let machineId: string | undefined;
function readMachineId(): string {
  if (machineId) return machineId;
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(f, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(id)) return (machineId = id);
    } catch {
      /* try the next */
    }
  }
  throw new DBusError(DBusErrors.Failed, 'no machine id');
}

function isUnder(path: string, prefix: string): boolean {
  return prefix === '/' ? path !== '/' : path.startsWith(prefix + '/');
}

/** The context of one call; descriptors it carried stay with it unless the handler takes them. */
class Call implements CallContext {
  taken = false;
  interface: string;
  private creds: Promise<Credentials> | undefined;
  readonly sender: string;
  readonly flags: number;

  constructor(
    readonly connection: Connection,
    private readonly senders: SenderCredentials,
    private readonly m: Message | null,
    readonly path: string,
    iface: string,
    readonly member: string,
  ) {
    this.interface = iface;
    this.sender = m?.sender ?? '';
    this.flags = m?.flags ?? 0;
  }

  get message(): Message {
    return this.m!;
  }

  credentials(): Promise<Credentials> {
    return (this.creds ??= this.senders.get(this.sender));
  }

  takeFds(): number[] {
    this.taken = true;
    return this.m?.fds ?? [];
  }
}

export class ObjectServer {
  private objects = new Map<string, InterfaceSpec[]>();
  private subtrees = new Map<string, SubtreeSpec>();
  /** What the broker said of each sender, asked once per sender (sender-credentials.ts). */
  readonly senders: SenderCredentials;

  constructor(
    readonly connection: Connection,
    private readonly options: ObjectServerOptions = {},
  ) {
    this.senders = new SenderCredentials(connection);
    connection.onCall = (m) => void this.dispatch(m);
  }

  /** Exports interfaces at one path (replacing what was there). */
  addObject(path: string, interfaces: InterfaceSpec[]): void {
    if (!isObjectPath(path)) throw new TypeError(`invalid object path ${path}`);
    this.objects.set(path, interfaces);
  }

  removeObject(path: string): void {
    this.objects.delete(path);
  }

  /** Serves every object below `prefix` with one set of interfaces. */
  addSubtree(prefix: string, spec: SubtreeSpec): void {
    if (!isObjectPath(prefix)) throw new TypeError(`invalid object path ${prefix}`);
    this.subtrees.set(prefix, spec);
  }

  removeSubtree(prefix: string): void {
    this.subtrees.delete(prefix);
  }

  /** Emits a signal declared by `iface` (its signature comes from the declaration). */
  emitSignal(path: string, iface: InterfaceSpec, member: string, body: unknown[] = [], destination?: string): void {
    const spec = iface.signals?.[member];
    if (!spec) throw new TypeError(`${iface.name} declares no signal ${member}`);
    this.connection.signal(path, iface.name, member, spec.signature ?? '', body, destination);
  }

  /**
   * Emits PropertiesChanged for the named properties of `iface` at `path`: new values of those whose
   * EmitsChangedSignal is 'true', names only of those that 'invalidates'; 'const'/'false' are left out.
   */
  async emitPropertiesChanged(path: string, iface: InterfaceSpec, names: string[]): Promise<void> {
    const ctx = this.context(null, path, PROPERTIES, 'PropertiesChanged');
    const body = await propertiesChangedBody(iface, names, ctx);
    if (body) this.connection.signal(path, PROPERTIES, 'PropertiesChanged', 'sa{sv}as', body);
  }

  /** The interfaces of the object at `path`, or null when there is none. */
  private async find(path: string, ctx: CallContext): Promise<InterfaceSpec[] | null> {
    const own = this.objects.get(path);
    if (own) return own;
    for (const [prefix, spec] of this.subtrees) {
      if (isUnder(path, prefix) && (await spec.exists(path, ctx))) return spec.interfaces;
    }
    return null;
  }

  /** The names of the nodes directly below `path`. */
  private async children(path: string, ctx: CallContext): Promise<string[]> {
    const all = [...this.objects.keys(), ...this.subtrees.keys()];
    for (const [prefix, spec] of this.subtrees) if (prefix === path || isUnder(prefix, path) || isUnder(path, prefix)) all.push(...(await spec.children(ctx)));
    const names = new Set<string>();
    for (const p of all) {
      if (!isUnder(p, path)) continue;
      const rest = p.slice(path === '/' ? 1 : path.length + 1);
      names.add(rest.split('/')[0]);
    }
    return [...names].sort();
  }

  private context(m: Message | null, path: string, iface: string, member: string): Call {
    return new Call(this.connection, this.senders, m, path, iface, member);
  }

  private async dispatch(m: Message): Promise<void> {
    const path = m.path!;
    const member = m.member!;
    const ctx = this.context(m, path, m.interface ?? '', member);
    try {
      const out = await this.route(m, ctx);
      this.connection.reply(m, out.signature, out.body);
    } catch (e) {
      const err = e instanceof DBusError ? e : this.unexpected(e, ctx);
      try {
        this.connection.replyError(m, err.type, err.message);
      } catch {
        /* the connection closed or is full: nothing more to do for this call */
      }
    } finally {
      if (!ctx.taken) m.fds.forEach(closeFd);
    }
  }

  private unexpected(e: unknown, ctx: CallContext): DBusError {
    this.options.onError?.(e, ctx);
    if (this.options.mapError) return this.options.mapError(e);
    return new DBusError(DBusErrors.Failed, e instanceof Error ? e.message : String(e));
  }

  /** Finds what answers the call, in the order and with the errors sd-bus uses. */
  private async route(m: Message, ctx: CallContext): Promise<{ signature: string; body: unknown[] }> {
    const { path, member } = ctx;
    const iface = m.interface;
    // Peer is answered on any path, whatever the body.
    if (iface === PEER) {
      if (member === 'Ping') return { signature: '', body: [] };
      if (member === 'GetMachineId') return { signature: 's', body: [readMachineId()] };
      throw new DBusError(DBusErrors.UnknownMethod, `Unknown method '${member}' on interface '${PEER}'.`);
    }
    // sd-bus dispatches no call that lacks an interface.
    if (!iface) throw unknownObject(path);
    const interfaces = await this.find(path, ctx);
    if (iface === INTROSPECTABLE) {
      if (member !== 'Introspect') throw unknownMethod(m);
      const children = await this.children(path, ctx);
      if (!interfaces && children.length === 0) throw unknownObject(path);
      if (m.signature !== '') throw new DBusError(DBusErrors.InvalidArgs, 'Expected no parameters');
      return { signature: 's', body: [introspectXml(interfaces, children)] };
    }
    if (!interfaces) throw unknownObject(path);
    if (iface === PROPERTIES) return handleProperties(m, interfaces, ctx);
    const spec = interfaces.find((i) => i.name === iface);
    const method = spec?.methods?.[member];
    if (!spec || !method) throw unknownMethod(m);
    const want = method.in ?? '';
    if (m.signature !== want) throw invalidArgs(m, spec.name, want);
    const result = await method.handler(m.body, ctx);
    return { signature: method.out ?? '', body: result ?? [] };
  }
}

function invalidArgs(m: Message, iface: string, want: string): DBusError {
  return StandardErrors.invalidArgs(m.signature, iface, m.member!, want);
}

function unknownMethod(m: Message): DBusError {
  return StandardErrors.unknownMethod(m.member!, m.interface ?? '');
}

function unknownObject(path: string): DBusError {
  return StandardErrors.unknownObject(path);
}
