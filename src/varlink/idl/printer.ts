/**
 * Canonical text of an interface, in the layout sd-varlink's formatter produces (what systemd
 * services return from GetInterfaceDescription):
 *
 * - interface doc comment, `interface NAME`;
 * - members grouped as enum types, struct types, methods, errors (source order within a group),
 *   each after one blank line and its doc comment;
 * - a non-empty field or enum list is always broken over lines, one tab of indent per nesting
 *   level, one field per line, commas at line ends, field doc comments as `# text` lines above
 *   the field; nested anonymous structs and enums are broken the same way one level deeper;
 * - an empty list is `()`, no space between a member name and its `(`;
 * - a streaming method's `# [Supports 'more' flag]` / `# [Requires 'more' flag]` line comes last
 *   in its comment block;
 * - the text ends with exactly one line break.
 */
import type { EnumType, Interface, Member, StructType, TypeExpr } from './ast.js';
import { MORE_MARKER } from './parser.js';

export function formatInterface(iface: Interface): string {
  const out: string[] = [];
  pushDoc(out, iface.doc, '');
  out.push(`interface ${iface.name}\n`);
  for (const member of groupMembers(iface.members)) {
    out.push('\n');
    out.push(formatMember(member));
  }
  return out.join('');
}

/** Members in the printed order: enum types, struct types, methods, errors. */
export function groupMembers(members: readonly Member[]): Member[] {
  const rank = (m: Member): number =>
    m.kind === 'type' ? (m.type.kind === 'enum' ? 0 : 1) : m.kind === 'method' ? 2 : 3;
  return [0, 1, 2, 3].flatMap((r) => members.filter((m) => rank(m) === r));
}

function formatMember(member: Member): string {
  const out: string[] = [];
  switch (member.kind) {
    case 'type':
      pushDoc(out, member.doc, '');
      out.push(`type ${member.name}`, block(member.type, 0));
      break;
    case 'method': {
      const doc = member.more === 'none' ? member.doc : [...member.doc, MORE_MARKER[member.more]];
      pushDoc(out, doc, '');
      out.push(`method ${member.name}`, block(member.input, 0), ' -> ', block(member.output, 0));
      break;
    }
    case 'error':
      pushDoc(out, member.doc, '');
      out.push(`error ${member.name}`, block(member.type, 0));
      break;
  }
  out.push('\n');
  return out.join('');
}

/** `( … )` whose closing parenthesis sits at `level` tabs and whose entries sit one tab deeper. */
function block(t: StructType | EnumType, level: number): string {
  const entries: { name: string; doc: string[]; type?: TypeExpr }[] = t.kind === 'struct' ? t.fields : t.values;
  if (entries.length === 0) return '()';
  const inner = '\t'.repeat(level + 1);
  const out: string[] = ['(\n'];
  entries.forEach((entry, i) => {
    pushDoc(out, entry.doc, inner);
    out.push(inner, entry.name);
    if (entry.type) out.push(': ', typeText(entry.type, level + 1));
    out.push(i < entries.length - 1 ? ',\n' : '\n');
  });
  out.push('\t'.repeat(level), ')');
  return out.join('');
}

/** A field's type, multi-line for anonymous structs/enums (indented for a field at `level`). */
function typeText(t: TypeExpr, level: number): string {
  const [prefix, element] = splitPrefixes(t);
  if (element.kind === 'struct' || element.kind === 'enum') return prefix + block(element, level);
  return prefix + (element.kind === 'named' ? element.name : element.kind);
}

/** Single-line rendering of a type: `?[](a: int, b: (x, y))`, `[string]()`, `Foo`. */
export function formatType(t: TypeExpr): string {
  const [prefix, element] = splitPrefixes(t);
  switch (element.kind) {
    case 'struct':
      return `${prefix}(${element.fields.map((f) => `${f.name}: ${formatType(f.type)}`).join(', ')})`;
    case 'enum':
      return `${prefix}(${element.values.map((v) => v.name).join(', ')})`;
    case 'named':
      return prefix + element.name;
    default:
      return prefix + element.kind;
  }
}

type Element = Exclude<TypeExpr, { kind: 'nullable' | 'array' | 'map' }>;

/** Peels `?`, `[]`, `[string]` iteratively (prefix chains may be long). */
function splitPrefixes(t: TypeExpr): [string, Element] {
  let prefix = '';
  let cur = t;
  for (;;) {
    if (cur.kind === 'nullable') prefix += '?';
    else if (cur.kind === 'array') prefix += '[]';
    else if (cur.kind === 'map') prefix += '[string]';
    else return [prefix, cur];
    cur = cur.inner;
  }
}

function pushDoc(out: string[], doc: readonly string[], indent: string): void {
  for (const entry of doc) {
    for (const line of entry.split(/\r\n|[\n\r\u2028\u2029]/)) {
      out.push(indent, line === '' ? '#' : `# ${line}`, '\n');
    }
  }
}
