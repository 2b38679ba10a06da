#!/usr/bin/env node
/**
 * npm run certification -- serve ADDRESS     serve org.varlink.certification (strict)
 * npm run certification -- client ADDRESS    run Start … End against a server
 *
 * ADDRESS is unix:/path, unix:@name or a path (client also exec:PROGRAM). `serve` without an
 * address takes the sockets a service manager passed (LISTEN_FDS). Once listening, `serve`
 * prints `Listening on ADDRESS` and runs until SIGTERM or SIGINT. `client` exits 0 when End
 * answered `all_ok: true`, 1 at the first failing step.
 */
import pino from 'pino';
import { activatedSockets } from '../listen-fds.js';
import { CertificationFailure, runCertification } from './client.js';
import { createCertificationServer } from './server.js';

const USAGE = `usage: certification serve [ADDRESS] [--log-level LEVEL]
       certification client ADDRESS [--timeout SECONDS]`;

async function serve(address: string | undefined, logLevel: string): Promise<number> {
  const logger = pino({ level: logLevel }, pino.destination(2));
  const { server } = createCertificationServer({ logger });
  if (address === undefined) {
    const sockets = activatedSockets();
    if (sockets.length === 0) {
      process.stderr.write(`no ADDRESS given and no sockets passed (LISTEN_FDS)\n${USAGE}\n`);
      return 2;
    }
    for (const s of sockets) await server.listenFd(s.fd);
    process.stdout.write(`Listening on ${sockets.length} passed socket(s)\n`);
  } else {
    await server.listen(address);
    process.stdout.write(`Listening on ${address}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await server.close();
  return 0;
}

async function client(address: string, timeoutSeconds: number): Promise<number> {
  try {
    await runCertification(address, { timeout: timeoutSeconds * 1000 });
    return 0;
  } catch (err) {
    if (err instanceof CertificationFailure) return 1;
    throw err;
  }
}

/** Splits `--name value` / `--name=value` options from positional arguments. */
function parse(argv: string[]): { positional: string[]; options: Map<string, string> } {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq !== -1) options.set(arg.slice(2, eq), arg.slice(eq + 1));
    else {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      options.set(arg.slice(2), value);
    }
  }
  return { positional, options };
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { positional, options } = parsed;
  const [command, address, ...extra] = positional;
  for (const name of options.keys()) {
    const known = command === 'serve' ? name === 'log-level' : name === 'timeout';
    if (!known) {
      process.stderr.write(`unknown option --${name}\n${USAGE}\n`);
      return 2;
    }
  }
  if (extra.length > 0) {
    process.stderr.write(`unexpected argument '${extra[0]}'\n${USAGE}\n`);
    return 2;
  }
  if (command === 'serve') return serve(address, options.get('log-level') ?? 'warn');
  if (command === 'client' && address !== undefined) {
    const timeout = Number(options.get('timeout') ?? '10');
    if (!(timeout > 0)) {
      process.stderr.write(`--timeout wants a positive number of seconds\n`);
      return 2;
    }
    return client(address, timeout);
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`certification: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
