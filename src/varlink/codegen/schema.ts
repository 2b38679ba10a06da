/**
 * IDL types → JSON Schema, for ajv to compile into standalone validators.
 *
 * The schemas follow sd-varlink's checks: structs admit no unknown keys, non-nullable fields
 * must be present and not null, enum values must be listed, `int` takes an integer or a string
 * of decimal digits (sd-varlink accepts strings for integers), `float` any number.
 */
import type { Interface, StructType, TypeExpr } from '../idl/ast.js';

export type Schema = Record<string, unknown>;

export const DEFS_ID = 'defs';

const INT_STRING = '^-?[0-9]+$';

export function typeSchema(t: TypeExpr): Schema {
  switch (t.kind) {
    case 'bool':
      return { type: 'boolean' };
    case 'int':
      return { anyOf: [{ type: 'integer' }, { type: 'string', pattern: INT_STRING }] };
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
      const inner = typeSchema(t.inner);
      if (typeof inner.type === 'string' && Object.keys(inner).length === 1) return { type: [inner.type, 'null'] };
      return { anyOf: [{ type: 'null' }, inner] };
    }
    case 'array':
      return { type: 'array', items: typeSchema(t.inner) };
    case 'map':
      return { type: 'object', additionalProperties: typeSchema(t.inner) };
    case 'struct':
      return structSchema(t);
    case 'enum':
      return { type: 'string', enum: t.values.map((v) => v.name) };
  }
}

export function structSchema(s: StructType): Schema {
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const f of s.fields) {
    properties[f.name] = typeSchema(f.type);
    if (f.type.kind !== 'nullable') required.push(f.name);
  }
  const schema: Schema = { type: 'object', properties, additionalProperties: false };
  if (required.length) schema.required = required;
  return schema;
}

/** The shared schema holding every named type of an interface under `$defs`. */
export function definitionsSchema(iface: Interface): Schema {
  const defs: Record<string, Schema> = {};
  for (const m of iface.members) if (m.kind === 'type') defs[m.name] = typeSchema(m.type);
  return { $id: DEFS_ID, $defs: defs };
}
