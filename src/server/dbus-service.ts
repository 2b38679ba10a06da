/**
 * berthd on the system bus: connects (never before the Varlink sockets serve, never synchronously),
 * exports the machine1 objects, owns `org.freedesktop.machine1`, turns registry events into
 * MachineNew/MachineRemoved, counts the calls being answered (idle exit waits for them) and releases the
 * name cleanly on stop. `--dbus=auto` uses a bus when one is reachable and otherwise leaves berthd on
 * Varlink alone; `yes` makes a missing bus an error; `no` never connects.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import {
  connectBus, DEFAULT_SYSTEM_BUS_ADDRESS, NameFlags, ObjectServer, releaseName, requestName, RequestNameReply,
  parseBusAddress, type Connection, type InterfaceSpec,
} from '../dbus/index.js';
import type { BerthContext } from './context.js';
import type { RegistryEvent } from './registry/registry.js';
import { BUS_NAME, IMAGE_PREFIX, MANAGER_PATH, MACHINE_PREFIX, machinePath } from './machine-dbus-errors.js';
import { machineBus } from './machine-dbus.js';

export type DBusMode = 'auto' | 'yes' | 'no';

/**
 * The bus address to use: DBUS_SYSTEM_BUS_ADDRESS, else the bus that activated berthd (when it is a system
 * bus), else the standard socket; undefined when that is a unix path that does not exist.
 */
export function reachableBusAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const starter = env.DBUS_STARTER_BUS_TYPE === 'system' ? env.DBUS_STARTER_ADDRESS : undefined;
  const address = env.DBUS_SYSTEM_BUS_ADDRESS || starter || DEFAULT_SYSTEM_BUS_ADDRESS;
  try {
    // A unix path that does not exist means no bus; anything else is tried.
    for (const a of parseBusAddress(address)) if (a.kind !== 'path' || existsSync(a.path)) return address;
  } catch {
    return undefined;
  }
  return undefined;
}

export interface DBusServiceHooks {
  /** A call started being answered (idle exit must wait). */
  busy(): void;
  /** No call is being answered any more. */
  idle(): void;
}

export class DBusService {
  private conn?: Connection;
  private inflight = 0;
  private drained?: () => void;
  private unfollow?: () => void;
  private stopped = false;

  constructor(
    private readonly ctx: BerthContext,
    private readonly logger: Logger,
    private readonly hooks: DBusServiceHooks,
  ) {}

  get callsInFlight(): number {
    return this.inflight;
  }

  get connected(): boolean {
    return this.conn !== undefined;
  }

  /** Wraps every method handler so that calls being answered are counted. */
  private tracked(spec: InterfaceSpec): InterfaceSpec {
    const methods = Object.fromEntries(
      Object.entries(spec.methods ?? {}).map(([name, m]) => [
        name,
        {
          ...m,
          handler: async (args: any[], c: Parameters<typeof m.handler>[1]) => {
            if (this.inflight++ === 0) this.hooks.busy();
            try {
              return await m.handler(args, c);
            } finally {
              if (--this.inflight === 0) {
                this.hooks.idle();
                this.drained?.();
              }
            }
          },
        },
      ]),
    );
    return { ...spec, methods };
  }

  /** Connects and takes the name; resolves false when there is no bus or the name is taken (logged). */
  async start(mode: DBusMode): Promise<boolean> {
    if (mode === 'no') return false;
    const address = reachableBusAddress();
    if (!address) {
      if (mode === 'yes') throw new Error('no system bus reachable (--dbus=yes)');
      this.logger.info('no system bus; serving Varlink only');
      return false;
    }
    let conn: Connection;
    try {
      conn = await connectBus({ address });
    } catch (err) {
      if (mode === 'yes') throw err;
      this.logger.info({ address, err: (err as Error).message }, 'cannot connect to the system bus; serving Varlink only');
      return false;
    }
    if (this.stopped) {
      conn.close();
      return false;
    }
    const bus = machineBus(this.ctx);
    const server = new ObjectServer(conn, { onError: (err, c) => this.logger.error({ err, member: c.member, path: c.path }, 'D-Bus handler failed') });
    const manager = this.tracked(bus.manager);
    server.addObject(MANAGER_PATH, [manager]);
    server.addSubtree(MACHINE_PREFIX, { ...bus.machines, interfaces: bus.machines.interfaces.map((i) => this.tracked(i)) });
    server.addSubtree(IMAGE_PREFIX, { ...bus.images, interfaces: bus.images.interfaces.map((i) => this.tracked(i)) });
    const onEvent = (e: RegistryEvent) => {
      const { name } = e.machine;
      if (e.type === 'added') bus.closing.delete(name);
      if (e.type === 'changed' && e.reason === 'terminating') bus.closing.add(name);
      if (e.type === 'added' || e.type === 'removed') {
        if (e.type === 'removed') bus.closing.delete(name);
        try {
          server.emitSignal(MANAGER_PATH, manager, e.type === 'added' ? 'MachineNew' : 'MachineRemoved', [name, machinePath(name)]);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'cannot send a machine signal');
        }
      }
    };
    this.ctx.registry.on('event', onEvent);
    this.unfollow = () => this.ctx.registry.off('event', onEvent);
    conn.on('close', () => {
      if (!this.stopped) this.logger.warn('lost the system bus; serving Varlink only');
      this.unfollow?.();
      this.conn = undefined;
    });
    this.conn = conn;
    let reply: number;
    try {
      reply = await requestName(conn, BUS_NAME, NameFlags.DoNotQueue);
    } catch (err) {
      this.close();
      throw err;
    }
    if (reply !== RequestNameReply.PrimaryOwner && reply !== RequestNameReply.AlreadyOwner) {
      this.close();
      const msg = `${BUS_NAME} is owned by another connection`;
      if (mode === 'yes') throw new Error(msg);
      this.logger.warn(msg + '; serving Varlink only');
      return false;
    }
    this.logger.info({ address, name: BUS_NAME, unique: conn.uniqueName }, 'serving D-Bus');
    return true;
  }

  private close(): void {
    this.unfollow?.();
    this.conn?.close();
    this.conn = undefined;
  }

  /** Gives the name up (so the bus queues or activates for new callers), answers what is in flight, disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    const conn = this.conn;
    if (!conn) return;
    try {
      await Promise.race([releaseName(conn, BUS_NAME), new Promise((r) => setTimeout(r, 2000).unref())]);
    } catch {
      /* the bus went away: nothing to release */
    }
    if (this.inflight > 0) {
      await Promise.race([new Promise<void>((r) => (this.drained = r)), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    this.close();
  }
}
