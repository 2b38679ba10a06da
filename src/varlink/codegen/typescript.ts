/**
 * IDL → TypeScript source: types for every declared type, parameters and results for every
 * method, an error class per error, and the interface descriptor that ties them to the
 * precompiled validators.
 */
import type { Field, Interface, StructType, TypeExpr } from '../idl/ast.js';
import { formatInterface } from '../idl/printer.js';
import { integerStringsFor } from './schema.js';

export function pascalName(interfaceName: string): string {
  return interfaceName
    .split(/[.-]/)
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

/**
 * How integers are spelled in the types being written: `number` in results, errors and the
 * parameters of interfaces whose decimal strings are converted before the handler runs; `WireInt`
 * in the parameters of systemd's interfaces, where any string passes the interface check and
 * the handler reads or refuses it; `Int` inside a named type that is used both ways.
 */
interface IntSpelling {
  int: string;
  /** Named types declared with an `Int` type parameter (see wireNamedTypes). */
  generic: ReadonlySet<string>;
}

const NUMBERS: IntSpelling = { int: 'number', generic: new Set() };

export function tsType(t: TypeExpr, indent: string, ints: IntSpelling = NUMBERS): string {
  switch (t.kind) {
    case 'bool':
      return 'boolean';
    case 'int':
      return ints.int;
    case 'float':
      return 'number';
    case 'string':
      return 'string';
    case 'object':
      return 'Record<string, unknown>';
    case 'any':
      return 'unknown';
    case 'named':
      return ints.generic.has(t.name) && ints.int !== 'number' ? `${t.name}<${ints.int}>` : t.name;
    case 'nullable':
      return `${wrap(tsType(t.inner, indent, ints))} | null`;
    case 'array':
      return `${wrap(tsType(t.inner, indent, ints))}[]`;
    case 'map':
      return `Record<string, ${tsType(t.inner, indent, ints)}>`;
    case 'struct':
      return structBody(t, indent, ints);
    case 'enum':
      return t.values.map((v) => `'${v.name}'`).join(' | ');
  }
}

function wrap(s: string): string {
  return /[|&]/.test(s) && !s.startsWith('{') ? `(${s})` : s;
}

function docComment(doc: string[], indent: string): string {
  if (doc.length === 0) return '';
  if (doc.length === 1) return `${indent}/** ${escapeDoc(doc[0]!)} */\n`;
  return `${indent}/**\n${doc.map((l) => `${indent} * ${escapeDoc(l)}`).join('\n')}\n${indent} */\n`;
}

function escapeDoc(s: string): string {
  return s.replace(/\*\//g, '*\\/');
}

function field(f: Field, indent: string, ints: IntSpelling): string {
  const optional = f.type.kind === 'nullable' ? '?' : '';
  return `${docComment(f.doc, indent)}${indent}${f.name}${optional}: ${tsType(f.type, indent, ints)};`;
}

function structBody(s: StructType, indent: string, ints: IntSpelling): string {
  if (s.fields.length === 0) return 'Record<string, never>';
  const inner = indent + '  ';
  return `{\n${s.fields.map((f) => field(f, inner, ints)).join('\n')}\n${indent}}`;
}

/**
 * A type alias (not an interface: an alias of an object type is assignable to
 * `Record<string, unknown>`, which code that walks a call's keys takes). `typeParameter` makes it
 * generic over the spelling of its integers.
 */
function declare(name: string, t: TypeExpr, doc: string[], ints: IntSpelling = NUMBERS, typeParameter = ''): string {
  const body = t.kind === 'struct' ? structBody(t, '', ints) : tsType(t, '', ints);
  return `${docComment(doc, '')}export type ${name}${typeParameter} = ${body};\n`;
}

type Resolve = (name: string) => TypeExpr | undefined;

function resolver(iface: Interface): Resolve {
  return (name) => {
    const decl = iface.members.find((m) => m.kind === 'type' && m.name === name);
    return decl?.kind === 'type' ? decl.type : undefined;
  };
}

/** The named types a method's parameters reach that hold integers somewhere inside. */
export function wireNamedTypes(iface: Interface): Set<string> {
  const resolve = resolver(iface);
  const holdsInt = (t: TypeExpr, seen: Set<string>): boolean => {
    switch (t.kind) {
      case 'int':
        return true;
      case 'nullable':
      case 'array':
      case 'map':
        return holdsInt(t.inner, seen);
      case 'struct':
        return t.fields.some((f) => holdsInt(f.type, seen));
      case 'named': {
        if (seen.has(t.name)) return false;
        const d = resolve(t.name);
        return d !== undefined && holdsInt(d, new Set([...seen, t.name]));
      }
      default:
        return false;
    }
  };
  const reached = new Set<string>();
  const visit = (t: TypeExpr): void => {
    if (t.kind === 'nullable' || t.kind === 'array' || t.kind === 'map') visit(t.inner);
    else if (t.kind === 'struct') t.fields.forEach((f) => visit(f.type));
    else if (t.kind === 'named' && !reached.has(t.name)) {
      reached.add(t.name);
      const d = resolve(t.name);
      if (d) visit(d);
    }
  };
  for (const m of iface.members) if (m.kind === 'method') visit(m.input);
  return new Set([...reached].filter((n) => holdsInt({ kind: 'named', name: n }, new Set())));
}

/**
 * Code converting integers sent as decimal strings (which sd-varlink accepts for `int`) into
 * numbers wherever they sit (struct fields, named types, array elements, map values), so handlers
 * see the types they declare. `target` is the expression holding a value of type `t`.
 */
export function coercion(t: TypeExpr, resolve: Resolve, target: string, depth = 0): string[] {
  if (depth > 8) return [];
  switch (t.kind) {
    case 'int':
      return [`if (typeof ${target} === 'string') ${target} = Number(${target});`];
    case 'named': {
      const d = resolve(t.name);
      return d ? coercion(d, resolve, target, depth + 1) : [];
    }
    case 'nullable': {
      const inner = coercion(t.inner, resolve, target, depth + 1);
      return inner.length && t.inner.kind !== 'int' ? [`if (${target} != null) { ${inner.join(' ')} }`] : inner;
    }
    case 'struct':
      return t.fields.flatMap((f) => coercion(f.type, resolve, `${target}.${f.name}`, depth + 1));
    case 'array': {
      const i = `i${depth}`;
      const inner = coercion(t.inner, resolve, `${target}[${i}]`, depth + 1);
      return inner.length ? [`for (let ${i} = 0; ${i} < ${target}.length; ${i}++) { ${inner.join(' ')} }`] : [];
    }
    case 'map': {
      const k = `k${depth}`;
      const inner = coercion(t.inner, resolve, `${target}[${k}]`, depth + 1);
      return inner.length ? [`for (const ${k} in ${target}) { ${inner.join(' ')} }`] : [];
    }
    default:
      return [];
  }
}

export function generateModule(iface: Interface, validatorsModule: string, varlinkImport: string): string {
  const exportName = pascalName(iface.name);
  const out: string[] = [];
  out.push(`// Generated by berth's Varlink code generator from the ${iface.name} interface. Do not edit.`);
  const wire = integerStringsFor(iface.name) === 'any';
  const generic = wire ? wireNamedTypes(iface) : new Set<string>();
  const inNamed: IntSpelling = { int: 'Int', generic };
  const inParameters: IntSpelling = wire ? { int: 'WireInt', generic } : NUMBERS;
  const body: string[] = [];
  for (const m of iface.members) {
    if (m.kind !== 'type') continue;
    if (generic.has(m.name)) body.push(declare(m.name, m.type, m.doc, inNamed, '<Int = number>'));
    else body.push(declare(m.name, m.type, m.doc));
  }
  const methodTypes: string[] = [];
  const methodEntries: string[] = [];
  const resolve = resolver(iface);
  for (const m of iface.members) {
    if (m.kind !== 'method') continue;
    body.push(declare(`${m.name}Parameters`, m.input, m.doc, inParameters));
    body.push(declare(`${m.name}Result`, m.output, []));
    methodTypes.push(`  ${m.name}: { parameters: ${m.name}Parameters; result: ${m.name}Result };`);
    const co = wire ? [] : coercion(m.input, resolve, 'p');
    const coerce = co.length ? `, coerce: (p: any) => { ${co.join(' ')} }` : '';
    methodEntries.push(`    ${m.name}: { name: '${m.name}', more: '${m.more}', validate: validators.${m.name}${coerce} },`);
  }
  const usesWireInt = body.some((b) => b.includes('WireInt'));
  // An interface without errors (io.systemd.Resolve.Hook) has no error classes to derive from VarlinkError.
  const usesError = iface.members.some((m) => m.kind === 'error');
  out.push(`import { defineInterface${usesError ? ', VarlinkError' : ''}${usesWireInt ? ', type WireInt' : ''} } from '${varlinkImport}';`);
  if (iface.members.some((m) => m.kind === 'method')) out.push(`import * as validators from '${validatorsModule}';`);
  out.push('');
  out.push(...body);
  const errorNames: string[] = [];
  for (const m of iface.members) {
    if (m.kind !== 'error') continue;
    errorNames.push(m.name);
    const full = `${iface.name}.${m.name}`;
    if (m.type.fields.length > 0) {
      out.push(declare(`${m.name}Parameters`, m.type, []));
      const allOptional = m.type.fields.every((f) => f.type.kind === 'nullable');
      const param = allOptional ? `parameters: ${m.name}Parameters = {}` : `parameters: ${m.name}Parameters`;
      out.push(
        `${docComment(m.doc, '')}export class ${m.name} extends VarlinkError {\n` +
          `  static readonly errorName = '${full}';\n` +
          `  declare readonly parameters: ${m.name}Parameters & Record<string, unknown>;\n` +
          `  constructor(${param}) {\n    super('${full}', parameters);\n  }\n}\n`,
      );
    } else {
      out.push(
        `${docComment(m.doc, '')}export class ${m.name} extends VarlinkError {\n` +
          `  static readonly errorName = '${full}';\n` +
          `  constructor() {\n    super('${full}');\n  }\n}\n`,
      );
    }
  }
  out.push(`export type ${exportName}Methods = {\n${methodTypes.join('\n')}\n};\n`);
  out.push(`export const ${exportName} = defineInterface<${exportName}Methods>({`);
  out.push(`  name: '${iface.name}',`);
  out.push(`  description: ${JSON.stringify(formatInterface(iface))},`);
  out.push(`  methods: {\n${methodEntries.join('\n')}\n  },`);
  out.push(`  errors: { ${errorNames.join(', ')} },`);
  out.push('});');
  return out.join('\n') + '\n';
}
