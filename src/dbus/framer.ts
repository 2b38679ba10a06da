/**
 * Incremental framing: bytes and descriptors as they come off the socket, in any chunking, to
 * whole decoded messages. Descriptors arrive with the first byte of their message; each message
 * takes as many from the front of the queue as its UNIX_FDS field says. A malformed message throws
 * DBusProtocolError (the stream cannot be resynchronised; the connection must close).
 */
import { decodeMessage, messageLength, type Message } from './message.js';

export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = 0;
  private fdQueue: number[] = [];

  /** Takes the descriptors received but not given to any message (for the owner to close). */
  drainFds(): number[] {
    return this.fdQueue.splice(0);
  }

  /** Adds received bytes and descriptors; returns the messages they complete. */
  push(data: Buffer, fds: readonly number[] = []): Message[] {
    if (fds.length) this.fdQueue.push(...fds);
    if (data.length) {
      this.chunks.push(data);
      this.buffered += data.length;
    }
    const out: Message[] = [];
    for (;;) {
      if (this.needed === 0) {
        if (this.buffered < 16) break;
        this.needed = messageLength(this.peek(16));
      }
      if (this.buffered < this.needed) break;
      const buf = this.take(this.needed);
      this.needed = 0;
      try {
        out.push(decodeMessage(buf, this.fdQueue));
      } catch (e) {
        // Hand the descriptors of messages decoded so far back, so that the owner closes them all.
        this.fdQueue.unshift(...out.flatMap((m) => m.fds));
        throw e;
      }
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0].subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const msg = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return msg;
  }
}
