/**
 * The parser compatibility matrix of varlink.md §2.5, for berth's parser and for its report of what
 * systemd refuses. The "systemd 257" notes were checked with the real parser:
 * `shared/tools/systemd-reference run varlinkctl validate-idl FILE` (Debian 13 build of systemd 257).
 */
import { describe, it, expect } from 'vitest';
import {
  IdlError,
  parseInterface,
  systemdCompatibilityProblems,
  type Interface,
} from '../../../src/varlink/idl/index.js';
import { CERTIFICATION_IDL } from './certification.js';

function problems(text: string): { path: string; reason: string }[] {
  return systemdCompatibilityProblems(parseInterface(text));
}

function paths(text: string): string[] {
  return problems(text).map((p) => p.path);
}

describe('§2.5 matrix: accepted by berth', () => {
  it('sd-style text: tabs, comments before fields and methods, multi-line parameters (systemd: OK, it emits this)', () => {
    const text = [
      'interface io.systemd.Example',
      '',
      '# List things',
      "# [Supports 'more' flag]",
      'method List(',
      '\t# The name',
      '\tname: ?string,',
      '\t# Whether to ask',
      '\tallowInteractiveAuthentication: ?bool',
      ') -> (',
      '\t# The name',
      '\tname: string',
      ')',
      '',
    ].join('\n');
    const iface = parseInterface(text);
    expect(iface.members[0]).toMatchObject({ kind: 'method', more: 'supports', doc: ['List things'] });
    expect(systemdCompatibilityProblems(iface)).toEqual([]);
  });

  it('`any` (systemd 257: FAIL "unresolved type"; accepted since 260)', () => {
    expect(problems('interface a.b\nmethod M(v: any) -> ()')).toEqual([
      { path: 'M.input.v', reason: "'any' is not known to systemd before version 260 (in 'any')" },
    ]);
  });

  // systemd 257: FAIL "Bad syntax." for each of these (one '?', then at most one collection).
  const nested: [string, string[]][] = [
    ['[][]int', ['nested collection']],
    ['[]?string', ["'?' after '[]'"]],
    ['?[]?[string](x, y)', ["'?' after '[]'", 'nested collection']],
    ['[string][]int', ['nested collection']],
    ['?[string]?int', ["'?' after '[]'"]],
  ];
  for (const [type, reasons] of nested) {
    it(`nested prefixes ${type} (systemd 257: FAIL)`, () => {
      const found = problems(`interface a.b\nmethod M(x: ${type}) -> ()`);
      expect(found.map((p) => p.path)).toEqual(reasons.map(() => 'M.input.x'));
      reasons.forEach((r, i) => expect(found[i]?.reason).toContain(r));
    });
  }

  it('single prefixes ?int, ?[]int, ?[string](a, b), []T, ?[](a: int) (systemd 257: OK)', () => {
    expect(
      problems('interface a.b\ntype T (a: int)\nmethod M(a: ?int, b: ?[]int, c: ?[string](a, b), d: []T, e: ?[](a: int)) -> ()'),
    ).toEqual([]);
  });

  it('empty anonymous struct as a field type: (), ?(), []() and [string]() (systemd 257: FAIL "Bad syntax.")', () => {
    expect(paths('interface a.b\nmethod M(a: (), b: ?(), c: []()) -> (d: [string](), e: (f: ()))')).toEqual([
      'M.input.a',
      'M.input.b',
      'M.input.c',
      'M.output.d',
      'M.output.e.f',
    ]);
  });

  it('uppercase first letter of a field (systemd 257: OK)', () => {
    expect(problems('interface a.b\nmethod M(Foo: int) -> ()')).toEqual([]);
  });

  it('interface with no members (systemd 257: OK)', () => {
    expect(problems('interface a.b\n')).toEqual([]);
  });

  it('one-line interface (systemd 257: OK)', () => {
    expect(problems('interface x.y method M() -> ()')).toEqual([]);
  });

  it('keywords as field names (systemd 257: OK)', () => {
    expect(
      problems('interface a.b\nmethod M(type: string, method: string, bool: bool, object: object, error: int) -> ()'),
    ).toEqual([]);
  });

  it('uppercase interface label io.systemd.Resolve (systemd 257: OK; Go 0.4.0 refuses)', () => {
    expect(problems('interface io.systemd.Resolve\nmethod M() -> ()')).toEqual([]);
  });

  it('the certification interface (systemd 257: FAIL at 4:11, the second "?")', () => {
    const iface = parseInterface(CERTIFICATION_IDL);
    expect(iface.name).toBe('org.varlink.certification');
    expect(iface.members.map((m) => m.name)).toEqual([
      'Interface', 'MyType', 'Start', 'Test01', 'Test02', 'Test03', 'Test04', 'Test05', 'Test06', 'Test07',
      'Test08', 'Test09', 'Test10', 'Test11', 'End', 'ClientIdError', 'CertificationError',
    ]);
    const test10 = iface.members.find((m) => m.name === 'Test10');
    expect(test10).toMatchObject({ doc: ['returns more than one reply with "continues"'], more: 'none' });
    // With `foo: ?[string](foo, bar, baz)` and `[string]bool` for the sets, systemd 257 accepts it.
    expect(systemdCompatibilityProblems(iface).map((p) => p.path)).toEqual([
      'Interface.foo',
      'Interface.foo',
      'MyType.stringset',
      'Test08.output.set',
      'Test09.input.set',
    ]);
  });
});

describe('§2.5 matrix: refused by berth', () => {
  const refused: [string, string, RegExp][] = [
    // systemd 257: "t.varlink:2:10: Bad syntax."
    ['empty named type', 'interface a.b\ntype E ()', /type 'E' is empty/],
    // systemd 257: "t.varlink:2:17: Bad syntax."
    ['trailing comma', 'interface a.b\nmethod M(a: int,) -> ()', /trailing comma/],
    // systemd 257: "Symbol 'M' defined twice in interface" / "Field or symbol not unique in interface."
    ['duplicate method', 'interface a.b\nmethod M() -> ()\nmethod M() -> ()', /duplicate member name 'M'/],
    // systemd 257: "Failed to parse interface description due an unresolved type."
    ['undefined type', 'interface a.b\nmethod M(x: Nope) -> ()', /unresolved type 'Nope'/],
  ];
  for (const [what, text, reason] of refused) {
    it(what, () => {
      expect(() => parseInterface(text)).toThrow(IdlError);
      expect(() => parseInterface(text)).toThrow(reason);
    });
  }
});

describe('systemdCompatibilityProblems on hand-built ASTs', () => {
  it('reports an empty named type and a double nullable that the parser would refuse', () => {
    const iface: Interface = {
      name: 'a.b',
      doc: [],
      members: [
        { kind: 'type', name: 'E', type: { kind: 'enum', values: [] }, doc: [] },
        {
          kind: 'error',
          name: 'X',
          doc: [],
          type: { kind: 'struct', fields: [{ name: 'n', doc: [], type: { kind: 'nullable', inner: { kind: 'nullable', inner: { kind: 'int' } } } }] },
        },
      ],
    };
    expect(systemdCompatibilityProblems(iface)).toEqual([
      { path: 'E', reason: "empty named type '()': systemd refuses it as ambiguous" },
      { path: 'X.n', reason: "more than one '?': systemd allows a single nullable prefix (in '??int')" },
    ]);
  });
});
