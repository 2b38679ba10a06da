/**
 * berthd: wires the registry, the user database and the API modules to their sockets.
 *
 *   RUNTIME/systemd/machine/io.systemd.Machine       io.systemd.Machine, io.systemd.MachineImage,
 *   RUNTIME/systemd/machine/io.systemd.MachineImage  io.berth.Machine, io.systemd.service, io.systemd,
 *                                                    org.varlink.service (one server, both paths)
 *   RUNTIME/systemd/userdb/<userdbService>           io.systemd.UserDatabase, io.systemd, org.varlink.service
 *   RUNTIME/systemd/resolve.hook/io.systemd.Machine  io.systemd.Resolve.Hook, io.systemd, org.varlink.service
 *
 * Sockets handed over by an activator are used as they are: one named `userdb` serves the user
 * database, one named `resolve-hook` the resolve hook, every other one the machine interfaces. Sockets not handed over are bound here.
 * Once those serve, berthd also takes `org.freedesktop.machine1` on the system bus when one is there
 * (dbus-service.ts; --dbus). With an idle timeout the daemon exits once no connection has been open and no
 * D-Bus call has been in flight for that long, giving the bus name up first; the state files let the next
 * start restore every machine.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { VarlinkServer } from '../varlink/server.js';
import { ParseOffload } from '../varlink/offload.js';
import { serveSystemdService } from '../varlink/systemd-service.js';
import { activatedSockets } from '../varlink/listen-fds.js';
import { IoSystemd } from '../varlink/builtin/generated/io.systemd.js';
import { IoBerthLauncher, IoBerthMachine, IoSystemdMachine, IoSystemdMachineImage, IoSystemdResolveHook, IoSystemdUserDatabase } from './interfaces.js';
import { resolveHookApi } from './resolve-hook.js';
import { Registry } from './registry/registry.js';
import { UserDb } from './userdb/userdb.js';
import { Policy } from './policy.js';
import { ChangeJournal } from './watch.js';
import type { BerthContext, DaemonOptions } from './context.js';
import { followRegistry } from './userdb-sync.js';
import { machineApi } from './machine-api.js';
import { imageApi } from './image-api.js';
import { userdbApi } from './userdb-api.js';
import { berthApi } from './berth-api.js';
import { launcherApi } from './launcher-api.js';
import { LaunchService } from './launch/launch-service.js';
import { VERSION } from '../domain/version.js';
import { machineSocketPaths, resolveHookSocketPath, userdbSocketPath } from '../domain/runtime-paths.js';
import { DBusService } from './dbus-service.js';
import { afterWaitingCallers } from './waiting-callers.js';

export const VENDOR = 'berth';
export const URL = 'https://github.com/berth-project/berth';

/**
 * The module run by the parse worker (parse-worker.ts): next to this code, under the name the build
 * gave it (dist/bin/berthd-parse-worker.mjs beside the bundle, parse-worker.js beside daemon.js).
 */
function parseWorkerModule(): string | undefined {
  const here = fileURLToPath(import.meta.url);
  const file = join(dirname(here), here.endsWith('.mjs') ? 'berthd-parse-worker.mjs' : 'parse-worker.js');
  return existsSync(file) ? file : undefined;
}

/**
 * Where large messages are parsed. BERTH_OFFLOAD_ABOVE=BYTES moves the threshold (0 sends every
 * message to the worker, which the tests use to compare both paths); BERTH_OFFLOAD_ABOVE=off parses
 * everything on the event loop.
 */
function offloadOptions(logger: Logger): { parseWorker?: ParseOffload; offloadAbove?: number } {
  const setting = process.env.BERTH_OFFLOAD_ABOVE;
  if (setting === 'off') return {};
  const module = parseWorkerModule();
  if (!module) {
    logger.debug('no parse worker module next to berthd; large messages are parsed on the event loop');
    return {};
  }
  const above = setting === undefined || setting === '' ? undefined : Number(setting);
  if (above !== undefined && !(Number.isSafeInteger(above) && above >= 0)) throw new Error(`BERTH_OFFLOAD_ABOVE must be a byte count or 'off', not '${setting}'`);
  return { parseWorker: new ParseOffload(module, logger.child({ component: 'parse-worker' })), ...(above === undefined ? {} : { offloadAbove: above }) };
}

/** How long after start berthd looks for scopes it made for machines it no longer holds. */
const LEFTOVER_SWEEP_DELAY_MS = 2000;

export class Daemon {
  readonly context: BerthContext;
  readonly machineServer: VarlinkServer;
  readonly userdbServer: VarlinkServer;
  readonly hookServer: VarlinkServer;
  readonly dbus: DBusService;
  /** Settles once the D-Bus side is up (true), absent (false) or failed (rejects; fatal with --dbus=yes). */
  dbusReady: Promise<boolean> = Promise.resolve(false);
  private idleTimer?: NodeJS.Timeout;
  private stopping?: Promise<void>;

