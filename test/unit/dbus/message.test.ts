/** Whole messages: header vectors from the specification, both byte orders, framing any chunking, fuzzing. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createMessage, decodeMessage, encodeMessage, MessageType } from '../../../src/dbus/message.js';
import { MessageFramer } from '../../../src/dbus/framer.js';
import { DBusProtocolError } from '../../../src/dbus/errors.js';
import { unmarshal } from '../../../src/dbus/unmarshal.js';
import { Variant } from '../../../src/dbus/variant.js';

const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

describe('messages', () => {
  const reply = '6c020001 00000000 02000000 08000000 05017500 01000000';
  it('a bodiless reply, byte for byte', () => {
    const { data } = encodeMessage(createMessage({ type: MessageType.MethodReturn, serial: 2, replySerial: 1 }));
    expect(data.toString('hex')).toBe(reply.replace(/\s+/g, ''));
  });

  // libdbus's Hello as dbus-send 1.14 wrote it (captured from its socket): fields PATH, DESTINATION, INTERFACE, MEMBER.
  const libdbusHello =
    '6c01000100000000010000006e00000001016f00150000002f6f72672f667265656465736b746f702f4442757300000006017300140000006f72672e667265656465736b746f702e444275730000000002017300140000006f72672e667265656465736b746f702e4442757300000000030173000500000048656c6c6f000000';
  it('decodes the Hello that dbus-send sends, and encodes the same message to the same length', () => {
    const m = decodeMessage(bytes(libdbusHello));
    expect(m).toEqual(createMessage({
      type: MessageType.MethodCall, serial: 1, path: '/org/freedesktop/DBus', destination: 'org.freedesktop.DBus',
      interface: 'org.freedesktop.DBus', member: 'Hello',
    }));
    const ours = encodeMessage(m).data;
    expect(ours.length).toBe(bytes(libdbusHello).length);
    expect(decodeMessage(ours)).toEqual(m);
  });

  it('reads big-endian messages', () => {
    const m = decodeMessage(bytes('42020001 00000000 00000002 00000008 05017500 00000001'));
    expect(m).toMatchObject({ type: MessageType.MethodReturn, serial: 2, replySerial: 1, body: [] });
  });

  it('round trip of a call with every header field and descriptors', () => {
    const sent = createMessage({
      type: MessageType.MethodCall, serial: 7, flags: 4, path: '/org/x', interface: 'org.x.Y', member: 'Do',
      destination: 'org.x', sender: ':1.5', signature: 'sha{sv}', body: ['a', 33, new Map([['k', new Variant('u', 1)]])],
    });
    const { data, fds } = encodeMessage(sent);
    expect(fds).toEqual([33]);
    const got = decodeMessage(data, [90]);
    expect(got).toEqual({ ...sent, body: ['a', 90, sent.body[2]], fds: [90] });
  });

  it.each<[string, string]>([
    ['bad endianness', '78020001 00000000 02000000 08000000 05017500 01000000'],
    ['version 2', '6c020002 00000000 02000000 08000000 05017500 01000000'],
    ['serial 0', '6c020001 00000000 00000000 08000000 05017500 01000000'],
    ['type 9', '6c090001 00000000 02000000 08000000 05017500 01000000'],
    ['reply without REPLY_SERIAL', '6c020001 00000000 02000000 00000000'],
    ['field of the wrong type', '6c020001 00000000 02000000 08000000 05017900 01000000'],
    ['body length beyond the data', '6c020001 04000000 02000000 08000000 05017500 01000000'],
  ])('rejects %s', (_what, h) => {
    expect(() => decodeMessage(bytes(h))).toThrow(DBusProtocolError);
  });

  it('rejects a message claiming more than 128 MiB', () => {
    expect(() => new MessageFramer().push(bytes('6c020001 00000010 02000000 08000000'))).toThrow(DBusProtocolError);
  });

  it('a message with UNIX_FDS takes exactly that many descriptors', () => {
    const { data } = encodeMessage(createMessage({ type: MessageType.Signal, serial: 1, path: '/a', interface: 'a.b', member: 'C', signature: 'h', body: [5] }));
    const f = new MessageFramer();
    expect(() => f.push(data, [])).toThrow(DBusProtocolError);
    const g = new MessageFramer();
    const [m] = g.push(data, [12, 13]);
    expect(m.body).toEqual([12]);
    expect(g.drainFds()).toEqual([13]);
  });
});

describe('framing', () => {
  const msgs = [1, 2, 3].map((i) =>
    encodeMessage(createMessage({ type: MessageType.Signal, serial: i, path: '/a', interface: 'a.b', member: 'C', signature: 'as', body: [Array(i * 10).fill('x'.repeat(i))] })).data,
  );
  const stream = Buffer.concat(msgs);

  it('any chunking gives the same messages', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 40 }), (cuts) => {
        const f = new MessageFramer();
        const out = [];
        let pos = 0;
        for (const c of cuts) {
          out.push(...f.push(stream.subarray(pos, pos + c)));
          pos = Math.min(stream.length, pos + c);
        }
        out.push(...f.push(stream.subarray(pos)));
        expect(out.map((m) => m.serial)).toEqual([1, 2, 3]);
      }),
    );
  });

  it('random bytes only ever fail with DBusProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 2 }), (arr, which) => {
        const mutated = Buffer.from(msgs[which]);
        for (let i = 0; i < arr.length && i < mutated.length; i += 7) mutated[arr[i] % mutated.length] = arr[(i + 1) % arr.length];
        for (const input of [Buffer.from(arr), mutated]) {
          try {
            new MessageFramer().push(input);
          } catch (e) {
            expect(e).toBeInstanceOf(DBusProtocolError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('random bodies against random signatures only ever fail with DBusProtocolError', () => {
    const sigs = ['a{sv}', 'a(sv)', 'v', 'aav', 'ga{ss}', '(sa(ii)v)', 'ah', 'b', 'ay'];
    fc.assert(
      fc.property(fc.constantFrom(...sigs), fc.uint8Array({ maxLength: 200 }), (sig, arr) => {
        try {
          unmarshal(sig, Buffer.from(arr), []);
        } catch (e) {
          expect(e).toBeInstanceOf(DBusProtocolError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
