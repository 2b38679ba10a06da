import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_MESSAGE_SIZE,
  MessageReader,
  MessageTooLargeError,
  encodeError,
  encodeReply,
  frame,
} from '../../../src/varlink/wire.js';

const b = (s: string) => Buffer.from(s, 'utf8');

describe('MessageReader', () => {
  it('waits for the terminator and reassembles a message split over many chunks', () => {
    const r = new MessageReader();
    const text = '{"method":"org.varlink.service.GetInfo"}';
    for (const ch of text) expect(r.pushAll(b(ch))).toEqual([]);
    expect(r.buffered).toBe(text.length);
    expect(r.pushAll(Buffer.from([0]))).toEqual([text]);
    expect(r.buffered).toBe(0);
  });

  it('splits a multi-byte UTF-8 character across chunks without corrupting it', () => {
    const r = new MessageReader();
    const all = b('{"s":"µ→😀"}\0');
    const out: string[] = [];
    for (let i = 0; i < all.length; i++) out.push(...r.pushAll(all.subarray(i, i + 1)));
    expect(out).toEqual(['{"s":"µ→😀"}']);
  });

  it('hands out many messages from one chunk, in order, keeping a trailing fragment', () => {
    const r = new MessageReader();
    const msgs = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ method: 'a.B', parameters: { i } }));
    const out = r.pushAll(b(msgs.join('\0') + '\0{"method":"x.Y"'));
    expect(out).toEqual(msgs);
    expect(r.buffered).toBe('{"method":"x.Y"'.length);
    expect(r.pushAll(b('}\0'))).toEqual(['{"method":"x.Y"}']);
  });

  it('returns empty texts for consecutive NULs (the caller rejects them as invalid JSON)', () => {
    expect(new MessageReader().pushAll(Buffer.from([0, 0]))).toEqual(['', '']);
  });

  it('a raw NUL cannot be inside a JSON string: it ends the message there', () => {
    // Valid JSON escapes U+0000 as \u0000; a raw 0x00 byte always terminates the message, so the
    // text before it is handed out (and is then invalid JSON) and the rest starts a new message.
    const r = new MessageReader();
    const out = r.pushAll(Buffer.concat([b('{"method":"a.B","parameters":{"s":"x'), Buffer.from([0]), b('y"}}'), Buffer.from([0])]));
    expect(out).toEqual(['{"method":"a.B","parameters":{"s":"x', 'y"}}']);
    expect(() => JSON.parse(out[0]!)).toThrow();
    // The escaped form stays inside the string.
    expect(new MessageReader().pushAll(b('{"s":"x\\u0000y"}\0'))).toEqual(['{"s":"x\\u0000y"}']);
  });

  it('defaults to sd-varlink’s 16 MiB limit', () => {
    expect(DEFAULT_MAX_MESSAGE_SIZE).toBe(16 * 1024 * 1024);
  });

  it('throws MessageTooLargeError once more than the limit arrives without a NUL', () => {
    const r = new MessageReader(1024);
    r.push(Buffer.alloc(1024, 0x20));
    expect(r.next()).toBeUndefined(); // exactly the limit: still waiting
    r.push(Buffer.alloc(1, 0x20));
    expect(() => r.next()).toThrow(MessageTooLargeError);
    expect(r.buffered).toBe(0);
  });

  it('at 16 MiB + 1 byte without a terminator (default limit)', () => {
    const r = new MessageReader();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let thrown: unknown;
    let pushed = 0;
    while (pushed <= DEFAULT_MAX_MESSAGE_SIZE) {
      r.push(chunk);
      pushed += chunk.length;
      try {
        r.next();
      } catch (e) {
        thrown = e;
        break;
      }
    }
    expect(thrown).toBeInstanceOf(MessageTooLargeError);
    expect(pushed).toBe(DEFAULT_MAX_MESSAGE_SIZE + chunk.length);
  });

  it('accepts a message of the size limit when it is terminated', () => {
    const r = new MessageReader(100);
    const text = `"${'x'.repeat(98)}"`;
    expect(r.pushAll(b(text + '\0'))).toEqual([text]);
  });

  it('takeRest returns everything not yet handed out (for upgrades)', () => {
    const r = new MessageReader();
    r.push(b('{"a":1}\0raw bytes\0more'));
    expect(r.next()).toBe('{"a":1}');
    expect(r.takeRest().toString()).toBe('raw bytes\0more');
    expect(r.buffered).toBe(0);
    expect(r.next()).toBeUndefined();
  });
});

