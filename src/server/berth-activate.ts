#!/usr/bin/env node
/**
 * berth-activate: socket activation of berthd on hosts where systemd is not PID 1.
 *
 *   berth-activate [--runtime-dir DIR] [--userdb-service NAME] [--idle-exit SECONDS] [-- BERTHD-ARGS…]
 *
 * Binds the registry sockets, the userdb socket and the resolve hook's socket and starts berthd on the first connection,
 * again after it exits when idle, or after it was killed. Where systemd is PID 1, install
 * units/berthd.socket instead.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Activator } from '../varlink/socket-activator.js';
import { DEFAULT_RUNTIME_DIR, DEFAULT_USERDB_SERVICE, machineSocketPaths, resolveHookSocketPath, userdbSocketPath } from '../domain/runtime-paths.js';
import { BERTHD_NODE_OPTIONS } from './node-options.js';

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    'runtime-dir': { type: 'string' },
    'userdb-service': { type: 'string' },
    'idle-exit': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('Usage: berth-activate [--runtime-dir DIR] [--userdb-service NAME] [--idle-exit SECONDS] [-- BERTHD-ARGS…]\n');
  process.exit(0);
}
const runtime = values['runtime-dir'] ?? DEFAULT_RUNTIME_DIR;
const service = values['userdb-service'] ?? DEFAULT_USERDB_SERVICE;
// The bundle run from its code cache starts fastest (see scripts/bundle.mjs); the compiled module serves when it is absent.
const bundle = fileURLToPath(new URL('../../bin/berthd.cjs', import.meta.url));
const berthd = existsSync(bundle) ? bundle : join(fileURLToPath(new URL('.', import.meta.url)), 'main.js');
const args = [...BERTHD_NODE_OPTIONS, berthd, '--runtime-dir', runtime, '--userdb-service', service, '--idle-exit', values['idle-exit'] ?? '30', ...positionals];
const activator = new Activator({
  sockets: [
    ...machineSocketPaths(runtime).map((path) => ({ path, name: 'varlink' })),
    { path: userdbSocketPath(runtime, service), name: 'userdb' },
    { path: resolveHookSocketPath(runtime), name: 'resolve-hook' },
  ],
  command: process.execPath,
  args,
});
activator.on('start', (pid) => process.stderr.write(`berth-activate: started berthd (pid ${pid})\n`));
activator.on('exit', (code, signal) => process.stderr.write(`berth-activate: berthd exited (${signal ?? code})\n`));
const stop = () => void activator.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
activator.bind();
void activator.run();
