/**
 * Message generators for the fuzz scenario, derived from the interface ASTs: valid values for
 * every type, wrong-typed values for every field, and mutations of valid calls. Plus generators
 * of interface texts for the IDL parser. Everything is a fast-check arbitrary, sampled with a
 * seed so a run can be repeated.
 */
import fc from 'fast-check';
import type { Field, Interface, MethodDecl, StructType, TypeExpr } from '../../src/varlink/idl/ast.js';

export interface MethodInfo {
  iface: Interface;
  method: MethodDecl;
  /** `interface.Method` */
  full: string;
  /** Which socket serves it. */
  socket: 'machine' | 'userdb';
}

/** Resolves named types of an interface. */
function resolver(iface: Interface): (name: string) => TypeExpr {
  const types = new Map<string, TypeExpr>();
  for (const m of iface.members) if (m.kind === 'type') types.set(m.name, m.type);
  return (name) => types.get(name) ?? { kind: 'any' };
}

const KNOWN_STRINGS = [
  '', '.host', 'x', 'fz', 'container', 'vm', 'host', 'leader', 'all', 'no', 'yes', 'graceful', 'tty', 'shell', 'login',
  'io.systemd.Machine', 'io.berth.Machine', 'org.varlink.service', 'io.systemd.UserDatabase', '0123456789abcdef0123456789abcdef',
  'vu-fz-0', 'vg-fz-0', 'root', 'nobody', '..', '/', 'a/b', 'é', '\u0000', ' x', 'x'.repeat(300), 'img', 'img2',
];

// Regex arbitraries are costly to build: build them once.
const FZ_NAME = fc.stringMatching(/^fz[a-z0-9]{1,10}$/);
const MEMBER_NAME = fc.stringMatching(/^[A-Z][A-Za-z0-9]{0,8}$/);
const FIELD_NAME = fc.stringMatching(/^[a-z][A-Za-z0-9_]{0,8}$/);

/** Integers and near-integers that probe edges. */
const EDGE_INTS = [0, 1, -1, 2, 7, 9, 15, 28, 64, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 2 ** 63, 1e21];

export function validValue(t: TypeExpr, resolve: (n: string) => TypeExpr, depth = 0): fc.Arbitrary<unknown> {
  switch (t.kind) {
    case 'bool':
      return fc.boolean();
    case 'int':
      return fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.constantFrom(...EDGE_INTS), fc.integer());
    case 'float':
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
    case 'string':
      return fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...KNOWN_STRINGS) },
        { weight: 3, arbitrary: FZ_NAME },
        { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
      );
    case 'object':
      return fc.object({ maxDepth: 2, maxKeys: 4 });
    case 'any':
      return fc.jsonValue({ maxDepth: 2 });
    case 'named':
      return depth > 6 ? fc.constant({}) : validValue(resolve(t.name), resolve, depth + 1);
    case 'nullable':
      return fc.option(validValue(t.inner, resolve, depth + 1), { nil: null, freq: 3 });
    case 'array':
      return fc.array(validValue(t.inner, resolve, depth + 1), { maxLength: depth > 2 ? 2 : 6 });
    case 'map':
      return fc.dictionary(fc.string({ maxLength: 8 }), validValue(t.inner, resolve, depth + 1), { maxKeys: 4 });
    case 'enum':
      return fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...t.values.map((v) => v.name)) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });
    case 'struct':
      return structValue(t, resolve, depth + 1);
  }
}

function structValue(s: StructType, resolve: (n: string) => TypeExpr, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  const required: string[] = [];
  for (const f of s.fields) {
    model[f.name] = validValue(f.type, resolve, depth);
    if (f.type.kind !== 'nullable') required.push(f.name);
  }
  return fc.record(model, { requiredKeys: required }) as fc.Arbitrary<Record<string, unknown>>;
}

/** Values that are of the wrong type for `t`, unambiguously (no numeric strings for int, no null for nullable). */
export function wrongValues(t: TypeExpr, resolve: (n: string) => TypeExpr): unknown[] {
  const inner = t.kind === 'nullable' ? t.inner : t;
  const base = inner.kind === 'named' ? resolve(inner.name) : inner;
  switch (base.kind) {
    case 'bool':
      return ['true', 1, 0, {}, [], 'x'];
    case 'int':
      return ['x', true, {}, [], 0.5, 'one'];
    case 'float':
      return ['x', true, {}, []];
    case 'string':
      return [1, true, {}, [], 0.5];
    case 'object':
      return [1, 'x', true, []];
    case 'any':
      return [];
    case 'array':
      return [1, 'x', true, {}];
    case 'map':
      return [1, 'x', true, []];
    case 'enum':
      return ['no-such-value-x', 1, true, {}, []];
    case 'struct':
      return [1, 'x', true, []];
    default:
      return [];
  }
}

