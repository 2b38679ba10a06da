/**
 * The values of the org.varlink.certification sequence, shared by berth's certification server
 * (which sends them and expects them back) and client (which expects them from any server), and
 * the comparison both use.
 *
 * Each step's reply is the next step's argument: Test01 answers `true`, Test02 is called with it
 * and answers `1`, and so on up to Test09, whose `mytype` comes back in Test10; Test10 streams ten
 * strings that come back in Test11.
 */
import type { MyType, Test05Result, Test06Result } from './generated/org.varlink.certification.js';

export const INTERFACE = 'org.varlink.certification';

/** The steps in the order a client must call them. */
export const STEPS = [
  'Start',
  'Test01',
  'Test02',
  'Test03',
  'Test04',
  'Test05',
  'Test06',
  'Test07',
  'Test08',
  'Test09',
  'Test10',
  'Test11',
  'End',
] as const;

export type Step = (typeof STEPS)[number];

export const TEST01_BOOL = true;
export const TEST02_INT = 1;
export const TEST03_FLOAT = 1.0;
export const TEST04_STRING = 'ping';

export function test05Result(): Test05Result {
  return { bool: false, int: 2, float: 3.141592653589793, string: 'a lot of string' };
}

export function test06Result(): Test06Result {
  return { struct: test05Result() };
}

export function test07Map(): Record<string, string> {
  return { foo: 'Foo', bar: 'Bar' };
}

export function test08Set(): Record<string, Record<string, never>> {
  return { one: {}, two: {}, three: {} };
}

export function test09MyType(): MyType {
  return {
    object: {
      method: 'org.varlink.certification.Test09',
      parameters: { map: test07Map() },
    },
    enum: 'two',
    struct: { first: 1, second: '2' },
    array: ['one', 'two', 'three'],
    dictionary: test07Map(),
    stringset: test08Set(),
    nullable: null,
    nullable_array_struct: null,
    interface: {
      foo: [null, { foo: 'foo', bar: 'bar' }, null, { one: 'foo', two: 'bar' }],
      anon: { foo: true, bar: false },
    },
  };
}

export const TEST10_REPLY_COUNT = 10;

export function test10Replies(): string[] {
  return Array.from({ length: TEST10_REPLY_COUNT }, (_, i) => `Reply number ${i + 1}`);
}

/**
 * Fields declared nullable (`?T`) in the interface, as dotted paths from a call's parameters or a
 * reply. Varlink treats an absent nullable field as null, so these may be left out or sent as
 * null; everywhere else an absent key and a null value differ.
 */
const NULLABLE_FIELDS = new Set([
  'mytype.nullable',
  'mytype.nullable_array_struct',
  'mytype.interface.foo',
]);

/**
 * Where two JSON values first differ, or undefined when they are equal. Numbers compare by value
 * (`1` and `1.0` are the same JSON number once parsed); object keys compare as sets, except that a
 * nullable field (see above) that is absent on one side equals null on the other. `path` names the
 * position for the message and for the nullable lookup.
 */
export function difference(wants: unknown, got: unknown, path = ''): string | undefined {
  const at = path === '' ? 'the value' : `'${path}'`;
  if (wants === null || got === null) {
    return wants === got ? undefined : `${at}: wants ${show(wants)}, got ${show(got)}`;
  }
  if (Array.isArray(wants)) {
    if (!Array.isArray(got)) return `${at}: wants an array, got ${show(got)}`;
    if (wants.length !== got.length) return `${at}: wants ${wants.length} elements, got ${got.length}`;
    for (let i = 0; i < wants.length; i++) {
      const d = difference(wants[i], got[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (typeof wants === 'object') {
    if (typeof got !== 'object' || Array.isArray(got)) return `${at}: wants an object, got ${show(got)}`;
    const w = wants as Record<string, unknown>;
    const g = got as Record<string, unknown>;
    const keys = new Set([...Object.keys(w), ...Object.keys(g)]);
    for (const key of [...keys].sort()) {
      const sub = path === '' ? key : `${path}.${key}`;
      const inW = Object.hasOwn(w, key);
      const inG = Object.hasOwn(g, key);
      if (inW && inG) {
        const d = difference(w[key], g[key], sub);
        if (d) return d;
        continue;
      }
      const present = inW ? w[key] : g[key];
      if (present === null && NULLABLE_FIELDS.has(stripIndexes(sub))) continue;
      return inW ? `'${sub}' is missing` : `'${sub}' is not expected (got ${show(g[key])})`;
    }
    return undefined;
  }
  if (typeof wants !== typeof got) return `${at}: wants ${show(wants)}, got ${show(got)}`;
  return wants === got ? undefined : `${at}: wants ${show(wants)}, got ${show(got)}`;
}

function stripIndexes(path: string): string {
  return path.replace(/\[\d+\]/g, '');
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
