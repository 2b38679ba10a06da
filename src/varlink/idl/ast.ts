/**
 * The abstract syntax of a Varlink interface definition.
 *
 * A parsed interface keeps everything a formatter needs to print it back (doc comments, the
 * order of members as written) and everything a validator or code generator needs (resolved
 * type references). It is plain data: no classes, so it can be serialised into generated code.
 */

/** A type expression as written in a field: `?[]Foo`, `[string]()`, `(a: int)`, `(x, y)`. */
export type TypeExpr =
  | { kind: 'bool' }
  | { kind: 'int' }
  | { kind: 'float' }
  | { kind: 'string' }
  | { kind: 'object' }
  | { kind: 'any' }
  /** A reference to a `type` declared in the same interface. */
  | { kind: 'named'; name: string }
  | { kind: 'nullable'; inner: TypeExpr }
  | { kind: 'array'; inner: TypeExpr }
  | { kind: 'map'; inner: TypeExpr }
  | StructType
  | EnumType;

export interface Field {
  name: string;
  type: TypeExpr;
  /** Comment lines directly above the field, without the leading `#` and one following space. */
  doc: string[];
}

export interface StructType {
  kind: 'struct';
  fields: Field[];
}

export interface EnumValue {
  name: string;
  doc: string[];
}

export interface EnumType {
  kind: 'enum';
  values: EnumValue[];
}

/** Whether a method is marked as streaming with the `# [Supports 'more' flag]` comment convention. */
export type MoreMode = 'none' | 'supports' | 'requires';

export interface TypeDecl {
  kind: 'type';
  name: string;
  type: StructType | EnumType;
  doc: string[];
}

export interface MethodDecl {
  kind: 'method';
  name: string;
  input: StructType;
  output: StructType;
  doc: string[];
  /** Derived from a `[Supports 'more' flag]` / `[Requires 'more' flag]` line in the doc comment. */
  more: MoreMode;
}

export interface ErrorDecl {
  kind: 'error';
  name: string;
  type: StructType;
  doc: string[];
}

export type Member = TypeDecl | MethodDecl | ErrorDecl;

export interface Interface {
  name: string;
  doc: string[];
  /** Members in source order. */
  members: Member[];
}

/** A position in the source text; both 1-based. */
export interface Position {
  line: number;
  column: number;
}

/** Raised for syntax errors and for semantic problems (duplicates, unresolved types, ...). */
export class IdlError extends Error {
  constructor(
    readonly reason: string,
    readonly position: Position,
    readonly file?: string,
  ) {
    super(`${file ?? '<input>'}:${position.line}:${position.column}: ${reason}`);
    this.name = 'IdlError';
  }
}
