import { describe, it, expect } from 'vitest';
import { IdlError, parseInterface, type Interface, type TypeExpr } from '../../../src/varlink/idl/index.js';

/** The IdlError thrown by parsing `text` (fails the test if parsing succeeds or throws something else). */
function idlError(text: string, file?: string): IdlError {
  try {
    parseInterface(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(IdlError);
    return e as IdlError;
  }
  throw new Error(`expected an IdlError for:\n${text}`);
}

function fieldType(iface: Interface, method = 'M', field = 'x'): TypeExpr {
  const m = iface.members.find((x) => x.name === method);
  if (m?.kind !== 'method') throw new Error(`no method ${method}`);
  const f = m.input.fields.find((x) => x.name === field);
  if (!f) throw new Error(`no field ${field}`);
  return f.type;
}

describe('parseInterface: grammar', () => {
  it('parses a minimal interface', () => {
    expect(parseInterface('interface org.example.test\nmethod Ping() -> ()\n')).toEqual({
      name: 'org.example.test',
      doc: [],
      members: [
        {
          kind: 'method',
          name: 'Ping',
          input: { kind: 'struct', fields: [] },
          output: { kind: 'struct', fields: [] },
          doc: [],
          more: 'none',
        },
      ],
    });
  });

  it('accepts a one-line interface and an interface without members', () => {
    expect(parseInterface('interface x.y method M() -> ()').members.map((m) => m.name)).toEqual(['M']);
    expect(parseInterface('interface x.y').members).toEqual([]);
  });

  it('accepts every listed whitespace and line break, and comments wherever whitespace may be', () => {
    const ws = ' \t\u00a0\ufeff\u1680\u180e\u2000\u2005\u200a\u202f\u205f\u3000';
    const text =
      `\ufeff${ws}interface${ws}a.b\r\n` +
      `method${ws}M${ws}( # c1\r` +
      `a${ws}:${ws}# c2\u2028int${ws},\u2029b # c3\n: # c4\n ?string ) # c5\n -> # c6\n ( ) # end`;
    const iface = parseInterface(text);
    expect(iface.name).toBe('a.b');
    const m = iface.members[0];
    expect(m?.kind === 'method' && m.input.fields.map((f) => [f.name, f.type.kind])).toEqual([
      ['a', 'int'],
      ['b', 'nullable'],
    ]);
  });

  it('reads keywords as field names and enum values', () => {
    const iface = parseInterface(
      'interface a.b\ntype E (type, method, error, interface, bool, any)\n' +
        'method M(type: string, method: string, bool: bool, object: object, any: any, error: E) -> ()',
    );
    expect(fieldType(iface, 'M', 'type')).toEqual({ kind: 'string' });
    expect(fieldType(iface, 'M', 'any')).toEqual({ kind: 'any' });
    expect(fieldType(iface, 'M', 'error')).toEqual({ kind: 'named', name: 'E' });
  });

  it('reads () as an empty struct, [string]() as a string set, (a, b) as an enum', () => {
    const iface = parseInterface('interface a.b\nmethod M(x: [string](), y: (), z: (a, b)) -> ()');
    expect(fieldType(iface, 'M', 'x')).toEqual({ kind: 'map', inner: { kind: 'struct', fields: [] } });
    expect(fieldType(iface, 'M', 'y')).toEqual({ kind: 'struct', fields: [] });
    expect(fieldType(iface, 'M', 'z')).toEqual({
      kind: 'enum',
      values: [
        { name: 'a', doc: [] },
        { name: 'b', doc: [] },
      ],
    });
  });

  it('reads recursive type prefixes', () => {
    const iface = parseInterface('interface a.b\nmethod M(x: ?[]?[string](a, b), y: [][]int, z: [string]?[]float) -> ()');
    expect(fieldType(iface, 'M', 'x')).toEqual({
      kind: 'nullable',
      inner: {
        kind: 'array',
        inner: {
          kind: 'nullable',
          inner: {
            kind: 'map',
            inner: { kind: 'enum', values: [{ name: 'a', doc: [] }, { name: 'b', doc: [] }] },
          },
        },
      },
    });
    expect(fieldType(iface, 'M', 'y')).toEqual({ kind: 'array', inner: { kind: 'array', inner: { kind: 'int' } } });
    expect(fieldType(iface, 'M', 'z')).toEqual({
      kind: 'map',
      inner: { kind: 'nullable', inner: { kind: 'array', inner: { kind: 'float' } } },
    });
  });

  it('resolves types referenced before their declaration and recursive types', () => {
    const iface = parseInterface('interface a.b\nmethod M(x: ?T) -> ()\ntype T (next: ?T, v: int)');
    expect(fieldType(iface)).toEqual({ kind: 'nullable', inner: { kind: 'named', name: 'T' } });
  });

  it('accepts interface names with digits, dashes and uppercase labels', () => {
    for (const name of ['io.systemd.Resolve', 'org.varlink.service', 'a-b.c--d.e9', 'x.1']) {
      expect(parseInterface(`interface ${name}\n`).name).toBe(name);
    }
  });
});

describe('parseInterface: doc comments', () => {
  const text = [
    '# Interface doc',
    '#   indented',
    '#nospace',
    '#',
    'interface a.b',
    '',
    '# Type doc',
    'type T (',
    '\t# field doc',
    '\tf: (',
    '\t\t# nested doc',
    '\t\tg: int',
    '\t),',
    '\t# enum doc',
    '\te: (',
    '\t\t# value doc',
    '\t\tv1, v2',
    '\t)',
    ')',
    '',
    '# Streams',
    "# [Supports 'more' flag]",
    '# after the marker',
    'method S() -> ()',
    '',
    "#[Requires 'more' flag]",
    'method R() -> ()',
    '# an error',
    'error E(a: int # trailing, dropped',
    ')',
  ].join('\n');
  const iface = parseInterface(text);

  it('attaches comments to interface, member, field and enum value, stripping "#" and one space', () => {
    expect(iface.doc).toEqual(['Interface doc', '  indented', 'nospace', '']);
    const t = iface.members[0];
    if (t?.kind !== 'type' || t.type.kind !== 'struct') throw new Error('T');
    expect(t.doc).toEqual(['Type doc']);
    const [f, e] = t.type.fields;
    expect(f?.doc).toEqual(['field doc']);
    expect(f?.type.kind === 'struct' && f.type.fields[0]?.doc).toEqual(['nested doc']);
    expect(e?.doc).toEqual(['enum doc']);
    expect(e?.type.kind === 'enum' && e.type.values).toEqual([
      { name: 'v1', doc: ['value doc'] },
      { name: 'v2', doc: [] },
    ]);
  });

  it("turns the 'more' marker lines into `more` and removes them from doc", () => {
    const [s, r] = iface.members.filter((m) => m.kind === 'method');
    expect(s).toMatchObject({ name: 'S', more: 'supports', doc: ['Streams', 'after the marker'] });
    expect(r).toMatchObject({ name: 'R', more: 'requires', doc: [] });
  });

  it('drops comments that precede no declaration', () => {
    const e = iface.members[3];
    expect(e).toMatchObject({ kind: 'error', name: 'E', doc: ['an error'] });
    expect(e?.kind === 'error' && e.type.fields[0]?.doc).toEqual([]);
  });
});

describe('parseInterface: errors carry line and column', () => {
  const cases: [string, string, number, number, RegExp][] = [
    ['trailing comma', 'interface a.b\nmethod M(a: int,) -> ()', 2, 17, /trailing comma/],
    ['missing colon', 'interface a.b\nmethod M(foo int) -> ()', 2, 14, /expected ':' after field name 'foo'/],
    ['unknown type name', 'interface a.b\nmethod M(x: integer) -> ()', 2, 13, /unknown type name 'integer'/],
    ['unresolved type', 'interface a.b\ntype T (a: Nope)', 2, 12, /unresolved type 'Nope'/],
    ['reference to an error', 'interface a.b\nmethod M(x: E) -> ()\nerror E()', 2, 13, /'E' is an error, not a type/],
    ['reference to a method', 'interface a.b\nmethod M(x: M) -> ()', 2, 13, /'M' is a method, not a type/],
    ['double nullable', 'interface a.b\nmethod M(x: ??string) -> ()', 2, 14, /'\?\?'/],
    ['duplicate member (CRLF)', 'interface a.b\r\n\r\ntype M (a: int)\r\nmethod M() -> ()', 4, 8, /duplicate member name 'M'/],
    ['duplicate input field', 'interface a.b\nmethod M(x: int,\n  x: int) -> ()', 3, 3, /duplicate field name 'x'/],
    ['duplicate output field', 'interface a.b\nmethod M(x: int) -> (y: int, y: int)', 2, 30, /duplicate field name 'y'/],
    ['duplicate enum value', 'interface a.b\ntype E (a, b, a)', 2, 15, /duplicate enum value 'a'/],
    ['empty named type', 'interface a.b\ntype E ()', 2, 8, /type 'E' is empty/],
    ['invalid interface name', '# doc\n\tinterface 1a.b\n', 2, 12, /invalid interface name '1a.b'/],
    ['single-label interface name', 'interface ab\n', 1, 11, /invalid interface name 'ab'/],
    ['lowercase member name', 'interface a.b\nmethod m() -> ()', 2, 8, /invalid method name 'm'/],
    ['doubled underscore', 'interface a.b\nmethod M(a__b: int) -> ()', 2, 10, /invalid field name 'a__b'/],
    ['trailing underscore', 'interface a.b\nerror E(a_: int)', 2, 9, /invalid field name 'a_'/],
    ['mixed enum and struct', 'interface a.b\ntype E (a, b: int)', 2, 13, /cannot be mixed/],
    ['enum as method input', 'interface a.b\nmethod M(a, b) -> ()', 2, 9, /must be a struct/],
    ['missing arrow', 'interface a.b\nmethod M() ()', 2, 12, /expected '->'/],
    ['int map key', 'interface a.b\nmethod M(x: [int]string) -> ()', 2, 13, /'\[string\]'/],
    ['stray character', 'interface a.b\nmethod M() -> ();', 2, 17, /unexpected character ';'/],
    ['unknown keyword', 'interface a.b\nstruct S (a: int)', 2, 1, /expected 'type', 'method' or 'error'/],
    ['missing interface', 'method M() -> ()', 1, 1, /expected 'interface'/],
    ['unclosed struct', 'interface a.b\nmethod M(a: int', 2, 16, /expected ',' or '\)'.*end of input/],
    ['non-BMP columns', 'interface a.b\n# \u{1F600}\u{1F600}\nmethod M() -> ()\n\u{1F600}', 4, 1, /unexpected character/],
  ];
  for (const [what, text, line, column, reason] of cases) {
    it(what, () => {
      const e = idlError(text, 'test.varlink');
      expect(e.reason).toMatch(reason);
      expect(e.position).toEqual({ line, column });
      expect(e.file).toBe('test.varlink');
      expect(e.message).toBe(`test.varlink:${line}:${column}: ${e.reason}`);
    });
  }
});

describe('parseInterface: nesting limits', () => {
  const nested = (levels: number): string =>
    `interface a.b\nmethod M(${'a: ('.repeat(levels - 1)}a: int${')'.repeat(levels - 1)}) -> ()`;

  it('accepts 64 levels of struct nesting and refuses 65', () => {
    expect(parseInterface(nested(64)).members).toHaveLength(1);
    expect(idlError(nested(65)).reason).toMatch(/nesting deeper than 64/);
  });

  it('accepts 64 type prefixes and refuses 65', () => {
    expect(parseInterface(`interface a.b\nmethod M(x: ${'[]'.repeat(64)}int) -> ()`).members).toHaveLength(1);
    expect(idlError(`interface a.b\nmethod M(x: ${'[]'.repeat(65)}int) -> ()`).reason).toMatch(/more than 64 type prefixes/);
  });

  const deep = /nesting deeper than 64|more than 64 type prefixes/;
  const hostile: [string, string, RegExp][] = [
    ['parentheses', `interface a.b\nmethod M(x: ${'('.repeat(100_000)}`, /expected a field name .* found '\('/],
    ['struct fields', `interface a.b\nmethod M(${'a: ('.repeat(100_000)}a: int${')'.repeat(100_000)}) -> ()`, deep],
    ['enum in struct', `interface a.b\ntype T(${'a: ?[]('.repeat(100_000)}x${')'.repeat(100_000)})`, deep],
    ['array prefixes', `interface a.b\nmethod M(x: ${'[]'.repeat(100_000)}int) -> ()`, deep],
    ['alternating prefixes', `interface a.b\nmethod M(x: ${'?[string]'.repeat(100_000)}int) -> ()`, deep],
  ];
  for (const [what, text, reason] of hostile) {
    it(`fails 100k-deep ${what} with an IdlError, quickly`, () => {
      const start = performance.now();
      const e = idlError(text);
      expect(e.reason).toMatch(reason);
      expect(performance.now() - start).toBeLessThan(2000);
    });
  }
});
