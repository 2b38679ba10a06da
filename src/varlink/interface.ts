/**
 * Descriptors: what generated code hands to the server and the client.
 *
 * The generator (src/varlink/codegen) emits one descriptor per interface, carrying the canonical
 * IDL text, one entry per method (its streaming mode and a precompiled parameter validator) and
 * the interface's error classes. The type parameter `M` maps method names to their parameter and
 * result types, so `server.implement()` and `client.call()` are fully typed.
 */
import type { MoreMode } from './idl/ast.js';
import type { VarlinkError } from './errors.js';

/** A precompiled validator, as ajv's standalone code exports it. */
export interface ValidateFunction {
  (data: unknown): boolean;
  errors?: ValidationIssue[] | null;
}

/** The subset of an ajv error object that the server reads. */
export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
}

export interface MethodDescriptor {
  /** Short name, e.g. `Register`. */
  readonly name: string;
  readonly more: MoreMode;
  readonly validate: ValidateFunction;
  /** Turns integers that arrived as decimal strings into numbers (after validation). */
  readonly coerce?: (parameters: any) => void;
}

/**
 * An integer parameter of systemd's interfaces as the handler receives it: where the IDL says
 * `int`, their interface check (like sd-varlink's) also lets any string through, and each method
 * reads it (machined takes "0x10" in some fields) or refuses it. Other interfaces accept decimal
 * strings only, and those are converted to numbers before the handler runs.
 */
export type WireInt = number | string;

export interface MethodTypes {
  parameters: object;
  result: object;
}

export type MethodMap = Record<string, MethodTypes>;

export interface InterfaceDescriptor<M extends MethodMap = MethodMap> {
  readonly name: string;
  /** The interface in canonical IDL form, as GetInterfaceDescription returns it. */
  readonly description: string;
  readonly methods: { readonly [K in keyof M]: MethodDescriptor };
  /** Error classes by short name; used by the client to raise typed errors. */
  readonly errors: Readonly<Record<string, new (parameters?: any) => VarlinkError>>;
  /** Phantom field carrying the method types; never set at run time. */
  readonly __types?: M;
}

export function defineInterface<M extends MethodMap>(d: Omit<InterfaceDescriptor<M>, '__types'>): InterfaceDescriptor<M> {
  return d as InterfaceDescriptor<M>;
}
