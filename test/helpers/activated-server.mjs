#!/usr/bin/env node
// A minimal socket-activated Varlink server built from berth's compiled library (dist/), for
// activation tests that must not depend on berthd: it serves every socket passed in LISTEN_FDS
// (listening or already connected), org.varlink.service and io.systemd.service.
//
//   activated-server.mjs [--idle-exit SECONDS]
//
// GetInfo's `version` is the LISTEN_FDNAMES names it was given, joined with ':', and `url` is
// "pid:<its pid>", so tests can check what it received. Exits 3 when no socket was passed.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '../../dist/src/varlink');
const { VarlinkServer } = await import(join(dist, 'server.js'));
const { activatedSockets } = await import(join(dist, 'listen-fds.js'));
const { serveSystemdService } = await import(join(dist, 'systemd-service.js'));

const args = process.argv.slice(2);
const idleAt = args.indexOf('--idle-exit');
const idleSeconds = idleAt === -1 ? 0 : Number(args[idleAt + 1]);

const sockets = activatedSockets();
if (sockets.length === 0) {
  process.stderr.write('activated-server: no sockets in LISTEN_FDS\n');
  process.exit(3);
}
const server = new VarlinkServer({
  vendor: 'berth tests',
  product: 'activated-server',
  version: sockets.map((s) => s.name).join(':'),
  url: `pid:${process.pid}`,
});
serveSystemdService(server, server.logger);

let timer;
const arm = () => {
  clearTimeout(timer);
  if (!idleSeconds || server.connectionCount > 0) return;
  timer = setTimeout(() => {
    process.stderr.write('activated-server: idle, exiting\n');
    server.close().then(() => process.exit(0));
  }, idleSeconds * 1000);
};
server.on('connection', () => clearTimeout(timer));
server.on('idle', arm);
for (const s of sockets) await server.listenFd(s.fd);
arm();
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
