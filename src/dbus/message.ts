/**
 * D-Bus messages: the header (endianness, type, flags, version 1, body length, serial, header
 * fields), the body after 8-byte alignment, and encoding/decoding of whole messages. We always
 * write little-endian; we read both 'l' and 'B'. A message is at most 128 MiB.
 */
import { DBusProtocolError } from './errors.js';
import { isBusName, isErrorName, isInterfaceName, isMemberName, isObjectPath } from './names.js';
import { Writer, writeValue, writeValues } from './marshal.js';
import { Reader, readValue, readValues } from './unmarshal.js';
import { parseSingleType } from './signature.js';
import { Variant } from './variant.js';

export const MessageType = { MethodCall: 1, MethodReturn: 2, Error: 3, Signal: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const MessageFlags = { NoReplyExpected: 1, NoAutoStart: 2, AllowInteractiveAuthorization: 4 } as const;

export const MAX_MESSAGE_SIZE = 128 * 1024 * 1024;

const Field = { Path: 1, Interface: 2, Member: 3, ErrorName: 4, ReplySerial: 5, Destination: 6, Sender: 7, Signature: 8, UnixFds: 9 } as const;
const FIELD_SIG: Record<number, string> = { 1: 'o', 2: 's', 3: 's', 4: 's', 5: 'u', 6: 's', 7: 's', 8: 'g', 9: 'u' };
const fieldHeaderType = parseSingleType('a(yv)');

export interface Message {
  type: MessageType;
  flags: number;
  /** Set when the message is sent (or as received). */
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  /** The body's signature; '' for no body. */
  signature: string;
  body: unknown[];
  /**
   * Descriptors that travel with the message: on receipt the real descriptors (`h` values in the
   * body are these numbers); on send filled from the body's `h` values.
   */
  fds: number[];
}

/** A message with defaults for what a caller need not set. */
export function createMessage(m: Partial<Message> & { type: MessageType }): Message {
  return { flags: 0, serial: 0, signature: '', body: [], fds: [], ...m };
}

/** Encodes a message (its `serial` must be set); returns the bytes and the descriptors to attach. */
export function encodeMessage(m: Message): { data: Buffer; fds: number[] } {
  if (!(m.serial > 0 && m.serial <= 0xffffffff)) throw new DBusProtocolError('message serial must be 1..2^32-1');
  const w = new Writer();
  w.u8(0x6c /* 'l' */);
  w.u8(m.type);
  w.u8(m.flags);
  w.u8(1);
  w.u32(0); // body length, patched below
  w.u32(m.serial);
  // Body first into its own writer (8-aligned like the real body), so UNIX_FDS is known for the header.
  const body = new Writer([], 64);
  writeValues(body, m.signature, m.body);
  const fds = body.fds;
  const fields: [number, Variant][] = [];
  const add = (code: number, value: unknown) => value !== undefined && value !== '' && fields.push([code, new Variant(FIELD_SIG[code], value)]);
  add(Field.Path, m.path);
  add(Field.Interface, m.interface);
  add(Field.Member, m.member);
  add(Field.ErrorName, m.errorName);
  add(Field.ReplySerial, m.replySerial);
  add(Field.Destination, m.destination);
  add(Field.Sender, m.sender);
  add(Field.Signature, m.signature);
  if (fds.length > 0) add(Field.UnixFds, fds.length);
  writeValue(w, fieldHeaderType, fields);
  w.align(8);
  const header = w.toBuffer();
  const bodyBytes = body.toBuffer();
  header.writeUInt32LE(bodyBytes.length, 4);
  if (header.length + bodyBytes.length > MAX_MESSAGE_SIZE) throw new DBusProtocolError('message exceeds 128 MiB');
  return { data: Buffer.concat([header, bodyBytes]), fds };
}

/**
 * The total length of the message that starts `head` (at least 16 bytes), from its fixed header;
 * throws DBusProtocolError when the header is impossible.
 */
export function messageLength(head: Buffer): number {
  const le = head[0] === 0x6c;
  if (!le && head[0] !== 0x42 /* 'B' */) throw new DBusProtocolError(`invalid endianness byte 0x${head[0].toString(16)}`);
  if (head[3] !== 1) throw new DBusProtocolError(`unsupported protocol version ${head[3]}`);
  const bodyLen = le ? head.readUInt32LE(4) : head.readUInt32BE(4);
  const fieldsLen = le ? head.readUInt32LE(12) : head.readUInt32BE(12);
  const headerLen = 16 + fieldsLen + ((8 - (fieldsLen % 8)) % 8);
  const total = headerLen + bodyLen;
  if (fieldsLen > MAX_MESSAGE_SIZE || total > MAX_MESSAGE_SIZE) throw new DBusProtocolError('message exceeds 128 MiB');
  return total;
}

/**
 * Decodes one complete message. `fdQueue` holds the descriptors received so far: the message takes
 * as many from its front as its UNIX_FDS field says, and only when it decodes (a malformed message
 * leaves them for the owner of the queue to close). Throws DBusProtocolError on anything malformed.
 */
export function decodeMessage(buf: Buffer, fdQueue: number[] = []): Message {
  if (buf.length < 16) throw new DBusProtocolError('message shorter than its fixed header');
  const total = messageLength(buf);
  if (total !== buf.length) throw new DBusProtocolError('message length does not match its header');
  const le = buf[0] === 0x6c;
  const type = buf[1];
  if (type < 1 || type > 4) throw new DBusProtocolError(`unknown message type ${type}`);
  const r = new Reader(buf, le, null, 4);
  const bodyLen = r.u32();
  const serial = r.u32();
  if (serial === 0) throw new DBusProtocolError('message serial 0');
  const m = createMessage({ type: type as MessageType, flags: buf[2], serial });
  const rawFields = readValue(r, fieldHeaderType) as [number, Variant][];
  let unixFds = 0;
  for (const [code, v] of rawFields) {
    const want = FIELD_SIG[code];
    if (!want) continue; // unknown header fields are ignored, as the specification asks
    if (v.signature !== want) throw new DBusProtocolError(`header field ${code} has type '${v.signature}', not '${want}'`);
    const value = v.value as never;
    switch (code) {
      case Field.Path: m.path = value; break;
      case Field.Interface: m.interface = check(value, isInterfaceName, 'interface'); break;
      case Field.Member: m.member = check(value, isMemberName, 'member'); break;
      case Field.ErrorName: m.errorName = check(value, isErrorName, 'error name'); break;
      case Field.ReplySerial: m.replySerial = value; break;
      case Field.Destination: m.destination = check(value, isBusName, 'destination'); break;
      case Field.Sender: m.sender = check(value, isBusName, 'sender'); break;
      case Field.Signature: m.signature = value; break;
      case Field.UnixFds: unixFds = value; break;
    }
  }
  requireFields(m);
  if (unixFds > fdQueue.length) throw new DBusProtocolError(`message declares ${unixFds} descriptors, ${fdQueue.length} came`);
  r.align(8);
  if (r.pos + bodyLen !== buf.length) throw new DBusProtocolError('body length does not match');
  const fds = fdQueue.slice(0, unixFds);
  m.body = readValues(new Reader(buf, le, fds, r.pos, buf.length), m.signature);
  fdQueue.splice(0, unixFds);
  m.fds = fds;
  return m;
}

function check(value: string, valid: (s: string) => boolean, what: string): string {
  if (!valid(value)) throw new DBusProtocolError(`invalid ${what} '${value.slice(0, 60)}' in header`);
  return value;
}

/** The header fields each message type must carry. */
const REQUIRED: Record<MessageType, (keyof Message)[]> = {
  [MessageType.MethodCall]: ['path', 'member'],
  [MessageType.Signal]: ['path', 'interface', 'member'],
  [MessageType.Error]: ['errorName', 'replySerial'],
  [MessageType.MethodReturn]: ['replySerial'],
};

function requireFields(m: Message): void {
  if (m.path !== undefined && !isObjectPath(m.path)) throw new DBusProtocolError('invalid path in header');
  for (const f of REQUIRED[m.type]) if (!m[f]) throw new DBusProtocolError(`message of type ${m.type} lacks its ${f} field`);
}
