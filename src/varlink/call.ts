/**
 * What a method handler sees and what it may return.
 */
import type { Logger } from 'pino';
import type { Socket } from 'node:net';
import type { PeerCredentials } from './peer.js';
import type { VarlinkError } from './errors.js';
import type { MethodMap } from './interface.js';
import type { EncodedError, EncodedParameters } from './wire.js';

export interface Call {
  /** Fully qualified method name. */
  readonly method: string;
  readonly more: boolean;
  readonly oneway: boolean;
  readonly upgrade: boolean;
  /** SO_PEERCRED of the connection: uid/gid -1 when unknown (not a Unix socket). */
  readonly peer: PeerCredentials;
  /** A child logger carrying the peer and method. */
  readonly log: Logger;
  /** Aborted when the connection closes; long-running handlers (streams) should stop then. */
  readonly signal: AbortSignal;
  /**
   * For methods implemented with `upgradable`: called after the reply has been written, with the
   * raw socket and any bytes that followed the call. The connection speaks no Varlink afterwards.
   */
  onUpgrade(handler: (socket: Socket, rest: Buffer) => void): void;
  /**
   * Attaches a file descriptor to this call's reply (SCM_RIGHTS, as sd-varlink's push_fd) and
   * returns its index among the reply's descriptors, which the reply names. The descriptor belongs
   * to the connection from then on: it is closed once sent, or when the call fails instead.
   */
  pushFd(fd: number): number;
}

/**
 * A stream of replies for a call made with `more`. Every reply but the last carries
 * `continues: true` (the last one is held back until the source ends). When the source yields
 * nothing, `empty()` supplies the error to send instead, as systemd services answer an empty
 * listing with their "no such thing" error.
 */
export class Replies<R> {
  constructor(
    readonly source: Iterable<R> | AsyncIterable<R>,
    readonly empty?: () => VarlinkError,
    /**
     * A live stream (a subscription): each reply is sent as soon as it is produced, with
     * `continues`, instead of being held back until the next one. It ends when the source ends
     * or the connection closes; the connection is closed after a live source ends.
     */
    readonly live = false,
  ) {}
}

/** A reply (perhaps kept already serialised), a kept error reply, a stream of replies, or the promise of any. */
export type HandlerResult<R> =
  | R
  | EncodedParameters<R>
  | EncodedError
  | Replies<R>
  | Promise<R | EncodedParameters<R> | EncodedError | Replies<R>>;

export type Handler<P, R> = (parameters: P, call: Call) => HandlerResult<R>;

/**
 * Marks a method that the IDL declares but this service does not serve; calls get
 * `org.varlink.service.MethodNotFound`, as sd-varlink answers for unbound methods.
 */
export const Unbound: unique symbol = Symbol('varlink.unbound');

export type Handlers<M extends MethodMap> = {
  [K in keyof M]: Handler<M[K]['parameters'], M[K]['result']> | typeof Unbound;
};