export function methodParams(info: MethodInfo): fc.Arbitrary<Record<string, unknown>> {
  return structValue(info.method.input, resolver(info.iface), 0);
}

/** Fields whose valid values are narrower than their IDL type says. */
const MINIMAL_BY_NAME: Record<string, unknown> = { class: 'container', service: 'io.systemd.Machine', mode: 'tty', name: 'fzmin' };

/** A minimal valid parameter object (required fields only, simple values) for the wrong-type calls. */
export function minimalParams(info: MethodInfo): Record<string, unknown> {
  const resolve = resolver(info.iface);
  const simple = (t: TypeExpr): unknown => {
    switch (t.kind) {
      case 'bool':
        return false;
      case 'int':
        return 1;
      case 'float':
        return 1.5;
      case 'string':
        return 'fzmin';
      case 'object':
        return {};
      case 'any':
        return 1;
      case 'named':
        return simple(resolve(t.name));
      case 'nullable':
        return null;
      case 'array':
        return [];
      case 'map':
        return {};
      case 'enum':
        return t.values[0]?.name ?? 'x';
      case 'struct': {
        const o: Record<string, unknown> = {};
        for (const f of t.fields) if (f.type.kind !== 'nullable') o[f.name] = MINIMAL_BY_NAME[f.name] ?? simple(f.type);
        return o;
      }
    }
  };
  return simple(info.method.input) as Record<string, unknown>;
}

export interface WrongTypeCase {
  info: MethodInfo;
  field: string;
  value: unknown;
  params: Record<string, unknown>;
}

/** Every field of every method, each with every wrong type; nested struct fields too (the top-level name is expected). */
export function wrongTypeCases(methods: MethodInfo[]): WrongTypeCase[] {
  const out: WrongTypeCase[] = [];
  for (const info of methods) {
    const resolve = resolver(info.iface);
    const base = minimalParams(info);
    for (const f of info.method.input.fields) {
      for (const value of wrongValues(f.type, resolve)) out.push({ info, field: f.name, value, params: { ...base, [f.name]: value } });
      // One level down: a wrong type inside a struct-typed field.
      const inner = f.type.kind === 'nullable' ? f.type.inner : f.type;
      const st = inner.kind === 'named' ? resolve(inner.name) : inner;
      if (st.kind === 'struct') {
        const good = minimalParams({ ...info, method: { ...info.method, input: st } });
        for (const sub of st.fields as Field[]) {
          for (const value of wrongValues(sub.type, resolve)) out.push({ info, field: f.name, value, params: { ...base, [f.name]: { ...good, [sub.name]: value } } });
        }
      }
    }
  }
  return out;
}

/** One fuzz message as it goes on the wire (without the trailing NUL, which the sender adds). */
export interface FuzzMessage {
  kind: 'mutated' | 'wrongtype' | 'bytes' | 'json' | 'huge' | 'nested' | 'flags';
  socket: 'machine' | 'userdb';
  data: Buffer;
  /** The method a structured message calls (for bookkeeping of names to clean up). */
  method?: string;
  params?: Record<string, unknown>;
}

type Mutation = (p: Record<string, unknown>) => fc.Arbitrary<Record<string, unknown>>;

const mutations: Mutation[] = [
  (p) => fc.constant(p),
  (p) => {
    const keys = Object.keys(p);
    if (keys.length === 0) return fc.constant(p);
    return fc.constantFrom(...keys).map((k) => {
      const q = { ...p };
      delete q[k];
      return q;
    });
  },
  (p) => fc.tuple(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => ({ ...p, [k]: v })),
  (p) => {
    const keys = Object.keys(p);
    if (keys.length === 0) return fc.constant(p);
    return fc.tuple(fc.constantFrom(...keys), fc.jsonValue({ maxDepth: 3 })).map(([k, v]) => ({ ...p, [k]: v }));
  },
];

function encodeCall(method: string, params: unknown, flags: Record<string, unknown>): Buffer {
  const m: Record<string, unknown> = { method };
  if (params !== undefined) m.parameters = params;
  Object.assign(m, flags);
  return Buffer.from(JSON.stringify(m));
}

const flagArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 3, arbitrary: fc.constant({ more: true }) },
  { weight: 2, arbitrary: fc.constant({ oneway: true }) },
  { weight: 1, arbitrary: fc.constant({ upgrade: true }) },
  { weight: 1, arbitrary: fc.record({ more: fc.jsonValue({ maxDepth: 1 }), oneway: fc.boolean(), upgrade: fc.boolean() }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }) },
);