  constructor(
    readonly options: DaemonOptions,
    readonly logger: Logger,
  ) {
    const registry = new Registry({ runtimeDir: options.runtimeDir, logger: logger.child({ component: 'registry' }) });
    const userdb = new UserDb({ service: options.userdbService });
    this.context = {
      registry,
      userdb,
      policy: new Policy({ allowUserRegister: options.allowUserRegister }),
      logger,
      options,
      journal: new ChangeJournal(registry),
      warnings: new Map(),
    };
    const info = { vendor: VENDOR, version: VERSION, url: URL, logger, ...offloadOptions(logger) };
    this.machineServer = new VarlinkServer({ ...info, product: 'berthd' });
    serveSystemdService(this.machineServer, logger);
    this.machineServer.implement(IoSystemdMachine, machineApi(this.context));
    this.machineServer.implement(IoSystemdMachineImage, imageApi(this.context));
    this.machineServer.implement(IoBerthMachine, berthApi(this.context));
    const launcher = new LaunchService(registry, { runtimeDir: options.runtimeDir, configDirectories: options.configDirectories });
    this.machineServer.implement(IoBerthLauncher, launcherApi(this.context, launcher));

    this.userdbServer = new VarlinkServer({ ...info, product: 'berthd (userdb)' });
    this.userdbServer.describe(IoSystemd);
    this.userdbServer.implement(IoSystemdUserDatabase, userdbApi(this.context));

    this.hookServer = new VarlinkServer({ ...info, product: 'berthd (resolve hook)' });
    this.hookServer.describe(IoSystemd);
    this.hookServer.implement(IoSystemdResolveHook, resolveHookApi(registry));

    for (const s of [this.machineServer, this.userdbServer, this.hookServer]) {
      s.on('connection', () => this.cancelIdle());
      s.on('idle', () => this.armIdle());
    }
    this.dbus = new DBusService(this.context, logger.child({ component: 'dbus' }), { busy: () => this.cancelIdle(), idle: () => this.armIdle() });
  }

  async start(): Promise<void> {
    const { registry } = this.context;
    const restored = registry.restore();
    this.logger.info({ kept: restored.kept.length, dropped: restored.dropped.length }, 'registry restored');
    // Leftover scopes are looked for once the first callers had their answers: reading berthd's mark on
    // them loads libc, which a socket-activated start should not wait for.
    setTimeout(() => registry.sweepLeftoverScopes(), LEFTOVER_SWEEP_DELAY_MS).unref();
    followRegistry(this.context, registry.machines());

    const handed = activatedSockets();
    let userdbHanded = false;
    let machineHanded = false;
    let hookHanded = false;
    for (const s of handed) {
      if (s.name === 'resolve-hook') {
        await this.hookServer.listenFd(s.fd);
        hookHanded = true;
      } else if (s.name === 'userdb') {
        await this.userdbServer.listenFd(s.fd);
        userdbHanded = true;
      } else {
        await this.machineServer.listenFd(s.fd);
        machineHanded = true;
      }
    }
    if (!machineHanded) {
      for (const p of machineSocketPaths(this.options.runtimeDir)) await this.machineServer.listen(`unix:${p}`);
    }
    if (!userdbHanded) {
      await this.userdbServer.listen(`unix:${userdbSocketPath(this.options.runtimeDir, this.options.userdbService)}`);
    }
    if (!hookHanded) await this.hookServer.listen(`unix:${resolveHookSocketPath(this.options.runtimeDir)}`);
    this.logger.info(
      { runtimeDir: this.options.runtimeDir, activated: handed.length, machines: registry.size },
      'berthd ready',
    );
    this.armIdle();
    // After the Varlink sockets serve, and not awaited: the bus never delays a Varlink answer, not even
    // the one a socket-activated start is for (waiting-callers.ts).
    const mode = this.options.dbus ?? 'auto';
    const servers = [this.machineServer, this.userdbServer, this.hookServer];
    this.dbusReady = afterWaitingCallers(servers).then(() => (this.stopping ? false : this.dbus.start(mode))).catch((err) => {
      this.logger.error({ err: (err as Error).message }, 'cannot serve D-Bus');
      if (mode === 'yes') throw err;
      return false;
    });
    this.dbusReady.catch(() => undefined);
  }

  /** Open Varlink connections and D-Bus calls being answered: while any, berthd does not idle out. */
  private get connections(): number {
    return this.machineServer.connectionCount + this.userdbServer.connectionCount + this.hookServer.connectionCount + this.dbus.callsInFlight;
  }

  private cancelIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private armIdle(): void {
    const seconds = this.options.idleExitSeconds;
    if (!seconds || this.connections > 0 || this.stopping) return;
    this.cancelIdle();
    this.idleTimer = setTimeout(() => {
      if (this.connections > 0) return;
      this.logger.info({ seconds }, 'idle, exiting');
      void this.stop().then(() => process.exit(0));
    }, seconds * 1000);
  }

  /** Stops serving. Machines stay registered on disk for the next start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.cancelIdle();
      await this.dbus.stop();
      await Promise.all([this.machineServer.close(), this.userdbServer.close(), this.hookServer.close()]);
      this.context.registry.close();
      // A scope of a machine that just ended may still be waiting for its last process to go.
      await this.context.registry.finishScopeRemovals(1000);
    })();
    return this.stopping;
  }
}
