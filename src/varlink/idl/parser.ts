/**
 * Recursive-descent parser for Varlink interface definitions (varlink.org grammar, UAPI.20 `any`).
 *
 * Accepts the superset every peer accepts (recursive type prefixes, keywords as field names,
 * one-line declarations) and refuses, with the position of the offending token, what no strict
 * peer accepts: duplicates, unresolved or non-type references, invalid names, `??`, trailing
 * commas, empty named types, nesting deeper than 64. Recursion is bounded by that limit, so
 * hostile input fails with an IdlError and never with a stack overflow.
 */
import {
  IdlError,
  type EnumType,
  type EnumValue,
  type Field,
  type Interface,
  type Member,
  type MoreMode,
  type Position,
  type StructType,
  type TypeExpr,
} from './ast.js';
import { Lexer, describe, type Token } from './lexer.js';

/** Struct/enum nesting limit (sd-varlink's DEPTH_MAX); also the limit of `?`/`[]`/`[string]` prefixes on one type. */
export const MAX_DEPTH = 64;

export const INTERFACE_NAME = /^[A-Za-z](-*[A-Za-z0-9])*(\.[A-Za-z0-9](-*[A-Za-z0-9])*)+$/;
export const MEMBER_NAME = /^[A-Z][A-Za-z0-9]*$/;
export const FIELD_NAME = /^[A-Za-z](_?[A-Za-z0-9])*$/;

const PRIMITIVES = new Set(['bool', 'int', 'float', 'string', 'object', 'any']);
/** The doc comment lines (after `# `) that mark a streaming method. */
export const MORE_MARKER = {
  supports: "[Supports 'more' flag]",
  requires: "[Requires 'more' flag]",
} as const;
const MORE_MARKERS = new Map<string, MoreMode>([
  [MORE_MARKER.supports, 'supports'],
  [MORE_MARKER.requires, 'requires'],
]);

/**
 * Parses the text of one interface definition.
 * @param file shown in error messages (`file:line:column: reason`)
 * @throws IdlError on any syntax or consistency problem
 */
export function parseInterface(text: string, file?: string): Interface {
  return new Parser(text, file).parse();
}

interface Reference {
  name: string;
  at: Position;
}

class Parser {
  private readonly lex: Lexer;
  private readonly references: Reference[] = [];

  constructor(text: string, private readonly file?: string) {
    this.lex = new Lexer(text, file);
  }

  parse(): Interface {
    const keyword = this.lex.next();
    if (keyword.kind !== 'word' || keyword.text !== 'interface') {
      this.fail(`expected 'interface' at the start of the definition, found ${describe(keyword)}`, keyword);
    }
    const name = this.lex.next();
    if (name.kind !== 'word') this.fail(`expected an interface name after 'interface', found ${describe(name)}`, name);
    if (!INTERFACE_NAME.test(name.text)) {
      this.fail(
        `invalid interface name '${name.text}' (dot-separated labels of letters, digits and inner '-', ` +
          'at least two labels, first character a letter)',
        name,
      );
    }
    const iface: Interface = { name: name.text, doc: keyword.doc, members: [] };
    const seen = new Map<string, Member>();
    for (;;) {
      const t = this.lex.next();
      if (t.kind === 'eof') break;
      const member = this.parseMember(t, seen);
      seen.set(member.name, member);
      iface.members.push(member);
    }
    this.resolve(seen);
    return iface;
  }