function methodNameArb(methods: MethodInfo[]): fc.Arbitrary<[MethodInfo, string]> {
  return fc.constantFrom(...methods).chain((info) =>
    fc.oneof(
      { weight: 12, arbitrary: fc.constant<[MethodInfo, string]>([info, info.full]) },
      { weight: 1, arbitrary: fc.constant<[MethodInfo, string]>([info, info.full.toLowerCase()]) },
      { weight: 1, arbitrary: fc.nat({ max: info.full.length }).map((n): [MethodInfo, string] => [info, info.full.slice(0, n)]) },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s): [MethodInfo, string] => [info, `${info.iface.name}.${s}`]) },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s): [MethodInfo, string] => [info, s]) },
    ),
  );
}

export function mutatedCallArb(methods: MethodInfo[]): fc.Arbitrary<FuzzMessage> {
  const params = new Map(methods.map((m) => [m, methodParams(m)]));
  return methodNameArb(methods).chain(([info, name]) =>
    params
      .get(info)!
      .chain((p) => fc.constantFrom(...mutations).chain((mut) => mut(p)))
      .chain((params) =>
        flagArb.map(
          (flags): FuzzMessage => ({ kind: 'mutated', socket: info.socket, method: name, params, data: encodeCall(name, params, flags) }),
        ),
      ),
  );
}

export function randomBytesArb(): fc.Arbitrary<FuzzMessage> {
  return fc
    .oneof(
      fc.uint8Array({ maxLength: 2048 }),
      // Bytes that look like the start of a call, then garbage.
      fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.concat([Buffer.from('{"method":"io.systemd.Machine.List","parameters":'), b])),
      fc.string({ unit: 'binary', maxLength: 512 }).map((s) => Buffer.from(s)),
    )
    .chain((b) => fc.constantFrom<'machine' | 'userdb'>('machine', 'userdb').map((socket): FuzzMessage => ({ kind: 'bytes', socket, data: Buffer.from(b) })));
}

export function randomJsonArb(methods: MethodInfo[]): fc.Arbitrary<FuzzMessage> {
  return fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map((v): FuzzMessage => ({ kind: 'json', socket: 'machine', data: Buffer.from(JSON.stringify(v) ?? 'null') })),
    fc
      .tuple(fc.constantFrom(...methods), fc.jsonValue({ maxDepth: 3 }), flagArb)
      .map(([info, params, flags]): FuzzMessage => ({ kind: 'json', socket: info.socket, method: info.full, data: encodeCall(info.full, params, flags) })),
  );
}

/** Deeply nested JSON in a parameter, or as the message. */
export function nestedArb(methods: MethodInfo[]): fc.Arbitrary<FuzzMessage> {
  return fc
    .tuple(
      fc.constantFrom(...methods),
      fc.oneof(fc.integer({ min: 10, max: 5000 }), fc.integer({ min: 5000, max: 300_000 })),
      fc.constantFrom('[', '{"a":'),
      fc.boolean(),
      fc.nat(),
    )
    .map(([info, depth, open, asParam, pick]): FuzzMessage => {
      const close = open === '[' ? ']' : '}';
      const nest = open.repeat(depth) + (open === '[' ? '1' : '1') + close.repeat(depth);
      const field = info.method.input.fields[pick % Math.max(1, info.method.input.fields.length)]?.name ?? 'x';
      const text = asParam ? `{"method":"${info.full}","parameters":{"${field}":${nest}}}` : nest;
      return { kind: 'nested', socket: info.socket, method: info.full, data: Buffer.from(text) };
    });
}

/** Big messages: near, at and above the 16 MiB limit, long strings and long arrays in real fields. */
export function hugeArb(methods: MethodInfo[], maxBytes = (16 << 20) + 100): fc.Arbitrary<FuzzMessage> {
  const sizes = [64 * 1024, 1 << 20, 8 << 20, (16 << 20) - 100, (16 << 20) + 100].filter((n) => n <= maxBytes);
  return fc
    .tuple(fc.constantFrom(...sizes), fc.constantFrom(...methods), fc.boolean(), fc.nat())
    .map(([size, info, asArray, pick]) => [info, size, asArray, pick] as const)
    .map(([info, size, asArray, pick]): FuzzMessage => {
      const field = info.method.input.fields[pick % Math.max(1, info.method.input.fields.length)]?.name ?? 'x';
      const value = asArray ? '[' + '1,'.repeat(Math.floor(size / 2)) + '1]' : JSON.stringify('y'.repeat(size));
      return { kind: 'huge', socket: info.socket, method: info.full, data: Buffer.from(`{"method":"${info.full}","parameters":{"${field}":${value}}}`) };
    });
}

// ---------------------------------------------------------------------------------------------
// interface texts for the parser

