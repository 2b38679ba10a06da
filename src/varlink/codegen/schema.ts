/**
 * IDL types → JSON Schema, for ajv to compile into standalone validators.
 *
 * The schemas follow sd-varlink's checks: structs admit no unknown keys, non-nullable fields
 * must be present and not null, enum values must be listed, `float` takes any number. For `int`
 * sd-varlink's interface check also lets any string through and leaves the decision to each
 * method's own parameter parsing (some fields take "9" for 9, others refuse strings). Interfaces
 * that mirror systemd's keep that (`strings: 'any'`: their handlers check the raw values);
 * berth's own accept only decimal strings and get them converted to numbers before the handler
 * runs (`strings: 'decimal'`).
 */
import type { Interface, StructType, TypeExpr } from '../idl/ast.js';

export type Schema = Record<string, unknown>;

export const DEFS_ID = 'defs';

const INT_STRING = '^-?[0-9]+$';
const INT_MIN = -(2 ** 63);
const UINT_MAX = 2 ** 64 - 1;

export type IntegerStrings = 'any' | 'decimal';

/** How integers sent as strings are treated, by interface: systemd's interfaces as sd-varlink does. */
export function integerStringsFor(interfaceName: string): IntegerStrings {
  return interfaceName.startsWith('io.systemd') || interfaceName.startsWith('org.varlink.') ? 'any' : 'decimal';
}

export function typeSchema(t: TypeExpr, strings: IntegerStrings = 'decimal'): Schema {
  const sub = (x: TypeExpr) => typeSchema(x, strings);
  switch (t.kind) {
    case 'bool':
      return { type: 'boolean' };
    case 'int':
      // JSON numbers beyond 64 bits are refused, as sd-varlink's parser does.
      return strings === 'any'
        ? { type: ['integer', 'string'], minimum: INT_MIN, maximum: UINT_MAX }
        : { anyOf: [{ type: 'integer', minimum: INT_MIN, maximum: UINT_MAX }, { type: 'string', pattern: INT_STRING }] };
    case 'float':
      return { type: 'number' };
    case 'string':
      return { type: 'string' };
    case 'object':
      return { type: 'object' };
    case 'any':
      return { not: { type: 'null' } };
    case 'named':
      return { $ref: `${DEFS_ID}#/$defs/${t.name}` };
    case 'nullable': {
      const inner = sub(t.inner);
      if (typeof inner.type === 'string' && Object.keys(inner).length === 1) return { type: [inner.type, 'null'] };
      return { anyOf: [{ type: 'null' }, inner] };
    }
    case 'array':
      return { type: 'array', items: sub(t.inner) };
    case 'map':
      return { type: 'object', additionalProperties: sub(t.inner) };
    case 'struct':
      return structSchema(t, strings);
    case 'enum':
      return { type: 'string', enum: t.values.map((v) => v.name) };
  }
}

export function structSchema(s: StructType, strings: IntegerStrings = 'decimal'): Schema {
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const f of s.fields) {
    properties[f.name] = typeSchema(f.type, strings);
    if (f.type.kind !== 'nullable') required.push(f.name);
  }
  const schema: Schema = { type: 'object', properties, additionalProperties: false };
  if (required.length) schema.required = required;
  return schema;
}

/** The shared schema holding every named type of an interface under `$defs`. */
export function definitionsSchema(iface: Interface): Schema {
  const strings = integerStringsFor(iface.name);
  const defs: Record<string, Schema> = {};
  for (const m of iface.members) if (m.kind === 'type') defs[m.name] = typeSchema(m.type, strings);
  return { $id: DEFS_ID, $defs: defs };
}