  private parseMember(keyword: Token, seen: Map<string, Member>): Member {
    if (keyword.kind !== 'word' || !['type', 'method', 'error'].includes(keyword.text)) {
      this.fail(`expected 'type', 'method' or 'error', found ${describe(keyword)}`, keyword);
    }
    const kind = keyword.text as 'type' | 'method' | 'error';
    const nameTok = this.lex.next();
    if (nameTok.kind !== 'word') this.fail(`expected a ${kind} name after '${kind}', found ${describe(nameTok)}`, nameTok);
    const name = nameTok.text;
    if (!MEMBER_NAME.test(name)) {
      this.fail(`invalid ${kind} name '${name}' (an uppercase letter, then letters and digits)`, nameTok);
    }
    const previous = seen.get(name);
    if (previous) this.fail(`duplicate member name '${name}' (already declared as ${article(previous.kind)})`, nameTok);
    const doc = keyword.doc;

    if (kind === 'type') {
      const open = this.lex.peek();
      const type = this.parseParens(1, `type '${name}'`);
      if (type.kind === 'struct' && type.fields.length === 0) {
        this.fail(`type '${name}' is empty: '()' is ambiguous between an empty struct and an enum`, open);
      }
      return { kind: 'type', name, type, doc };
    }
    if (kind === 'error') {
      const type = this.parseStructOnly(`error '${name}'`);
      return { kind: 'error', name, type, doc };
    }
    const input = this.parseStructOnly(`method '${name}' input`);
    const arrow = this.lex.next();
    if (arrow.kind !== '->') this.fail(`expected '->' after the input of method '${name}', found ${describe(arrow)}`, arrow);
    const output = this.parseStructOnly(`method '${name}' output`);
    const { doc: methodDoc, more } = extractMore(doc);
    return { kind: 'method', name, input, output, doc: methodDoc, more };
  }

  private parseStructOnly(what: string): StructType {
    const open = this.lex.peek();
    const t = this.parseParens(1, what);
    if (t.kind !== 'struct') this.fail(`${what} must be a struct of fields, not an enum`, open);
    return t;
  }

  /** Parses `( … )` as a struct (`name: type, …`), an enum (`name, …`) or `()` (empty struct). */
  private parseParens(depth: number, what: string): StructType | EnumType {
    const open = this.lex.next();
    if (open.kind !== '(') this.fail(`expected '(' to start ${what}, found ${describe(open)}`, open);
    if (depth > MAX_DEPTH) this.fail(`struct/enum nesting deeper than ${MAX_DEPTH} levels`, open);
    if (this.lex.peek().kind === ')') {
      this.lex.next();
      return { kind: 'struct', fields: [] };
    }
    const first = this.fieldName(what);
    const after = this.lex.peek();
    if (after.kind === ':') return this.parseStructRest(first, depth);
    if (after.kind !== ',' && after.kind !== ')') {
      // Neither an enum (`a,` / `a)`) nor a struct: most likely a forgotten colon.
      this.fail(`expected ':' after field name '${first.text}', found ${describe(after)}`, after);
    }
    return this.parseEnumRest(first);
  }

  private parseStructRest(first: Token, depth: number): StructType {
    const fields: Field[] = [];
    const names = new Set<string>();
    let nameTok = first;
    for (;;) {
      if (names.has(nameTok.text)) this.fail(`duplicate field name '${nameTok.text}'`, nameTok);
      names.add(nameTok.text);
      const colon = this.lex.next();
      if (colon.kind !== ':') {
        this.fail(`expected ':' after field name '${nameTok.text}', found ${describe(colon)}`, colon);
      }
      const type = this.parseType(depth);
      fields.push({ name: nameTok.text, type, doc: nameTok.doc });
      const sep = this.lex.next();
      if (sep.kind === ')') return { kind: 'struct', fields };
      if (sep.kind !== ',') {
        this.fail(`expected ',' or ')' after field '${nameTok.text}', found ${describe(sep)}`, sep);
      }
      nameTok = this.fieldName('struct');
    }
  }