describe('encoding', () => {
  it('frames a message with one NUL', () => {
    expect(frame({ method: 'a.B' })).toBe('{"method":"a.B"}\0');
  });

  it('encodes replies with parameters (always present) and continues only when true', () => {
    expect(encodeReply({ a: 1 }, false)).toBe('{"parameters":{"a":1}}\0');
    expect(encodeReply(undefined, false)).toBe('{"parameters":{}}\0');
    expect(encodeReply({ a: 1 }, true)).toBe('{"parameters":{"a":1},"continues":true}\0');
  });

  it('encodes errors without continues', () => {
    expect(encodeError('org.varlink.service.InvalidParameter', { parameter: 'x' })).toBe(
      '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"x"}}\0',
    );
    expect(encodeError('a.B', undefined)).toBe('{"error":"a.B","parameters":{}}\0');
  });
});

import { findDuplicateKey } from '../../../src/varlink/duplicate-keys.js';

describe('findDuplicateKey', () => {
  it('names the path to a key given twice, and nothing for unique keys', () => {
    expect(findDuplicateKey('{"method":"a.B","parameters":{"signal":9,"signal":9}}')).toEqual(['parameters', 'signal']);
    expect(findDuplicateKey('{"parameters":{"pid":{"pid":1,"pid":1}}}')).toEqual(['parameters', 'pid', 'pid']);
    expect(findDuplicateKey('{"method":"x","method":"y"}')).toEqual(['method']);
    expect(findDuplicateKey('{"a":"\\"b\\"","b":{"c":"x\\\\","c":1}}')).toEqual(['b', 'c']);
    expect(findDuplicateKey('{"a":{"b":1},"b":2}')).toBeUndefined();
    expect(findDuplicateKey('{"a":[{"x":1},{"x":2}]}')).toBeUndefined();
    expect(findDuplicateKey('{"a":{"x":1},"c":{"x":1}}')).toBeUndefined();
    expect(findDuplicateKey('{"\\u0061":1,"a":2}')).toEqual(['a']);
  });

  it('handles objects with many keys (kept in a set past a few) like small ones', () => {
    const keys = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `"k${i + from}":1`).join(',');
    expect(findDuplicateKey(`{"parameters":{${keys(1000)},"k17":2}}`)).toEqual(['parameters', 'k17']);
    expect(findDuplicateKey(`{"parameters":{${keys(1000)},"k999":2}}`)).toEqual(['parameters', 'k999']);
    // A nested object may reuse its parent's keys, and so may a sibling after a wide object closed.
    expect(findDuplicateKey(`{"parameters":{${keys(100)},"inner":{${keys(100)}},"k100":1}}`)).toBeUndefined();
    expect(findDuplicateKey(`{"a":{${keys(100)}},"b":{${keys(100)}},"c":[{${keys(50)}},{${keys(50)}}]}`)).toBeUndefined();
    expect(findDuplicateKey(`{"a":{${keys(100)},"inner":{${keys(30)},"k3":0}}}`)).toEqual(['a', 'inner', 'k3']);
    // The parent keeps its set while a child is open: a duplicate after the child is still found.
    expect(findDuplicateKey(`{"a":{${keys(40)},"inner":{${keys(40)}},"k5":0}}`)).toEqual(['a', 'k5']);
    // A million keys in one object: linear, so this ends long before the test's timeout.
    expect(findDuplicateKey(`{"parameters":{${keys(1_000_000)}}}`)).toBeUndefined();
  });
});
