/**
 * What a handler sees of its call (the `Call` of call.ts): the call's flags, the peer, a logger,
 * the connection's abort signal, and the two things a handler may ask of its connection: a
 * descriptor to attach to the reply, and the socket after an upgrade. One small object per call,
 * methods on the prototype.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Call } from './call.js';
import type { IncomingCall } from './call-parser.js';
import type { PeerCredentials } from './peer.js';

/** What a call's context reads from, and asks of, the connection the call came on. */
export interface CallConnection {
  readonly peer: PeerCredentials;
  readonly log: Logger;
  readonly abortSignal: AbortSignal;
  setUpgradeHandler(h: (socket: Socket, rest: Buffer) => void): void;
  pushFd(fd: number): number;
}

export class CallContext implements Call {
  constructor(
    private readonly conn: CallConnection,
    private readonly call: IncomingCall,
  ) {}
  get method(): string {
    return this.call.method;
  }
  get more(): boolean {
    return this.call.more;
  }
  get oneway(): boolean {
    return this.call.oneway;
  }
  get upgrade(): boolean {
    return this.call.upgrade;
  }
  get peer(): PeerCredentials {
    return this.conn.peer;
  }
  get log(): Logger {
    return this.conn.log.child({ method: this.call.method });
  }
  get signal(): AbortSignal {
    return this.conn.abortSignal;
  }
  onUpgrade(h: (socket: Socket, rest: Buffer) => void): void {
    if (!this.call.upgrade) throw new Error('onUpgrade() on a call made without upgrade');
    this.conn.setUpgradeHandler(h);
  }
  pushFd(fd: number): number {
    return this.conn.pushFd(fd);
  }
}