  private parseEnumRest(first: Token): EnumType {
    const values: EnumValue[] = [];
    const names = new Set<string>();
    let nameTok = first;
    for (;;) {
      if (names.has(nameTok.text)) this.fail(`duplicate enum value '${nameTok.text}'`, nameTok);
      names.add(nameTok.text);
      values.push({ name: nameTok.text, doc: nameTok.doc });
      const sep = this.lex.next();
      if (sep.kind === ')') return { kind: 'enum', values };
      if (sep.kind === ':') {
        this.fail(`unexpected ':' after enum value '${nameTok.text}' (enum values and struct fields cannot be mixed)`, sep);
      }
      if (sep.kind !== ',') {
        this.fail(`expected ',' or ')' after enum value '${nameTok.text}', found ${describe(sep)}`, sep);
      }
      nameTok = this.fieldName('enum');
    }
  }

  /** Reads a field name or enum value (keywords are allowed); refuses a trailing comma. */
  private fieldName(what: string): Token {
    const t = this.lex.next();
    if (t.kind === ')') this.fail(`trailing comma in ${what}`, t);
    if (t.kind !== 'word') this.fail(`expected a field name in ${what}, found ${describe(t)}`, t);
    if (!FIELD_NAME.test(t.text)) {
      this.fail(`invalid field name '${t.text}' (a letter, then letters and digits, '_' only between them)`, t);
    }
    return t;
  }

  /** A type: a chain of `?`, `[]`, `[string]` prefixes (read in a loop), then an element type. */
  private parseType(depth: number): TypeExpr {
    const prefixes: Token[] = [];
    for (;;) {
      const t = this.lex.peek();
      if (t.kind !== '?' && t.kind !== '[]' && t.kind !== '[string]') break;
      if (t.kind === '?' && prefixes.at(-1)?.kind === '?') this.fail("'??': a type can be made nullable only once", t);
      if (prefixes.length >= MAX_DEPTH) this.fail(`more than ${MAX_DEPTH} type prefixes`, t);
      prefixes.push(this.lex.next());
    }
    const t = this.lex.peek();
    let type: TypeExpr;
    if (t.kind === '(') {
      type = this.parseParens(depth + 1, 'an anonymous struct or enum');
    } else if (t.kind === 'word') {
      this.lex.next();
      if (PRIMITIVES.has(t.text)) {
        type = { kind: t.text as 'bool' | 'int' | 'float' | 'string' | 'object' | 'any' };
      } else if (MEMBER_NAME.test(t.text)) {
        this.references.push({ name: t.text, at: { line: t.line, column: t.column } });
        type = { kind: 'named', name: t.text };
      } else {
        this.fail(
          `unknown type name '${t.text}' (expected bool, int, float, string, object, any, ` +
            'a type name starting with an uppercase letter, or a parenthesised struct or enum)',
          t,
        );
      }
    } else {
      this.fail(`expected a type, found ${describe(t)}`, t);
    }
    for (let i = prefixes.length - 1; i >= 0; i--) {
      const k = (prefixes[i] as Token).kind;
      type = k === '?' ? { kind: 'nullable', inner: type } : k === '[]' ? { kind: 'array', inner: type } : { kind: 'map', inner: type };
    }
    return type;
  }

  private resolve(members: Map<string, Member>): void {
    for (const ref of this.references) {
      const target = members.get(ref.name);
      if (!target) this.fail(`unresolved type '${ref.name}' (no 'type ${ref.name}' in this interface)`, ref.at);
      if (target.kind !== 'type') this.fail(`'${ref.name}' is ${article(target.kind)}, not a type`, ref.at);
    }
  }

  private fail(reason: string, at: Position): never {
    throw new IdlError(reason, { line: at.line, column: at.column }, this.file);
  }
}

function article(kind: Member['kind']): string {
  return kind === 'error' ? 'an error' : `a ${kind}`;
}

/** Separates the streaming marker lines from a method's doc comment. */
function extractMore(doc: string[]): { doc: string[]; more: MoreMode } {
  let more: MoreMode = 'none';
  const rest: string[] = [];
  for (const line of doc) {
    const mode = MORE_MARKERS.get(line.trim());
    if (mode === undefined) rest.push(line);
    else if (more !== 'requires') more = mode;
  }
  return { doc: rest, more };
}
