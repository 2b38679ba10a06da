// What berthctl says when berthd cannot be reached: that berthd is not running (or refuses us) and how to start
// it, instead of a bare "connect ENOENT". Exit status 1, as machinectl's when machined is not there.
import { CliError } from './varlink-verbs.js';

/** The error for a failed connection to berthd's socket at `address` (unix:PATH or a plain path). */
export function unreachable(address: string, e: unknown): CliError {
  const path = address.startsWith('unix:') ? address.slice(5) : address;
  const err = e as NodeJS.ErrnoException;
  const code = err.code ?? /\b(E[A-Z]+)\b/.exec(err.message ?? '')?.[1];
  const start = "Start it with 'systemctl start berthd.socket' (systemd as PID 1) or 'berth-activate' (socket activation without systemd), or run berthd.";
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    const what = code === 'ENOENT' ? 'no socket at' : 'nothing listens on';
    return new CliError(`berthd is not running (${what} ${path}). ${start}`);
  }
  if (code === 'EACCES' || code === 'EPERM') return new CliError(`Not allowed to talk to berthd at ${path} (${code}).`);
  return new CliError(`Failed to connect to berthd at ${address}: ${err.message ?? String(e)}`);
}
