#!/usr/bin/env node
/**
 * berthd: the machine registry daemon.
 *
 *   berthd [--runtime-dir DIR] [--idle-exit SECONDS] [--log-level LEVEL]
 *          [--userdb-service NAME] [--allow-user-register] [--image-dir DIR]...
 *          [--dbus=auto|yes|no]
 *
 * Logs go to stderr (pino JSON). SIGTERM and SIGINT stop it cleanly; registered machines stay in
 * the state directory and are restored by the next start.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Daemon } from './daemon.js';
import type { DaemonOptions } from './context.js';
import { VERSION } from '../domain/version.js';
import { berthRuntimeDir, DEFAULT_RUNTIME_DIR, DEFAULT_USERDB_SERVICE } from '../domain/runtime-paths.js';

const USAGE = `Usage: berthd [OPTIONS]

  --runtime-dir DIR        prefix of every runtime path (default /run)
  --idle-exit SECONDS      exit after this long without connections (default: never)
  --log-level LEVEL        fatal, error, warn, info, debug, trace (default info)
  --userdb-service NAME    userdb socket name and record service (default io.systemd.Machine)
  --allow-user-register    let non-root users register machines whose leader they own
  --image-dir DIR          where machine images live (repeatable; default the machined set)
  --config-dir DIR         where NAME.berth machine configurations live (repeatable;
                           default /etc/berth/machines and RUNTIME/berth/machines)
  --dbus=auto|yes|no       serve org.freedesktop.machine1 on the system bus
                           (DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket):
                           auto when one is reachable (default), yes or fail, no;
                           BERTH_DBUS in the environment sets the default
  --version                print the version
  -h, --help               show this help
`;

export function parseOptions(argv: string[]): DaemonOptions | { exit: number; output: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        'runtime-dir': { type: 'string' },
        'idle-exit': { type: 'string' },
        'log-level': { type: 'string' },
        'userdb-service': { type: 'string' },
        'allow-user-register': { type: 'boolean' },
        'image-dir': { type: 'string', multiple: true },
        'config-dir': { type: 'string', multiple: true },
        dbus: { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    return { exit: 2, output: `berthd: ${(err as Error).message}\n${USAGE}` };
  }
  const v = parsed.values;
  if (v.help) return { exit: 0, output: USAGE };
  if (v.version) return { exit: 0, output: `berthd ${VERSION}\n` };
  const idle = v['idle-exit'] === undefined ? 0 : Number(v['idle-exit']);
  if (!Number.isFinite(idle) || idle < 0) return { exit: 2, output: `berthd: invalid --idle-exit '${v['idle-exit']}'\n` };
  const level = v['log-level'] ?? process.env.BERTH_LOG_LEVEL ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) {
    return { exit: 2, output: `berthd: invalid --log-level '${level}'\n` };
  }
  const service = v['userdb-service'] ?? DEFAULT_USERDB_SERVICE;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(service)) return { exit: 2, output: `berthd: invalid --userdb-service '${service}'\n` };
  const dbus = v.dbus ?? process.env.BERTH_DBUS ?? 'auto';
  if (dbus !== 'auto' && dbus !== 'yes' && dbus !== 'no') return { exit: 2, output: `berthd: invalid --dbus '${dbus}' (auto, yes or no)\n` };
  return {
    dbus,
    runtimeDir: v['runtime-dir'] ?? DEFAULT_RUNTIME_DIR,
    idleExitSeconds: idle,
    logLevel: level,
    userdbService: service,
    allowUserRegister: v['allow-user-register'] ?? false,
    imageDirectories: v['image-dir'] ?? ['/var/lib/machines', '/var/lib/container', '/usr/local/lib/machines', '/usr/lib/machines'],
    configDirectories: v['config-dir'] ?? ['/etc/berth/machines', berthRuntimeDir(v['runtime-dir'] ?? DEFAULT_RUNTIME_DIR, 'machines')],
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if ('exit' in options) {
    (options.exit ? process.stderr : process.stdout).write(options.output);
    process.exit(options.exit);
  }
  const logger = pino({ level: options.logLevel, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
  const daemon = new Daemon(options, logger);
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('uncaughtException', (err) => {
    // Keep serving: one bad call must not take the registry down.
    logger.error({ err }, 'uncaught exception');
  });
  try {
    await daemon.start();
    daemon.dbusReady.catch(() => {
      logger.fatal('cannot serve D-Bus with --dbus=yes');
      process.exit(1);
    });
  } catch (err) {
    logger.fatal({ err }, 'cannot start');
    process.exit(1);
  }
}

void main();
