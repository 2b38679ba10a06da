/**
 * io.systemd.service: Ping, SetLogLevel and GetEnvironment, as systemd's own services offer them.
 * Changing the log level and reading the environment are for root and for the service's own
 * user; everyone else gets PermissionDenied.
 */
import type { Logger } from 'pino';
import { Unbound } from './call.js';
import { InvalidParameterError, PermissionDeniedError } from './errors.js';
import type { VarlinkServer } from './server.js';
import { IoSystemdService } from './builtin/generated/io.systemd.service.js';
import { IoSystemd } from './builtin/generated/io.systemd.js';

/** syslog priorities 0…7 → pino levels. */
const LEVELS = ['fatal', 'fatal', 'fatal', 'error', 'warn', 'info', 'info', 'debug'] as const;

export function serveSystemdService(server: VarlinkServer, logger: Logger): void {
  const privileged = (uid: number) => uid === 0 || uid === process.getuid?.();
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
      return {};
    },
    GetEnvironment: (_p, call) => {
      if (!privileged(call.peer.uid)) throw new PermissionDeniedError();
      return { environment: Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`) };
    },
  });
}
