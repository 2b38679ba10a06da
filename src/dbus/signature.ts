/**
 * D-Bus type signatures: parsing a signature string into a tree of types, validating it by the
 * specification's rules (at most 255 bytes, 32 nested arrays, 32 nested structs, dict entries only
 * as array elements with a basic key type, no empty structs), and the alignment of each type.
 */
import { DBusProtocolError } from './errors.js';

export type BasicCode = 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'd' | 's' | 'o' | 'g' | 'h';

export type DBusType =
  | { code: BasicCode }
  | { code: 'v' }
  | { code: 'a'; elem: DBusType }
  | { code: '('; fields: DBusType[] }
  | { code: '{'; key: DBusType; value: DBusType };

const BASIC = new Set<string>(['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g', 'h']);

export const MAX_SIGNATURE_LENGTH = 255;
export const MAX_ARRAY_NESTING = 32;
export const MAX_STRUCT_NESTING = 32;

const ALIGN: Record<string, number> = {
  y: 1, b: 4, n: 2, q: 2, i: 4, u: 4, x: 8, t: 8, d: 8, s: 4, o: 4, g: 1, h: 4, v: 1, a: 4, '(': 8, '{': 8,
};

/** The alignment in bytes of a value of the type. */
export function alignOf(t: DBusType): number {
  return ALIGN[t.code];
}

export function isBasic(t: DBusType): boolean {
  return BASIC.has(t.code);
}

const cache = new Map<string, DBusType[]>();

/**
 * Parses a signature (zero or more complete types) into its types; throws DBusProtocolError when
 * it is not a valid signature. Results are cached, so callers may parse freely.
 */
export function parseSignature(sig: string): DBusType[] {
  const hit = cache.get(sig);
  if (hit) return hit;
  if (sig.length > MAX_SIGNATURE_LENGTH) throw new DBusProtocolError(`signature longer than 255 bytes`);
  const types: DBusType[] = [];
  const p = { pos: 0 };
  while (p.pos < sig.length) types.push(parseOne(sig, p, 0, 0));
  if (cache.size > 4096) cache.clear();
  cache.set(sig, types);
  return types;
}

/** Parses a signature that must be exactly one complete type (a variant's signature). */
export function parseSingleType(sig: string): DBusType {
  const types = parseSignature(sig);
  if (types.length !== 1) throw new DBusProtocolError(`signature '${sig}' is not a single complete type`);
  return types[0];
}

export function isValidSignature(sig: string): boolean {
  try {
    parseSignature(sig);
    return true;
  } catch {
    return false;
  }
}

function parseOne(sig: string, p: { pos: number }, arrays: number, structs: number): DBusType {
  const c = sig[p.pos++];
  if (c === undefined) throw new DBusProtocolError(`signature '${sig}' ends inside a type`);
  if (BASIC.has(c)) return { code: c as BasicCode };
  if (c === 'v') return { code: 'v' };
  if (c === 'a') {
    if (arrays + 1 > MAX_ARRAY_NESTING) throw new DBusProtocolError('signature nests more than 32 arrays');
    if (sig[p.pos] === '{') {
      p.pos++;
      if (structs + 1 > MAX_STRUCT_NESTING) throw new DBusProtocolError('signature nests more than 32 structs');
      const key = parseOne(sig, p, arrays + 1, structs + 1);
      if (!isBasic(key)) throw new DBusProtocolError(`dict entry key in '${sig}' is not a basic type`);
      const value = parseOne(sig, p, arrays + 1, structs + 1);
      if (sig[p.pos++] !== '}') throw new DBusProtocolError(`dict entry in '${sig}' does not have exactly two types`);
      return { code: 'a', elem: { code: '{', key, value } };
    }
    return { code: 'a', elem: parseOne(sig, p, arrays + 1, structs) };
  }
  if (c === '(') {
    if (structs + 1 > MAX_STRUCT_NESTING) throw new DBusProtocolError('signature nests more than 32 structs');
    const fields: DBusType[] = [];
    while (sig[p.pos] !== ')') {
      if (p.pos >= sig.length) throw new DBusProtocolError(`struct in '${sig}' is not closed`);
      fields.push(parseOne(sig, p, arrays, structs + 1));
    }
    p.pos++;
    if (fields.length === 0) throw new DBusProtocolError(`empty struct in '${sig}'`);
    return { code: '(', fields };
  }
  throw new DBusProtocolError(`invalid type code '${c}' in signature '${sig}'`);
}

/** The signature text of a parsed type. */
export function formatType(t: DBusType): string {
  switch (t.code) {
    case 'a':
      return 'a' + formatType(t.elem);
    case '(':
      return '(' + t.fields.map(formatType).join('') + ')';
    case '{':
      return '{' + formatType(t.key) + formatType(t.value) + '}';
    default:
      return t.code;
  }
}
