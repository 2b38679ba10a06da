/**
 * NUL framing: a Varlink message is one JSON object followed by one zero byte.
 *
 * The reader collects chunks as they arrive and hands out complete message texts. A peer that
 * sends more than `maxMessageSize` bytes without a terminator is a protocol violation: the
 * reader reports it so the connection can be closed (sd-varlink drops the connection with
 * ENOBUFS at 16 MiB).
 */

import { isUtf8 } from 'node:buffer';

export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/** A message that is not valid UTF-8 (sd-varlink drops the connection). */
export class InvalidUtf8Error extends Error {
  constructor() {
    super('message is not valid UTF-8');
    this.name = 'InvalidUtf8Error';
  }
}

export class MessageTooLargeError extends Error {
  constructor(readonly size: number) {
    super(`message exceeds ${size} bytes without a terminating NUL`);
    this.name = 'MessageTooLargeError';
  }
}

export class MessageReader {
  /** Unconsumed input; only the first part may have been partly consumed. */
  private parts: Buffer[] = [];
  private length = 0;
  private hasTerminator = false;

  constructor(private readonly maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE) {}

  /** Bytes received and not yet handed out as messages. */
  get buffered(): number {
    return this.length;
  }

  /** Adds received bytes. Node hands each read its own buffer, so chunks are kept, not copied. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
    if (!this.hasTerminator && chunk.indexOf(0) !== -1) this.hasTerminator = true;
  }

  /**
   * Returns the next complete message text, or undefined when none is complete yet.
   * Throws MessageTooLargeError when an unterminated message has grown past the limit, and
   * InvalidUtf8Error for a message that is not UTF-8 (it is consumed; the caller drops the peer).
   */
  next(): string | undefined {
    const bytes = this.nextBytes();
    if (bytes === undefined) return undefined;
    if (!isUtf8(bytes)) throw new InvalidUtf8Error();
    return bytes.toString('utf8');
  }

  /**
   * The next complete message as bytes, not yet checked for UTF-8 (the caller does that), or
   * undefined. Throws MessageTooLargeError as next() does. The bytes share memory with the reader's
   * buffer: copy them before keeping them past the next push.
   */
  nextBytes(): Buffer | undefined {
    if (!this.hasTerminator) {
      if (this.length > this.maxMessageSize) {
        this.parts = [];
        this.length = 0;
        throw new MessageTooLargeError(this.maxMessageSize);
      }
      return undefined;
    }
    if (this.parts.length > 1) this.parts = [Buffer.concat(this.parts, this.length)];
    const buf = this.parts[0]!;
    const nul = buf.indexOf(0);
    const bytes = buf.subarray(0, nul);
    const rest = buf.subarray(nul + 1);
    this.length = rest.length;
    if (rest.length === 0) {
      this.parts = [];
      this.hasTerminator = false;
    } else {
      this.parts[0] = rest;
      this.hasTerminator = rest.indexOf(0) !== -1;
    }
    return bytes;
  }

  /** Convenience for tests and simple readers: push, then collect every complete message. */
  pushAll(chunk: Buffer): string[] {
    this.push(chunk);
    const out: string[] = [];
    for (let m = this.next(); m !== undefined; m = this.next()) out.push(m);
    return out;
  }

  /** Everything not handed out yet (used when a connection is upgraded to another protocol). */
  takeRest(): Buffer {
    const rest = Buffer.concat(this.parts, this.length);
    this.parts = [];
    this.length = 0;
    this.hasTerminator = false;
    return rest;
  }
}

/**
 * Reply parameters already serialised to a JSON object text, for a handler that answers the same
 * thing often and keeps the text (the server writes it as it is, without JSON.stringify). `R` is
 * the type of what was serialised, so a handler may return it where its result type is expected.
 */
export class EncodedParameters<R = unknown> {
  /** Never set: carries `R`. */
  declare readonly __encodes?: R;
  readonly json: string;
  constructor(parameters: R) {
    this.json = JSON.stringify(parameters);
  }
}

/** Serialises one message, terminator included. */
export function frame(message: object): string {
  return JSON.stringify(message) + '\0';
}

/**
 * Serialises a reply. `parameters` is always written, `{}` when empty: clients must accept both
 * forms, and systemd 257's sd-varlink (the compatibility target) writes it.
 */
export function encodeReply(parameters: object | undefined | null, continues: boolean): string {
  const body = parameters instanceof EncodedParameters ? parameters.json : parameters ? JSON.stringify(parameters) : '{}';
  return continues ? `{"parameters":${body},"continues":true}\0` : `{"parameters":${body}}\0`;
}

export function encodeError(error: string, parameters: Record<string, unknown> | undefined | null): string {
  const body = parameters ? JSON.stringify(parameters) : '{}';
  return `{"error":${JSON.stringify(error)},"parameters":${body}}\0`;
}

/**
 * An error reply already serialised, for a handler that gives the same error often and keeps it: the
 * handler returns it instead of throwing, and the server writes the text as it is (as for a thrown
 * VarlinkError of that name and parameters). Building and throwing an Error costs more than the lookup.
 */
export class EncodedError {
  readonly text: string;
  constructor(
    readonly error: string,
    parameters?: Record<string, unknown>,
  ) {
    this.text = encodeError(error, parameters);
  }
}
