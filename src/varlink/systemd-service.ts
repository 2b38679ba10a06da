/**
 * io.systemd.service: Ping, SetLogLevel, GetLogLevel and GetEnvironment, as systemd's own services offer
 * them. The log level and the environment are for root and for the service's own user; everyone else
 * gets PermissionDenied.
 */
import type { Logger } from 'pino';
import { Unbound } from './call.js';
import { InvalidParameterError, PermissionDeniedError } from './errors.js';
import type { VarlinkServer } from './server.js';
import { IoSystemdService } from './builtin/generated/io.systemd.service.js';
import { IoSystemd } from './builtin/generated/io.systemd.js';

/** syslog priorities 0…7 → pino levels. */
const LEVELS = ['fatal', 'fatal', 'fatal', 'error', 'warn', 'info', 'info', 'debug'] as const;
/** pino levels → the syslog priority GetLogLevel reports for them (before any SetLogLevel). */
const PRIORITIES: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7, silent: 0 };

export function serveSystemdService(server: VarlinkServer, logger: Logger): void {
  const privileged = (uid: number) => uid === 0 || uid === process.getuid?.();
  // The priority last set, so that GetLogLevel answers what SetLogLevel was given (5 and 6 are both info).
  let priority: number | undefined;
  server.describe(IoSystemd);
  server.implement(IoSystemdService, {
    Ping: () => ({}),
    Reload: Unbound,
    SetLogLevel: ({ level }, call) => {
      if (!privileged(call.peer.uid)) throw new PermissionDeniedError();
      // The interface check lets strings through for integers (as sd-varlink does); a level must be a number.
      if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > 7) throw new InvalidParameterError('level');
      logger.level = LEVELS[level]!;
      server.logger.level = logger.level;
      priority = level;
      return {};
    },
    GetLogLevel: (_p, call) => {
      if (!privileged(call.peer.uid)) throw new PermissionDeniedError();
      return { level: priority ?? PRIORITIES[logger.level] ?? 6 };
    },
    GetEnvironment: (_p, call) => {
      if (!privileged(call.peer.uid)) throw new PermissionDeniedError();
      return { environment: Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`) };
    },
  });
}
