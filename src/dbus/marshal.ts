/**
 * Marshalling: JavaScript values (see variant.ts) to the little-endian D-Bus wire format, with
 * every value aligned to its natural boundary counted from the start of the message. Values are
 * checked against their type as they are written (ranges, booleans, valid UTF-8 without NUL,
 * object paths, signatures, the 64 MiB array limit); a mismatch throws DBusProtocolError.
 */
import { DBusProtocolError } from './errors.js';
import { isObjectPath } from './names.js';
import { alignOf, formatType, parseSignature, parseSingleType, isValidSignature, type DBusType } from './signature.js';
import { Variant } from './variant.js';

export const MAX_ARRAY_LENGTH = 64 * 1024 * 1024;
const MAX_DEPTH = 64;
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A growable output buffer whose offsets count from the start of the message. */
export class Writer {
  buf: Buffer;
  pos = 0;
  /** Descriptors of `h` values, in the order of their wire index. */
  readonly fds: number[];

  constructor(fds: number[] = [], initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
    this.fds = fds;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    if (pad === 0) return;
    this.reserve(pad);
    this.buf.fill(0, this.pos, this.pos + pad);
    this.pos += pad;
  }

  u8(v: number): void {
    this.reserve(1);
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.align(4);
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }

  bytes(b: Buffer): void {
    this.reserve(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  /** A string's bytes and terminating NUL after a length of `lenBytes` (4 for s/o, 1 for g). */
  string(s: string, lenBytes: 1 | 4): void {
    if (s.includes('\0')) throw new DBusProtocolError('string contains a NUL character');
    if (loneSurrogate.test(s)) throw new DBusProtocolError('string is not valid Unicode (lone surrogate)');
    const b = Buffer.from(s, 'utf8');
    if (lenBytes === 4) this.u32(b.length);
    else this.u8(b.length);
    this.bytes(b);
    this.u8(0);
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function fail(t: DBusType, v: unknown, why = ''): never {
  const shown = typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v) : String(v);
  throw new DBusProtocolError(`cannot marshal ${shown.slice(0, 60)} as '${formatType(t)}'${why ? ': ' + why : ''}`);
}

function integer(t: DBusType, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(t, v, 'out of range or not an integer');
  return v;
}

function big(t: DBusType, v: unknown, min: bigint, max: bigint): bigint {
  const b = typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : v;
  if (typeof b !== 'bigint' || b < min || b > max) fail(t, v, 'out of range or not an integer');
  return b;
}

/** Writes one value of type `t`. */
export function writeValue(w: Writer, t: DBusType, v: unknown, depth = 0): void {
  switch (t.code) {
    case 'y':
      w.u8(integer(t, v, 0, 0xff));
      return;
    case 'b':
      if (typeof v !== 'boolean') fail(t, v);
      w.u32(v ? 1 : 0);
      return;
    case 'n':
    case 'q': {
      const n = t.code === 'n' ? integer(t, v, -0x8000, 0x7fff) : integer(t, v, 0, 0xffff);
      w.align(2);
      w.bytes(Buffer.from([n & 0xff, (n >> 8) & 0xff]));
      return;
    }
    case 'i':
      w.u32(integer(t, v, -0x80000000, 0x7fffffff) >>> 0);
      return;
    case 'u':
      w.u32(integer(t, v, 0, 0xffffffff));
      return;
    case 'x':
    case 't': {
      const b = t.code === 'x' ? big(t, v, -(1n << 63n), (1n << 63n) - 1n) : big(t, v, 0n, (1n << 64n) - 1n);
      w.align(8);
      const tmp = Buffer.allocUnsafe(8);
      tmp.writeBigUInt64LE(BigInt.asUintN(64, b));
      w.bytes(tmp);
      return;
    }
    case 'd': {
      if (typeof v !== 'number') fail(t, v);
      w.align(8);
      const tmp = Buffer.allocUnsafe(8);
      tmp.writeDoubleLE(v);
      w.bytes(tmp);
      return;
    }
    case 's':
      if (typeof v !== 'string') fail(t, v);
      w.string(v, 4);
      return;
    case 'o':
      if (typeof v !== 'string' || !isObjectPath(v)) fail(t, v, 'not an object path');
      w.string(v, 4);
      return;
    case 'g':
      if (typeof v !== 'string' || !isValidSignature(v)) fail(t, v, 'not a signature');
      w.string(v, 1);
      return;
    case 'h': {
      const fd = integer(t, v, 0, 0x7fffffff);
      let index = w.fds.indexOf(fd);
      if (index < 0) index = w.fds.push(fd) - 1;
      w.u32(index);
      return;
    }
    case 'v': {
      if (!(v instanceof Variant)) fail(t, v, 'expected a Variant');
      if (depth + 1 > MAX_DEPTH) fail(t, v, 'nested too deeply');
      const inner = parseSingleType(v.signature);
      w.string(v.signature, 1);
      writeValue(w, inner, v.value, depth + 1);
      return;
    }
    case 'a':
      writeArray(w, t, t.elem, v, depth);
      return;
    case '(': {
      if (!Array.isArray(v) || v.length !== t.fields.length) fail(t, v, `expected an array of ${t.fields.length} fields`);
      if (depth + 1 > MAX_DEPTH) fail(t, v, 'nested too deeply');
      w.align(8);
      t.fields.forEach((f, i) => writeValue(w, f, v[i], depth + 1));
      return;
    }
    case '{':
      fail(t, v, 'dict entry outside an array');
  }
}

function writeArray(w: Writer, t: DBusType, elem: DBusType, v: unknown, depth: number): void {
  if (depth + 1 > MAX_DEPTH) fail(t, v, 'nested too deeply');
  w.u32(0);
  const lenAt = w.pos - 4;
  w.align(alignOf(elem));
  const start = w.pos;
  if (elem.code === '{') {
    const entries = v instanceof Map ? [...v.entries()] : v && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v) : fail(t, v, 'expected a Map');
    for (const [k, val] of entries) {
      w.align(8);
      writeValue(w, elem.key, k, depth + 2);
      writeValue(w, elem.value, val, depth + 2);
    }
  } else if (elem.code === 'y' && v instanceof Uint8Array) {
    w.bytes(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  } else {
    if (!Array.isArray(v)) fail(t, v, 'expected an array');
    for (const item of v) writeValue(w, elem, item, depth + 1);
  }
  const len = w.pos - start;
  if (len > MAX_ARRAY_LENGTH) fail(t, '[…]', 'array longer than 64 MiB');
  w.buf.writeUInt32LE(len, lenAt);
}

/** Writes values for each complete type of `signature`; the count must match. */
export function writeValues(w: Writer, signature: string, values: readonly unknown[]): void {
  const types = parseSignature(signature);
  if (values.length !== types.length) throw new DBusProtocolError(`signature '${signature}' takes ${types.length} values, got ${values.length}`);
  types.forEach((t, i) => writeValue(w, t, values[i]));
}

/** Marshals values as a message body (offset 0 is 8-aligned); returns the bytes and the descriptors of `h` values. */
export function marshal(signature: string, values: readonly unknown[]): { data: Buffer; fds: number[] } {
  const w = new Writer();
  writeValues(w, signature, values);
  return { data: w.toBuffer(), fds: w.fds };
}
