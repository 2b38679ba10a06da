/**
 * Unmarshalling: D-Bus wire bytes (little- or big-endian) to JavaScript values (see variant.ts).
 * Every read is checked against the end of the buffer, every array against 64 MiB and its own
 * declared length, nesting against 64 levels, strings for valid UTF-8 without NUL, booleans for
 * 0/1, object paths and signatures for validity; anything else throws DBusProtocolError. Each
 * element read consumes at least one byte, so the work is bounded by the input's length.
 */
import { isUtf8 } from 'node:buffer';
import { DBusProtocolError } from './errors.js';
import { isObjectPath } from './names.js';
import { alignOf, formatType, parseSignature, parseSingleType, type DBusType } from './signature.js';
import { Variant } from './variant.js';
import { MAX_ARRAY_LENGTH } from './marshal.js';

const MAX_DEPTH = 64;

/** A cursor over a buffer whose offsets (for alignment) count from `base` bytes before it. */
export class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    readonly littleEndian = true,
    /** The message's descriptors: `h` values are resolved through it. Empty: `h` gives the raw index. */
    readonly fds: readonly number[] | null = null,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new DBusProtocolError('message data ends early');
  }

  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    this.need(pad);
    for (let i = 0; i < pad; i++) if (this.buf[this.pos + i] !== 0) throw new DBusProtocolError('non-zero padding');
    this.pos += pad;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  /** An aligned fixed-size integer of `n` bytes in the message's byte order. */
  private fixed<T>(n: number, le: (at: number) => T, be: (at: number) => T): T {
    this.align(n);
    this.need(n);
    const v = this.littleEndian ? le(this.pos) : be(this.pos);
    this.pos += n;
    return v;
  }

  u16(): number {
    return this.fixed(2, (at) => this.buf.readUInt16LE(at), (at) => this.buf.readUInt16BE(at));
  }

  u32(): number {
    return this.fixed(4, (at) => this.buf.readUInt32LE(at), (at) => this.buf.readUInt32BE(at));
  }

  u64(): bigint {
    return this.fixed(8, (at) => this.buf.readBigUInt64LE(at), (at) => this.buf.readBigUInt64BE(at));
  }

  /** A string after a length of 1 (signature) or 4 bytes, checked for UTF-8 and its NUL terminator. */
  string(lenBytes: 1 | 4): string {
    const len = lenBytes === 4 ? this.u32() : this.u8();
    this.need(len + 1);
    const bytes = this.buf.subarray(this.pos, this.pos + len);
    if (this.buf[this.pos + len] !== 0) throw new DBusProtocolError('string is not NUL-terminated');
    if (bytes.includes(0)) throw new DBusProtocolError('string contains a NUL byte');
    if (!isUtf8(bytes)) throw new DBusProtocolError('string is not valid UTF-8');
    this.pos += len + 1;
    return bytes.toString('utf8');
  }
}

/** Reads one value of type `t`. */
export function readValue(r: Reader, t: DBusType, depth = 0): unknown {
  switch (t.code) {
    case 'y':
      return r.u8();
    case 'b': {
      const v = r.u32();
      if (v > 1) throw new DBusProtocolError(`boolean value ${v} is neither 0 nor 1`);
      return v === 1;
    }
    case 'n':
      return (r.u16() << 16) >> 16;
    case 'q':
      return r.u16();
    case 'i':
      return r.u32() | 0;
    case 'u':
      return r.u32();
    case 'x':
      return BigInt.asIntN(64, r.u64());
    case 't':
      return r.u64();
    case 'd': {
      const raw = r.u64();
      const tmp = Buffer.allocUnsafe(8);
      tmp.writeBigUInt64LE(raw);
      return tmp.readDoubleLE(0);
    }
    case 's':
      return r.string(4);
    case 'o': {
      const s = r.string(4);
      if (!isObjectPath(s)) throw new DBusProtocolError(`invalid object path '${s.slice(0, 60)}'`);
      return s;
    }
    case 'g': {
      const s = r.string(1);
      parseSignature(s);
      return s;
    }
    case 'h': {
      const index = r.u32();
      if (!r.fds) return index;
      if (index >= r.fds.length) throw new DBusProtocolError(`descriptor index ${index} beyond the ${r.fds.length} received`);
      return r.fds[index];
    }
    case 'v': {
      if (depth + 1 > MAX_DEPTH) throw new DBusProtocolError('values nested more than 64 deep');
      const sig = r.string(1);
      const inner = parseSingleType(sig);
      return new Variant(sig, readValue(r, inner, depth + 1));
    }
    case 'a':
      return readArray(r, t.elem, depth);
    case '(': {
      if (depth + 1 > MAX_DEPTH) throw new DBusProtocolError('values nested more than 64 deep');
      r.align(8);
      return t.fields.map((f) => readValue(r, f, depth + 1));
    }
    case '{':
      throw new DBusProtocolError(`dict entry outside an array in '${formatType(t)}'`);
  }
}

function readArray(r: Reader, elem: DBusType, depth: number): unknown {
  if (depth + 1 > MAX_DEPTH) throw new DBusProtocolError('values nested more than 64 deep');
  const len = r.u32();
  if (len > MAX_ARRAY_LENGTH) throw new DBusProtocolError(`array of ${len} bytes exceeds 64 MiB`);
  r.align(alignOf(elem));
  const end = r.pos + len;
  if (end > r.end) throw new DBusProtocolError('array runs past the end of the message');
  if (elem.code === 'y') {
    const out = Buffer.from(r.buf.subarray(r.pos, end));
    r.pos = end;
    return out;
  }
  if (elem.code === '{') {
    const map = new Map<unknown, unknown>();
    while (r.pos < end) {
      r.align(8);
      const k = readValue(r, elem.key, depth + 2);
      map.set(k, readValue(r, elem.value, depth + 2));
    }
    if (r.pos !== end) throw new DBusProtocolError('array contents overrun its length');
    return map;
  }
  const out: unknown[] = [];
  while (r.pos < end) out.push(readValue(r, elem, depth + 1));
  if (r.pos !== end) throw new DBusProtocolError('array contents overrun its length');
  return out;
}

/** Reads one value for each complete type of `signature`, which must use exactly the buffer. */
export function readValues(r: Reader, signature: string): unknown[] {
  const values = parseSignature(signature).map((t) => readValue(r, t));
  if (r.pos !== r.end) throw new DBusProtocolError(`${r.end - r.pos} bytes left after the values of '${signature}'`);
  return values;
}

/** Unmarshals a body (offset 0 is 8-aligned) of the given signature. */
export function unmarshal(signature: string, data: Buffer, fds: readonly number[] | null = null, littleEndian = true): unknown[] {
  return readValues(new Reader(data, littleEndian, fds), signature);
}
