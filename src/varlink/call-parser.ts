/**
 * Turning one received message into a call, or into a reason to drop the connection, the way
 * sd-varlink 257 decides: the header keys and flags, the JSON itself, and the few things its JSON
 * parser refuses that JSON.parse takes.
 */
import { isUtf8 } from 'node:buffer';
import { findDuplicateKey } from './duplicate-keys.js';
import { InvalidUtf8Error } from './wire.js';

export interface IncomingCall {
  method: string;
  parameters: Record<string, unknown>;
  /** A top-level parameter whose object holds a key twice (somewhere inside), if any. */
  duplicate?: string | undefined;
  oneway: boolean;
  more: boolean;
  upgrade: boolean;
  /**
   * Set for a large message that a parse worker examined (offload.ts): either the top-level
   * parameter its validator refused, or the message text to take `parameters` from when the call
   * is dispatched, and whether the validator already passed it.
   */
  offloaded?: { invalid: string } | { text: string; checked: boolean };
  /** What is remembered about this exact message text (see TextMemo); set for short messages. */
  memo?: TextMemo | undefined;
}

/**
 * What the checks of a short message text concluded, kept by the text: clients send the very same
 * message over and over (NSS asks every userdb service about the same host users, a monitor polls the
 * same List), and the refused-character scan, the duplicate-key scan and the parameter validation are
 * pure functions of the text. A repeated text is only JSON.parse'd again (handlers get fresh objects).
 */
export interface TextMemo {
  readonly header: Omit<IncomingCall, 'parameters' | 'offloaded' | 'memo'>;
  /** The validator (a method's, by identity) that accepted these parameters, once one has. */
  validFor?: object;
}

/** Texts up to this long are remembered, at most MEMO_ENTRIES of them (forgotten all at once when full). */
const MEMO_TEXT_MAX = 1024;
const MEMO_ENTRIES = 1024;
const memos = new Map<string, TextMemo>();

const HEADER_KEYS = new Set(['method', 'parameters', 'oneway', 'more', 'upgrade']);

/**
 * sd-varlink's JSON parser refuses things JSON.parse takes: the DEL character, an escaped NUL,
 * and an escaped surrogate that is not part of a pair. Each drops the connection there, so it
 * does here. Only messages that contain the tell-tale text pay for the closer look.
 */
function hasRefusedCharacters(text: string): boolean {
  if (text.includes('\x7f')) return true;
  if (!text.includes('\\u')) return false;
  const escape = /\\u([0-9a-fA-F]{4})/g;
  let pendingHigh = -1;
  for (let m = escape.exec(text); m; m = escape.exec(text)) {
    let slashes = 0;
    for (let j = m.index - 1; j >= 0 && text.charCodeAt(j) === 0x5c; j--) slashes++;
    if (slashes % 2 === 1) continue; // an escaped backslash followed by "u…"
    const code = parseInt(m[1]!, 16);
    const isHigh = code >= 0xd800 && code <= 0xdbff;
    const isLow = code >= 0xdc00 && code <= 0xdfff;
    if (pendingHigh !== -1) {
      if (!isLow || m.index !== pendingHigh) return true;
      pendingHigh = -1;
      continue;
    }
    if (code === 0 || isLow) return true;
    if (isHigh) pendingHigh = m.index + 6;
  }
  return pendingHigh !== -1;
}

/**
 * sd-json refuses documents nested deeper than this; so do we (before JSON.parse recurses).
 * Measured on machined 257: a call whose parameter holds 2047 nested arrays (2049 levels with the
 * two enclosing objects) is answered, 2048 arrays close the connection.
 */
export const MAX_JSON_DEPTH = 2049;

/** True when arrays and objects nest deeper than `limit` (strings are skipped). */
export function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Turns one message text into a call, or returns a reason to drop the connection. */
export function parseCall(text: string): IncomingCall | string {
  const memo = text.length <= MEMO_TEXT_MAX ? memos.get(text) : undefined;
  if (memo) {
    const p = (JSON.parse(text) as { parameters?: Record<string, unknown> | null }).parameters;
    const h = memo.header;
    return { method: h.method, parameters: p ?? {}, oneway: h.oneway, more: h.more, upgrade: h.upgrade, duplicate: h.duplicate, memo };
  }
  const call = checkCall(text);
  if (typeof call !== 'string' && text.length <= MEMO_TEXT_MAX) {
    if (memos.size >= MEMO_ENTRIES) memos.clear();
    const { method, oneway, more, upgrade, duplicate } = call;
    call.memo = { header: { method, oneway, more, upgrade, duplicate } };
    memos.set(text, call.memo);
  }
  return call;
}

function checkCall(text: string): IncomingCall | string {
  if (hasRefusedCharacters(text)) return 'DEL, escaped NUL or unpaired surrogate in message';
  // Only a message this long can nest that deep; short ones skip the scan.
  if (text.length > 2 * MAX_JSON_DEPTH && nestedDeeperThan(text, MAX_JSON_DEPTH)) return 'JSON nested too deeply';
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'invalid JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'message is not a JSON object';
  const o = v as Record<string, unknown>;
  for (const k in o) if (!HEADER_KEYS.has(k)) return `unknown key '${k}' in call`;
  if (typeof o.method !== 'string') return 'method missing or not a string';
  let flags = 0;
  for (const k of ['oneway', 'more', 'upgrade'] as const) {
    const f = o[k];
    if (f === undefined) continue;
    if (typeof f !== 'boolean') return `'${k}' is not a boolean`;
    if (f) flags++;
  }
  if (flags > 1) return 'more than one of oneway/more/upgrade set';
  const p = o.parameters;
  if (p !== undefined && p !== null && (typeof p !== 'object' || Array.isArray(p))) return 'parameters is not an object';
  const dup = findDuplicateKey(text);
  if (dup && dup.length === 1) return `key '${dup[0]}' given twice in call`;
  // One shape for every call (the same fields in the same order), so that the code reading them stays monomorphic.
  return {
    method: o.method,
    parameters: (p ?? {}) as Record<string, unknown>,
    oneway: o.oneway === true,
    more: o.more === true,
    upgrade: o.upgrade === true,
    duplicate: dup && dup[0] === 'parameters' ? dup[1]! : undefined,
    memo: undefined,
  };
}

const NOT_UTF8 = new InvalidUtf8Error().message;

/**
 * Turns one received message (its bytes, without the NUL) into a call and the text it was parsed
 * from, or returns a reason to drop the connection: the UTF-8 check first, then parseCall.
 */
export function parseCallBytes(bytes: Uint8Array): { call: IncomingCall; text: string } | string {
  if (!isUtf8(bytes)) return NOT_UTF8;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const call = parseCall(text);
  return typeof call === 'string' ? call : { call, text };
}