const IDL_TOKENS = [
  'interface', 'type', 'method', 'error', '(', ')', '->', ':', ',', '?', '[]', '[string]', 'int', 'float', 'bool', 'string',
  'object', 'any', '#', '\n', ' ', '\t', '\r', 'a.b', 'Foo', 'foo', '_', '-', '.', '# [Supports \'more\' flag]', '"', '\\', '\u00e9',
  '\u0000', '\uffff', '\ud800', '9', 'x'.repeat(1000),
];

function nameArb(kind: 'member' | 'field'): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 5, arbitrary: kind === 'member' ? MEMBER_NAME : FIELD_NAME },
    { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  );
}

function typeTextArb(names: string[]): fc.Arbitrary<string> {
  const { t } = fc.letrec<{ t: string }>((tie) => ({
    t: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom('int', 'float', 'bool', 'string', 'object', 'any', ...(names.length ? names : ['Foo'])),
      tie('t').map((x) => `?${x}`),
      tie('t').map((x) => `[]${x}`),
      tie('t').map((x) => `[string]${x}`),
      fc.array(fc.tuple(nameArb('field'), tie('t')), { maxLength: 3 }).map((fs) => `(${fs.map(([n, x]) => `${n}: ${x}`).join(', ')})`),
      fc.array(nameArb('field'), { minLength: 1, maxLength: 4 }).map((vs) => `(${vs.join(', ')})`),
    ),
  }));
  return t;
}

/** An interface text built from the grammar, with random names and types (sometimes invalid). */
function grammarIdlArb(): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.oneof(fc.constantFrom('io.fz.Test', 'a.b', 'org.x-y.z'), fc.string({ maxLength: 12 })),
      fc.array(nameArb('member'), { minLength: 1, maxLength: 5 }),
    )
    .chain(([iname, names]) =>
      fc
        .array(
          fc.oneof(
            fc.tuple(fc.constantFrom(...names), typeTextArb(names)).map(([n, t]) => `type ${n} ${t.startsWith('(') ? t : `(${t})`}`),
            fc
              .tuple(fc.constantFrom(...names), typeTextArb(names), typeTextArb(names), fc.constantFrom('', "# [Supports 'more' flag]\n", "# [Requires 'more' flag]\n"))
              .map(([n, a, b, doc]) => `${doc}method ${n}${a.startsWith('(') ? a : `(x: ${a})`} -> ${b.startsWith('(') ? b : `(y: ${b})`}`),
            fc.tuple(fc.constantFrom(...names), typeTextArb(names)).map(([n, t]) => `error ${n} ${t.startsWith('(') ? t : '()'}`),
            fc.string({ maxLength: 20 }).map((c) => `# ${c}`),
          ),
          { maxLength: 8 },
        )
        .map((members) => `interface ${iname}\n\n${members.join('\n\n')}\n`),
    );
}

/** Edits of real interface texts: deletions, insertions of tokens, duplications, truncation. */
function mutatedIdlArb(texts: string[]): fc.Arbitrary<string> {
  const edit = fc.oneof(
    fc.tuple(fc.constant('del' as const), fc.nat(), fc.nat({ max: 40 }), fc.constant('')),
    fc.tuple(fc.constant('ins' as const), fc.nat(), fc.constant(0), fc.constantFrom(...IDL_TOKENS)),
    fc.tuple(fc.constant('ins' as const), fc.nat(), fc.constant(0), fc.string({ maxLength: 4 })),
    fc.tuple(fc.constant('dup' as const), fc.nat(), fc.nat({ max: 200 }), fc.constant('')),
    fc.tuple(fc.constant('cut' as const), fc.nat(), fc.constant(0), fc.constant('')),
  );
  return fc.tuple(fc.constantFrom(...texts), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([text, edits]) => {
    let s = text;
    for (const [op, at, len, tok] of edits) {
      const i = s.length === 0 ? 0 : at % (s.length + 1);
      if (op === 'del') s = s.slice(0, i) + s.slice(i + len);
      else if (op === 'ins') s = s.slice(0, i) + tok + s.slice(i);
      else if (op === 'dup') s = s.slice(0, i) + s.slice(i, i + len) + s.slice(i);
      else s = s.slice(0, i);
    }
    return s;
  });
}

/** Pathological nesting and sizes. */
function deepIdlArb(): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom('?[]', '[]', '[string]', '?', '(a: ', '[string]?'), fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 200, max: 100_000 })))
    .map(([piece, n]) => {
      const open = piece.repeat(n);
      const close = piece === '(a: ' ? ')'.repeat(n) : '';
      return `interface a.b\ntype T (f: ${open}int${close})\nmethod M() -> ()\n`;
    });
}

export function idlTextArb(realTexts: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: mutatedIdlArb(realTexts) },
    { weight: 4, arbitrary: grammarIdlArb() },
    { weight: 1, arbitrary: deepIdlArb() },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...IDL_TOKENS), { maxLength: 60 }).map((t) => t.join(' ')) },
  );
}
