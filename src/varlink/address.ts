/**
 * Varlink addresses and how to reach them.
 *
 *   unix:/run/foo.sock     a socket in the file system
 *   unix:@name             an abstract socket (bound and connected with its exact length)
 *   /run/foo.sock, ./x     a bare path, as varlinkctl accepts
 *   exec:/usr/bin/server   run the program with a connected socket pair as its fd 3
 *                          (LISTEN_FDS=1, LISTEN_FDNAMES=varlink), as sd-varlink does
 *
 * Parameters after `;` are ignored, as varlink.org asks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Socket, connect as netConnect } from 'node:net';
import { connectAbstract } from './peer.js';

export type Address =
  | { kind: 'unix'; path: string }
  | { kind: 'abstract'; name: string }
  | { kind: 'exec'; command: string; args: string[] };

export class AddressError extends Error {
  constructor(address: string, reason: string) {
    super(`invalid Varlink address '${address}': ${reason}`);
    this.name = 'AddressError';
  }
}

export function parseAddress(text: string): Address {
  if (text.startsWith('unix:')) {
    const rest = stripParameters(text.slice(5));
    if (rest.startsWith('@')) {
      if (rest.length < 2) throw new AddressError(text, 'empty abstract name');
      return { kind: 'abstract', name: rest.slice(1) };
    }
    if (!rest.startsWith('/')) throw new AddressError(text, 'path must be absolute');
    return { kind: 'unix', path: rest };
  }
  if (text.startsWith('exec:')) {
    const command = text.slice(5);
    if (!command) throw new AddressError(text, 'no program');
    return { kind: 'exec', command, args: [] };
  }
  if (text.startsWith('/') || text.startsWith('./') || text.startsWith('../')) {
    return { kind: 'unix', path: text };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text);
  if (scheme) throw new AddressError(text, `unsupported scheme '${scheme[1]}'`);
  throw new AddressError(text, "expected unix:PATH, unix:@NAME, exec:PROGRAM or a path");
}

function stripParameters(s: string): string {
  const i = s.indexOf(';');
  return i === -1 ? s : s.slice(0, i);
}

export function formatAddress(a: Address): string {
  switch (a.kind) {
    case 'unix':
      return `unix:${a.path}`;
    case 'abstract':
      return `unix:@${a.name}`;
    case 'exec':
      return `exec:${a.command}`;
  }
}

export interface Connected {
  socket: Socket;
  /** The server process, for exec: addresses. */
  child?: ChildProcess;
}

/** Opens a stream connection to an address. Resolves once connected. */
export function connectAddress(address: Address | string): Promise<Connected> {
  const a = typeof address === 'string' ? parseAddress(address) : address;
  switch (a.kind) {
    case 'unix':
      return new Promise((resolve, reject) => {
        const socket = netConnect({ path: a.path });
        const onError = (err: Error) => reject(err);
        socket.once('error', onError);
        socket.once('connect', () => {
          socket.off('error', onError);
          resolve({ socket });
        });
      });
    case 'abstract': {
      try {
        const fd = connectAbstract(a.name);
        const socket = new Socket({ fd, readable: true, writable: true });
        return Promise.resolve({ socket });
      } catch (err) {
        return Promise.reject(err);
      }
    }
    case 'exec':
      return Promise.resolve(spawnServer(a.command, a.args));
  }
}

/**
 * Starts a server with one end of a socket pair as fd 3. LISTEN_PID must name the server's own
 * pid, which is only known once it runs, so a shell sets it and then execs the program (exec
 * keeps the pid).
 */
function spawnServer(command: string, args: string[]): Connected {
  const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', command, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    env: { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: 'varlink' },
  });
  const socket = child.stdio[3] as Socket;
  return { socket, child };
}
